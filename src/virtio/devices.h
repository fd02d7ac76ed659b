/* SPDX-License-Identifier: MIT */
/* devices.h: constructors of the virtio devices, each on a virtio-pci function. */
#ifndef KVMM_VIRTIO_DEVICES_H
#define KVMM_VIRTIO_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	/* Set in a snapshot's configuration: how this disk's state was captured. */
	const char *snap_mode; /* NULL/"none", "internal", "overlay" */
	const char *snap_name; /* internal snapshot name */
};
int virtio_blk_create(const struct dev_ctx *ctx, const struct blk_opts *o,
		      struct virtio_dev **out, struct err *e);
/* Switch a paused, drained virtio-blk to another image of the same size. */
int virtio_blk_switch_image(struct virtio_dev *vd, const char *path, struct err *e);
struct image;
struct image *virtio_blk_image(struct virtio_dev *vd);

/* --net tap=NAME[,mac=52:54:00:xx:xx:xx][,vhost=on|off|auto] or fd=N instead of tap=NAME */
enum net_vhost { NET_VHOST_AUTO, NET_VHOST_ON, NET_VHOST_OFF };
struct net_opts {
	const char *tap;     /* tap interface, created unless it exists; NULL with fd */
	bool has_fd;
	int fd;              /* an open tap (IFF_NO_PI|IFF_VNET_HDR) or datagram socket; duplicated */
	bool has_mac;
	uint8_t mac[6];      /* default: 52:54:00 and three bytes from the pid and index */
	unsigned index;      /* position among the VM's NICs */
	enum net_vhost vhost;
};
int virtio_net_create(const struct dev_ctx *ctx, const struct net_opts *o,
		      struct virtio_dev **out, struct err *e);
/* The MAC a NIC gets when none is given: 52:54:00 and three bytes from the pid and index. */
void virtio_net_default_mac(unsigned index, uint8_t mac[6]);
/*
 * Let vhost-net serve a virtio-net device's queues (the default) or not: kvmm
 * serves them meanwhile. vhost's writes to guest RAM are not in the VMM's
 * dirty tracking, so a live migration holds vhost off while it runs (vhost is
 * also not started while tracking is on). Takes vd->lock.
 */
void virtio_net_allow_vhost(struct virtio_dev *vd, bool allow);


/* --virtio-console: port 0 on ctx->console_out_fd; host input arrives through receive. */
int virtio_console_create(const struct dev_ctx *ctx, struct virtio_dev **out, struct err *e);
/*
 * Offer host input to the guest (takes vd->lock); returns the bytes accepted,
 * 0 while the driver has posted no receive buffers. The signature fits
 * console_flush() (vmm/console.h), with dev the struct virtio_dev.
 */
size_t virtio_console_receive(void *dev, const uint8_t *buf, size_t n);

/* --balloon [target=SIZE][,stats=SECONDS][,reporting=off][,deflate_on_oom=on] */
struct balloon_opts {
	uint64_t target;       /* initial balloon size in bytes (memory taken from the guest) */
	unsigned stats_period; /* seconds between statistics requests; 0: no stats queue */
	bool no_reporting;     /* do not offer free page reporting */
	bool deflate_on_oom;
};
#define VIRTIO_BALLOON_S_NR 16 /* statistics tags kept (5.5.6.3: swap_in = 0 ... ) */
struct balloon_info {
	uint64_t target_bytes, actual_bytes; /* num_pages and actual, in bytes */
	uint64_t discarded_bytes;            /* returned to the host since creation */
	uint64_t bad_pfns;                   /* frames the guest named outside RAM */
	uint64_t stats_updates;              /* statistics buffers received */
	uint64_t stats_valid;                /* bit per tag the guest reported */
	uint64_t stats[VIRTIO_BALLOON_S_NR];
};
int virtio_balloon_create(const struct dev_ctx *ctx, const struct balloon_opts *o,
			  struct virtio_dev **out, struct err *e);
/* Set the balloon size (bytes the guest should give back); -ERANGE above guest RAM. */
int virtio_balloon_set_target(struct virtio_dev *vd, uint64_t bytes);
void virtio_balloon_info(struct virtio_dev *vd, struct balloon_info *out);
/* Return the statistics buffer so the driver refills it (also done every stats_period). */
void virtio_balloon_request_stats(struct virtio_dev *vd);


/* --vsock cid=N: rx/tx served by the kernel's vhost-vsock; the guest's CID is claimed at creation. */
struct vsock_opts {
	uint64_t cid;           /* 3 ... 2^32-2 */
	const char *vhost_path; /* NULL: /dev/vhost-vsock */
};
int virtio_vsock_create(const struct dev_ctx *ctx, const struct vsock_opts *o,
			struct virtio_dev **out, struct err *e);

#endif
