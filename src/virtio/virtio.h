/* SPDX-License-Identifier: MIT */
/* virtio.h: what a virtio device implements, independent of its transport (virtio-pci). */
#ifndef KVMM_VIRTIO_VIRTIO_H
#define KVMM_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/log.h"
#include "base/sbuf.h"
#include "dev/dev.h"
#include "virtio/virtq.h"

struct err;

/* Feature bits (virtio 1.2, 6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_BIT(b) (1ULL << (b))

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_MAX_QUEUES 16

struct virtio_dev;

struct virtio_stats {
	uint64_t kicks, interrupts, requests, bytes_in, bytes_out, errors;
};

struct virtio_dev_ops {
	const char *name;
	uint16_t device_id;   /* 5.x: 1 net, 2 blk, 3 console, 4 rng, 5 balloon, 19 vsock */
	uint32_t pci_class;   /* class code for the PCI function (class << 16 | subclass << 8) */
	unsigned nqueues;
	uint16_t queue_size;  /* maximum size offered for each queue */
	uint64_t features;    /* device-specific offered bits (the transport adds VERSION_1, ...) */
	uint32_t config_size;
	/* Device config space accesses (bounds already checked, vd->lock held). */
	void (*config_read)(void *priv, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(void *priv, uint32_t off, const uint8_t *data, uint32_t len);
	/* The driver kicked queue q; runs on the event-loop thread with vd->lock held. */
	void (*queue_notify)(void *priv, struct virtio_dev *vd, unsigned q);
	/* The driver set DRIVER_OK (activate) or reset the device (vd->lock held). */
	void (*activate)(void *priv, struct virtio_dev *vd);
	void (*reset)(void *priv, struct virtio_dev *vd);
	/* Device-specific state (queues and features are saved by the core). */
	int (*save)(void *priv, struct sbuf *out);
	int (*load)(void *priv, const uint8_t *buf, size_t len);
	void (*destroy)(void *priv);
	/* Finish every request in flight (called without vd->lock, before save). */
	void (*drain)(void *priv);
	/* Add what an in-kernel backend moved meanwhile, which vd->stats cannot see (vd->lock held). */
	void (*backend_stats)(void *priv, struct virtio_stats *s);
};

/* The transport-independent state of one device. */
struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv;
	struct dev_ctx ctx;
	pthread_mutex_t lock;
	uint8_t status;
	uint8_t config_generation;
	uint64_t driver_features;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	struct virtio_stats stats;
	struct ratelimit err_rl;
	void *transport; /* struct virtio_pci */
};

static inline bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit)
{
	return vd->driver_features & VIRTIO_BIT(bit);
}

/*
 * Create a device behind a virtio-pci function plugged into ctx->pci.
 * priv belongs to the device; ops->destroy frees it with the device.
 */
int virtio_pci_create(const struct dev_ctx *ctx, const struct virtio_dev_ops *ops, void *priv,
		      struct virtio_dev **out, struct err *e);
void virtio_pci_destroy(struct virtio_dev *vd);
/* Interrupt the driver for queue q if it wants one (vd->lock held). */
void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q);
/*
 * Serve queue q again from the event loop, after the loop's other users: a device
 * that stops taking requests at its budget calls this so that what is left on
 * the ring is not stranded. False when there is no event loop (device tests):
 * the caller must then carry on itself.
 */
bool virtio_queue_requeue(struct virtio_dev *vd, unsigned q);
/* Signal a configuration change (vd->lock held). */
void virtio_config_interrupt(struct virtio_dev *vd);
/* The driver broke the protocol: log (rate limited), set NEEDS_RESET, stop the device. */
void virtio_needs_reset(struct virtio_dev *vd, const char *why);
/*
 * Hand a queue to an in-kernel backend such as vhost (vd->lock held).
 * virtio_queue_kick_fd: from now on the driver's notifications of q signal the
 * returned eventfd (owned by the transport) instead of calling ops->queue_notify,
 * until virtio_queue_kick_release. virtio_queue_call_fd: the irqfd of q's MSI-X
 * vector (created on first use, owned by the transport); a write to it
 * interrupts the driver. -ENODEV when MSI-X is off or q has no vector. A masked
 * vector is not honoured while a backend holds its irqfd.
 */
int virtio_queue_kick_fd(struct virtio_dev *vd, unsigned q);
void virtio_queue_kick_release(struct virtio_dev *vd, unsigned q);
int virtio_queue_call_fd(struct virtio_dev *vd, unsigned q);
/*
 * Describe queue q for an in-kernel backend: host addresses of its rings, its
 * size and position, and its kick (handed off) and call fds. -errno when an fd
 * cannot be had (e.g. no MSI-X vector).
 */
struct vhost_vring;
int virtio_queue_vhost_vring(struct virtio_dev *vd, unsigned q, struct vhost_vring *vr);
/* Save/load the core's and the device's state. */
int virtio_save(struct virtio_dev *vd, struct sbuf *out);
int virtio_load(struct virtio_dev *vd, const uint8_t *buf, size_t len);

#endif
