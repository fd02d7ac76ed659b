// SPDX-License-Identifier: MIT
/* balloon.c: virtio-balloon (virtio 1.2, 5.5): inflate/deflate, statistics, free page reporting. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"
#include "vmm/mem.h"

/* Feature bits (5.5.3). */
#define VIRTIO_BALLOON_F_STATS_VQ 1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_PAGE_REPORTING 5

/* Balloon pages are always 4 KiB, whatever the guest's page size (5.5.6). */
#define BALLOON_PFN_SHIFT 12
#define BALLOON_PAGE (1ULL << BALLOON_PFN_SHIFT)
#define BALLOON_QUEUE_SIZE 128
/*
 * Frames taken from one inflate/deflate buffer (Linux sends 256): the rest of
 * a larger one is ignored, so a single buffer cannot hold the event loop.
 */
#define BALLOON_MAX_PFNS 4096u
/* Buffers per pass: a driver that keeps refilling a ring must not keep the loop to itself. */
#define BALLOON_BUDGET 64
#define BALLOON_STATE_V1 1

/* Queue roles; the indexes the driver uses depend on the features (5.5.2). */
enum bq { BQ_INFLATE, BQ_DEFLATE, BQ_STATS, BQ_REPORTING, BQ_NONE };

struct virtio_balloon_config {
	uint32_t num_pages;
	uint32_t actual;
	uint32_t free_page_hint_cmd_id;
	uint32_t poison_val;
};

struct balloon_stat {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

struct balloon {
	struct virtio_dev *vd;
	struct virtio_dev_ops ops;
	struct virtio_balloon_config cfg;
	uint64_t stats[VIRTIO_BALLOON_S_NR];
	uint64_t stats_valid; /* bit per tag the guest reported */
	uint64_t stats_updates;
	uint64_t discarded_pages, bad_pfns;
	bool stats_held; /* the driver's stats buffer is ours until we ask for new figures */
	uint16_t stats_head;
	unsigned stats_period;
	int timer_fd;
	struct virtq_elem elem;
};

/* Which role queue index q plays given the negotiated features: absent queues take no index. */
static enum bq queue_role(const struct virtio_dev *vd, unsigned q)
{
	enum bq order[4];
	unsigned n = 0;

	order[n++] = BQ_INFLATE;
	order[n++] = BQ_DEFLATE;
	if (virtio_has_feature(vd, VIRTIO_BALLOON_F_STATS_VQ))
		order[n++] = BQ_STATS;
	if (virtio_has_feature(vd, VIRTIO_BALLOON_F_PAGE_REPORTING))
		order[n++] = BQ_REPORTING;
	return q < n ? order[q] : BQ_NONE;
}

/* Give host pages back: the memfd range is punched out, so RSS drops; the guest sees zeroes later. */
static void balloon_discard(struct balloon *b, uint8_t *host, uint64_t len)
{
	const struct guest_mem *gm = b->vd->ctx.gm;
	uintptr_t start = (uintptr_t)host, end = start + len;
	uint64_t ps = gm->page_size ? gm->page_size : BALLOON_PAGE;

	/* Only whole host pages can go (2 MiB ones with hugetlbfs). */
	start = (start + ps - 1) & ~(uintptr_t)(ps - 1);
	end &= ~(uintptr_t)(ps - 1);
	if (end <= start)
		return;
	/* A memfd is punched (MADV_REMOVE); anonymous or snapshot-mapped RAM is dropped. */
	if (madvise((void *)start, end - start, MADV_REMOVE) == 0 ||
	    madvise((void *)start, end - start, MADV_DONTNEED) == 0)
		b->discarded_pages += (end - start) / BALLOON_PAGE;
	else
		b->vd->stats.errors++;
}

/* One inflate or deflate buffer: an array of le32 page frame numbers. */
static void balloon_pfns(struct balloon *b, struct virtio_dev *vd, struct virtq_elem *e,
			 bool inflate)
{
	const struct guest_mem *gm = vd->ctx.gm;
	uint8_t *run = NULL;
	uint64_t run_len = 0, off = 0;
	uint32_t pfns[256];
	size_t got;

	/* Read in chunks (one pass over the iovecs each), at most BALLOON_MAX_PFNS frames. */
	while (off < BALLOON_MAX_PFNS * sizeof(pfns[0]) &&
	       (got = iov_to_buf(e->iov, e->out_num, off, pfns, sizeof(pfns))) >= sizeof(pfns[0])) {
		for (size_t i = 0; i < got / sizeof(pfns[0]); i++) {
			uint32_t pfn = pfns[i];
			uint8_t *p = gm_ptr(gm, (uint64_t)pfn << BALLOON_PFN_SHIFT, BALLOON_PAGE);

			if (!p) {
				/* Not RAM: nothing of ours to give back; count it and go on. */
				if (b->bad_pfns++ == 0 || ratelimit_ok(&vd->err_rl))
					log_warn("virtio-balloon: pfn 0x%x is not guest RAM; ignored",
						 pfn);
				vd->stats.errors++;
				continue;
			}
			if (!inflate)
				continue; /* deflate: the memory comes back on the guest's next touch */
			/* Coalesce runs of consecutive frames into one madvise. */
			if (run && p == run + run_len) {
				run_len += BALLOON_PAGE;
				continue;
			}
			if (run)
				balloon_discard(b, run, run_len);
			run = p;
			run_len = BALLOON_PAGE;
		}
		off += got / sizeof(pfns[0]) * sizeof(pfns[0]);
	}
	if (off < e->out_len / sizeof(pfns[0]) * sizeof(pfns[0])) {
		if (ratelimit_ok(&vd->err_rl))
			log_warn("virtio-balloon: a buffer of more than %u frames; the rest ignored",
				 BALLOON_MAX_PFNS);
		vd->stats.errors++;
	}
	if (run)
		balloon_discard(b, run, run_len);
	vd->stats.bytes_out += off;
}

/* Free page reporting (5.5.6.7): each descriptor is a free range the host may discard. */
static void balloon_report(struct balloon *b, struct virtq_elem *e)
{
	for (unsigned i = 0; i < e->out_num + e->in_num; i++)
		balloon_discard(b, e->iov[i].iov_base, e->iov[i].iov_len);
}

/* Read the driver's statistics (5.5.6.3): a packed array of {le16 tag, le64 val}. */
static void balloon_stats_in(struct balloon *b, struct virtq_elem *e)
{
	struct balloon_stat s;
	uint64_t off = 0;

	/* Each tag comes once (5.5.6.3): a longer buffer's tail is not read. */
	while (off < 64 * sizeof(s) &&
	       iov_to_buf(e->iov, e->out_num, off, &s, sizeof(s)) == sizeof(s)) {
		off += sizeof(s);
		if (s.tag < VIRTIO_BALLOON_S_NR) {
			b->stats[s.tag] = s.val;
			b->stats_valid |= 1ULL << s.tag;
		}
	}
	b->stats_updates++;
}

static void balloon_notify(void *priv, struct virtio_dev *vd, unsigned q)
{
	struct balloon *b = priv;
	struct virtq_elem *e = &b->elem;
	enum bq role = queue_role(vd, q);
	bool pushed = false;
	unsigned budget = BALLOON_BUDGET;
	int got;

	if (role == BQ_NONE)
		return;
	while ((got = virtq_pop(&vd->vq[q], e)) == 1) {
		vd->stats.requests++;
		if (role == BQ_STATS) {
			if (b->stats_held) {
				/* A second buffer while we hold one: return the old one. */
				if (virtq_push(&vd->vq[q], b->stats_head, 0))
					break;
				pushed = true;
			}
			balloon_stats_in(b, e);
			b->stats_head = e->head;
			b->stats_held = true;
		} else {
			if (role == BQ_REPORTING)
				balloon_report(b, e);
			else
				balloon_pfns(b, vd, e, role == BQ_INFLATE);
			if (virtq_push(&vd->vq[q], e->head, 0))
				break;
			pushed = true;
		}
		if (--budget == 0 && virtio_queue_requeue(vd, q))
			break;
	}
	if (got < 0)
		virtio_needs_reset(vd, "malformed descriptor chain");
	if (pushed)
		virtio_queue_interrupt(vd, q);
}

/* Ask for fresh statistics by giving the driver its buffer back (vd->lock held). */
static void balloon_stats_request_locked(struct balloon *b, struct virtio_dev *vd)
{
	unsigned q = 2; /* the stats queue always follows inflate and deflate */

	if (!b->stats_held || !virtio_has_feature(vd, VIRTIO_BALLOON_F_STATS_VQ) ||
	    !vd->vq[q].ready)
		return;
	b->stats_held = false;
	if (virtq_push(&vd->vq[q], b->stats_head, 0) == 0)
		virtio_queue_interrupt(vd, q);
}

void virtio_balloon_request_stats(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	balloon_stats_request_locked(vd->priv, vd);
	pthread_mutex_unlock(&vd->lock);
}

static void balloon_timer(void *arg)
{
	struct balloon *b = arg;
	uint64_t n;

	if (read(b->timer_fd, &n, sizeof(n)) < 0)
		return;
	virtio_balloon_request_stats(b->vd);
}

static void balloon_reset(void *priv, struct virtio_dev *vd)
{
	struct balloon *b = priv;

	/* The driver deflates nothing on reset: its pages are simply its own again. */
	b->stats_held = false;
	b->cfg.actual = 0;
	(void)vd;
}

static void balloon_config_read(void *priv, uint32_t off, uint8_t *data, uint32_t len)
{
	struct balloon *b = priv;

	memcpy(data, (uint8_t *)&b->cfg + off, len);
}

static void balloon_config_write(void *priv, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct balloon *b = priv;

	/* Only actual is driver-writable (5.5.4). */
	if (off >= offsetof(struct virtio_balloon_config, actual) &&
	    off + len <= offsetof(struct virtio_balloon_config, actual) + 4)
		memcpy((uint8_t *)&b->cfg + off, data, len);
}

int virtio_balloon_set_target(struct virtio_dev *vd, uint64_t bytes)
{
	struct balloon *b = vd->priv;
	const struct guest_mem *gm = vd->ctx.gm;

	if (bytes / BALLOON_PAGE > UINT32_MAX || (gm && bytes > gm->size))
		return -ERANGE;
	pthread_mutex_lock(&vd->lock);
	b->cfg.num_pages = (uint32_t)(bytes / BALLOON_PAGE);
	virtio_config_interrupt(vd);
	pthread_mutex_unlock(&vd->lock);
	return 0;
}

void virtio_balloon_info(struct virtio_dev *vd, struct balloon_info *out)
{
	struct balloon *b = vd->priv;

	pthread_mutex_lock(&vd->lock);
	memset(out, 0, sizeof(*out));
	out->target_bytes = (uint64_t)b->cfg.num_pages * BALLOON_PAGE;
	out->actual_bytes = (uint64_t)b->cfg.actual * BALLOON_PAGE;
	out->discarded_bytes = b->discarded_pages * BALLOON_PAGE;
	out->bad_pfns = b->bad_pfns;
	out->stats_updates = b->stats_updates;
	out->stats_valid = b->stats_valid;
	memcpy(out->stats, b->stats, sizeof(out->stats));
	pthread_mutex_unlock(&vd->lock);
}

struct balloon_state_v1 {
	struct virtio_balloon_config cfg;
	uint64_t stats[VIRTIO_BALLOON_S_NR];
	uint64_t stats_valid, stats_updates, discarded_pages, bad_pfns;
	uint16_t stats_head;
	uint8_t stats_held, pad[5];
};

static int balloon_save(void *priv, struct sbuf *out)
{
	struct balloon *b = priv;
	struct balloon_state_v1 st;
	uint8_t ver = BALLOON_STATE_V1;
	int r;

	memset(&st, 0, sizeof(st));
	st.cfg = b->cfg;
	memcpy(st.stats, b->stats, sizeof(st.stats));
	st.stats_valid = b->stats_valid;
	st.stats_updates = b->stats_updates;
	st.discarded_pages = b->discarded_pages;
	st.bad_pfns = b->bad_pfns;
	st.stats_head = b->stats_head;
	st.stats_held = b->stats_held;
	r = sbuf_put(out, &ver, 1);
	return r ? r : sbuf_put(out, &st, sizeof(st));
}

static int balloon_load(void *priv, const uint8_t *buf, size_t len)
{
	struct balloon *b = priv;
	struct balloon_state_v1 st;

	if (len != 1 + sizeof(st) || buf[0] != BALLOON_STATE_V1)
		return -EINVAL;
	memcpy(&st, buf + 1, sizeof(st));
	b->cfg.num_pages = st.cfg.num_pages;
	b->cfg.actual = st.cfg.actual;
	memcpy(b->stats, st.stats, sizeof(b->stats));
	b->stats_valid = st.stats_valid;
	b->stats_updates = st.stats_updates;
	b->discarded_pages = st.discarded_pages;
	b->bad_pfns = st.bad_pfns;
	/* A head is only trusted when it names a ring slot; the core restores the queue itself. */
	b->stats_held = st.stats_held && st.stats_head < VIRTQ_MAX_SIZE;
	b->stats_head = st.stats_head;
	return 0;
}

static void balloon_destroy(void *priv)
{
	struct balloon *b = priv;

	if (b->timer_fd >= 0) {
		if (b->vd && b->vd->ctx.unwatch_fd)
			b->vd->ctx.unwatch_fd(b->vd->ctx.irq_opaque, b->timer_fd);
		close(b->timer_fd);
	}
	free(b);
}

static const struct virtio_dev_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = 5,
	.pci_class = 0x05ff00, /* memory controller, other */
	.nqueues = 4,
	.queue_size = BALLOON_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_balloon_config),
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.queue_notify = balloon_notify,
	.reset = balloon_reset,
	.save = balloon_save,
	.load = balloon_load,
	.destroy = balloon_destroy,
};

/* The periodic statistics request runs on the event loop; without one, on demand only. */
static int balloon_start_timer(struct balloon *b, const struct dev_ctx *ctx, struct err *e)
{
	struct itimerspec its = { 0 };

	if (!b->stats_period || !ctx->watch_fd)
		return 0;
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (b->timer_fd < 0)
		return err_set(e, errno, "virtio-balloon: timerfd: %s", strerror(errno));
	its.it_value.tv_sec = its.it_interval.tv_sec = b->stats_period;
	if (timerfd_settime(b->timer_fd, 0, &its, NULL) < 0 ||
	    ctx->watch_fd(ctx->irq_opaque, b->timer_fd, balloon_timer, b)) {
		int en = errno ? errno : EIO;

		close(b->timer_fd);
		b->timer_fd = -1;
		return err_set(e, en, "virtio-balloon: cannot set up the statistics timer");
	}
	return 0;
}

int virtio_balloon_create(const struct dev_ctx *ctx, const struct balloon_opts *o,
			  struct virtio_dev **out, struct err *e)
{
	struct balloon *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return err_set(e, ENOMEM, "out of memory");
	if (ctx->gm && o->target > ctx->gm->size) {
		free(b);
		return err_set(e, EINVAL, "virtio-balloon: target %llu is larger than guest RAM",
			       (unsigned long long)o->target);
	}
	b->timer_fd = -1;
	b->ops = balloon_ops;
	if (o->stats_period)
		b->ops.features |= VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ);
	if (!o->no_reporting)
		b->ops.features |= VIRTIO_BIT(VIRTIO_BALLOON_F_PAGE_REPORTING);
	if (o->deflate_on_oom)
		b->ops.features |= VIRTIO_BIT(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	b->stats_period = o->stats_period;
	b->cfg.num_pages = (uint32_t)(o->target / BALLOON_PAGE);
	ret = virtio_pci_create(ctx, &b->ops, b, out, e);
	if (ret) {
		free(b);
		return ret;
	}
	b->vd = *out;
	ret = balloon_start_timer(b, ctx, e);
	if (ret) {
		virtio_pci_destroy(*out);
		*out = NULL;
	}
	return ret;
}
