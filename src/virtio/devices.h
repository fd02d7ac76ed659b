/* SPDX-License-Identifier: MIT */
/* devices.h: constructors of the virtio devices, each on a virtio-pci function. */
#ifndef KVMM_VIRTIO_DEVICES_H
#define KVMM_VIRTIO_DEVICES_H

#include <stdbool.h>

#include "dev/dev.h"

struct virtio_dev;
struct err;

int virtio_rng_create(const struct dev_ctx *ctx, struct virtio_dev **out, struct err *e);

/* --disk path=F[,readonly=on][,format=raw|qcow2][,serial=S][,queues=N] */
struct blk_opts {
	const char *path;
	const char *format; /* NULL: probe */
	const char *serial;
	bool read_only;
	unsigned queues;
};
int virtio_blk_create(const struct dev_ctx *ctx, const struct blk_opts *o,
		      struct virtio_dev **out, struct err *e);

#endif
