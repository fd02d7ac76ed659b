// SPDX-License-Identifier: MIT
/* vsock.c: virtio-vsock (virtio 1.2, 5.10) whose rx/tx queues the kernel's vhost-vsock serves. */
#include <errno.h>
#include <linux/vhost.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/err.h"
#include "net/vhost.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"
#include "vmm/mem.h"

#define VIRTIO_VSOCK_F_SEQPACKET 1

/* Queues (5.10.2): rx and tx go to the kernel, the event queue stays with us. */
#define VSOCK_RXQ 0
#define VSOCK_TXQ 1
#define VSOCK_EVQ 2
#define VSOCK_QUEUE_SIZE 256
#define VSOCK_STATE_V1 1

struct virtio_vsock_config {
	uint64_t guest_cid;
} __attribute__((packed));

struct vsock {
	struct virtio_dev *vd;
	struct virtio_dev_ops ops;
	struct virtio_vsock_config cfg;
	struct vhost vhost;
	bool vring_started[2];
	bool running;
};

static void vsock_config_read(void *priv, uint32_t off, uint8_t *data, uint32_t len)
{
	struct vsock *s = priv;

	memcpy(data, (uint8_t *)&s->cfg + off, len);
}

static int vsock_set_running(struct vsock *s, int on)
{
	return ioctl(s->vhost.fd, VHOST_VSOCK_SET_RUNNING, &on) < 0 ? -errno : 0;
}

/* Take both rings back from the kernel, with their positions (vd->lock held). */
static void vsock_stop(struct vsock *s, struct virtio_dev *vd)
{
	bool was_running = s->running;
	unsigned q;

	if (s->running)
		vsock_set_running(s, 0);
	s->running = false;
	for (q = 0; q < 2; q++) {
		uint16_t base;

		virtio_queue_kick_release(vd, q);
		if (!s->vring_started[q])
			continue;
		s->vring_started[q] = false;
		if (vhost_vring_stop(&s->vhost, q, &base) == 0 && was_running && vd->vq[q].ready) {
			uint16_t *used = gm_ptr(vd->ctx.gm, vd->vq[q].used_gpa + 2, 2);

			vd->vq[q].last_avail = base;
			if (used)
				vd->vq[q].used_idx = __atomic_load_n(used, __ATOMIC_ACQUIRE);
		}
	}
}

/* Hand rx and tx to vhost-vsock; on failure the device needs a reset (there is no fallback). */
static void vsock_activate(void *priv, struct virtio_dev *vd)
{
	struct vsock *s = priv;
	const uint64_t ring_bits = VIRTIO_BIT(VIRTIO_F_VERSION_1) |
				   VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
				   VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_VSOCK_F_SEQPACKET);
	uint64_t want = vd->driver_features & ring_bits & s->vhost.features;
	struct mem_region regs[2];
	const char *what = "vhost setup";
	unsigned q;
	int nr, r;

	for (q = 0; q < 2; q++) {
		if (!vd->vq[q].ready || virtio_queue_call_fd(vd, q) < 0) {
			virtio_needs_reset(vd, "rx/tx queues not ready or without an MSI-X vector");
			return;
		}
	}
	nr = mem_regions(vd->ctx.gm, regs);
	r = vhost_setup(&s->vhost, want, regs, (unsigned)nr);
	for (q = 0; q < 2 && !r; q++) {
		struct vhost_vring vr;

		what = "vring setup";
		r = virtio_queue_vhost_vring(vd, q, &vr);
		if (r)
			break;
		s->vring_started[q] = true;
		r = vhost_vring_start(&s->vhost, &vr);
	}
	if (!r) {
		what = "VHOST_VSOCK_SET_RUNNING";
		r = vsock_set_running(s, 1);
	}
	if (r) {
		log_warn("virtio-vsock: %s failed: %s", what, strerror(-r));
		vsock_stop(s, vd);
		virtio_needs_reset(vd, "vhost-vsock could not start");
		return;
	}
	s->running = true;
	/* Buffers posted before the hand-off: make the kernel look at the rings. */
	for (q = 0; q < 2; q++) {
		uint64_t one = 1;
		int fd = virtio_queue_kick_fd(vd, q);

		if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
			break;
	}
}

static void vsock_reset(void *priv, struct virtio_dev *vd)
{
	vsock_stop(priv, vd);
}

static void vsock_notify(void *priv, struct virtio_dev *vd, unsigned q)
{
	/*
	 * rx/tx kicks go to the kernel while it runs them; before that there is
	 * nothing to do. Event buffers (5.10.6.7) stay posted until we have an
	 * event to report (a transport reset after a restore).
	 */
	(void)priv;
	(void)vd;
	(void)q;
}

static int vsock_save(void *priv, struct sbuf *out)
{
	struct vsock *s = priv;
	uint8_t rec[1 + 8];

	/* The kernel holds the ring positions while it runs: they would be stale. */
	if (s->running)
		return -EBUSY;
	rec[0] = VSOCK_STATE_V1;
	memcpy(rec + 1, &s->cfg.guest_cid, 8);
	return sbuf_put(out, rec, sizeof(rec));
}

static int vsock_load(void *priv, const uint8_t *buf, size_t len)
{
	struct vsock *s = priv;
	uint64_t cid;

	if (len != 9 || buf[0] != VSOCK_STATE_V1)
		return -EINVAL;
	memcpy(&cid, buf + 1, 8);
	/* The CID belongs to this host's configuration (--vsock cid=N), not to the record. */
	if (cid != s->cfg.guest_cid)
		log_warn("virtio-vsock: state saved with CID %llu, running with %llu",
			 (unsigned long long)cid, (unsigned long long)s->cfg.guest_cid);
	return 0;
}

static void vsock_destroy(void *priv)
{
	struct vsock *s = priv;

	/*
	 * Closing the vhost fd stops the rings in the kernel. The transport has
	 * already closed its eventfds here, so they must not be touched again.
	 */
	vhost_close(&s->vhost);
	free(s);
}

static const struct virtio_dev_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = 19,
	.pci_class = 0xff0000,
	.nqueues = 3,
	.queue_size = VSOCK_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_vsock_config),
	.config_read = vsock_config_read,
	.queue_notify = vsock_notify,
	.activate = vsock_activate,
	.reset = vsock_reset,
	.save = vsock_save,
	.load = vsock_load,
	.destroy = vsock_destroy,
};

int virtio_vsock_create(const struct dev_ctx *ctx, const struct vsock_opts *o,
			struct virtio_dev **out, struct err *e)
{
	const char *path = o->vhost_path ? o->vhost_path : "/dev/vhost-vsock";
	struct vsock *s;
	int r;

	/* 0-2 are the hypervisor, local and host addresses; ~0U is VMADDR_CID_ANY (5.10.4). */
	if (o->cid < 3 || o->cid >= UINT32_MAX)
		return err_set(e, EINVAL, "vsock: cid %llu: give 3 to 4294967294",
			       (unsigned long long)o->cid);
	if (access(path, F_OK))
		return err_set(e, ENOENT, "vsock needs %s (modprobe vhost_vsock)", path);
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, ENOMEM, "out of memory");
	s->vhost.fd = -1;
	r = vhost_open(path, &s->vhost, e);
	if (r) {
		free(s);
		return err_prefix(e, r, "vsock");
	}
	s->cfg.guest_cid = o->cid;
	/* Claim the CID now, so a clash is reported at start, not when the guest boots. */
	if (ioctl(s->vhost.fd, VHOST_VSOCK_SET_GUEST_CID, &s->cfg.guest_cid) < 0) {
		r = errno;
		vhost_close(&s->vhost);
		free(s);
		if (r == EADDRINUSE)
			return err_set(e, r, "vsock: cid %llu is in use by another VM",
				       (unsigned long long)o->cid);
		return err_set(e, r, "vsock: VHOST_VSOCK_SET_GUEST_CID: %s", strerror(r));
	}
	s->ops = vsock_ops;
	s->ops.features = s->vhost.features & VIRTIO_BIT(VIRTIO_VSOCK_F_SEQPACKET);
	r = virtio_pci_create(ctx, &s->ops, s, out, e);
	if (r) {
		vhost_close(&s->vhost);
		free(s);
		return r;
	}
	s->vd = *out;
	return 0;
}
