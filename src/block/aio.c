// SPDX-License-Identifier: MIT
/*
 * aio.c: the block layer's request worker (one thread per opened image) and the
 * synchronous API built on it. Requests run as if in submission order; see
 * ARCHITECTURE.md (block layer) for the pipeline of raw images on io_uring.
 */
#include "block/block.h"
#include "block/block_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

struct image_aio {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;	 /* worker waits for requests */
	pthread_cond_t finished; /* synchronous callers and drain wait here */
	struct blk_req *sq_head, *sq_tail; /* submitted, not started */
	struct blk_req *cq_head, *cq_tail; /* finished, callbacks not run */
	unsigned pending;		   /* submitted and not yet finished */
	unsigned pending_other;		   /* of those, not READs */
	bool no_nowait;			   /* the file refused RWF_NOWAIT: no reads on submit */
	int efd;
	int wake_fd;	   /* -1, or the eventfd the pipeline worker polls in its ring */
	bool in_ring_wait; /* the pipeline worker sleeps in io_uring: signal wake_fd */
	unsigned plugged;  /* image_plug() depth: submissions wait for image_unplug() */
	bool plug_pending; /* requests queued while plugged */
	bool stop;
};

/* ---- the worker ---- */

/*
 * io_uring does not order the requests in flight, so a request joins them only
 * when it is a read or write that overlaps no write among them (and, being a
 * write, no read either): the result is then the same as in order.
 */
static bool batchable(struct blk_req **batch, int n, const struct blk_req *r)
{
	uint64_t s, e;

	if (r->op != BLK_READ && r->op != BLK_WRITE)
		return false;
	s = r->offset;
	e = s + iov_bytes(r->iov, r->iovcnt);
	for (int i = 0; i < n; i++) {
		uint64_t bs, be;

		if (!batch[i])
			continue;
		bs = batch[i]->offset;
		be = bs + iov_bytes(batch[i]->iov, batch[i]->iovcnt);
		if ((r->op == BLK_WRITE || batch[i]->op == BLK_WRITE) && s < be && bs < e)
			return false;
	}
	return true;
}

static struct blk_req *sq_pop(struct image_aio *a)
{
	struct blk_req *r = a->sq_head;

	a->sq_head = r->next;
	if (!a->sq_head)
		a->sq_tail = NULL;
	return r;
}

/*
 * A request finished with ret (called with a->lock held; the worker touches r no
 * more after this). Returns true when the completion list was empty before, so
 * the owner needs a wake-up; a synchronous caller is woken by `finished`.
 */
static bool aio_post(struct image_aio *a, struct blk_req *r, int ret)
{
	bool first = !a->cq_head;

	r->ret = ret;
	r->next = NULL;
	r->finished = true;
	a->pending--;
	if (r->op != BLK_READ)
		a->pending_other--;
	if (!r->done)
		return false;
	if (a->cq_tail)
		a->cq_tail->next = r;
	else
		a->cq_head = r;
	a->cq_tail = r;
	return first;
}

static void aio_signal(struct image_aio *a, bool wake_owner)
{
	uint64_t one = 1;

	if (wake_owner && write(a->efd, &one, sizeof(one)) < 0)
		log_debug("block: eventfd write: %s", strerror(errno));
	pthread_cond_broadcast(&a->finished);
}

/* Runs of requests, each run executed and finished before the next starts. */
static void aio_batch_loop(struct image *img)
{
	struct image_aio *a = img->aio;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct blk_req *r, *batch[IO_BATCH_MAX];
		int rets[IO_BATCH_MAX];
		bool wake = false;
		int ret, n;

		while (!a->sq_head && !a->stop)
			pthread_cond_wait(&a->work, &a->lock);
		if (!a->sq_head && a->stop)
			break;
		/* Take a run of reads and writes when the driver can batch them, else one request. */
		n = 0;
		do {
			r = sq_pop(a);
			batch[n++] = r;
		} while (img->ops->rw_batch && n < IO_BATCH_MAX && a->sq_head &&
			 (r->op == BLK_READ || r->op == BLK_WRITE) && batchable(batch, n, a->sq_head));
		pthread_mutex_unlock(&a->lock);

		if (n == 1) {
			rets[0] = image_execute(img, batch[0]);
		} else {
			struct blk_req *ok[IO_BATCH_MAX];
			int m = 0;

			for (int i = 0; i < n; i++) {
				ret = image_req_check(img, batch[i]);
				batch[i]->ret = ret;
				if (ret == 0)
					ok[m++] = batch[i];
			}
			if (m)
				img->ops->rw_batch(img, ok, m);
			for (int i = 0; i < n; i++)
				rets[i] = batch[i]->ret;
		}

		pthread_mutex_lock(&a->lock);
		for (int i = 0; i < n; i++)
			wake |= aio_post(a, batch[i], rets[i]);
		aio_signal(a, wake);
	}
	pthread_mutex_unlock(&a->lock);
}

/*
 * The pipeline (raw images with io_uring). Reads stay in flight together in the
 * ring, each finishing on its own (from the page cache they finish inside the
 * submission; from the disk they overlap), and new requests start while others
 * run, so a guest's queue never waits for the slowest request of a batch.
 *
 * Writes are buffered, and filesystems (ext4 among them) cannot start a
 * buffered write without blocking: io_uring hands each one to an io-wq worker,
 * and all of one file's writes to the same worker, one at a time (they are
 * hashed on the inode). So this thread does them itself, one at a time too,
 * without the two wake-ups per write that going through io-wq costs; each
 * completes as soon as it is done.
 *
 * Requests queued back to back that continue each other (same operation, the
 * next starting where the previous ends: a sequential stream) become one
 * transfer, as QEMU's virtio-blk merges them: one system call per run instead
 * of one per request, and all of them finish together.
 *
 * While reads are in flight the worker sleeps in io_uring, on their completions
 * and on a poll of wake_fd, which image_submit() signals.
 */
#define AIO_RING_MAX (IO_RING_DEPTH - 1) /* the wake_fd poll takes one more entry */
#define AIO_WAKE_TAG UINT64_MAX
#define AIO_MERGE_IOV 128		/* vectors in one merged transfer */
#define AIO_MERGE_BYTES (4u << 20)	/* bytes in one merged transfer */

/* One transfer: a request, or a run of them chained through next. */
struct aio_xfer {
	struct blk_req *first; /* NULL: slot free */
	uint64_t off, len;
	bool write;
	const struct iovec *iov; /* the request's own, or miov */
	int iovcnt;
	struct iovec miov[AIO_MERGE_IOV];
};

struct aio_ring {
	struct aio_xfer fl[AIO_RING_MAX]; /* reads in flight, by tag */
	struct aio_xfer wr;		  /* the write being done */
	int nfl;
	int next_slot;
	bool queued; /* entries prepared, not yet submitted */
	bool armed;  /* the wake_fd poll is in the ring */
};

/* Whether [off, off + len) may run beside the reads in flight (see batchable). */
static bool ring_fits(const struct aio_ring *g, bool write, uint64_t off, uint64_t len)
{
	if (!write)
		return true; /* only reads are in flight */
	for (int i = 0; i < AIO_RING_MAX; i++)
		if (g->fl[i].first && off < g->fl[i].off + g->fl[i].len && g->fl[i].off < off + len)
			return false;
	return true;
}

/*
 * Take the head request (checked, may start) and the ones that continue it into x.
 * Called with a->lock held; failed checks are left for the caller to find.
 */
static void xfer_take(struct image *img, struct image_aio *a, const struct aio_ring *g,
		      struct aio_xfer *x)
{
	struct blk_req *r = sq_pop(a), *last = r;

	x->first = r;
	x->write = r->op == BLK_WRITE;
	x->off = r->offset;
	x->len = iov_bytes(r->iov, r->iovcnt);
	x->iov = r->iov;
	x->iovcnt = r->iovcnt;
	while (a->sq_head) {
		struct blk_req *n = a->sq_head;
		uint64_t nlen = iov_bytes(n->iov, n->iovcnt);

		if (n->op != r->op || n->offset != x->off + x->len || n->iovcnt <= 0 ||
		    x->iovcnt + n->iovcnt > AIO_MERGE_IOV || x->len + nlen > AIO_MERGE_BYTES ||
		    image_req_check(img, n) != 0 || !ring_fits(g, x->write, n->offset, nlen))
			break;
		if (x->iov != x->miov) {
			memcpy(x->miov, x->iov, sizeof(*x->iov) * (size_t)x->iovcnt);
			x->iov = x->miov;
		}
		memcpy(x->miov + x->iovcnt, n->iov, sizeof(*n->iov) * (size_t)n->iovcnt);
		x->iovcnt += n->iovcnt;
		x->len += nlen;
		last->next = sq_pop(a);
		last = n;
	}
	last->next = NULL;
}

/* Finish every request of x with ret; returns whether the owner needs a wake-up. */
static bool xfer_post(struct image_aio *a, struct aio_xfer *x, int ret)
{
	struct blk_req *r = x->first;
	bool wake = false;

	x->first = NULL;
	while (r) {
		struct blk_req *next = r->next;

		wake |= aio_post(a, r, ret);
		r = next;
	}
	return wake;
}

/*
 * Finish the requests of x here where their owner takes them at once
 * (try_done), and post the rest: only when no other request waits, so a queue
 * that keeps this thread busy keeps its completions batched in the owner's
 * loop. Called and returns with a->lock held; true when the owner must be
 * woken for posted requests.
 */
static bool xfer_finish(struct image_aio *a, struct aio_xfer *x, int ret)
{
	struct blk_req *r = x->first, *rest = NULL, **tail = &rest;
	unsigned done = 0, done_other = 0;

	if (a->sq_head)
		return xfer_post(a, x, ret);
	x->first = NULL;
	pthread_mutex_unlock(&a->lock);
	while (r) {
		struct blk_req *next = r->next;
		bool other = r->op != BLK_READ;

		if (r->try_done && r->try_done(r, ret)) {
			done++; /* r is the owner's again: not touched any more */
			done_other += other;
		} else {
			*tail = r;
			tail = &r->next;
		}
		r = next;
	}
	*tail = NULL;
	pthread_mutex_lock(&a->lock);
	a->pending -= done;
	a->pending_other -= done_other;
	x->first = rest;
	return xfer_post(a, x, ret);
}

/* Redo a transfer the ring left short or interrupted, synchronously (same data: idempotent). */
static int xfer_result(struct image *img, const struct aio_xfer *x, int res)
{
	if (res >= 0 && (uint64_t)res == x->len)
		return 0;
	if (res < 0 && res != -EAGAIN && res != -EINTR)
		return res;
	return x->write ? io_pwritev(&img->io, x->iov, x->iovcnt, x->off)
			: io_preadv(&img->io, x->iov, x->iovcnt, x->off);
}

/*
 * Submit what is queued and finish what completed, sleeping first when wait.
 * Called and returns with a->lock held. A negative errno means the ring failed:
 * everything that was in flight has been finished without it.
 */
static int ring_reap(struct image *img, struct aio_ring *g, bool wait)
{
	struct image_aio *a = img->aio;
	struct io_cqe cqes[IO_RING_DEPTH];
	bool wake = false;
	int n;

	/* A request that arrives now can start unless one already waits (order). */
	a->in_ring_wait = wait && g->armed && !a->sq_head;
	pthread_mutex_unlock(&a->lock);
	n = io_submit_reap(&img->io, wait, cqes, (int)ARRAY_SIZE(cqes));
	pthread_mutex_lock(&a->lock);
	a->in_ring_wait = false;
	if (n == -EINTR || n == -EAGAIN || n == -EBUSY)
		return 0;
	g->queued = false;
	if (n < 0) {
		/* Not seen in practice: finish what is in flight without the ring, stop using it. */
		log_warn("%s: io_uring failed (%s); going on without it", img->path, strerror(-n));
		for (int i = 0; i < AIO_RING_MAX; i++) {
			struct aio_xfer *x = &g->fl[i];
			int ret;

			if (!x->first)
				continue;
			pthread_mutex_unlock(&a->lock);
			ret = xfer_result(img, x, -EAGAIN);
			pthread_mutex_lock(&a->lock);
			wake |= xfer_post(a, x, ret);
		}
		g->nfl = 0;
		io_fini(&img->io);
		aio_signal(a, wake);
		return n;
	}
	for (int i = 0; i < n; i++) {
		struct aio_xfer *x;
		uint64_t cnt;
		int ret;

		if (cqes[i].tag == AIO_WAKE_TAG) {
			g->armed = false;
			if (read(a->wake_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
				log_debug("block: eventfd read: %s", strerror(errno));
			continue;
		}
		if (cqes[i].tag >= AIO_RING_MAX || !g->fl[cqes[i].tag].first)
			continue;
		x = &g->fl[cqes[i].tag];
		g->nfl--;
		ret = cqes[i].res;
		if (ret < 0 || (uint64_t)ret != x->len) {
			pthread_mutex_unlock(&a->lock);
			ret = xfer_result(img, x, ret);
			pthread_mutex_lock(&a->lock);
		} else {
			ret = 0;
		}
		wake |= xfer_post(a, x, ret);
	}
	if (n > 0)
		aio_signal(a, wake);
	return 0;
}

/* Returns when stopping, or when the ring fails (the batch loop then goes on without it). */
static void aio_ring_loop(struct image *img)
{
	struct image_aio *a = img->aio;
	struct aio_ring *g = calloc(1, sizeof(*g));

	if (!g)
		return; /* the batch loop does it all */
	pthread_mutex_lock(&a->lock);
	for (;;) {
		/*
		 * Requests finished here are signalled together when the run ends
		 * (at most IO_BATCH_MAX at a time): the owner wakes once per run
		 * rather than once per request, as for the reads of one reap.
		 */
		bool wake = false;
		int unsignalled = 0;

		/* Start what may start, in submission order: stop at the first that must wait. */
		while (a->sq_head) {
			struct blk_req *r = a->sq_head;
			bool rw = r->op == BLK_READ || r->op == BLK_WRITE;
			int ret, slot = g->next_slot;
			struct aio_xfer *x;

			if (unsignalled >= IO_BATCH_MAX) {
				aio_signal(a, wake);
				wake = false;
				unsignalled = 0;
			}
			if (rw ? g->nfl == AIO_RING_MAX ||
					 !ring_fits(g, r->op == BLK_WRITE, r->offset, iov_bytes(r->iov, r->iovcnt))
			       : g->nfl > 0)
				break;
			ret = image_req_check(img, r);
			if (ret || !rw || r->iovcnt <= 0 || r->iovcnt > IOV_MAX) {
				/* FLUSH, DISCARD, WRITE_ZEROES alone; failed checks; odd vectors. */
				sq_pop(a);
				if (ret == 0) {
					if (unsignalled)
						aio_signal(a, wake); /* before something slow */
					wake = false;
					unsignalled = 0;
					pthread_mutex_unlock(&a->lock);
					ret = image_execute(img, r);
					pthread_mutex_lock(&a->lock);
				}
				wake |= aio_post(a, r, ret);
				unsignalled++;
				continue;
			}
			if (r->op == BLK_READ) {
				while (g->fl[slot].first)
					slot = (slot + 1) % AIO_RING_MAX;
				x = &g->fl[slot];
				xfer_take(img, a, g, x);
				if (io_queue_rw(&img->io, false, x->iov, x->iovcnt, x->off, (uint64_t)slot) == 0) {
					g->nfl++;
					g->next_slot = (slot + 1) % AIO_RING_MAX;
					g->queued = true;
					continue;
				}
				/* Cannot happen (the ring has room for every slot): read it here. */
				pthread_mutex_unlock(&a->lock);
				ret = xfer_result(img, x, -EAGAIN);
				pthread_mutex_lock(&a->lock);
				wake |= xfer_post(a, x, ret);
				unsignalled++;
				continue;
			}
			/* A write (run). Reads queued before it go first. */
			if (g->queued && ring_reap(img, g, false) < 0)
				break; /* not taken: the batch loop does it */
			if (a->sq_head != r)
				continue; /* (cannot change: only this thread takes requests) */
			x = &g->wr;
			xfer_take(img, a, g, x);
			pthread_mutex_unlock(&a->lock);
			ret = io_pwritev(&img->io, x->iov, x->iovcnt, x->off);
			pthread_mutex_lock(&a->lock);
			/* Answered from here when the owner can: no trip through its loop. */
			wake |= xfer_finish(a, x, ret);
			unsignalled++;
		}
		if (unsignalled)
			aio_signal(a, wake);
		if (!img->io.uring)
			break; /* the ring failed */
		if (g->nfl == 0) {
			if (a->sq_head)
				continue;
			if (a->stop)
				break;
			pthread_cond_wait(&a->work, &a->lock);
			continue;
		}
		if (!g->armed && io_queue_poll(&img->io, a->wake_fd, AIO_WAKE_TAG) == 0)
			g->armed = true;
		if (ring_reap(img, g, true) < 0)
			break;
	}
	pthread_mutex_unlock(&a->lock);
	free(g);
}

static void *aio_worker(void *arg)
{
	struct image *img = arg;

	if (img->aio->wake_fd >= 0)
		aio_ring_loop(img);
	aio_batch_loop(img);
	return NULL;
}

int image_aio_start(struct image *img, struct err *e)
{
	struct image_aio *a;
	int ret;

	if (img->aio)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a)
		return err_set(e, ENOMEM, "out of memory");
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0) {
		ret = err_set(e, errno, "eventfd: %s", strerror(errno));
		free(a);
		return ret;
	}
	a->wake_fd = -1;
	if (img->ops->rw_passthrough && img->io.uring) {
		/* Without it the worker runs batches (aio_batch_loop). */
		a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->finished, NULL);
	img->aio = a;
	ret = pthread_create(&a->thread, NULL, aio_worker, img);
	if (ret) {
		close(a->efd);
		if (a->wake_fd >= 0)
			close(a->wake_fd);
		free(a);
		img->aio = NULL;
		return err_set(e, ret, "cannot start the I/O thread: %s", strerror(ret));
	}
	return 0;
}

int image_aio_fd(struct image *img)
{
	return img->aio ? img->aio->efd : -1;
}

/* Wake the worker for new requests (with a->lock held). */
static void aio_kick(struct image_aio *a)
{
	uint64_t one = 1;

	if (a->in_ring_wait) {
		a->in_ring_wait = false;
		if (write(a->wake_fd, &one, sizeof(one)) < 0)
			log_debug("block: eventfd write: %s", strerror(errno));
	} else {
		pthread_cond_signal(&a->work);
	}
}

/*
 * A read of a raw image that the page cache can serve whole is done here, on
 * the submitting thread, as io_uring would do it inline: no hand-off to the
 * worker and back (two thread wake-ups, the larger part of a small read's
 * latency). RWF_NOWAIT makes it fail instead of waiting for the disk; then, or
 * when only part was cached, the worker reads it all. Only when no write,
 * FLUSH, DISCARD or WRITE_ZEROES is pending, so it cannot pass one (order).
 * The completion is posted like the worker's, done() running from the event
 * loop, unless the caller takes it at once (inline_ok).
 */
static int read_now(struct image *img, struct image_aio *a, struct blk_req *req)
{
	ssize_t n;
	bool ok;

	if (req->op != BLK_READ || !req->done || !img->ops->rw_passthrough || req->iovcnt <= 0 ||
	    req->iovcnt > IOV_MAX || image_req_check(img, req) != 0)
		return 0;
	pthread_mutex_lock(&a->lock);
	ok = !a->stop && !a->no_nowait && a->pending_other == 0;
	pthread_mutex_unlock(&a->lock);
	if (!ok)
		return 0;
	n = preadv2(img->io.fd, req->iov, req->iovcnt, (off_t)req->offset, RWF_NOWAIT);
	if (n < 0 && errno == EOPNOTSUPP) {
		pthread_mutex_lock(&a->lock);
		a->no_nowait = true;
		pthread_mutex_unlock(&a->lock);
	}
	if (n < 0 || (uint64_t)n != iov_bytes(req->iov, req->iovcnt))
		return 0;
	if (req->inline_ok) {
		/* The caller finishes it now: no completion to post, nothing pending. */
		req->ret = 0;
		req->finished = true;
		return 2;
	}
	pthread_mutex_lock(&a->lock);
	a->pending++;
	aio_signal(a, aio_post(a, req, 0));
	pthread_mutex_unlock(&a->lock);
	return 1;
}

int image_submit(struct image *img, struct blk_req *req)
{
	struct image_aio *a = img->aio;

	if (!a)
		return -ESHUTDOWN;
	req->next = NULL;
	req->ret = 1; /* in flight */
	req->finished = false;
	switch (read_now(img, a, req)) {
	case 1:
		return 0;
	case 2:
		return 1; /* finished here (inline_ok) */
	}
	pthread_mutex_lock(&a->lock);
	if (a->stop) {
		pthread_mutex_unlock(&a->lock);
		return -ESHUTDOWN;
	}
	if (a->sq_tail)
		a->sq_tail->next = req;
	else
		a->sq_head = req;
	a->sq_tail = req;
	a->pending++;
	if (req->op != BLK_READ)
		a->pending_other++;
	if (a->plugged && req->done) {
		a->plug_pending = true;
	} else {
		/* A synchronous caller waits: it does not wait for the unplug too. */
		a->plug_pending = false;
		aio_kick(a);
	}
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void image_plug(struct image *img)
{
	struct image_aio *a = img->aio;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->plugged++;
	pthread_mutex_unlock(&a->lock);
}

void image_unplug(struct image *img)
{
	struct image_aio *a = img->aio;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	if (a->plugged && --a->plugged == 0 && a->plug_pending) {
		a->plug_pending = false;
		aio_kick(a);
	}
	pthread_mutex_unlock(&a->lock);
}

int image_aio_complete(struct image *img)
{
	struct image_aio *a = img->aio;
	struct blk_req *list;
	uint64_t cnt;
	int n = 0;

	if (!a)
		return 0;
	if (read(a->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		log_debug("block: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&a->lock);
	list = a->cq_head;
	a->cq_head = a->cq_tail = NULL;
	pthread_mutex_unlock(&a->lock);
	while (list) {
		struct blk_req *next = list->next;

		list->done(list, list->ret);
		list = next;
		n++;
	}
	return n;
}

void image_aio_drain(struct image *img)
{
	struct image_aio *a = img->aio;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	if (a->plug_pending) {
		/* Drained while plugged: what waits for the unplug must run now. */
		a->plug_pending = false;
		aio_kick(a);
	}
	while (a->pending)
		pthread_cond_wait(&a->finished, &a->lock);
	pthread_mutex_unlock(&a->lock);
	image_aio_complete(img);
}

void image_aio_stop(struct image *img)
{
	struct image_aio *a = img->aio;

	image_aio_drain(img);
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->work);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	image_aio_complete(img);
	close(a->efd);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->finished);
	free(a);
	img->aio = NULL;
}

/* ---- the synchronous API ---- */

static int run_sync(struct image *img, struct blk_req *r)
{
	struct image_aio *a = img->aio;
	int ret;

	if (!a)
		return image_execute(img, r);
	r->done = NULL; /* the worker wakes us instead of queueing a callback */
	ret = image_submit(img, r);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&a->lock);
	while (!r->finished)
		pthread_cond_wait(&a->finished, &a->lock);
	pthread_mutex_unlock(&a->lock);
	return r->ret;
}

int image_readv(struct image *img, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct blk_req r = { .op = BLK_READ, .offset = off, .iov = iov, .iovcnt = iovcnt };
	return run_sync(img, &r);
}

int image_writev(struct image *img, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct blk_req r = { .op = BLK_WRITE, .offset = off, .iov = iov, .iovcnt = iovcnt };
	return run_sync(img, &r);
}

int image_pread(struct image *img, uint64_t off, void *buf, size_t len)
{
	struct iovec v = { buf, len };
	return image_readv(img, off, &v, 1);
}

int image_pwrite(struct image *img, uint64_t off, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };
	return image_writev(img, off, &v, 1);
}

int image_flush(struct image *img)
{
	struct blk_req r = { .op = BLK_FLUSH };
	return run_sync(img, &r);
}

int image_discard(struct image *img, uint64_t off, uint64_t len)
{
	struct blk_req r = { .op = BLK_DISCARD, .offset = off, .len = len };
	return run_sync(img, &r);
}

int image_write_zeroes(struct image *img, uint64_t off, uint64_t len, unsigned flags)
{
	struct blk_req r = { .op = BLK_WRITE_ZEROES, .offset = off, .len = len, .flags = flags };
	return run_sync(img, &r);
}
