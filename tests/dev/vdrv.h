/* SPDX-License-Identifier: MIT */
/* vdrv.h: a tiny virtio-pci driver for device tests: fake bus, fake guest RAM, split rings written by hand. */
#ifndef KVMM_TESTS_DEV_VDRV_H
#define KVMM_TESTS_DEV_VDRV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "dev/legacy.h"
#include "fake.h"
#include "virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/mem.h"

#define VDRV_MEM (16ULL << 20)
#define VDRV_RINGS 0x100000ULL  /* 64 KiB per queue */
#define VDRV_BUFS 0x400000ULL   /* bump allocator for buffers */
#define VDRV_MAXQ 8

struct vdrv_q {
	uint64_t desc, avail, used;
	uint16_t size, avail_idx, used_seen, next_desc;
};

struct vdrv {
	struct fake f;
	struct guest_mem gm;
	void *host;
	struct virtio_dev *vd;
	uint64_t bar;
	uint8_t irq_line;
	uint64_t next_buf;
	struct vdrv_q q[VDRV_MAXQ];
};

/* Configuration mechanism #1 (0xcf8/0xcfc) on bus 0, slot 1 (the first PCI device). */
static inline uint32_t vdrv_cfg_read(struct vdrv *d, unsigned reg)
{
	fake_out(&d->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | 1u << 11 | (reg & 0xfc));
	return fake_in(&d->f, (uint16_t)(X86_PORT_PCI_CONFIG + 4), 4);
}

static inline int vdrv_init(struct vdrv *d)
{
	struct mem_opts mo = { .size = VDRV_MEM };
	struct err e = { { 0 } };

	memset(d, 0, sizeof(*d));
	if (fake_init(&d->f, true) || mem_create(&d->gm, &mo, &e))
		return -1;
	d->f.ctx.gm = &d->gm;
	d->host = fake_pci_host(&d->f);
	d->next_buf = VDRV_BUFS;
	return 0;
}

/* cmocka setup half: a calloc'ed, initialised vdrv in *state; NULL on failure. */
static inline struct vdrv *vdrv_setup(void **state)
{
	struct vdrv *d = calloc(1, sizeof(*d));

	if (!d || vdrv_init(d)) {
		free(d);
		return NULL;
	}
	*state = d;
	return d;
}

/* After the device exists: find its BAR and INTx line. */
static inline void vdrv_attach(struct vdrv *d, struct virtio_dev *vd)
{
	d->vd = vd;
	d->bar = (vdrv_cfg_read(d, 0x10) & ~0xfULL) | ((uint64_t)vdrv_cfg_read(d, 0x14) << 32);
	d->irq_line = (uint8_t)vdrv_cfg_read(d, 0x3c);
}

static inline void vdrv_fini(struct vdrv *d)
{
	if (d->vd)
		virtio_pci_destroy(d->vd);
	pci_host_desc.destroy(d->host);
	mem_destroy(&d->gm);
	fake_fini(&d->f);
}

/* cmocka teardown of vdrv_setup. */
static inline int vdrv_teardown(void **state)
{
	vdrv_fini(*state);
	free(*state);
	return 0;
}

static inline uint64_t vdrv_rd(struct vdrv *d, uint64_t off, unsigned len)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	bus_access(d->f.ctx.mmio, d->bar + off, b, len, false);
	memcpy(&v, b, len);
	return v;
}

static inline void vdrv_wr(struct vdrv *d, uint64_t off, unsigned len, uint64_t v)
{
	uint8_t b[8];

	memcpy(b, &v, 8);
	bus_access(d->f.ctx.mmio, d->bar + off, b, len, true);
}

static inline void *vdrv_ptr(struct vdrv *d, uint64_t gpa, uint64_t len)
{
	return gm_ptr(&d->gm, gpa, len);
}

/* Allocate len bytes of guest memory for buffers (16-byte aligned). */
static inline uint64_t vdrv_alloc(struct vdrv *d, uint64_t len)
{
	uint64_t a = d->next_buf;

	d->next_buf = (d->next_buf + len + 15) & ~15ULL;
	return a;
}

/*
 * Negotiate features (VERSION_1 added), set up nq queues of size qsize and
 * set DRIVER_OK. Returns the device status read back.
 */
static inline uint8_t vdrv_start(struct vdrv *d, uint64_t features, unsigned nq, uint16_t qsize)
{
	features |= VIRTIO_BIT(VIRTIO_F_VERSION_1);
	vdrv_wr(d, 0x14, 1, 0);
	vdrv_wr(d, 0x14, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	for (unsigned i = 0; i < 2; i++) {
		vdrv_wr(d, 0x08, 4, i);
		vdrv_wr(d, 0x0c, 4, (uint32_t)(features >> (32 * i)));
	}
	vdrv_wr(d, 0x14, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < nq && q < VDRV_MAXQ; q++) {
		struct vdrv_q *vq = &d->q[q];

		memset(vq, 0, sizeof(*vq));
		vq->size = qsize;
		vq->desc = VDRV_RINGS + 0x10000ULL * q;
		vq->avail = vq->desc + 16ULL * qsize;
		vq->used = (vq->avail + 6 + 2ULL * qsize + 3) & ~3ULL;
		memset(vdrv_ptr(d, vq->desc, 0x10000), 0, 0x10000);
		vdrv_wr(d, 0x16, 2, q);
		vdrv_wr(d, 0x18, 2, qsize);
		vdrv_wr(d, 0x20, 4, (uint32_t)vq->desc);
		vdrv_wr(d, 0x24, 4, vq->desc >> 32);
		vdrv_wr(d, 0x28, 4, (uint32_t)vq->avail);
		vdrv_wr(d, 0x2c, 4, vq->avail >> 32);
		vdrv_wr(d, 0x30, 4, (uint32_t)vq->used);
		vdrv_wr(d, 0x34, 4, vq->used >> 32);
		vdrv_wr(d, 0x1c, 2, 1);
	}
	vdrv_wr(d, 0x14, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	return (uint8_t)vdrv_rd(d, 0x14, 1);
}

struct vdrv_buf {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

/* Chain n descriptors and publish the chain on the avail ring; returns the head. */
static inline uint16_t vdrv_add(struct vdrv *d, unsigned q, const struct vdrv_buf *b, unsigned n)
{
	struct vdrv_q *vq = &d->q[q];
	uint16_t head = vq->next_desc;
	uint16_t *avail = vdrv_ptr(d, vq->avail, 4 + 2ULL * vq->size);

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % vq->size);
		uint8_t *dp = vdrv_ptr(d, vq->desc + 16ULL * idx, 16);
		uint16_t flags = (uint16_t)((b[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		uint16_t next = (uint16_t)((idx + 1) % vq->size);

		memcpy(dp, &b[i].gpa, 8);
		memcpy(dp + 8, &b[i].len, 4);
		memcpy(dp + 12, &flags, 2);
		memcpy(dp + 14, &next, 2);
	}
	vq->next_desc = (uint16_t)((head + n) % vq->size);
	avail[2 + vq->avail_idx % vq->size] = head;
	__atomic_store_n(&avail[1], ++vq->avail_idx, __ATOMIC_RELEASE);
	return head;
}

/* Write descriptor i of queue q directly (for hostile chains). */
static inline void vdrv_set_desc(struct vdrv *d, unsigned q, uint16_t i, uint64_t gpa,
				 uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *dp = vdrv_ptr(d, d->q[q].desc + 16ULL * i, 16);

	memcpy(dp, &gpa, 8);
	memcpy(dp + 8, &len, 4);
	memcpy(dp + 12, &flags, 2);
	memcpy(dp + 14, &next, 2);
}

/* Publish head on the avail ring without writing descriptors. */
static inline void vdrv_publish(struct vdrv *d, unsigned q, uint16_t head)
{
	struct vdrv_q *vq = &d->q[q];
	uint16_t *avail = vdrv_ptr(d, vq->avail, 4 + 2ULL * vq->size);

	avail[2 + vq->avail_idx % vq->size] = head;
	__atomic_store_n(&avail[1], ++vq->avail_idx, __ATOMIC_RELEASE);
}

static inline void vdrv_kick(struct vdrv *d, unsigned q)
{
	vdrv_wr(d, 0x3000 + 4ULL * q, 2, q);
}

/* Next used element of queue q: true with id and len, false when none is new. */
static inline bool vdrv_used(struct vdrv *d, unsigned q, uint32_t *id, uint32_t *len)
{
	struct vdrv_q *vq = &d->q[q];
	uint8_t *used = vdrv_ptr(d, vq->used, 4 + 8ULL * vq->size);
	uint16_t idx;

	memcpy(&idx, used + 2, 2);
	if (idx == vq->used_seen)
		return false;
	memcpy(id, used + 4 + 8 * (vq->used_seen % vq->size), 4);
	memcpy(len, used + 8 + 8 * (vq->used_seen % vq->size), 4);
	vq->used_seen++;
	return true;
}

/* INTx interrupts raised so far (MSI-X is left disabled). */
static inline unsigned vdrv_irqs(struct vdrv *d)
{
	return d->f.raised[d->irq_line];
}

/* Read (and acknowledge) the ISR. */
static inline uint8_t vdrv_isr(struct vdrv *d)
{
	return (uint8_t)vdrv_rd(d, 0x1000, 1);
}

static inline uint8_t vdrv_status(struct vdrv *d)
{
	return (uint8_t)vdrv_rd(d, 0x14, 1);
}

#endif
