// SPDX-License-Identifier: MIT
/* fdrv.c: the virtio-pci driver shared by the virtio-net and virtio-console/balloon fuzz harnesses. */
#include "fdrv.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/sbuf.h"
#include "dev/legacy.h"
#include "virtio/virtio.h"
#include "vmm/bus.h"

static int irq_none(void *opaque, uint32_t gsi, bool level)
{
	(void)opaque;
	(void)gsi;
	(void)level;
	return 0;
}

void fdrv_init(struct fdrv *d, unsigned nq)
{
	struct mem_opts mo = { .size = FDRV_MEM };
	struct err e = { { 0 } };

	memset(d, 0, sizeof(*d));
	d->nq = nq;
	d->ctx.pio = bus_create("pio");
	d->ctx.mmio = bus_create("mmio");
	if (!d->ctx.pio || !d->ctx.mmio || mem_create(&d->gm, &mo, &e))
		abort();
	d->ctx.gm = &d->gm;
	d->ctx.irq_set = irq_none;
	d->ctx.irq_opaque = d;
	d->ctx.console_in_fd = d->ctx.console_out_fd = -1;
	if (pci_host_desc.create(&d->ctx, &d->host, &e))
		abort();
	d->ctx.pci = d->host;
}

void fdrv_plug(struct fdrv *d, struct virtio_dev *vd)
{
	d->vd = vd;
	d->bar = X86_PCI_MMIO_START; /* the first device's BAR 0, as the host bridge assigns it */
}

void fdrv_fini(struct fdrv *d)
{
	virtio_pci_destroy(d->vd);
	pci_host_desc.destroy(d->host);
	mem_destroy(&d->gm);
	bus_destroy(d->ctx.pio);
	bus_destroy(d->ctx.mmio);
	if (d->ctx.console_out_fd >= 0)
		close(d->ctx.console_out_fd);
}

void fdrv_wr(struct fdrv *d, uint64_t off, unsigned len, uint64_t v)
{
	uint8_t b[8];

	memcpy(b, &v, 8);
	bus_access(d->ctx.mmio, d->bar + off, b, len, true);
}

uint32_t fdrv_rd(struct fdrv *d, uint64_t off, unsigned len)
{
	uint8_t b[8] = { 0 };
	uint32_t v;

	bus_access(d->ctx.mmio, d->bar + off, b, len, false);
	memcpy(&v, b, 4);
	return v;
}

/* The device's feature bits from its first `words` 32-bit words; the words not read all ones. */
static uint64_t offered(struct fdrv *d, unsigned words)
{
	uint64_t o = words < 2 ? 0xffffffffULL << 32 : 0;

	for (unsigned w = 0; w < words; w++) {
		fdrv_wr(d, 0x00, 4, w);
		o |= (uint64_t)fdrv_rd(d, 0x04, 4) << (32 * w);
	}
	return o;
}

void fdrv_start(struct fdrv *d, struct input *in, uint64_t f, unsigned words)
{
	f |= VIRTIO_BIT(VIRTIO_F_VERSION_1);
	f |= (uint64_t)(next(in) & 0x30) << 24; /* INDIRECT_DESC, EVENT_IDX */
	fdrv_wr(d, 0x14, 1, 0);
	/* Mostly what the device offers, sometimes not. */
	if (!(next(in) & 0x80))
		f &= offered(d, words);
	fdrv_wr(d, 0x14, 1, 3);
	fdrv_wr(d, 0x08, 4, 0);
	fdrv_wr(d, 0x0c, 4, (uint32_t)f);
	fdrv_wr(d, 0x08, 4, 1);
	fdrv_wr(d, 0x0c, 4, (uint32_t)(f >> 32));
	fdrv_wr(d, 0x14, 1, 11);
	for (unsigned q = 0; q < d->nq; q++) {
		uint64_t desc = FDRV_WIN + 0x2000ULL * q;
		uint16_t size = (uint16_t)(1u << (next(in) % 9)); /* 1 .. 256 */

		d->qsize[q] = size;
		d->avail_idx[q] = 0;
		memset(gm_ptr(&d->gm, desc, 0x2000), 0, 0x2000);
		fdrv_wr(d, 0x16, 2, q);
		fdrv_wr(d, 0x18, 2, size);
		fdrv_wr(d, 0x20, 4, desc);
		fdrv_wr(d, 0x28, 4, desc + 16ULL * size);
		fdrv_wr(d, 0x30, 4, (desc + 16ULL * size + 6 + 2ULL * size + 3) & ~3ULL);
		fdrv_wr(d, 0x1c, 2, 1);
	}
	fdrv_wr(d, 0x14, 1, 15);
}

/* A descriptor: queue and index bytes, buffer (2 bytes, 16-byte units), length (2 bytes), flags, next. */
static void write_desc(struct fdrv *d, struct input *in)
{
	unsigned q = next(in) % d->nq, i = next(in) % d->qsize[q];
	uint8_t *p = gm_ptr(&d->gm, FDRV_WIN + 0x2000ULL * q + 16ULL * i, 16);
	uint64_t a = FDRV_WIN + 0x2000ULL * d->nq + 16ULL * next16(in);
	uint32_t l = next16(in);
	uint16_t fl = next(in) & 7, nx = next(in);

	memcpy(p, &a, 8);
	memcpy(p + 8, &l, 4);
	memcpy(p + 12, &fl, 2);
	memcpy(p + 14, &nx, 2);
}

/* Guest RAM in the window: offset (2 bytes), a length byte, the bytes. */
static void write_ram(struct fdrv *d, struct input *in)
{
	uint64_t off = FDRV_WIN + next16(in) % FDRV_WIN_LEN;
	unsigned len = next(in);
	uint8_t *p = gm_ptr(&d->gm, off, len ? len : 1);

	for (unsigned i = 0; p && i < len; i++)
		p[i] = next(in);
}

/* A head on a queue's avail ring: queue byte, head (2 bytes). */
static void publish(struct fdrv *d, struct input *in)
{
	unsigned q = next(in) % d->nq;
	uint16_t head = next16(in);
	uint64_t avail = FDRV_WIN + 0x2000ULL * q + 16ULL * d->qsize[q];
	uint16_t *ring = gm_ptr(&d->gm, avail, 4 + 2ULL * d->qsize[q]);

	ring[2 + d->avail_idx[q] % d->qsize[q]] = head;
	ring[1] = ++d->avail_idx[q];
}

/* Save the state, flip a byte, load it back, then the good state, which must load. */
static void save_flip_load(struct fdrv *d, struct input *in)
{
	struct sbuf s = { 0 };

	if (virtio_save(d->vd, &s) == 0 && s.len) {
		size_t at = next16(in) % s.len;
		uint8_t old = s.data[at];

		s.data[at] ^= (uint8_t)(next(in) | 1);
		virtio_load(d->vd, s.data, s.len);
		s.data[at] = old;
		if (virtio_load(d->vd, s.data, s.len))
			abort(); /* a device must take back its own state */
	}
	sbuf_free(&s);
}

bool fdrv_op(struct fdrv *d, uint8_t op, struct input *in)
{
	switch (op & 7) {
	case 0:
		if (op & 8)
			write_desc(d, in);
		else
			write_ram(d, in);
		return true;
	case 1:
		publish(d, in);
		return true;
	case 2:
		fdrv_wr(d, 0x3000 + 4ULL * (next(in) & 3), 2, 0);
		return true;
	case 6:
		save_flip_load(d, in);
		return true;
	case 7: {
		uint8_t off = next(in) % 0x38;

		fdrv_wr(d, off & ~1u, 2, next16(in));
		return true;
	}
	}
	return false;
}
