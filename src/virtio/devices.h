/* SPDX-License-Identifier: MIT */
/* devices.h: constructors of the virtio devices, each on a virtio-pci function. */
#ifndef KVMM_VIRTIO_DEVICES_H
#define KVMM_VIRTIO_DEVICES_H

#include "dev/dev.h"

struct virtio_dev;
struct err;

int virtio_rng_create(const struct dev_ctx *ctx, struct virtio_dev **out, struct err *e);

#endif
