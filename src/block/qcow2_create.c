// SPDX-License-Identifier: MIT
/* qcow2_create.c: writing a new, empty qcow2 image (header, refcount table and blocks, L1 table). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "block/qcow2.h"

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static const struct {
	uint8_t type, bit;
	const char *name;
} features[] = {
	{ 0, 0, "dirty bit" },		{ 0, 1, "corrupt bit" },     { 0, 2, "external data file" },
	{ 0, 3, "compression type" },	{ 0, 4, "extended L2 entries" }, { 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" },		{ 2, 1, "raw external data" },
};

static uint32_t add_ext(uint8_t *h, uint32_t off, uint32_t type, const void *data, uint32_t len)
{
	put32(h + off, type);
	put32(h + off + 4, len);
	memcpy(h + off + 8, data, len);
	return off + 8 + (uint32_t)ALIGN_UP(len, 8);
}

int qcow2_create(const char *path, const struct image_create_opts *o, struct err *e)
{
	uint64_t cs = o->cluster_size ? o->cluster_size : 64 * KiB, size = o->size;
	unsigned cbits, refbits = o->refcount_bits ? o->refcount_bits : 16, order;
	int compat = o->compat ? o->compat : 3;
	uint64_t l1_entries, l1_cl, rt_cl = 1, rb_n = 1, per_rb, total, rt_off, rb_off, l1_off;
	uint8_t *h = NULL, *buf = NULL;
	uint32_t off;
	int fd = -1, ret;

	if (cs < 512 || cs > 2 * MiB || (cs & (cs - 1)))
		return err_set(e, EINVAL, "cluster size must be a power of two between 512 and 2M");
	cbits = (unsigned)__builtin_ctzll(cs);
	if (refbits > 64 || (refbits & (refbits - 1)))
		return err_set(e, EINVAL, "refcount_bits must be a power of two up to 64");
	order = (unsigned)__builtin_ctz(refbits);
	if (compat != 2 && compat != 3)
		return err_set(e, EINVAL, "compat must be 0.10 or 1.1");
	if (compat == 2 && (refbits != 16 || o->lazy_refcounts || o->zstd))
		return err_set(e, EINVAL, "compat=0.10 supports neither refcount_bits other than 16, "
			       "lazy refcounts nor zstd compression");
	if (o->backing && strlen(o->backing) > QCOW2_MAX_BACKING_NAME)
		return err_set(e, EINVAL, "backing file name too long");
	if (size == 0 && o->backing) {
		struct image_open_opts bo = { .format = o->backing_format, .read_only = true };
		struct image *b;
		char *full = NULL, *dir, *slash;

		/* A relative backing name is relative to the new image's directory. */
		if (o->backing[0] != '/' && (slash = strrchr(path, '/'))) {
			dir = strndup(path, (size_t)(slash - path));
			if (!dir || asprintf(&full, "%s/%s", dir, o->backing) < 0)
				full = NULL;
			free(dir);
		} else {
			full = strdup(o->backing);
		}
		if (!full)
			return err_set(e, ENOMEM, "out of memory");
		ret = image_open(full, &bo, &b, e);
		free(full);
		if (ret < 0)
			return err_prefix(e, ret, "backing file");
		size = image_size(b);
		image_close(b);
	}
	if (size > QCOW2_MAX_SIZE)
		return err_set(e, EFBIG, "image size too large");
	l1_entries = (size + (cs << (cbits - 3)) - 1) >> (cbits + cbits - 3);
	if (l1_entries * 8 > QCOW2_MAX_L1_BYTES)
		return err_set(e, EFBIG, "image size too large for a %llu-byte cluster size",
			       (unsigned long long)cs);
	l1_cl = (l1_entries * 8 + cs - 1) / cs;
	if (l1_cl == 0)
		l1_cl = 1;
	per_rb = cs * 8 / refbits;
	for (;;) {
		uint64_t nrb, nrt;

		total = 1 + rt_cl + rb_n + l1_cl;
		nrb = (total + per_rb - 1) / per_rb;
		nrt = (nrb * 8 + cs - 1) / cs;
		if (nrb == rb_n && nrt == rt_cl)
			break;
		rb_n = nrb;
		rt_cl = nrt;
	}
	rt_off = cs;
	rb_off = rt_off + rt_cl * cs;
	l1_off = rb_off + rb_n * cs;

	h = calloc(1, cs);
	buf = calloc(1, cs);
	if (!h || !buf) {
		ret = err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	put32(h, QCOW2_MAGIC);
	put32(h + 4, (uint32_t)compat);
	put32(h + 20, cbits);
	put64(h + 24, size);
	put32(h + 36, (uint32_t)l1_entries);
	put64(h + 40, l1_off);
	put64(h + 48, rt_off);
	put32(h + 56, (uint32_t)rt_cl);
	off = 72;
	if (compat == 3) {
		put64(h + 72, o->zstd ? QCOW2_INCOMPAT_COMPRESSION : 0);
		put64(h + 80, o->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
		put32(h + 96, order);
		put32(h + 100, 112);
		h[104] = o->zstd ? 1 : 0;
		off = 112;
	}
	if (o->backing && o->backing_format != IMAGE_FMT_AUTO) {
		const char *f = image_format_name(o->backing_format);
		off = add_ext(h, off, QCOW2_EXT_BACKING_FORMAT, f, (uint32_t)strlen(f));
	}
	if (compat == 3) {
		uint8_t t[ARRAY_SIZE(features) * 48];

		memset(t, 0, sizeof(t));
		for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
			t[i * 48] = features[i].type;
			t[i * 48 + 1] = features[i].bit;
			strncpy((char *)t + i * 48 + 2, features[i].name, 46);
		}
		if (off + 8 + sizeof(t) + 8 + (o->backing ? strlen(o->backing) : 0) <= cs)
			off = add_ext(h, off, QCOW2_EXT_FEATURE_TABLE, t, sizeof(t));
	}
	off += 8; /* end of extensions */
	if (o->backing) {
		size_t n = strlen(o->backing);

		if (off + n > cs) {
			ret = err_set(e, EINVAL, "backing file name does not fit in the header cluster");
			goto out;
		}
		memcpy(h + off, o->backing, n);
		put64(h + 8, off);
		put32(h + 16, (uint32_t)n);
	}

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = err_set(e, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (pwrite(fd, h, cs, 0) != (ssize_t)cs)
		goto io_err;
	/* Refcount table, then refcount blocks: every metadata cluster has refcount 1. */
	for (uint64_t i = 0; i < rt_cl; i++) {
		memset(buf, 0, cs);
		for (uint64_t j = 0; j < cs / 8; j++) {
			uint64_t r = i * (cs / 8) + j;
			if (r < rb_n)
				put64(buf + j * 8, rb_off + r * cs);
		}
		if (pwrite(fd, buf, cs, (off_t)(rt_off + i * cs)) != (ssize_t)cs)
			goto io_err;
	}
	{
		struct qcow2 q = { .refcount_order = order };

		for (uint64_t r = 0; r < rb_n; r++) {
			memset(buf, 0, cs);
			for (uint64_t j = 0; j < per_rb; j++)
				if (r * per_rb + j < total)
					qcow2_rb_set(&q, buf, j, 1);
			if (pwrite(fd, buf, cs, (off_t)(rb_off + r * cs)) != (ssize_t)cs)
				goto io_err;
		}
	}
	memset(buf, 0, cs);
	for (uint64_t i = 0; i < l1_cl; i++)
		if (pwrite(fd, buf, cs, (off_t)(l1_off + i * cs)) != (ssize_t)cs)
			goto io_err;
	if (fdatasync(fd) < 0)
		goto io_err;
	ret = 0;
	goto out;
io_err:
	ret = err_set(e, errno ? errno : EIO, "%s: write failed: %s", path, strerror(errno ? errno : EIO));
out:
	if (fd >= 0)
		close(fd);
	free(h);
	free(buf);
	return ret;
}

/*
 * Point the image at another backing file (rebase). The header cluster is
 * rebuilt: fixed header, the extensions we keep (all but the backing format),
 * a new backing format extension, the end marker, then the name; written in
 * one go after everything the new backing relies on is durable.
 */
int qcow2_set_backing(struct image *img, const char *name, enum image_format fmt, struct err *e)
{
	struct qcow2 *q = qcow2_of(img);
	uint64_t hlen, in, out;
	uint8_t *old = NULL, *h = NULL;
	size_t nlen = name ? strlen(name) : 0;
	int ret;

	if (!q || !q->writable || q->corrupt)
		return err_set(e, EROFS, "%s: not a writable qcow2 image", img->path);
	if (nlen > QCOW2_MAX_BACKING_NAME)
		return err_set(e, EINVAL, "backing file name too long");
	hlen = MIN(q->cluster_size, 65536);
	old = calloc(1, hlen);
	h = calloc(1, hlen);
	if (!old || !h) {
		ret = err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	ret = qcow2_flush_meta(q);
	if (ret == 0)
		ret = io_pread(&img->io, old, hlen, 0);
	if (ret < 0) {
		ret = err_set(e, -ret, "%s: %s", img->path, strerror(-ret));
		goto out;
	}
	in = out = q->version >= 3 ? q->header_length : 72;
	memcpy(h, old, in);
	for (;;) {
		uint32_t type, len;

		if (in + 8 > hlen || (q->backing_offset && in + 8 > q->backing_offset))
			break;
		type = (uint32_t)old[in] << 24 | (uint32_t)old[in + 1] << 16 | (uint32_t)old[in + 2] << 8 | old[in + 3];
		len = (uint32_t)old[in + 4] << 24 | (uint32_t)old[in + 5] << 16 | (uint32_t)old[in + 6] << 8 | old[in + 7];
		if (type == QCOW2_EXT_END || len > hlen - in - 8)
			break;
		if (type != QCOW2_EXT_BACKING_FORMAT) {
			uint64_t sz = 8 + ALIGN_UP((uint64_t)len, 8);

			if (out + sz > hlen || in + sz > hlen)
				break;
			memcpy(h + out, old + in, sz);
			out += sz;
		}
		in += 8 + ALIGN_UP((uint64_t)len, 8);
	}
	if (name && fmt != IMAGE_FMT_AUTO) {
		const char *f = image_format_name(fmt);

		if (out + 8 + 16 > hlen) {
			ret = err_set(e, ENOSPC, "%s: no room in the header", img->path);
			goto out;
		}
		out = add_ext(h, (uint32_t)out, QCOW2_EXT_BACKING_FORMAT, f, (uint32_t)strlen(f));
	}
	out += 8; /* end marker (zeroes) */
	if (out + nlen > hlen) {
		ret = err_set(e, ENOSPC, "%s: backing file name does not fit in the header", img->path);
		goto out;
	}
	memcpy(h + out, name ? name : "", nlen);
	put64(h + 8, nlen ? out : 0);
	put32(h + 16, (uint32_t)nlen);
	ret = io_pwrite(&img->io, h, MAX(out + nlen, q->backing_offset + q->backing_len), 0);
	if (ret == 0)
		ret = io_fdatasync(&img->io);
	if (ret < 0) {
		ret = err_set(e, -ret, "%s: writing the header: %s", img->path, strerror(-ret));
		goto out;
	}
	q->backing_offset = nlen ? out : 0;
	q->backing_len = (uint32_t)nlen;
	free(img->backing_name);
	img->backing_name = nlen ? strdup(name) : NULL;
	img->backing_format = name ? fmt : IMAGE_FMT_AUTO;
out:
	free(old);
	free(h);
	return ret;
}
