// SPDX-License-Identifier: MIT
/* console.c: virtio-console (virtio 1.2, 5.3) with one port (port 0, hvc0 in Linux) as the VM's console. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
/*
 * Guest output taken while the host side does not keep up. Beyond this the
 * transmit buffers stay on the ring: the guest waits, nothing is dropped.
 */
#define VCON_PEND_MAX (64u << 10)
#define VCON_STATE_V1 1
#define VCON_STATE_V2 2 /* V1 plus the bytes not yet written */

struct virtio_console_config {
	uint16_t cols;
	uint16_t rows;
	uint32_t max_nr_ports;
	uint32_t emerg_wr;
} __attribute__((packed));

/* How a write to the output is kept from blocking the event loop. */
enum vcon_out_mode {
	VCON_OUT_WRITE, /* the fd never blocks: O_NONBLOCK, our own reopening, a regular file */
	VCON_OUT_SEND,  /* a socket: send(MSG_DONTWAIT) */
	VCON_OUT_POLL,  /* a blocking fd we could not reopen: poll, then at most PIPE_BUF */
};

struct vcon {
	struct virtio_dev *vd;
	int out_fd; /* -1: output discarded */
	int own_fd; /* a non-blocking reopening of the output (closed with the device), or -1 */
	enum vcon_out_mode mode;
	int ep;     /* watched by the event loop; holds out_fd (EPOLLOUT) while bytes wait */
	bool armed;
	uint8_t *pend; /* taken from the guest, not yet written: pend[pend_off, +pend_len) */
	size_t pend_off, pend_len;
	uint64_t tx_skip; /* bytes of the next transmit buffer already taken */
	struct virtio_console_config cfg;
	struct virtq_elem elem;
};

static void vcon_tx(struct vcon *c, struct virtio_dev *vd);

/*
 * The output is often the VMM's own stdout: a blocking fd whose file
 * description it shares with the shell and with stderr, so O_NONBLOCK must not
 * be set on it. Reopen it instead (a new description of the same pipe or
 * terminal), or use per-call non-blocking I/O.
 */
static void vcon_open_output(struct vcon *c, int fd)
{
	struct stat st;
	char path[32];
	int fl, nfd;

	c->out_fd = fd;
	c->own_fd = -1;
	c->mode = VCON_OUT_WRITE;
	if (fd < 0)
		return;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_NONBLOCK) || fstat(fd, &st))
		return;
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return; /* never EAGAIN: only as slow as the disk */
	if (S_ISSOCK(st.st_mode)) {
		c->mode = VCON_OUT_SEND;
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (nfd >= 0) {
		c->out_fd = c->own_fd = nfd;
		return;
	}
	c->mode = VCON_OUT_POLL;
}

/* One write that does not block: bytes written, -EAGAIN when the output is full, or -errno. */
static ssize_t vcon_write(struct vcon *c, const uint8_t *buf, size_t len)
{
	ssize_t n;

	if (c->mode == VCON_OUT_POLL) {
		struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };

		/* Errors and hang-ups are reported by the write itself. */
		if (poll(&p, 1, 0) <= 0)
			return -EAGAIN;
		/* Writable: a pipe then takes PIPE_BUF bytes without blocking (pipe(7)). */
		len = MIN(len, (size_t)PIPE_BUF);
	}
	do {
		if (c->mode == VCON_OUT_SEND)
			n = send(c->out_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(c->out_fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n ? n : -EAGAIN;
}

/* Have the event loop call vcon_out_ready once the output can take more. */
static void vcon_arm(struct vcon *c)
{
	struct epoll_event ev = { .events = EPOLLOUT };

	/* Without a loop (or an fd epoll refuses) the next kick tries again. */
	if (c->ep < 0 || c->armed || c->out_fd < 0)
		return;
	if (epoll_ctl(c->ep, EPOLL_CTL_ADD, c->out_fd, &ev) == 0)
		c->armed = true;
}

/*
 * Out of the epoll set, not just EPOLLOUT off: an error or hang-up is reported
 * whatever we ask for, and would keep the loop spinning.
 */
static void vcon_disarm(struct vcon *c)
{
	if (!c->armed)
		return;
	epoll_ctl(c->ep, EPOLL_CTL_DEL, c->out_fd, NULL);
	c->armed = false;
}

static void vcon_out_failed(struct vcon *c, int err)
{
	log_warn("virtio-console: output failed (%s); further output is discarded",
		 strerror(err));
	vcon_disarm(c);
	c->out_fd = -1;
	c->pend_off = c->pend_len = 0;
}

/* Write what waits; true when nothing is left (or the output is gone). */
static bool vcon_flush(struct vcon *c)
{
	while (c->pend_len && c->out_fd >= 0) {
		ssize_t n = vcon_write(c, c->pend + c->pend_off, c->pend_len);

		if (n == -EAGAIN)
			return false;
		if (n < 0) {
			vcon_out_failed(c, (int)-n);
			break;
		}
		c->pend_off += (size_t)n;
		c->pend_len -= (size_t)n;
	}
	c->pend_off = c->pend_len = 0;
	return true;
}

/*
 * Take up to len bytes for the output: written at once while nothing waits,
 * and what the fd would not take is kept, up to VCON_PEND_MAX. Returns the
 * bytes taken: fewer than len only when that buffer is full.
 */
static size_t vcon_put(struct vcon *c, struct virtio_dev *vd, const uint8_t *buf, size_t len)
{
	size_t done = 0, n;

	while (c->out_fd >= 0 && !c->pend_len && done < len) {
		ssize_t w = vcon_write(c, buf + done, len - done);

		if (w == -EAGAIN)
			break;
		if (w < 0) {
			vcon_out_failed(c, (int)-w);
			break;
		}
		done += (size_t)w;
	}
	if (c->out_fd < 0) {
		done = len; /* no output: discarded */
	} else if (done < len) {
		if (c->pend_off) {
			memmove(c->pend, c->pend + c->pend_off, c->pend_len);
			c->pend_off = 0;
		}
		n = MIN(len - done, VCON_PEND_MAX - c->pend_len);
		memcpy(c->pend + c->pend_len, buf + done, n);
		c->pend_len += n;
		done += n;
		vcon_arm(c);
	}
	vd->stats.bytes_out += done;
	return done;
}

/* The output can take more (or failed): write what waits, then serve the ring again. */
static void vcon_out_ready(void *arg)
{
	struct vcon *c = arg;
	struct virtio_dev *vd = c->vd;
	struct epoll_event ev;

	/* Level-triggered: the set stays readable while the fd is writable and armed. */
	if (epoll_wait(c->ep, &ev, 1, 0) < 0)
		return;
	pthread_mutex_lock(&vd->lock);
	if (vcon_flush(c)) {
		vcon_disarm(c);
		vcon_tx(c, vd);
	}
	pthread_mutex_unlock(&vd->lock);
}

static void vcon_config_read(void *priv, uint32_t off, uint8_t *data, uint32_t len)
{
	struct vcon *c = priv;

	memcpy(data, (uint8_t *)&c->cfg + off, len);
}

static void vcon_config_write(void *priv, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct vcon *c = priv;

	/*
	 * emerg_wr (5.3.4): the low byte is written to port 0 at once, works before
	 * DRIVER_OK. It cannot wait on a ring: with the output's buffer full it is
	 * dropped (and counted).
	 */
	if (off == offsetof(struct virtio_console_config, emerg_wr) && c->vd &&
	    virtio_has_feature(c->vd, VIRTIO_CONSOLE_F_EMERG_WRITE) &&
	    vcon_put(c, c->vd, data, 1) == 0)
		c->vd->stats.errors++;
	(void)len;
}

/*
 * Drain the transmit queue: each buffer's readable part goes to the host side
 * as is. While the output's buffer is full the rest stay on the ring (the
 * driver sees them unused) until vcon_out_ready.
 */
static void vcon_tx(struct vcon *c, struct virtio_dev *vd)
{
	struct virtq *q = &vd->vq[VCON_TXQ];
	struct virtq_elem *e = &c->elem;
	bool pushed = false;
	unsigned budget = VCON_TX_BUDGET;
	int got = 0;

	/* Older bytes first. */
	vcon_flush(c);
	while (c->pend_len < VCON_PEND_MAX && (got = virtq_pop(q, e)) == 1) {
		uint64_t skip = c->tx_skip, taken = 0;
		bool all = true;

		for (unsigned i = 0; i < e->out_num && all; i++) {
			const uint8_t *p = e->iov[i].iov_base;
			size_t l = e->iov[i].iov_len, n;

			if (skip >= l) {
				skip -= l;
				continue;
			}
			n = vcon_put(c, vd, p + skip, l - skip);
			taken += n;
			all = n == l - skip;
			skip = 0;
		}
		if (!all) {
			/*
			 * No room for the rest: the buffer goes back on the ring (the
			 * driver has not seen it used), and what was taken of it is
			 * skipped when it is taken again.
			 */
			c->tx_skip += taken;
			virtq_unpop(q, 1);
			break;
		}
		c->tx_skip = 0;
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

static void vcon_reset(void *priv, struct virtio_dev *vd)
{
	struct vcon *c = priv;

	/* The ring is gone; bytes already taken are the host's and still go out. */
	c->tx_skip = 0;
	(void)vd;
}

static int vcon_save(void *priv, struct sbuf *out)
{
	struct vcon *c = priv;
	uint8_t ver = VCON_STATE_V2;
	uint32_t n = (uint32_t)c->pend_len;
	int r = sbuf_put(out, &ver, 1);

	if (!r)
		r = sbuf_put(out, &c->cfg, sizeof(c->cfg));
	if (!r)
		r = sbuf_put(out, &c->tx_skip, sizeof(c->tx_skip));
	if (!r)
		r = sbuf_put(out, &n, sizeof(n));
	if (!r && n)
		r = sbuf_put(out, c->pend + c->pend_off, n);
	return r;
}

static int vcon_load(void *priv, const uint8_t *buf, size_t len)
{
	struct vcon *c = priv;
	const size_t v2 = 1 + sizeof(c->cfg) + sizeof(c->tx_skip) + sizeof(uint32_t);
	uint64_t skip = 0;
	uint32_t n = 0;

	if (len < 1 + sizeof(c->cfg))
		return -EINVAL;
	if (buf[0] == VCON_STATE_V2 && len >= v2) {
		memcpy(&skip, buf + 1 + sizeof(c->cfg), sizeof(skip));
		memcpy(&n, buf + v2 - sizeof(n), sizeof(n));
		if (n > VCON_PEND_MAX || len != v2 + n)
			return -EINVAL;
	} else if (buf[0] != VCON_STATE_V1 || len != 1 + sizeof(c->cfg)) {
		return -EINVAL;
	}
	memcpy(&c->cfg, buf + 1, sizeof(c->cfg));
	c->cfg.max_nr_ports = 1;
	c->tx_skip = skip;
	c->pend_off = 0;
	c->pend_len = c->out_fd >= 0 ? n : 0;
	if (c->pend_len) {
		memcpy(c->pend, buf + v2, n);
		vcon_arm(c);
	}
	return 0;
}

static void vcon_destroy(void *priv)
{
	struct vcon *c = priv;

	/* A slow reader gets a moment for the guest's last words; a stopped one loses them. */
	for (int i = 0; i < 10 && c->pend_len && c->out_fd >= 0; i++) {
		struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };

		if (poll(&p, 1, 100) <= 0)
			break;
		vcon_flush(c);
	}
	if (c->ep >= 0) {
		if (c->vd && c->vd->ctx.unwatch_fd)
			c->vd->ctx.unwatch_fd(c->vd->ctx.irq_opaque, c->ep);
		close(c->ep);
	}
	if (c->own_fd >= 0)
		close(c->own_fd);
	free(c->pend);
	free(c);
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
	.reset = vcon_reset,
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
	c->ep = -1;
	c->pend = malloc(VCON_PEND_MAX);
	if (!c->pend) {
		free(c);
		return err_set(e, ENOMEM, "out of memory");
	}
	vcon_open_output(c, ctx->console_out_fd);
	c->cfg.max_nr_ports = 1;
	ret = virtio_pci_create(ctx, &vcon_ops, c, out, e);
	if (ret) {
		c->pend_len = 0;
		vcon_destroy(c);
		return ret;
	}
	c->vd = *out;
	/* The loop watches our epoll set, which holds the output only while bytes wait. */
	if (ctx->watch_fd && c->out_fd >= 0) {
		c->ep = epoll_create1(EPOLL_CLOEXEC);
		ret = c->ep < 0 ? -errno : ctx->watch_fd(ctx->irq_opaque, c->ep, vcon_out_ready, c);
		if (ret) {
			if (c->ep >= 0)
				close(c->ep);
			c->ep = -1;
			virtio_pci_destroy(*out); /* frees c */
			*out = NULL;
			return err_set(e, -ret, "virtio-console: cannot watch the output");
		}
	}
	return 0;
}
