// SPDX-License-Identifier: MIT
/* pci.c: the PCI host bridge: configuration mechanism #1 at 0xcf8/0xcfc and the 0xcf9 reset register. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"
#include "arch/x86/acpi.h"
#include "dev/legacy.h"
#include "dev/pci.h"
#include "vmm/bus.h"
#include "vmm/mem.h"

/*
 * Bus 0, device 0 is the host bridge. Devices will plug in at slots 1-31
 * (virtio-pci); their configuration space is reached through the same
 * window. Vendor 0x1b36 device 0x0008 is the generic PCIe host bridge ID
 * that Linux drivers treat as a plain host bridge.
 */
#define PCI_SLOTS 32
#define CFG_SIZE 256

struct pci_host_regs {
	uint32_t addr;  /* 0xcf8 CONFIG_ADDRESS */
	uint8_t rcr;    /* 0xcf9 reset control register */
	uint8_t bridge_cfg[CFG_SIZE];
};

struct pci_host {
	pthread_mutex_t lock;
	struct dev_ctx ctx;
	struct pci_host_regs r;
	struct pci_device *slots[PCI_SLOTS];
	uint64_t mmio_next; /* bump allocator in the 32-bit window */
};

static void pci_bridge_init(uint8_t *c)
{
	memset(c, 0, CFG_SIZE);
	c[0x00] = 0x36; c[0x01] = 0x1b; /* vendor */
	c[0x02] = 0x08; c[0x03] = 0x00; /* device */
	c[0x04] = 0x06;                 /* command: memory + bus master */
	c[0x08] = 0x00;                 /* revision */
	c[0x0a] = 0x00; c[0x0b] = 0x06; /* class: bridge, host */
	c[0x0e] = 0x00;                 /* header type 0 */
}

/* Only the command register is writable on the bridge; everything else is read-only. */
static void pci_bridge_write(struct pci_host *h, unsigned off, uint8_t v)
{
	if (off == 0x04 || off == 0x05)
		h->r.bridge_cfg[off] = v;
}

/*
 * Whether a memory BAR at [addr, addr + size) may decode: wholly inside the
 * 32-bit window, or wholly above 4 GiB and above guest RAM there. A BAR the
 * guest moves over RAM (or over the IOAPIC/LAPIC, past the window) is treated
 * like an unassigned one until it is moved somewhere legal: RAM wins in KVM's
 * memslots anyway, and the notify ioeventfds must not be registered there.
 */
static bool pci_bar_addr_ok(const struct pci_host *h, uint64_t addr, uint64_t size)
{
	uint64_t high = X86_MEM_HIGH_START;

	if (!addr || addr + size <= addr)
		return false;
	if (addr >= X86_PCI_MMIO_START && addr + size <= X86_PCI_MMIO_END)
		return true;
	if (h->ctx.gm)
		high = MAX(high, gm_end(h->ctx.gm));
	return addr >= high;
}

/* Map or unmap a device's BARs on the MMIO bus to follow its command register and BARs. */
static void pci_update_bars(struct pci_host *h, struct pci_device *d)
{
	bool mem_on = d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY;
	int i;

	for (i = 0; i < PCI_NUM_BARS; i++) {
		const struct pci_bar_desc *b = &d->bars[i];
		uint64_t addr = 0;
		bool want;

		if (!b->size)
			continue;
		memcpy(&addr, &d->cfg[PCI_BAR0 + 4 * i], b->is64 ? 8 : 4);
		addr &= ~0xfULL;
		want = mem_on && pci_bar_addr_ok(h, addr, b->size);
		if (d->bar_live[i] && (!want || addr != d->bar_addr[i])) {
			bus_unregister(h->ctx.mmio, d->bar_addr[i]);
			d->bar_live[i] = false;
			if (d->bar_mapped)
				d->bar_mapped(d->opaque, i, 0);
		}
		if (want && !d->bar_live[i]) {
			if (bus_register(h->ctx.mmio, addr, b->size, b->ops, b->opaque) == 0) {
				d->bar_live[i] = true;
				d->bar_addr[i] = addr;
				if (d->bar_mapped)
					d->bar_mapped(d->opaque, i, addr);
			}
		}
	}
}

/* Writable bits of a BAR register: the address bits above the BAR's size. */
static uint8_t pci_bar_wmask(const struct pci_device *d, unsigned off)
{
	unsigned idx = (off - PCI_BAR0) / 4, byte = (off - PCI_BAR0) % 4;
	uint64_t mask;

	if (idx > 0 && d->bars[idx - 1].size && d->bars[idx - 1].is64) {
		/* Upper half of a 64-bit BAR: fully writable. */
		return 0xff;
	}
	if (!d->bars[idx].size)
		return 0;
	mask = ~(d->bars[idx].size - 1);
	return (uint8_t)(mask >> (8 * byte)) & (byte == 0 ? 0xf0 : 0xff);
}

static void pci_dev_write(struct pci_host *h, struct pci_device *d, unsigned reg,
			  const uint8_t *data, uint32_t len)
{
	bool bars = false, other = false;
	unsigned i;

	for (i = 0; i < len && reg + i < PCI_CFG_SIZE; i++) {
		unsigned off = reg + i;
		uint8_t m;

		if (off >= PCI_BAR0 && off < PCI_BAR0 + 4 * PCI_NUM_BARS) {
			m = pci_bar_wmask(d, off);
			bars = true;
		} else if (off == PCI_COMMAND) {
			m = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
			bars = true;
		} else if (off == PCI_COMMAND + 1) {
			/* INTx disable: the device re-evaluates its interrupt line. */
			m = PCI_COMMAND_INTX_DISABLE >> 8;
			other = true;
		} else if (off == PCI_INTERRUPT_LINE) {
			m = 0xff;
		} else {
			m = d->wmask[off];
			other = other || m;
		}
		d->cfg[off] = (uint8_t)((d->cfg[off] & ~m) | (data[i] & m));
	}
	if (bars)
		pci_update_bars(h, d);
	if (other && d->cfg_written)
		d->cfg_written(d->opaque, reg, len);
}

static void pci_cfg_access(struct pci_host *h, unsigned byte, uint8_t *data, uint32_t len,
			   bool wr)
{
	uint32_t a = h->r.addr;
	unsigned bus = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
	unsigned reg = (a & 0xfc) + byte, i;
	struct pci_device *d = slot ? h->slots[slot] : NULL;

	if (!(a & 0x80000000u) || bus != 0 || fn != 0 || (slot && !d)) {
		if (!wr)
			memset(data, 0xff, len);
		return;
	}
	if (d) {
		if (wr) {
			pci_dev_write(h, d, reg, data, len);
			return;
		}
		if (d->cfg_reading && reg < PCI_CFG_SIZE)
			d->cfg_reading(d->opaque, reg, MIN(len, PCI_CFG_SIZE - reg));
		for (i = 0; i < len; i++)
			data[i] = reg + i < PCI_CFG_SIZE ? d->cfg[reg + i] : 0xff;
		return;
	}
	for (i = 0; i < len && reg + i < CFG_SIZE; i++) {
		if (wr)
			pci_bridge_write(h, reg + i, data[i]);
		else
			data[i] = h->r.bridge_cfg[reg + i];
	}
	for (; !wr && i < len; i++)
		data[i] = 0xff;
}

int pci_add_device(void *host, struct pci_device *d, struct err *e)
{
	struct pci_host *h = host;
	unsigned slot;
	int i;

	pthread_mutex_lock(&h->lock);
	for (slot = 1; slot < PCI_SLOTS && h->slots[slot]; slot++)
		;
	if (slot == PCI_SLOTS) {
		pthread_mutex_unlock(&h->lock);
		return err_set(e, ENOSPC, "%s: no free PCI slot (31 devices at most)", d->name);
	}
	for (i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t sz = d->bars[i].size, addr;

		if (!sz)
			continue;
		addr = ALIGN_UP(h->mmio_next, sz);
		if (addr + sz > X86_PCI_MMIO_END || addr + sz < addr) {
			pthread_mutex_unlock(&h->lock);
			return err_set(e, ENOSPC, "%s: the 32-bit PCI window is full", d->name);
		}
		h->mmio_next = addr + sz;
		memcpy(&d->cfg[PCI_BAR0 + 4 * i], &addr, d->bars[i].is64 ? 8 : 4);
		d->cfg[PCI_BAR0 + 4 * i] |= d->bars[i].is64 ? 0x4 : 0x0;
		if (d->bars[i].is64)
			i++;
	}
	d->slot = slot;
	d->cfg[PCI_INTERRUPT_PIN] = 1; /* INTA# */
	d->intx_gsi = x86_pci_intx_gsi(slot, 0);
	d->cfg[PCI_INTERRUPT_LINE] = (uint8_t)d->intx_gsi;
	/* Firmware leaves memory decoding on so the guest can use the BARs as assigned. */
	d->cfg[PCI_COMMAND] |= PCI_COMMAND_MEMORY;
	h->slots[slot] = d;
	pci_update_bars(h, d);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

void pci_remove_device(void *host, struct pci_device *d)
{
	struct pci_host *h = host;

	pthread_mutex_lock(&h->lock);
	if (d->slot && h->slots[d->slot] == d) {
		d->cfg[PCI_COMMAND] &= ~PCI_COMMAND_MEMORY;
		pci_update_bars(h, d);
		h->slots[d->slot] = NULL;
	}
	pthread_mutex_unlock(&h->lock);
}

static void pci_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct pci_host *h = opaque;

	pthread_mutex_lock(&h->lock);
	if (off < 4) {
		if (off == 0 && len == 4)
			memcpy(data, &h->r.addr, 4);
		else if (off == 1 && len == 1)
			data[0] = h->r.rcr;
		else
			memset(data, 0xff, len);
	} else {
		pci_cfg_access(h, (unsigned)(off - 4), data, len, false);
	}
	pthread_mutex_unlock(&h->lock);
}

static void pci_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct pci_host *h = opaque;
	bool reset = false;
	uint8_t buf[8];

	pthread_mutex_lock(&h->lock);
	if (off < 4) {
		if (off == 0 && len == 4) {
			memcpy(&h->r.addr, data, 4);
		} else if (off == 1 && len == 1) {
			/* Reset control register (0xcf9): bit 2 starts the reset (FADT RESET_REG). */
			h->r.rcr = data[0] & 0x0e;
			reset = data[0] & 0x04;
		}
	} else {
		memcpy(buf, data, len);
		pci_cfg_access(h, (unsigned)(off - 4), buf, len, true);
	}
	pthread_mutex_unlock(&h->lock);
	if (reset)
		h->ctx.request(h->ctx.request_opaque, VM_REQ_RESET);
}

static const struct bus_ops pci_ops = { .read = pci_read, .write = pci_write };

static int pci_host_create(const struct dev_ctx *ctx, void **priv, struct err *e)
{
	struct pci_host *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return err_set(e, ENOMEM, "out of memory");
	pthread_mutex_init(&h->lock, NULL);
	h->ctx = *ctx;
	pci_bridge_init(h->r.bridge_cfg);
	h->mmio_next = X86_PCI_MMIO_START;
	r = bus_register(ctx->pio, X86_PORT_PCI_CONFIG, 8, &pci_ops, h);
	if (r) {
		free(h);
		return err_set(e, -r, "pci: cannot claim ports 0xcf8-0xcff");
	}
	*priv = h;
	return 0;
}

static void pci_host_destroy(void *priv)
{
	struct pci_host *h = priv;

	bus_unregister(h->ctx.pio, X86_PORT_PCI_CONFIG);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static int pci_host_save(void *priv, struct sbuf *out)
{
	struct pci_host *h = priv;
	uint8_t ver = 1;
	int r;

	pthread_mutex_lock(&h->lock);
	r = sbuf_put(out, &ver, 1);
	if (!r)
		r = sbuf_put(out, &h->r, sizeof(h->r));
	pthread_mutex_unlock(&h->lock);
	return r;
}

static int pci_host_load(void *priv, const uint8_t *buf, size_t len)
{
	struct pci_host *h = priv;

	if (len != 1 + sizeof(h->r) || buf[0] != 1)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	memcpy(&h->r, buf + 1, sizeof(h->r));
	pthread_mutex_unlock(&h->lock);
	return 0;
}

const struct dev_desc pci_host_desc = {
	.name = "pci-host",
	.create = pci_host_create,
	.destroy = pci_host_destroy,
	.save = pci_host_save,
	.load = pci_host_load,
};
