// SPDX-License-Identifier: MIT
/* block.c: opening images and their backing chains, request checks, creating images. */
#include "block/block.h"
#include "block/block_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

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

char *image_backing_path(const struct image *img, const char *name)
{
	char *p = NULL;

	if (name[0] == '/' || !strcmp(img->dir, "."))
		return strdup(name);
	if (asprintf(&p, "%s/%s", img->dir, name) < 0)
		return NULL;
	return p;
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
		char *bpath = image_backing_path(img, img->backing_name);

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

void image_close(struct image *img)
{
	if (!img)
		return;
	if (img->aio)
		image_aio_stop(img);
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

/* Range and permission checks shared by both APIs. */
int image_req_check(struct image *img, const struct blk_req *r)
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
	int ret = image_req_check(img, r);

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
