/* SPDX-License-Identifier: MIT */
/* vhost.h: the kernel's vhost-net backend (linux/vhost.h): rings served by a kernel thread, not by kvmm. */
#ifndef KVMM_NET_VHOST_H
#define KVMM_NET_VHOST_H

#include <stdint.h>

struct err;
struct mem_region;

struct vhost {
	int fd;            /* /dev/vhost-net, -1 when closed */
	uint64_t features; /* what the kernel offers (VHOST_GET_FEATURES) */
};

/* Where one ring lives and how it is signalled. */
struct vhost_vring {
	unsigned index;
	uint16_t num;         /* queue size */
	uint16_t base;        /* next avail entry the device takes */
	void *desc, *avail, *used; /* host addresses of the three areas */
	int kick_fd;          /* the driver's notifications arrive here */
	int call_fd;          /* written by the kernel to interrupt the driver */
};

/* Open path (normally /dev/vhost-net) and become its owner (VHOST_SET_OWNER). */
int vhost_open(const char *path, struct vhost *v, struct err *e);
/* Features (the negotiated virtio bits) and the guest RAM map; once per start. */
int vhost_setup(struct vhost *v, uint64_t features, const struct mem_region *r, unsigned nr);
int vhost_vring_start(struct vhost *v, const struct vhost_vring *vr);
/* Attach (fd >= 0) or detach (fd == -1) the tap serving ring index. */
int vhost_net_backend(struct vhost *v, unsigned index, int fd);
/* Stop a ring and learn its next avail position. */
int vhost_vring_stop(struct vhost *v, unsigned index, uint16_t *base);
void vhost_close(struct vhost *v);

#endif
