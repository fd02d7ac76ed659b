// SPDX-License-Identifier: MIT
/* vhost.c: thin wrappers over the vhost-net ioctls (linux/vhost.h), each failure returned as -errno. */
#include "net/vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/err.h"
#include "vmm/mem.h"

static int vioctl(struct vhost *v, unsigned long req, void *arg)
{
	return ioctl(v->fd, req, arg) < 0 ? -errno : 0;
}

int vhost_open(const char *path, struct vhost *v, struct err *e)
{
	int r;

	v->fd = open(path, O_RDWR | O_CLOEXEC);
	if (v->fd < 0)
		return err_set(e, errno, "%s: %s", path, strerror(errno));
	r = vioctl(v, VHOST_SET_OWNER, NULL);
	if (!r)
		r = vioctl(v, VHOST_GET_FEATURES, &v->features);
	if (r) {
		close(v->fd);
		v->fd = -1;
		return err_set(e, -r, "%s: %s", path, strerror(-r));
	}
	return 0;
}

int vhost_setup(struct vhost *v, uint64_t features, const struct mem_region *r, unsigned nr)
{
	struct vhost_memory *m;
	unsigned i;
	int ret;

	ret = vioctl(v, VHOST_SET_FEATURES, &features);
	if (ret)
		return ret;
	m = calloc(1, sizeof(*m) + nr * sizeof(m->regions[0]));
	if (!m)
		return -ENOMEM;
	m->nregions = nr;
	for (i = 0; i < nr; i++) {
		m->regions[i].guest_phys_addr = r[i].gpa;
		m->regions[i].memory_size = r[i].size;
		m->regions[i].userspace_addr = (uint64_t)(uintptr_t)r[i].host;
	}
	ret = vioctl(v, VHOST_SET_MEM_TABLE, m);
	free(m);
	return ret;
}

int vhost_vring_start(struct vhost *v, const struct vhost_vring *vr)
{
	struct vhost_vring_state num = { .index = vr->index, .num = vr->num };
	struct vhost_vring_state base = { .index = vr->index, .num = vr->base };
	struct vhost_vring_addr addr = {
		.index = vr->index,
		.desc_user_addr = (uint64_t)(uintptr_t)vr->desc,
		.avail_user_addr = (uint64_t)(uintptr_t)vr->avail,
		.used_user_addr = (uint64_t)(uintptr_t)vr->used,
	};
	struct vhost_vring_file kick = { .index = vr->index, .fd = vr->kick_fd };
	struct vhost_vring_file call = { .index = vr->index, .fd = vr->call_fd };
	int r;

	r = vioctl(v, VHOST_SET_VRING_NUM, &num);
	if (!r)
		r = vioctl(v, VHOST_SET_VRING_BASE, &base);
	if (!r)
		r = vioctl(v, VHOST_SET_VRING_ADDR, &addr);
	if (!r)
		r = vioctl(v, VHOST_SET_VRING_CALL, &call);
	if (!r)
		r = vioctl(v, VHOST_SET_VRING_KICK, &kick);
	return r;
}

int vhost_net_backend(struct vhost *v, unsigned index, int fd)
{
	struct vhost_vring_file b = { .index = index, .fd = fd };

	return vioctl(v, VHOST_NET_SET_BACKEND, &b);
}

int vhost_vring_stop(struct vhost *v, unsigned index, uint16_t *base)
{
	struct vhost_vring_state s = { .index = index };
	int r = vioctl(v, VHOST_GET_VRING_BASE, &s);

	if (!r)
		*base = (uint16_t)s.num;
	return r;
}

void vhost_close(struct vhost *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}
