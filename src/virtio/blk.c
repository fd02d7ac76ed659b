// SPDX-License-Identifier: MIT
/* blk.c: virtio-blk (virtio 1.2, 5.2) over the block layer, requests completed asynchronously. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"
#include "block/block.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"
#include "vmm/mem.h"

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status (5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_WZ_UNMAP 1

#define SECTOR 512ULL
#define BLK_SEG_MAX 126
/* Requests taken per notification before the loop's other users get their turn. */
#define BLK_NOTIFY_BUDGET 64
#define BLK_SIZE_MAX (1u << 20) /* bytes per segment */
#define BLK_QUEUE_SIZE 256
#define BLK_ID_BYTES 20
#define BLK_MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per request */

struct virtio_blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	struct {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size;
	struct {
		uint8_t physical_block_exp;
		uint8_t alignment_offset;
		uint16_t min_io_size;
		uint32_t opt_io_size;
	} topology;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));

struct blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_discard_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct virtio_blk;

/* One request in flight between the ring and the block layer. */
struct blk_inflight {
	struct blk_req req;
	struct virtio_blk *blk;
	uint64_t generation; /* device resets since; stale completions are dropped */
	unsigned q;
	uint16_t head;
	uint8_t *status;
	uint32_t written;
	bool then_flush; /* no FLUSH negotiated: the write must be durable before completing */
	enum blk_op op;  /* the request's own operation (req.op may become the follow-up FLUSH) */
	int iovcnt;
	struct iovec iov[];
};

struct virtio_blk {
	struct virtio_dev *vd;
	struct virtio_dev_ops ops;
	struct image *img;
	struct virtio_blk_config cfg;
	bool read_only;
	char serial[BLK_ID_BYTES];
	uint64_t generation;
	unsigned inflight;
	uint32_t irq_pending; /* queues with used entries not yet signalled (bit q) */
	bool draining;
	pthread_t drain_thread; /* the thread running a reset's drain (holds vd->lock) */
	struct virtq_elem elem;
};

static void blk_config_read(void *priv, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = priv;

	memcpy(data, (uint8_t *)&b->cfg + off, len);
}

static void blk_config_write(void *priv, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = priv;

	/*
	 * Only the writeback byte is driver-writable (5.2.5). Writes always go to the
	 * host page cache and FLUSH makes them durable; without FLUSH negotiated each
	 * write is followed by a flush before it completes.
	 */
	if (off == offsetof(struct virtio_blk_config, writeback) && len == 1)
		b->cfg.writeback = data[0] ? 1 : 0;
}

static void blk_finish(struct virtio_blk *b, struct virtio_dev *vd, unsigned q, uint16_t head,
		       uint8_t *status, uint8_t st, uint32_t written)
{
	*status = st;
	gm_mark_dirty(vd->ctx.gm, status, 1);
	if (st != VIRTIO_BLK_S_OK)
		vd->stats.errors++;
	/* The status byte counts as written. */
	if (virtq_push(&vd->vq[q], head, written + 1) == 0)
		b->irq_pending |= 1u << q;
}

/*
 * Signal the queues that got used entries, once per run of completions rather
 * than once per request (each interrupt is an irqfd write and an injection; with
 * EVENT_IDX the driver sees every entry pushed before it). Called with vd->lock
 * after every path that finishes requests: a kick, a completion run, a drain.
 */
static void blk_irq_flush(struct virtio_blk *b, struct virtio_dev *vd)
{
	while (b->irq_pending) {
		unsigned q = (unsigned)__builtin_ctz(b->irq_pending);

		b->irq_pending &= ~(1u << q);
		virtio_queue_interrupt(vd, q);
	}
}

static void blk_complete(struct virtio_blk *b, struct virtio_dev *vd, struct blk_inflight *f,
			 int ret);
static void blk_end(struct virtio_blk *b, struct virtio_dev *vd, struct blk_inflight *f, int ret);

static void blk_done(struct blk_req *req, int ret)
{
	struct blk_inflight *f = (struct blk_inflight *)req;
	struct virtio_blk *b = f->blk;
	struct virtio_dev *vd = b->vd;

	if (b->draining && pthread_equal(pthread_self(), b->drain_thread)) {
		/* Called by blk_reset's drain, which holds vd->lock: results are dropped. */
		b->inflight--;
		free(f);
		return;
	}
	pthread_mutex_lock(&vd->lock);
	blk_end(b, vd, f, ret);
	pthread_mutex_unlock(&vd->lock);
}

/*
 * The worker offers to finish a write the moment it is done (try_done): taken
 * unless vd->lock is busy, and then the event loop finishes it as before. Lock
 * order vd->lock, then the worker's: the worker holds none of its own here.
 */
static bool blk_try_done(struct blk_req *req, int ret)
{
	struct blk_inflight *f = (struct blk_inflight *)req;
	struct virtio_blk *b = f->blk;
	struct virtio_dev *vd = b->vd;

	if (pthread_mutex_trylock(&vd->lock))
		return false;
	blk_end(b, vd, f, ret);
	blk_irq_flush(b, vd);
	pthread_mutex_unlock(&vd->lock);
	return true;
}

/*
 * A request's I/O is over (vd->lock held). Without FLUSH the driver assumes no
 * write cache (5.2.5): a write completes only once it is durable, so it is
 * followed by a flush before the answer.
 */
static void blk_end(struct virtio_blk *b, struct virtio_dev *vd, struct blk_inflight *f, int ret)
{
	if (ret == 0 && f->then_flush && f->generation == b->generation) {
		f->then_flush = false;
		f->req.op = BLK_FLUSH;
		if (image_submit(b->img, &f->req) == 0)
			return;
		ret = -EIO;
	}
	blk_complete(b, vd, f, ret);
}

/* A request's end, with vd->lock held: answer the driver (unless reset since), free it. */
static void blk_complete(struct virtio_blk *b, struct virtio_dev *vd, struct blk_inflight *f,
			 int ret)
{
	b->inflight--;
	if (f->generation == b->generation && vd->vq[f->q].ready) {
		if (ret == 0 && f->op == BLK_READ) {
			vd->stats.bytes_in += f->written;
			gm_mark_dirty_iov(vd->ctx.gm, f->iov, (unsigned)f->iovcnt);
		} else if (ret == 0 && f->op == BLK_WRITE) {
			vd->stats.bytes_out += f->req.len;
		}
		blk_finish(b, vd, f->q, f->head, f->status,
			   ret == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR,
			   ret == 0 ? f->written : 0);
	}
	free(f);
}

static void blk_aio_cb(void *arg)
{
	struct virtio_blk *b = arg;

	if (image_aio_complete(b->img) > 0) {
		pthread_mutex_lock(&b->vd->lock);
		blk_irq_flush(b, b->vd);
		pthread_mutex_unlock(&b->vd->lock);
	}
}

/* Validate a request and hand it to the block layer; false when the chain is malformed. */
static bool blk_handle(struct virtio_blk *b, struct virtio_dev *vd, unsigned q,
		       struct virtq_elem *e)
{
	struct blk_req_hdr h;
	struct blk_inflight *f;
	const struct iovec *in = e->iov + e->out_num;
	unsigned nin = e->in_num, i;
	uint8_t *status;
	uint64_t datalen, off;
	size_t hdrlen;
	int r;

	/* Header first (readable), status byte last (writable): 5.2.6. */
	if (e->out_len < sizeof(h) || nin == 0 || in[nin - 1].iov_len == 0)
		return false;
	hdrlen = iov_to_buf(e->iov, e->out_num, 0, &h, sizeof(h));
	if (hdrlen != sizeof(h))
		return false;
	status = (uint8_t *)in[nin - 1].iov_base + in[nin - 1].iov_len - 1;
	vd->stats.requests++;

	f = calloc(1, sizeof(*f) + (e->out_num + e->in_num) * sizeof(struct iovec));
	if (!f) {
		blk_finish(b, vd, q, e->head, status, VIRTIO_BLK_S_IOERR, 0);
		return true;
	}
	f->blk = b;
	f->q = q;
	f->head = e->head;
	f->status = status;
	f->generation = b->generation;
	f->req.done = blk_done;
	f->req.opaque = f;

	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool wr = h.type == VIRTIO_BLK_T_OUT;
		const struct iovec *src = wr ? e->iov : in;
		unsigned n = wr ? e->out_num : nin;
		uint64_t skip = wr ? sizeof(h) : 0;

		/* Data iovecs: after the header (OUT) or before the status byte (IN). */
		datalen = 0;
		for (i = 0; i < n; i++) {
			uint64_t l = src[i].iov_len;
			uint8_t *base = src[i].iov_base;

			if (!wr && i == n - 1)
				l--; /* status byte */
			if (skip >= l) {
				skip -= l;
				continue;
			}
			f->iov[f->iovcnt].iov_base = base + skip;
			f->iov[f->iovcnt].iov_len = l - skip;
			datalen += l - skip;
			skip = 0;
			if (f->iov[f->iovcnt].iov_len)
				f->iovcnt++;
		}
		if (wr && nin != 1)
			goto ioerr; /* a write carries no device-writable data */
		/*
		 * The used ring's len is 32 bits and counts the status byte too (2.7.8):
		 * a chain of large descriptors (or the same RAM many times) can describe
		 * more, and a read would report a truncated length. Nothing near this
		 * honours size_max * seg_max, so refuse it before any I/O, either way.
		 */
		if (datalen >= UINT32_MAX)
			goto ioerr;
		off = h.sector * SECTOR;
		if (datalen % SECTOR || h.sector > UINT64_MAX / SECTOR ||
		    !range_ok(off, datalen, b->cfg.capacity * SECTOR))
			goto ioerr;
		if (wr && b->read_only)
			goto ioerr;
		if (datalen == 0) {
			blk_finish(b, vd, q, e->head, status, VIRTIO_BLK_S_OK, 0);
			free(f);
			return true;
		}
		f->req.op = wr ? BLK_WRITE : BLK_READ;
		f->req.offset = off;
		f->req.len = datalen;
		f->req.iov = f->iov;
		f->req.iovcnt = f->iovcnt;
		f->written = wr ? 0 : (uint32_t)datalen;
		f->then_flush = wr && !virtio_has_feature(vd, VIRTIO_BLK_F_FLUSH);
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		f->req.op = BLK_FLUSH;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		size_t room = e->in_len - 1;

		free(f);
		if (room == 0) {
			blk_finish(b, vd, q, e->head, status, VIRTIO_BLK_S_IOERR, 0);
			return true;
		}
		/* Up to 20 bytes, not NUL-terminated when exactly 20 (5.2.6.1). */
		room = MIN(room, sizeof(b->serial));
		iov_from_buf(in, nin, 0, b->serial, room);
		gm_mark_dirty_iov(vd->ctx.gm, in, nin);
		blk_finish(b, vd, q, e->head, status, VIRTIO_BLK_S_OK, (uint32_t)room);
		return true;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool wz = h.type == VIRTIO_BLK_T_WRITE_ZEROES;
		struct blk_discard_seg s;

		/* Exactly one segment: max_discard_seg / max_write_zeroes_seg are 1. */
		if (e->out_len - sizeof(h) != sizeof(s) ||
		    iov_to_buf(e->iov, e->out_num, sizeof(h), &s, sizeof(s)) != sizeof(s))
			goto ioerr;
		if (b->read_only || s.num_sectors == 0 ||
		    s.num_sectors > BLK_MAX_DISCARD_SECTORS || s.sector > UINT64_MAX / SECTOR ||
		    !range_ok(s.sector * SECTOR, (uint64_t)s.num_sectors * SECTOR,
			      b->cfg.capacity * SECTOR) ||
		    (s.flags & ~(uint32_t)VIRTIO_BLK_WZ_UNMAP) || (!wz && s.flags))
			goto ioerr;
		f->req.op = wz ? BLK_WRITE_ZEROES : BLK_DISCARD;
		f->req.offset = s.sector * SECTOR;
		f->req.len = (uint64_t)s.num_sectors * SECTOR;
		f->req.flags = (wz && (s.flags & VIRTIO_BLK_WZ_UNMAP)) ? IMAGE_ZERO_MAY_UNMAP : 0;
		f->then_flush = !virtio_has_feature(vd, VIRTIO_BLK_F_FLUSH);
		break;
	}
	default:
		free(f);
		blk_finish(b, vd, q, e->head, status, VIRTIO_BLK_S_UNSUPP, 0);
		return true;
	}
	f->op = f->req.op;
	/* A read the page cache has whole is answered in this pass (blk_notify's interrupt). */
	f->req.inline_ok = f->op == BLK_READ;
	f->req.try_done = f->op == BLK_WRITE ? blk_try_done : NULL;
	r = image_submit(b->img, &f->req);
	if (r < 0)
		goto ioerr;
	b->inflight++;
	if (r == 1)
		blk_complete(b, vd, f, f->req.ret);
	return true;
ioerr:
	free(f);
	blk_finish(b, vd, q, e->head, status, VIRTIO_BLK_S_IOERR, 0);
	return true;
}

static void blk_notify(void *priv, struct virtio_dev *vd, unsigned q)
{
	struct virtio_blk *b = priv;
	unsigned budget = BLK_NOTIFY_BUDGET;
	bool bad = false, requeued = false;
	int got;

	/* The worker is woken once, for the whole pass (and can merge what continues). */
	image_plug(b->img);
	for (;;) {
		/* No kicks while we are taking requests anyway (2.7.10, 2.7.7): each is a VM exit. */
		virtq_set_notify(&vd->vq[q], false);
		while ((got = virtq_pop(&vd->vq[q], &b->elem)) == 1) {
			if (!blk_handle(b, vd, q, &b->elem)) {
				bad = true;
				break;
			}
			/* A driver that keeps the ring full must not keep the loop to itself. */
			if (--budget == 0 && virtio_queue_requeue(vd, q)) {
				requeued = true;
				break;
			}
		}
		if (requeued)
			break; /* notifications stay off: the loop calls us again */
		virtq_set_notify(&vd->vq[q], true);
		/* What the driver added before it saw notifications back on. */
		if (bad || got < 0 || !virtq_has_work(&vd->vq[q]))
			break;
	}
	image_unplug(b->img);
	blk_irq_flush(b, vd);
	if (bad)
		virtio_needs_reset(vd, "malformed request (header or status missing)");
	else if (got < 0)
		virtio_needs_reset(vd, "malformed descriptor chain");
}

static void blk_reset(void *priv, struct virtio_dev *vd)
{
	struct virtio_blk *b = priv;

	/* Requests in flight may still write guest RAM: wait for them, then forget them. */
	b->generation++;
	b->irq_pending = 0;
	if (b->inflight) {
		b->drain_thread = pthread_self();
		b->draining = true;
		image_aio_drain(b->img);
		b->draining = false;
	}
}

static int blk_save(void *priv, struct sbuf *out)
{
	struct virtio_blk *b = priv;

	/* Callers pause the VM and drain first; nothing in flight is part of the state. */
	if (b->inflight)
		return -EBUSY;
	return sbuf_put(out, &b->cfg.writeback, 1);
}

static int blk_load(void *priv, const uint8_t *buf, size_t len)
{
	struct virtio_blk *b = priv;

	if (len != 1)
		return -EINVAL;
	b->cfg.writeback = buf[0] ? 1 : 0;
	return 0;
}

static void blk_drain(void *priv)
{
	struct virtio_blk *b = priv;

	/* Completion callbacks run here and take vd->lock, which the caller does not hold. */
	image_aio_drain(b->img);
	pthread_mutex_lock(&b->vd->lock);
	blk_irq_flush(b, b->vd);
	pthread_mutex_unlock(&b->vd->lock);
}

/*
 * Point the device at another image (snapshot overlays). The VM is paused and
 * the device drained, so no request is in flight; on failure the old image
 * stays in use.
 */
int virtio_blk_switch_image(struct virtio_dev *vd, const char *path, struct err *e)
{
	struct image_open_opts io = { .format = IMAGE_FMT_AUTO };
	struct virtio_blk *b = vd->priv;
	struct image *img;
	int r;

	image_aio_drain(b->img);
	pthread_mutex_lock(&vd->lock);
	blk_irq_flush(b, vd);
	pthread_mutex_unlock(&vd->lock);
	io.read_only = b->read_only;
	r = image_open(path, &io, &img, e);
	if (r)
		return r;
	if (image_size(img) != image_size(b->img)) {
		image_close(img);
		return err_set(e, EINVAL, "%s: size differs from the disk it replaces", path);
	}
	r = image_aio_start(img, e);
	if (r) {
		image_close(img);
		return r;
	}
	if (vd->ctx.watch_fd) {
		r = vd->ctx.watch_fd(vd->ctx.irq_opaque, image_aio_fd(img), blk_aio_cb, b);
		if (r) {
			image_close(img);
			return err_set(e, -r, "%s: cannot watch its completions", path);
		}
	}
	pthread_mutex_lock(&vd->lock);
	if (vd->ctx.unwatch_fd)
		vd->ctx.unwatch_fd(vd->ctx.irq_opaque, image_aio_fd(b->img));
	image_close(b->img);
	b->img = img;
	pthread_mutex_unlock(&vd->lock);
	return 0;
}

struct image *virtio_blk_image(struct virtio_dev *vd)
{
	return ((struct virtio_blk *)vd->priv)->img;
}

static void blk_destroy(void *priv)
{
	struct virtio_blk *b = priv;

	if (b->img) {
		image_aio_drain(b->img);
		if (b->vd && b->vd->ctx.unwatch_fd)
			b->vd->ctx.unwatch_fd(b->vd->ctx.irq_opaque, image_aio_fd(b->img));
		image_close(b->img);
	}
	free(b);
}

int virtio_blk_create(const struct dev_ctx *ctx, const struct blk_opts *o,
		      struct virtio_dev **out, struct err *e)
{
	struct image_open_opts io = { .read_only = o->read_only, .format = IMAGE_FMT_AUTO };
	struct virtio_blk *b = calloc(1, sizeof(*b));
	uint64_t size;
	int r;

	if (!b)
		return err_set(e, ENOMEM, "out of memory");
	if (o->format && image_format_parse(o->format, &io.format)) {
		free(b);
		return err_set(e, EINVAL, "--disk %s: unknown format '%s' (raw or qcow2)", o->path,
			       o->format);
	}
	r = image_open(o->path, &io, &b->img, e);
	if (r) {
		free(b);
		return err_prefix(e, r, "--disk");
	}
	size = image_size(b->img);
	if (size % SECTOR)
		log_warn("disk %s: size is not a multiple of 512; the last %llu bytes are unused",
			 o->path, (unsigned long long)(size % SECTOR));
	r = image_aio_start(b->img, e);
	if (r)
		goto fail;
	b->read_only = o->read_only;
	if (o->serial)
		memcpy(b->serial, o->serial, MIN(strlen(o->serial), sizeof(b->serial)));
	b->cfg.capacity = size / SECTOR;
	b->cfg.size_max = BLK_SIZE_MAX;
	b->cfg.seg_max = BLK_SEG_MAX;
	b->cfg.blk_size = SECTOR;
	b->cfg.num_queues = (uint16_t)(o->queues ? o->queues : 1);
	b->cfg.max_discard_sectors = BLK_MAX_DISCARD_SECTORS;
	b->cfg.max_discard_seg = 1;
	b->cfg.discard_sector_alignment = 8; /* 4 KiB */
	b->cfg.max_write_zeroes_sectors = BLK_MAX_DISCARD_SECTORS;
	b->cfg.max_write_zeroes_seg = 1;
	b->cfg.write_zeroes_may_unmap = 1;

	b->ops = (struct virtio_dev_ops){
		.name = "virtio-blk",
		.device_id = 2,
		.pci_class = 0x018000,
		.nqueues = b->cfg.num_queues,
		.queue_size = BLK_QUEUE_SIZE,
		.features = VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
			    VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
			    VIRTIO_BIT(VIRTIO_BLK_F_MQ) |
			    (o->read_only ? VIRTIO_BIT(VIRTIO_BLK_F_RO) :
					    VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
						    VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES)),
		.config_size = sizeof(b->cfg),
		.config_read = blk_config_read,
		.config_write = blk_config_write,
		.queue_notify = blk_notify,
		.reset = blk_reset,
		.save = blk_save,
		.load = blk_load,
		.destroy = blk_destroy,
		.drain = blk_drain,
	};
	if (ctx->watch_fd) {
		r = ctx->watch_fd(ctx->irq_opaque, image_aio_fd(b->img), blk_aio_cb, b);
		if (r) {
			err_set(e, -r, "--disk %s: cannot watch I/O completions", o->path);
			goto fail;
		}
	}
	r = virtio_pci_create(ctx, &b->ops, b, &b->vd, e);
	if (r) {
		if (ctx->unwatch_fd)
			ctx->unwatch_fd(ctx->irq_opaque, image_aio_fd(b->img));
		goto fail;
	}
	*out = b->vd;
	return 0;
fail:
	image_close(b->img);
	free(b);
	return r;
}
