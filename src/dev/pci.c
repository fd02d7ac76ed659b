// SPDX-License-Identifier: MIT
/* pci.c: the PCI host bridge: configuration mechanism #1 at 0xcf8/0xcfc and the 0xcf9 reset register. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "dev/legacy.h"
#include "vmm/bus.h"

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

static void pci_cfg_access(struct pci_host *h, unsigned byte, uint8_t *data, uint32_t len,
			   bool wr)
{
	uint32_t a = h->r.addr;
	unsigned bus = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
	unsigned reg = (a & 0xfc) + byte, i;

	if (!(a & 0x80000000u) || bus != 0 || slot != 0 || fn != 0) {
		if (!wr)
			memset(data, 0xff, len);
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
