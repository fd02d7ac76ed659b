/* SPDX-License-Identifier: MIT */
/* block.h: the block layer shared by the VMM's virtio-blk and `kvmm img`: images, drivers, requests. */
#ifndef KVMM_BLOCK_BLOCK_H
#define KVMM_BLOCK_BLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/err.h"
#include "block/io.h"

/*
 * Model
 * -----
 * A `struct image` is one open disk image file: a format driver (raw or qcow2)
 * on top of an I/O engine (io.h: io_uring, or preadv/pwritev when io_uring is
 * unavailable). A qcow2 image may have a backing image (raw or qcow2), opened
 * read-only by image_open() and owned by the overlay; chains are limited to
 * IMAGE_MAX_CHAIN images.
 *
 * All offsets and lengths are in bytes of the virtual disk. Drivers accept
 * any byte offset and length; virtio-blk only issues 512-byte multiples.
 * Reads past the virtual size fail with -EINVAL (callers check the size).
 *
 * Threads
 * -------
 * The driver functions (image_readv() and friends, the "synchronous" API)
 * block the calling thread and must not be called concurrently on one image.
 * A VMM must never call them from a vCPU thread: it calls image_aio_start()
 * once, then image_submit() from any thread. A per-image worker thread
 * executes requests as if in submission order: a FLUSH, DISCARD or
 * WRITE_ZEROES starts once everything before it has finished (so a FLUSH
 * covers every request submitted before it), and a read or write waits for
 * earlier requests it overlaps (a write: any; a read: writes). For a raw image
 * with io_uring, reads stay in flight together in the ring (up to
 * IO_RING_DEPTH - 1) while the worker does the buffered writes itself, and
 * requests that continue each other are merged into one transfer (block.c,
 * "The pipeline"); qcow2 sends runs of reads and writes to io_uring together
 * (up to IO_BATCH_MAX). Finished requests go to a list and the worker signals
 * an eventfd (image_aio_fd()), once per run. The owner polls that fd in its event
 * loop and calls image_aio_complete(), which runs the completion callbacks on
 * the caller's thread. While the worker runs, the synchronous functions
 * below route through it, so `kvmm img` and the VMM share one path.
 *
 * Errors
 * ------
 * Functions return 0 (or a count) or a negative errno. image_open() and the
 * tooling calls fill a caller-owned struct err with one line for a person.
 * A qcow2 image found inconsistent while running is marked corrupt (header
 * bit) and further writes fail with -EIO; the reason is kept in
 * image->last_err.
 */

#define IMAGE_MAX_CHAIN 16

enum image_format {
	IMAGE_FMT_AUTO = 0, /* probe: qcow2 magic, else raw */
	IMAGE_FMT_RAW,
	IMAGE_FMT_QCOW2,
};

const char *image_format_name(enum image_format f);
/* "raw" / "qcow2" -> format; returns -EINVAL for anything else. */
int image_format_parse(const char *s, enum image_format *f);

struct image_open_opts {
	enum image_format format; /* IMAGE_FMT_AUTO probes */
	bool read_only;
	bool no_backing;	  /* do not open the backing chain (info, rebase -u) */
	bool no_uring;		  /* force the preadv/pwritev engine */
	bool for_check;		  /* `img check -r`: allow opening a corrupt or dirty image
				   * read-write without the automatic repair */
};

/* Flags for write_zeroes. */
#define IMAGE_ZERO_MAY_UNMAP 1u /* the range may be deallocated */

/* Result of block_status: what [off, off + *pnum) looks like in this image. */
#define IMAGE_ST_ALLOCATED 1u /* defined by this layer (not the backing) */
#define IMAGE_ST_ZERO 2u      /* reads as zeroes */
#define IMAGE_ST_DATA 4u      /* backed by host data at host_offset */
#define IMAGE_ST_COMPRESSED 8u
struct image_status {
	unsigned flags;
	uint64_t host_offset; /* valid with IMAGE_ST_DATA and not compressed */
};

struct image;
struct blk_req;

/* One ops table per format driver. All may be NULL except readv, size, close. */
struct image_ops {
	const char *name;
	int (*readv)(struct image *img, uint64_t off, const struct iovec *iov, int iovcnt);
	int (*writev)(struct image *img, uint64_t off, const struct iovec *iov, int iovcnt);
	int (*flush)(struct image *img);
	int (*discard)(struct image *img, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct image *img, uint64_t off, uint64_t len, unsigned flags);
	uint64_t (*size)(struct image *img);
	void (*close)(struct image *img);
	/* Extent at off: *pnum bytes (<= len, > 0) share one status. */
	int (*block_status)(struct image *img, uint64_t off, uint64_t len, uint64_t *pnum,
			    struct image_status *st);
	/* Change the virtual size (grow; shrink only when allowed by the driver). */
	int (*truncate)(struct image *img, uint64_t size, bool shrink, struct err *e);
	/* Run several checked READ/WRITE requests at once, setting each one's ret (raw:
	 * one io_uring submission). NULL: the worker runs requests one at a time. */
	void (*rw_batch)(struct image *img, struct blk_req **reqs, int n);
	/* READ/WRITE are the file's own bytes at the same offsets (raw): with io_uring the
	 * worker runs them through its pipeline (reads in the ring, merged runs) instead
	 * of calling rw_batch. */
	bool rw_passthrough;
	/* Write one whole compressed cluster (qcow2 only: convert -c). */
	int (*write_compressed)(struct image *img, uint64_t off, const void *buf, size_t len);
};

enum blk_op { BLK_READ, BLK_WRITE, BLK_FLUSH, BLK_DISCARD, BLK_WRITE_ZEROES };

/*
 * An asynchronous request. The caller owns the memory (and the iovec, which
 * must stay valid until completion) and fills op, offset, iov/iovcnt (READ,
 * WRITE) or len (DISCARD, WRITE_ZEROES), done and opaque. done() runs on the
 * thread that calls image_aio_complete(), with ret 0 or a negative errno.
 */
struct blk_req {
	enum blk_op op;
	uint64_t offset;
	uint64_t len;
	const struct iovec *iov;
	int iovcnt;
	unsigned flags; /* IMAGE_ZERO_* for WRITE_ZEROES */
	void (*done)(struct blk_req *req, int ret);
	void *opaque;
	/*
	 * The caller takes a request finished on the spot: image_submit() may then
	 * return 1, the request done (result in ret) and done() not called. Saves a
	 * page-cache read the trip through the event loop.
	 */
	bool inline_ok;
	/*
	 * Optional: finish the request on the worker thread as soon as its I/O is
	 * done, rather than through the event loop (used for writes). false: not
	 * now (a lock is busy), and it is posted as usual; after true the block
	 * layer no longer touches req. Called without the block layer's locks.
	 */
	bool (*try_done)(struct blk_req *req, int ret);
	/* Private to the block layer. */
	int ret;
	bool finished; /* set under the worker's lock once it no longer touches the request */
	struct blk_req *next;
};

struct image_aio; /* worker thread, queues, eventfd (block.c) */

struct image {
	const struct image_ops *ops;
	enum image_format format;
	char *path;    /* as given */
	char *dir;     /* directory of path, for relative backing names */
	int fd;
	bool read_only;
	struct io_engine io;
	struct image *backing;	 /* NULL when none */
	char *backing_name;	 /* as stored in the image, or NULL */
	enum image_format backing_format; /* AUTO when not recorded */
	void *drv;		 /* driver state */
	struct image_aio *aio;	 /* NULL until image_aio_start() */
	struct err last_err;	 /* last runtime error a person should read */
};

/* Open path with its backing chain. On failure *out is NULL and e says why. */
int image_open(const char *path, const struct image_open_opts *o, struct image **out,
	       struct err *e);
/* Flush (when writable), stop the worker, close the chain. NULL is a no-op. */
void image_close(struct image *img);
/* Where a backing file name points: relative names are relative to img's directory
 * (malloc'd; NULL when out of memory). */
char *image_backing_path(const struct image *img, const char *name);
/* The opened format driver's depth-0 virtual size in bytes. */
uint64_t image_size(struct image *img);
/* Bytes the file occupies on the host (st_blocks * 512). */
uint64_t image_actual_size(struct image *img);

/* Synchronous API (blocks the caller; see "Threads" above). */
int image_readv(struct image *img, uint64_t off, const struct iovec *iov, int iovcnt);
int image_writev(struct image *img, uint64_t off, const struct iovec *iov, int iovcnt);
int image_pread(struct image *img, uint64_t off, void *buf, size_t len);
int image_pwrite(struct image *img, uint64_t off, const void *buf, size_t len);
int image_flush(struct image *img);
int image_discard(struct image *img, uint64_t off, uint64_t len);
int image_write_zeroes(struct image *img, uint64_t off, uint64_t len, unsigned flags);
int image_block_status(struct image *img, uint64_t off, uint64_t len, uint64_t *pnum,
		       struct image_status *st);

/* Asynchronous API. */
int image_aio_start(struct image *img, struct err *e);
/* The eventfd that becomes readable when completions are pending. */
int image_aio_fd(struct image *img);
/*
 * Queue a request; never blocks on I/O. Returns 0 (done() will run), 1 (only
 * with req->inline_ok: finished already, result in req->ret, done() not run),
 * or -EINVAL/-EROFS/-ESHUTDOWN.
 */
int image_submit(struct image *img, struct blk_req *req);
/*
 * Between image_plug() and image_unplug() (nested: the outermost pair counts),
 * submitted requests wait and the worker is woken once, at image_unplug(), to
 * find them all (one wake-up per guest notification, and the whole run in view
 * for merging). Only for short stretches on one thread, such as one pass over
 * a virtqueue: a synchronous call from another thread waits for the unplug.
 */
void image_plug(struct image *img);
void image_unplug(struct image *img);
/* Run done() for every finished request; returns how many ran. Never blocks. */
int image_aio_complete(struct image *img);
/* Block until every submitted request has finished (then run their callbacks). */
void image_aio_drain(struct image *img);

/* Internal: run one request synchronously through the driver. */
int image_execute(struct image *img, struct blk_req *req);

/* Creation. */
struct image_create_opts {
	enum image_format format;
	uint64_t size;		 /* 0 with a backing file: take its size */
	unsigned cluster_size;	 /* qcow2: 0 = 64 KiB */
	int compat;		 /* qcow2: 2 (0.10) or 3 (1.1, default) */
	unsigned refcount_bits;	 /* qcow2: 0 = 16 */
	bool lazy_refcounts;
	bool zstd;		 /* qcow2 compression_type=zstd */
	const char *backing;	 /* backing file name, stored as given */
	enum image_format backing_format;
};
int image_create(const char *path, const struct image_create_opts *o, struct err *e);

/* Driver entry points (raw.c, qcow2*.c). */
int raw_open(struct image *img, struct err *e);
int qcow2_open(struct image *img, const struct image_open_opts *o, struct err *e);
int qcow2_create(const char *path, const struct image_create_opts *o, struct err *e);
bool qcow2_probe(const uint8_t *buf, size_t len);

#endif
