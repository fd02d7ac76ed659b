/* SPDX-License-Identifier: MIT */
/* fdrv.h: the virtio-pci driver of the virtio fuzz harnesses: fake buses and RAM, rings the input writes. */
#ifndef KVMM_TESTS_FUZZ_FDRV_H
#define KVMM_TESTS_FUZZ_FDRV_H

#include <stdbool.h>
#include <stdint.h>

#include "dev/dev.h"
#include "input.h"
#include "vmm/mem.h"

#define FDRV_MEM (1ULL << 20)
#define FDRV_WIN 0x10000ULL /* queue q's rings at FDRV_WIN + 0x2000 * q, buffers after the last */
#define FDRV_WIN_LEN 0x40000ULL
#define FDRV_MAXQ 4

struct virtio_dev;

struct fdrv {
	struct dev_ctx ctx;
	struct guest_mem gm;
	void *host; /* the PCI host bridge */
	struct virtio_dev *vd;
	uint64_t bar;
	unsigned nq;
	uint16_t qsize[FDRV_MAXQ], avail_idx[FDRV_MAXQ];
};

/*
 * A context with port and MMIO buses, FDRV_MEM of RAM, interrupts dropped, no
 * console, and the PCI host bridge; the driver will set up nq queues. Aborts on
 * failure.
 */
void fdrv_init(struct fdrv *d, unsigned nq);
/* The device just created on d->ctx (the first PCI device). */
void fdrv_plug(struct fdrv *d, struct virtio_dev *vd);
/* Destroys the device, the bridge, RAM and buses; closes ctx.console_out_fd if set. */
void fdrv_fini(struct fdrv *d);

/* BAR 0 registers: common config at 0, device config at 0x2000, notify at 0x3000. */
void fdrv_wr(struct fdrv *d, uint64_t off, unsigned len, uint64_t v);
uint32_t fdrv_rd(struct fdrv *d, uint64_t off, unsigned len);

/*
 * The driver's side of virtio 1.x 3.1.1: reset; features f plus VERSION_1 and
 * INDIRECT_DESC/EVENT_IDX from the input, mostly cut down to the device's offer
 * (its first `words` 32-bit words); the queues with input-chosen sizes; DRIVER_OK.
 */
void fdrv_start(struct fdrv *d, struct input *in, uint64_t f, unsigned words);

/*
 * The operations every virtio harness shares, by op & 7: 0 write guest RAM or
 * (op bit 3) a descriptor, 1 publish a head, 2 kick, 6 save/flip/load, 7 write
 * a common-config register. Returns false for the others (the device's own).
 */
bool fdrv_op(struct fdrv *d, uint8_t op, struct input *in);

#endif
