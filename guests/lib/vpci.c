/* SPDX-License-Identifier: MIT */
/* vpci.c: the modern virtio-pci transport of the test guests' polling drivers (vpci.h). */
#include "vpci.h"

#define PCI_CMD_MEM 0x2
#define PCI_CMD_MASTER 0x4
#define PCI_CMD_INTX_OFF 0x400
#define PCI_STATUS_CAPS 0x10
#define PCI_CAP_VENDOR 0x09

/* virtio_pci_cap cfg_type (4.1.4). */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4

/* Common configuration layout (4.1.4.3). */
#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_STATUS 0x14
#define CC_QSELECT 0x16
#define CC_QSIZE 0x18
#define CC_QMSIX 0x1a
#define CC_QENABLE 0x1c
#define CC_QNOTIFY_OFF 0x1e
#define CC_QDESC 0x20
#define CC_QDRIVER 0x28
#define CC_QDEVICE 0x30

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* --- configuration mechanism #1 (ports 0xcf8/0xcfc), bus 0 --- */
static void cfg_addr(const struct vpci *d, unsigned off)
{
	outl(0xcf8, 0x80000000u | (uint32_t)d->slot << 11 | (uint32_t)d->fn << 8 | (off & 0xfc));
}
uint32_t vpci_cfg_rd32(const struct vpci *d, unsigned off)
{
	cfg_addr(d, off);
	return inl(0xcfc);
}
uint16_t vpci_cfg_rd16(const struct vpci *d, unsigned off)
{
	cfg_addr(d, off);
	return inw((uint16_t)(0xcfc + (off & 2)));
}
uint8_t vpci_cfg_rd8(const struct vpci *d, unsigned off)
{
	cfg_addr(d, off);
	return inb((uint16_t)(0xcfc + (off & 3)));
}
void vpci_cfg_wr16(const struct vpci *d, unsigned off, uint16_t v)
{
	cfg_addr(d, off);
	outw((uint16_t)(0xcfc + (off & 2)), v);
}

int vpci_next(struct vpci *d, unsigned *pos)
{
	for (; *pos < 32 * 8; (*pos)++) {
		struct vpci f = { .slot = (uint8_t)(*pos / 8), .fn = 0 };
		unsigned fn = *pos % 8;

		/* Functions 1-7 exist only on multi-function devices. */
		if (fn && !(vpci_cfg_rd8(&f, 0x0e) & 0x80)) {
			*pos = f.slot * 8u + 7;
			continue;
		}
		f.fn = (uint8_t)fn;
		uint32_t id = vpci_cfg_rd32(&f, 0);
		if ((id & 0xffff) == 0xffff) {
			if (fn == 0)
				*pos = f.slot * 8u + 7;
			continue;
		}
		if ((id & 0xffff) != PCI_VENDOR_VIRTIO)
			continue;
		*d = (struct vpci){ .slot = f.slot, .fn = f.fn, .id = (uint16_t)(id >> 16),
				    .name = "virtio" };
		(*pos)++;
		return 1;
	}
	return 0;
}

void vpci_enable(const struct vpci *d)
{
	uint16_t cmd = vpci_cfg_rd16(d, 0x04);
	vpci_cfg_wr16(d, 0x04, (uint16_t)(cmd | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_OFF));
}

uint64_t vpci_bar_addr(const struct vpci *d, unsigned bar)
{
	if (bar > 5)
		fail("%02x.%x: capability names BAR %u", d->slot, d->fn, bar);
	uint32_t lo = vpci_cfg_rd32(d, 0x10 + 4 * bar);
	if (lo & 1)
		fail("%02x.%x: BAR %u is an I/O BAR", d->slot, d->fn, bar);
	uint64_t a = lo & ~0xfULL;
	if (((lo >> 1) & 3) == 2) {
		if (bar == 5)
			fail("%02x.%x: 64-bit BAR 5", d->slot, d->fn);
		a |= (uint64_t)vpci_cfg_rd32(d, 0x14 + 4 * bar) << 32;
	}
	if (!a || a >= 0x100000000ULL)
		fail("%02x.%x: BAR %u at 0x%lx: not assigned or above 4 GiB (not mapped)", d->slot,
		     d->fn, bar, a);
	return a;
}

void vpci_find_caps(struct vpci *d)
{
	unsigned guard = 0;

	if (!(vpci_cfg_rd16(d, 0x06) & PCI_STATUS_CAPS))
		fail("%s at %02x.%x: no capability list", d->name, d->slot, d->fn);
	for (unsigned p = vpci_cfg_rd8(d, 0x34) & 0xfc; p; p = vpci_cfg_rd8(d, p + 1) & 0xfc) {
		if (++guard > 48 || p < 0x40)
			fail("%s: capability list loops or points into the header", d->name);
		if (vpci_cfg_rd8(d, p) != PCI_CAP_VENDOR)
			continue;
		uint8_t type = vpci_cfg_rd8(d, p + 3);
		if (type < CAP_COMMON || type > CAP_DEVICE)
			continue;
		uintptr_t a = (uintptr_t)(vpci_bar_addr(d, vpci_cfg_rd8(d, p + 4)) +
					  vpci_cfg_rd32(d, p + 8));
		uint32_t len = vpci_cfg_rd32(d, p + 12);
		/* The first capability of each type is the preferred one (4.1.4). */
		switch (type) {
		case CAP_COMMON:
			if (!d->common && len >= 0x38)
				d->common = a;
			break;
		case CAP_NOTIFY:
			if (!d->notify) {
				d->notify = a;
				d->mult = vpci_cfg_rd32(d, p + 16);
			}
			break;
		case CAP_ISR:
			if (!d->isr)
				d->isr = a;
			break;
		case CAP_DEVICE:
			if (!d->device)
				d->device = a;
			break;
		}
	}
	if (!d->common || !d->notify || !d->isr)
		fail("%s: missing common, notify or ISR capability", d->name);
}

uint8_t vpci_status(const struct vpci *d) { return rd8(d->common + CC_STATUS); }
void vpci_set_status(const struct vpci *d, uint8_t s) { wr8(d->common + CC_STATUS, s); }

void vpci_reset(const struct vpci *d)
{
	vpci_set_status(d, 0);
	for (int i = 0; vpci_status(d) != 0; i++) {
		if (i > 100000)
			fail("%s: status stays 0x%x after reset", d->name, vpci_status(d));
		cpu_relax();
	}
}

uint64_t vpci_negotiate(const struct vpci *d, uint64_t need, uint64_t want)
{
	vpci_reset(d);
	vpci_set_status(d, VIRTIO_ST_ACK);
	vpci_set_status(d, VIRTIO_ST_ACK | VIRTIO_ST_DRIVER);
	wr32(d->common + CC_DFSELECT, 0);
	uint64_t offered = rd32(d->common + CC_DF);
	wr32(d->common + CC_DFSELECT, 1);
	offered |= (uint64_t)rd32(d->common + CC_DF) << 32;
	if (!(offered >> VIRTIO_F_VERSION_1 & 1))
		fail("%s: VIRTIO_F_VERSION_1 (bit 32) not offered", d->name);
	need |= 1ULL << VIRTIO_F_VERSION_1;
	if (need & ~offered)
		fail("%s: features 0x%lx not offered (offered 0x%lx)", d->name, need & ~offered,
		     offered);
	need |= want & offered;
	wr32(d->common + CC_GFSELECT, 0);
	wr32(d->common + CC_GF, (uint32_t)need);
	wr32(d->common + CC_GFSELECT, 1);
	wr32(d->common + CC_GF, (uint32_t)(need >> 32));
	vpci_set_status(d, VIRTIO_ST_ACK | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK);
	if (!(vpci_status(d) & VIRTIO_ST_FEATURES_OK))
		fail("%s: FEATURES_OK not accepted (status 0x%x)", d->name, vpci_status(d));
	return offered;
}

uint16_t vpci_queue_setup(const struct vpci *d, unsigned qi, uint16_t want, uint64_t desc,
			  uint64_t driver, uint64_t device)
{
	wr16(d->common + CC_QSELECT, (uint16_t)qi);
	uint16_t max = rd16(d->common + CC_QSIZE);
	if (max == 0)
		fail("%s: queue %u not available", d->name, qi);
	uint16_t size = max < want ? max : want;
	if (size & (size - 1))
		fail("%s: queue %u: size %u is not a power of 2", d->name, qi, size);
	wr16(d->common + CC_QSIZE, size);
	wr16(d->common + CC_QMSIX, 0xffff); /* no vector: we poll */
	wr64(d->common + CC_QDESC, desc);
	wr64(d->common + CC_QDRIVER, driver);
	wr64(d->common + CC_QDEVICE, device);
	wr16(d->common + CC_QENABLE, 1);
	if (rd16(d->common + CC_QENABLE) != 1)
		fail("%s: queue %u did not enable (status 0x%x)", d->name, qi, vpci_status(d));
	return size;
}

uintptr_t vpci_queue_notify(const struct vpci *d, unsigned qi)
{
	wr16(d->common + CC_QSELECT, (uint16_t)qi);
	return d->notify + (uintptr_t)rd16(d->common + CC_QNOTIFY_OFF) * d->mult;
}

void vpci_driver_ok(const struct vpci *d)
{
	vpci_set_status(d, VIRTIO_ST_ACK | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK |
			   VIRTIO_ST_DRIVER_OK);
	uint8_t s = vpci_status(d);
	if (s & (VIRTIO_ST_NEEDS_RESET | VIRTIO_ST_FAILED) || !(s & VIRTIO_ST_DRIVER_OK))
		fail("%s: status 0x%x after DRIVER_OK", d->name, s);
}
