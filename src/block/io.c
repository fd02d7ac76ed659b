// SPDX-License-Identifier: MIT
/* io.c: file I/O for images through io_uring, with a preadv/pwritev fallback. */
#include "block/io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

void io_init(struct io_engine *io, int fd, bool try_uring)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
#ifdef HAVE_LIBURING
	if (try_uring) {
		struct io_uring *r = calloc(1, sizeof(*r));

		/* Fails under seccomp filters or on kernels without io_uring. */
		if (r && io_uring_queue_init(IO_RING_DEPTH, r, 0) == 0) {
			io->ring = r;
			io->uring = true;
			return;
		}
		free(r);
	}
#else
	(void)try_uring;
#endif
}

void io_fini(struct io_engine *io)
{
#ifdef HAVE_LIBURING
	if (io->uring) {
		io_uring_queue_exit(io->ring);
		free(io->ring);
	}
#endif
	io->ring = NULL;
	io->uring = false;
}

/*
 * One transfer attempt: returns bytes moved or a negative errno. A lone
 * request is a plain preadv/pwritev: on the page cache it completes inline,
 * while io_uring would hand a buffered write to a kernel worker and wait for
 * it to be scheduled (measured 2-3x slower on a loaded host). io_uring is
 * used where requests can be in flight together (io_batch).
 */
#ifdef HAVE_LIBURING
/* Submit the prepared SQE and wait for it: its result, or a negative errno. */
static int uring_submit_wait(struct io_uring *r)
{
	struct io_uring_cqe *cqe;
	int ret = io_uring_submit(r);

	if (ret < 0)
		return ret;
	do
		ret = io_uring_wait_cqe(r, &cqe);
	while (ret == -EINTR);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(r, cqe);
	return ret;
}
#endif

static ssize_t io_once(struct io_engine *io, bool write, const struct iovec *iov, int cnt,
		       uint64_t off)
{
#ifdef HAVE_LIBURING
	if (io->uring && io->sync_uring) {
		struct io_uring *r = io->ring;
		struct io_uring_sqe *sqe = io_uring_get_sqe(r);

		if (!sqe)
			return -EBUSY;
		if (write)
			io_uring_prep_writev(sqe, io->fd, iov, cnt, off);
		else
			io_uring_prep_readv(sqe, io->fd, iov, cnt, off);
		return uring_submit_wait(r);
	}
#endif
	ssize_t n = write ? pwritev(io->fd, iov, cnt, off) : preadv(io->fd, iov, cnt, off);
	return n < 0 ? -errno : n;
}

/* Vectors per system call: a virtio-blk request has up to 126, a merged run up to 128. */
#define IO_RW_IOV 128

static int io_rw(struct io_engine *io, bool write, const struct iovec *iov, int cnt, uint64_t off)
{
	struct iovec local[IO_RW_IOV], *v = local;
	int ret = 0;

	/* Callers pass at most IO_RW_IOV vectors (io_rw_alloc splits longer lists). */
	if (cnt <= 0 || cnt > (int)ARRAY_SIZE(local))
		return cnt <= 0 ? 0 : -EINVAL;
	memcpy(v, iov, sizeof(*v) * cnt);
	while (cnt > 0) {
		ssize_t n;

		if (v->iov_len == 0) {
			v++;
			cnt--;
			continue;
		}
		n = io_once(io, write, v, cnt, off);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0) {
			ret = (int)n;
			break;
		}
		if (n == 0) {
			if (write) {
				ret = -EIO;
				break;
			}
			/* End of file: the rest reads as zeroes. */
			for (; cnt > 0; v++, cnt--)
				memset(v->iov_base, 0, v->iov_len);
			break;
		}
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt > 0 && n > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return ret;
}

static int io_rw_alloc(struct io_engine *io, bool write, const struct iovec *iov, int cnt,
		       uint64_t off)
{
	int ret = 0;

	/* io_rw works on a private copy of at most IO_RW_IOV vectors. */
	for (int i = 0; i < cnt && ret == 0; i += IO_RW_IOV) {
		int n = MIN(IO_RW_IOV, cnt - i);
		size_t bytes = 0;

		ret = io_rw(io, write, iov + i, n, off);
		for (int j = 0; j < n; j++)
			bytes += iov[i + j].iov_len;
		off += bytes;
	}
	return ret;
}

int io_preadv(struct io_engine *io, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return io_rw_alloc(io, false, iov, iovcnt, off);
}

int io_pwritev(struct io_engine *io, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return io_rw_alloc(io, true, iov, iovcnt, off);
}

int io_pread(struct io_engine *io, void *buf, size_t len, uint64_t off)
{
	struct iovec v = { buf, len };
	return io_rw(io, false, &v, 1, off);
}

int io_pwrite(struct io_engine *io, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = { (void *)buf, len };
	return io_rw(io, true, &v, 1, off);
}

static uint64_t iov_len_sum(const struct iovec *iov, int cnt)
{
	uint64_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

void io_batch(struct io_engine *io, struct io_op *ops, int n)
{
#ifdef HAVE_LIBURING
	if (io->uring && n > 1 && n <= IO_BATCH_MAX) {
		struct io_uring *r = io->ring;
		int queued = 0, reaped = 0;

		for (int i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(r);

			ops[i].ret = 1; /* not done */
			if (!sqe)
				break;
			if (ops[i].write)
				io_uring_prep_writev(sqe, io->fd, ops[i].iov, ops[i].iovcnt, ops[i].off);
			else
				io_uring_prep_readv(sqe, io->fd, ops[i].iov, ops[i].iovcnt, ops[i].off);
			io_uring_sqe_set_data64(sqe, (uint64_t)i);
			queued++;
		}
		if (queued && io_uring_submit(r) >= 0) {
			while (reaped < queued) {
				struct io_uring_cqe *cqe;
				uint64_t i;
				int ret = io_uring_wait_cqe(r, &cqe);

				if (ret == -EINTR)
					continue;
				if (ret < 0)
					break;
				i = io_uring_cqe_get_data64(cqe);
				if (i < (uint64_t)n) {
					/* Complete only when all of it moved; the rest is redone below. */
					if (cqe->res >= 0 && (uint64_t)cqe->res == iov_len_sum(ops[i].iov, ops[i].iovcnt))
						ops[i].ret = 0;
					else if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR)
						ops[i].ret = cqe->res;
				}
				io_uring_cqe_seen(r, cqe);
				reaped++;
			}
		}
		/* Anything unqueued, short or interrupted runs synchronously (same data: idempotent). */
		for (int i = 0; i < n; i++)
			if (ops[i].ret == 1)
				ops[i].ret = io_rw_alloc(io, ops[i].write, ops[i].iov, ops[i].iovcnt, ops[i].off);
		if (reaped == queued)
			return;
		/* The ring lost track of completions: stop using it for this file. */
		io_fini(io);
		return;
	}
#endif
	for (int i = 0; i < n; i++)
		ops[i].ret = io_rw_alloc(io, ops[i].write, ops[i].iov, ops[i].iovcnt, ops[i].off);
}

int io_queue_rw(struct io_engine *io, bool write, const struct iovec *iov, int iovcnt,
		uint64_t off, uint64_t tag)
{
#ifdef HAVE_LIBURING
	struct io_uring_sqe *sqe = io->uring ? io_uring_get_sqe(io->ring) : NULL;

	if (!sqe)
		return io->uring ? -EBUSY : -EOPNOTSUPP;
	if (write)
		io_uring_prep_writev(sqe, io->fd, iov, (unsigned)iovcnt, off);
	else
		io_uring_prep_readv(sqe, io->fd, iov, (unsigned)iovcnt, off);
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
#else
	(void)io, (void)write, (void)iov, (void)iovcnt, (void)off, (void)tag;
	return -EOPNOTSUPP;
#endif
}

int io_queue_poll(struct io_engine *io, int fd, uint64_t tag)
{
#ifdef HAVE_LIBURING
	struct io_uring_sqe *sqe = io->uring ? io_uring_get_sqe(io->ring) : NULL;

	if (!sqe)
		return io->uring ? -EBUSY : -EOPNOTSUPP;
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
#else
	(void)io, (void)fd, (void)tag;
	return -EOPNOTSUPP;
#endif
}

int io_submit_reap(struct io_engine *io, bool wait, struct io_cqe *out, int max)
{
#ifdef HAVE_LIBURING
	struct io_uring *r = io->ring;
	struct io_uring_cqe *cqe;
	unsigned head;
	int ret, n = 0;

	if (!io->uring)
		return -EOPNOTSUPP;
	ret = wait && !io_uring_cq_ready(r) ? io_uring_submit_and_wait(r, 1) : io_uring_submit(r);
	if (ret < 0)
		return ret;
	io_uring_for_each_cqe(r, head, cqe) {
		if (n == max)
			break;
		out[n].tag = io_uring_cqe_get_data64(cqe);
		out[n].res = cqe->res;
		n++;
	}
	io_uring_cq_advance(r, (unsigned)n);
	return n;
#else
	(void)io, (void)wait, (void)out, (void)max;
	return -EOPNOTSUPP;
#endif
}

int io_fdatasync(struct io_engine *io)
{
#ifdef HAVE_LIBURING
	if (io->uring && io->sync_uring) {
		struct io_uring *r = io->ring;
		struct io_uring_sqe *sqe = io_uring_get_sqe(r);

		if (sqe) {
			int ret;

			io_uring_prep_fsync(sqe, io->fd, IORING_FSYNC_DATASYNC);
			ret = uring_submit_wait(r);
			return ret < 0 ? ret : 0;
		}
	}
#endif
	return fdatasync(io->fd) < 0 ? -errno : 0;
}

int io_punch(struct io_engine *io, uint64_t off, uint64_t len)
{
	if (fallocate(io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

int io_zero(struct io_engine *io, uint64_t off, uint64_t len)
{
	if (fallocate(io->fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len) == 0)
		return 0;
	return -errno;
}

int64_t io_file_size(struct io_engine *io)
{
	struct stat st;

	if (fstat(io->fd, &st) < 0)
		return -errno;
	return st.st_size;
}
