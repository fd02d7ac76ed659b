// SPDX-License-Identifier: MIT
/* console.c: virtio-console (virtio 1.2, 5.3) with one port (port 0, hvc0 in Linux) as the VM's console. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"
#include "vmm/mem.h"

/* Feature bits (5.3.3): only the emergency write is offered; no size, no multiport. */
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

/* Without MULTIPORT there are exactly two queues, for port 0 (5.3.2). */
#define VCON_RXQ 0
#define VCON_TXQ 1
#define VCON_QUEUE_SIZE 128
/* Transmit buffers per pass: a driver that keeps refilling the ring must not keep the loop. */
#define VCON_TX_BUDGET 64
#define VCON_STATE_V1 1

struct virtio_console_config {
	uint16_t cols;
	uint16_t rows;
	uint32_t max_nr_ports;
	uint32_t emerg_wr;
} __attribute__((packed));

struct vcon {
	struct virtio_dev *vd;
	int out_fd; /* -1: output discarded */
	struct virtio_console_config cfg;
	struct virtq_elem elem;
};

static void vcon_output(struct vcon *c, struct virtio_dev *vd, const void *buf, size_t len)
{
	int r;

	vd->stats.bytes_out += len;
	if (c->out_fd < 0 || !len)
		return;
	r = write_all(c->out_fd, buf, len);
	if (r == -EAGAIN) {
		/* A non-blocking reader that is not keeping up: drop these bytes only. */
		vd->stats.errors++;
	} else if (r < 0) {
		log_warn("virtio-console: output failed (%s); further output is discarded",
			 strerror(-r));
		c->out_fd = -1;
	}
}

static void vcon_config_read(void *priv, uint32_t off, uint8_t *data, uint32_t len)
{
	struct vcon *c = priv;

	memcpy(data, (uint8_t *)&c->cfg + off, len);
}

static void vcon_config_write(void *priv, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct vcon *c = priv;

	/* emerg_wr (5.3.4): the low byte is written to port 0 at once, works before DRIVER_OK. */
	if (off == offsetof(struct virtio_console_config, emerg_wr) && c->vd &&
	    virtio_has_feature(c->vd, VIRTIO_CONSOLE_F_EMERG_WRITE))
		vcon_output(c, c->vd, data, 1);
	(void)len;
}

/* Drain the transmit queue: each buffer's readable part goes to the host side as is. */
static void vcon_tx(struct vcon *c, struct virtio_dev *vd)
{
	struct virtq *q = &vd->vq[VCON_TXQ];
	struct virtq_elem *e = &c->elem;
	bool pushed = false;
	unsigned budget = VCON_TX_BUDGET;
	int got;

	while ((got = virtq_pop(q, e)) == 1) {
		for (unsigned i = 0; i < e->out_num; i++)
			vcon_output(c, vd, e->iov[i].iov_base, e->iov[i].iov_len);
		vd->stats.requests++;
		if (virtq_push(q, e->head, 0))
			break;
		pushed = true;
		if (--budget == 0 && virtio_queue_requeue(vd, VCON_TXQ))
			break;
	}
	if (got < 0)
		virtio_needs_reset(vd, "malformed descriptor chain on the transmit queue");
	if (pushed)
		virtio_queue_interrupt(vd, VCON_TXQ);
}

static void vcon_notify(void *priv, struct virtio_dev *vd, unsigned q)
{
	struct vcon *c = priv;

	/*
	 * A kick on the receive queue needs no work here: host input waits in the
	 * VM's console queue and is offered again after every event-loop turn.
	 */
	if (q == VCON_TXQ)
		vcon_tx(c, vd);
}

size_t virtio_console_receive(void *dev, const uint8_t *buf, size_t n)
{
	struct virtio_dev *vd = dev;
	struct vcon *c = vd->priv;
	struct virtq *q = &vd->vq[VCON_RXQ];
	struct virtq_elem *e = &c->elem;
	size_t done = 0;
	bool pushed = false;
	int got = 0;

	pthread_mutex_lock(&vd->lock);
	if (!(vd->status & VIRTIO_STATUS_DRIVER_OK) || (vd->status & VIRTIO_STATUS_NEEDS_RESET))
		goto out;
	/* Only take a buffer when there is input for it: a popped buffer cannot be put back. */
	while (done < n && (got = virtq_pop(q, e)) == 1) {
		size_t w = iov_from_buf(e->iov + e->out_num, e->in_num, 0, buf + done, n - done);

		if (w)
			gm_mark_dirty_iov(vd->ctx.gm, e->iov + e->out_num, e->in_num);
		done += w;
		vd->stats.bytes_in += w;
		vd->stats.requests++;
		if (virtq_push(q, e->head, (uint32_t)w))
			break;
		pushed = true;
	}
	if (got < 0)
		virtio_needs_reset(vd, "malformed descriptor chain on the receive queue");
	if (pushed)
		virtio_queue_interrupt(vd, VCON_RXQ);
out:
	pthread_mutex_unlock(&vd->lock);
	return done;
}

static int vcon_save(void *priv, struct sbuf *out)
{
	struct vcon *c = priv;
	uint8_t ver = VCON_STATE_V1;
	int r = sbuf_put(out, &ver, 1);

	return r ? r : sbuf_put(out, &c->cfg, sizeof(c->cfg));
}

static int vcon_load(void *priv, const uint8_t *buf, size_t len)
{
	struct vcon *c = priv;

	if (len != 1 + sizeof(c->cfg) || buf[0] != VCON_STATE_V1)
		return -EINVAL;
	memcpy(&c->cfg, buf + 1, sizeof(c->cfg));
	c->cfg.max_nr_ports = 1;
	return 0;
}

static void vcon_destroy(void *priv)
{
	free(priv);
}

static const struct virtio_dev_ops vcon_ops = {
	.name = "virtio-console",
	.device_id = 3,
	.pci_class = 0x078000, /* simple communication controller, other */
	.nqueues = 2,
	.queue_size = VCON_QUEUE_SIZE,
	.features = VIRTIO_BIT(VIRTIO_CONSOLE_F_EMERG_WRITE),
	.config_size = sizeof(struct virtio_console_config),
	.config_read = vcon_config_read,
	.config_write = vcon_config_write,
	.queue_notify = vcon_notify,
	.save = vcon_save,
	.load = vcon_load,
	.destroy = vcon_destroy,
};

int virtio_console_create(const struct dev_ctx *ctx, struct virtio_dev **out, struct err *e)
{
	struct vcon *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return err_set(e, ENOMEM, "out of memory");
	c->out_fd = ctx->console_out_fd;
	c->cfg.max_nr_ports = 1;
	ret = virtio_pci_create(ctx, &vcon_ops, c, out, e);
	if (ret) {
		free(c);
		return ret;
	}
	c->vd = *out;
	return 0;
}
