// SPDX-License-Identifier: MIT
/* block.c: opening images and their backing chains, the request worker, the synchronous API. */
#include "block/block.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
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
	int efd;
	bool stop;
};

const char *image_format_name(enum image_format f)
{
	switch (f) {
	case IMAGE_FMT_RAW: return "raw";
	case IMAGE_FMT_QCOW2: return "qcow2";
	default: return "auto";
	}
}

int image_format_parse(const char *s, enum image_format *f)
{
	if (!strcmp(s, "raw"))
		*f = IMAGE_FMT_RAW;
	else if (!strcmp(s, "qcow2"))
		*f = IMAGE_FMT_QCOW2;
	else
		return -EINVAL;
	return 0;
}

static void image_free(struct image *img)
{
	if (!img)
		return;
	io_fini(&img->io);
	if (img->fd >= 0)
		close(img->fd);
	free(img->path);
	free(img->dir);
	free(img->backing_name);
	free(img);
}

struct chain_id {
	dev_t dev;
	ino_t ino;
};

static int open_one(const char *path, const struct image_open_opts *o, unsigned depth,
		    struct chain_id *ids, struct image **out, struct err *e)
{
	struct image *img;
	struct stat st;
	uint8_t magic[8] = { 0 };
	char *tmp;
	int ret;

	*out = NULL;
	if (depth >= IMAGE_MAX_CHAIN)
		return err_set(e, ELOOP, "%s: backing chain longer than %d images", path,
			       IMAGE_MAX_CHAIN);
	img = calloc(1, sizeof(*img));
	if (!img)
		return err_set(e, ENOMEM, "out of memory");
	img->fd = -1;
	img->read_only = o->read_only || depth > 0;
	img->path = strdup(path);
	tmp = strdup(path);
	if (!img->path || !tmp) {
		free(tmp);
		image_free(img);
		return err_set(e, ENOMEM, "out of memory");
	}
	img->dir = strdup(dirname(tmp));
	free(tmp);
	img->fd = open(path, (img->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (img->fd < 0) {
		ret = err_set(e, errno, "%s: %s", path, strerror(errno));
		image_free(img);
		return ret;
	}
	if (fstat(img->fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		ret = err_set(e, EINVAL, "%s: not a regular file or block device", path);
		image_free(img);
		return ret;
	}
	for (unsigned i = 0; i < depth; i++) {
		if (ids[i].dev == st.st_dev && ids[i].ino == st.st_ino) {
			ret = err_set(e, ELOOP, "%s: backing chain loops back to an image already in it",
				      path);
			image_free(img);
			return ret;
		}
	}
	ids[depth].dev = st.st_dev;
	ids[depth].ino = st.st_ino;
	io_init(&img->io, img->fd, !o->no_uring);
	img->format = o->format;
	if (img->format == IMAGE_FMT_AUTO) {
		ret = io_pread(&img->io, magic, sizeof(magic), 0);
		if (ret < 0) {
			ret = err_set(e, -ret, "%s: cannot read: %s", path, strerror(-ret));
			image_free(img);
			return ret;
		}
		img->format = qcow2_probe(magic, sizeof(magic)) ? IMAGE_FMT_QCOW2 : IMAGE_FMT_RAW;
	}
	if (img->format == IMAGE_FMT_QCOW2)
		ret = qcow2_open(img, o, e);
	else
		ret = raw_open(img, e);
	if (ret < 0) {
		image_free(img);
		return ret;
	}
	if (img->backing_name && !o->no_backing) {
		struct image_open_opts bo = *o;
		struct image *b;
		char *bpath;

		if (img->backing_name[0] == '/' || !strcmp(img->dir, ".")) {
			bpath = strdup(img->backing_name);
		} else if (asprintf(&bpath, "%s/%s", img->dir, img->backing_name) < 0) {
			bpath = NULL;
		}
		if (!bpath) {
			image_close(img);
			return err_set(e, ENOMEM, "out of memory");
		}
		bo.format = img->backing_format;
		bo.read_only = true;
		bo.no_backing = false;
		ret = open_one(bpath, &bo, depth + 1, ids, &b, e);
		free(bpath);
		if (ret < 0) {
			err_prefix(e, ret, "%s: backing file", path);
			image_close(img);
			return ret;
		}
		img->backing = b;
	}
	*out = img;
	return 0;
}

int image_open(const char *path, const struct image_open_opts *o, struct image **out,
	       struct err *e)
{
	struct image_open_opts def = { 0 };
	struct chain_id ids[IMAGE_MAX_CHAIN];

	return open_one(path, o ? o : &def, 0, ids, out, e);
}

static void aio_stop(struct image *img);

void image_close(struct image *img)
{
	if (!img)
		return;
	if (img->aio)
		aio_stop(img);
	if (img->ops && img->ops->close)
		img->ops->close(img);
	image_close(img->backing);
	image_free(img);
}

uint64_t image_size(struct image *img)
{
	return img->ops->size(img);
}

uint64_t image_actual_size(struct image *img)
{
	struct stat st;

	if (fstat(img->fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

static uint64_t iov_bytes(const struct iovec *iov, int cnt)
{
	uint64_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Range and permission checks shared by both APIs. */
static int req_check(struct image *img, const struct blk_req *r)
{
	uint64_t len = 0, size = img->ops->size(img);

	switch (r->op) {
	case BLK_READ:
	case BLK_WRITE:
		if (r->iovcnt < 0 || (r->iovcnt > 0 && !r->iov))
			return -EINVAL;
		len = iov_bytes(r->iov, r->iovcnt);
		break;
	case BLK_DISCARD:
	case BLK_WRITE_ZEROES:
		len = r->len;
		break;
	case BLK_FLUSH:
		return 0;
	default:
		return -EINVAL;
	}
	if (r->op != BLK_READ && img->read_only)
		return -EROFS;
	if (!range_ok(r->offset, len, size))
		return -EINVAL;
	return 0;
}

int image_execute(struct image *img, struct blk_req *r)
{
	const struct image_ops *ops = img->ops;
	int ret = req_check(img, r);

	if (ret < 0)
		return ret;
	switch (r->op) {
	case BLK_READ:
		return ops->readv(img, r->offset, r->iov, r->iovcnt);
	case BLK_WRITE:
		return ops->writev ? ops->writev(img, r->offset, r->iov, r->iovcnt) : -EROFS;
	case BLK_FLUSH:
		return ops->flush && !img->read_only ? ops->flush(img) : 0;
	case BLK_DISCARD:
		return ops->discard ? ops->discard(img, r->offset, r->len) : 0;
	case BLK_WRITE_ZEROES:
		return ops->write_zeroes ? ops->write_zeroes(img, r->offset, r->len, r->flags)
					 : -EOPNOTSUPP;
	}
	return -EINVAL;
}

/* ---- the worker ---- */

/*
 * io_uring does not order the requests of one submission, so a request joins
 * a batch only when it is a read or write that overlaps no write in it (and,
 * being a write, no read either): the result is then the same as in order.
 */
static bool batchable(struct blk_req **batch, int n, const struct blk_req *r)
{
	uint64_t s, e;

	if (r->op != BLK_READ && r->op != BLK_WRITE)
		return false;
	s = r->offset;
	e = s + iov_bytes(r->iov, r->iovcnt);
	for (int i = 0; i < n; i++) {
		uint64_t bs = batch[i]->offset, be = bs + iov_bytes(batch[i]->iov, batch[i]->iovcnt);

		if ((r->op == BLK_WRITE || batch[i]->op == BLK_WRITE) && s < be && bs < e)
			return false;
	}
	return true;
}

static void *aio_worker(void *arg)
{
	struct image *img = arg;
	struct image_aio *a = img->aio;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct blk_req *r, *batch[IO_BATCH_MAX];
		uint64_t one = 1;
		int ret, n;

		while (!a->sq_head && !a->stop)
			pthread_cond_wait(&a->work, &a->lock);
		if (!a->sq_head && a->stop)
			break;
		/* Take a run of reads and writes when the driver can batch them, else one request. */
		n = 0;
		do {
			r = a->sq_head;
			a->sq_head = r->next;
			batch[n++] = r;
		} while (img->ops->rw_batch && n < IO_BATCH_MAX && a->sq_head &&
			 (r->op == BLK_READ || r->op == BLK_WRITE) && batchable(batch, n, a->sq_head));
		if (!a->sq_head)
			a->sq_tail = NULL;
		pthread_mutex_unlock(&a->lock);

		if (n == 1) {
			batch[0]->ret = image_execute(img, batch[0]);
		} else {
			struct blk_req *ok[IO_BATCH_MAX];
			int m = 0;

			for (int i = 0; i < n; i++) {
				ret = req_check(img, batch[i]);
				batch[i]->ret = ret;
				if (ret == 0)
					ok[m++] = batch[i];
			}
			if (m)
				img->ops->rw_batch(img, ok, m);
		}

		pthread_mutex_lock(&a->lock);
		for (int i = 0; i < n; i++) {
			r = batch[i];
			r->next = NULL;
			a->pending--;
			if (!r->done)
				continue; /* a synchronous caller waits on `finished` */
			if (a->cq_tail)
				a->cq_tail->next = r;
			else
				a->cq_head = r;
			a->cq_tail = r;
		}
		if (a->cq_head && write(a->efd, &one, sizeof(one)) < 0)
			log_debug("block: eventfd write: %s", strerror(errno));
		pthread_cond_broadcast(&a->finished);
	}
	pthread_mutex_unlock(&a->lock);
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
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->finished, NULL);
	img->aio = a;
	ret = pthread_create(&a->thread, NULL, aio_worker, img);
	if (ret) {
		close(a->efd);
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

int image_submit(struct image *img, struct blk_req *req)
{
	struct image_aio *a = img->aio;

	if (!a)
		return -ESHUTDOWN;
	req->next = NULL;
	req->ret = 1; /* in flight */
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
	pthread_cond_signal(&a->work);
	pthread_mutex_unlock(&a->lock);
	return 0;
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
	while (a->pending)
		pthread_cond_wait(&a->finished, &a->lock);
	pthread_mutex_unlock(&a->lock);
	image_aio_complete(img);
}

static void aio_stop(struct image *img)
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
	while (r->ret == 1)
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

int image_block_status(struct image *img, uint64_t off, uint64_t len, uint64_t *pnum,
		       struct image_status *st)
{
	uint64_t size = img->ops->size(img);

	if (off >= size || len == 0)
		return -EINVAL;
	len = MIN(len, size - off);
	if (!img->ops->block_status) {
		*pnum = len;
		st->flags = IMAGE_ST_ALLOCATED | IMAGE_ST_DATA;
		st->host_offset = off;
		return 0;
	}
	return img->ops->block_status(img, off, len, pnum, st);
}

int image_create(const char *path, const struct image_create_opts *o, struct err *e)
{
	if (o->format == IMAGE_FMT_QCOW2)
		return qcow2_create(path, o, e);
	if (o->backing)
		return err_set(e, EINVAL, "raw images cannot have a backing file");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(e, errno, "%s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)o->size) < 0) {
		int ret = err_set(e, errno, "%s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	close(fd);
	return 0;
}
