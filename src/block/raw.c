// SPDX-License-Identifier: MIT
/* raw.c: the raw format driver: the virtual disk is the file, byte for byte. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "block/block.h"

struct raw {
	uint64_t size;
};

static int raw_readv(struct image *img, uint64_t off, const struct iovec *iov, int cnt)
{
	return io_preadv(&img->io, iov, cnt, off);
}

static int raw_writev(struct image *img, uint64_t off, const struct iovec *iov, int cnt)
{
	return io_pwritev(&img->io, iov, cnt, off);
}

static void raw_rw_batch(struct image *img, struct blk_req **reqs, int n)
{
	struct io_op ops[IO_BATCH_MAX];

	for (int i = 0; i < n; i++)
		ops[i] = (struct io_op){ .write = reqs[i]->op == BLK_WRITE, .iov = reqs[i]->iov,
					 .iovcnt = reqs[i]->iovcnt, .off = reqs[i]->offset };
	io_batch(&img->io, ops, n);
	for (int i = 0; i < n; i++)
		reqs[i]->ret = ops[i].ret;
}

static int raw_flush(struct image *img)
{
	return io_fdatasync(&img->io);
}

static int raw_discard(struct image *img, uint64_t off, uint64_t len)
{
	int ret = io_punch(&img->io, off, len);

	/* Discard is a hint: a filesystem without hole punching keeps the data. */
	return ret == -EOPNOTSUPP ? 0 : ret;
}

static int raw_write_zeroes(struct image *img, uint64_t off, uint64_t len, unsigned flags)
{
	static const uint8_t zero[64 * 1024];
	int ret;

	ret = (flags & IMAGE_ZERO_MAY_UNMAP) ? io_punch(&img->io, off, len) : io_zero(&img->io, off, len);
	if (ret == 0)
		return 0;
	while (len > 0) {
		size_t n = MIN(len, sizeof(zero));

		ret = io_pwrite(&img->io, zero, n, off);
		if (ret < 0)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

static uint64_t raw_size(struct image *img)
{
	return ((struct raw *)img->drv)->size;
}

static void raw_close(struct image *img)
{
	free(img->drv);
	img->drv = NULL;
}

static int raw_block_status(struct image *img, uint64_t off, uint64_t len, uint64_t *pnum,
			    struct image_status *st)
{
	off_t data = lseek(img->fd, (off_t)off, SEEK_DATA);
	off_t hole;

	st->host_offset = off;
	if (data < 0 && errno == ENXIO) {
		/* Only a hole up to end of file. */
		st->flags = IMAGE_ST_ALLOCATED | IMAGE_ST_ZERO;
		*pnum = len;
		return 0;
	}
	if (data < 0) {
		st->flags = IMAGE_ST_ALLOCATED | IMAGE_ST_DATA;
		*pnum = len;
		return 0;
	}
	if ((uint64_t)data > off) {
		st->flags = IMAGE_ST_ALLOCATED | IMAGE_ST_ZERO;
		*pnum = MIN(len, (uint64_t)data - off);
		return 0;
	}
	hole = lseek(img->fd, (off_t)off, SEEK_HOLE);
	st->flags = IMAGE_ST_ALLOCATED | IMAGE_ST_DATA;
	*pnum = hole > (off_t)off ? MIN(len, (uint64_t)hole - off) : len;
	return 0;
}

static int raw_truncate(struct image *img, uint64_t size, bool shrink, struct err *e)
{
	struct raw *r = img->drv;

	(void)shrink; /* raw may always shrink: the caller confirmed */
	if (ftruncate(img->fd, (off_t)size) < 0)
		return err_set(e, errno, "%s: cannot resize: %s", img->path, strerror(errno));
	r->size = size;
	return 0;
}

static const struct image_ops raw_ops = {
	.name = "raw",
	.readv = raw_readv,
	.writev = raw_writev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.size = raw_size,
	.close = raw_close,
	.block_status = raw_block_status,
	.truncate = raw_truncate,
	.rw_batch = raw_rw_batch,
	.rw_passthrough = true,
};

int raw_open(struct image *img, struct err *e)
{
	struct raw *r = calloc(1, sizeof(*r));
	off_t end;

	if (!r)
		return err_set(e, ENOMEM, "out of memory");
	end = lseek(img->fd, 0, SEEK_END); /* works for block devices too */
	if (end < 0) {
		free(r);
		return err_set(e, errno, "%s: %s", img->path, strerror(errno));
	}
	r->size = (uint64_t)end;
	img->drv = r;
	img->ops = &raw_ops;
	return 0;
}
