/* SPDX-License-Identifier: MIT */
/* io.h: the I/O engine under every image file: io_uring when available, else preadv/pwritev. */
#ifndef KVMM_BLOCK_IO_H
#define KVMM_BLOCK_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/*
 * One engine per open file, used by one thread at a time (the image's worker,
 * or the synchronous caller). Every call transfers everything asked for:
 * short transfers are retried; reads past end of file return zeroes (like a
 * sparse hole), which is what both formats want.
 */
struct io_engine {
	int fd;
	bool uring;	/* io_uring set up (used for batches) */
	bool sync_uring; /* also send lone requests through it (off: see io_once) */
	void *ring;	/* struct io_uring *, when uring */
};

/* Set up for fd; try_uring=false or an io_uring setup failure (seccomp, old
 * kernel, built without liburing) falls back to preadv/pwritev silently. */
void io_init(struct io_engine *io, int fd, bool try_uring);
void io_fini(struct io_engine *io);
int io_preadv(struct io_engine *io, const struct iovec *iov, int iovcnt, uint64_t off);
int io_pwritev(struct io_engine *io, const struct iovec *iov, int iovcnt, uint64_t off);
int io_pread(struct io_engine *io, void *buf, size_t len, uint64_t off);
int io_pwrite(struct io_engine *io, const void *buf, size_t len, uint64_t off);
int io_fdatasync(struct io_engine *io);

/* Many transfers at once: with io_uring they are in flight together (one submit, then
 * every completion is reaped); without, they run one after another. Each op gets ret. */
#define IO_BATCH_MAX 32
struct io_op {
	bool write;
	const struct iovec *iov;
	int iovcnt;
	uint64_t off;
	int ret;
};
void io_batch(struct io_engine *io, struct io_op *ops, int n);
/*
 * Requests kept in flight (io_uring only; the image worker's pipeline): queue any
 * number, io_submit_reap() submits them and returns finished ones by tag, as they
 * finish. At most IO_RING_DEPTH may be in flight. res is what the kernel returned
 * (bytes moved, possibly short, or a negative errno): the caller checks it.
 */
#define IO_RING_DEPTH (2 * IO_BATCH_MAX)
struct io_cqe {
	uint64_t tag;
	int res;
};
int io_queue_rw(struct io_engine *io, bool write, const struct iovec *iov, int iovcnt,
		uint64_t off, uint64_t tag);
/* Completes (res = poll mask) once fd is readable; one-shot, queue it again after. */
int io_queue_poll(struct io_engine *io, int fd, uint64_t tag);
/* Submit what is queued; with wait, block until at least one completion. Returns how many
 * were stored in out (up to max) or a negative errno (-EINTR: call again). */
int io_submit_reap(struct io_engine *io, bool wait, struct io_cqe *out, int max);
/* Deallocate (punch) or zero a range; -EOPNOTSUPP when the filesystem cannot. */
int io_punch(struct io_engine *io, uint64_t off, uint64_t len);
int io_zero(struct io_engine *io, uint64_t off, uint64_t len);
/* Current file size, or a negative errno. */
int64_t io_file_size(struct io_engine *io);

#endif
