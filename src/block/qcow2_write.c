// SPDX-License-Identifier: MIT
/* qcow2_write.c: qcow2 writes: allocation on write, copy-on-write, discard, zeroes, compressed clusters, resize. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "base/util.h"
#include "block/qcow2.h"

/*
 * The L2 table that maps guest_off, ready for writing: allocated when
 * missing, copied when shared with a snapshot (L1 entry without COPIED).
 * Returns it pinned; the caller puts it back.
 */
static int l2_for_write(struct qcow2 *q, uint64_t guest_off, struct qcow2_cache_entry **out,
			uint64_t *idx)
{
	uint64_t cl = guest_off >> q->cluster_bits;
	uint64_t l1_idx = cl >> q->l2_bits, l1e, l2_off, new_off;
	struct qcow2_cache_entry *ce, *old;
	int ret;

	*idx = cl & ((1ull << q->l2_bits) - 1);
	if (l1_idx >= q->l1_size)
		return qcow2_mark_corrupt(q, "L1 table too small for offset %llu",
					  (unsigned long long)guest_off);
	l1e = q->l1[l1_idx];
	l2_off = l1e & QCOW2_OFFSET_MASK;
	if (l2_off && (l2_off & (q->cluster_size - 1)))
		return qcow2_mark_corrupt(q, "L2 table offset 0x%llx is not cluster aligned",
					  (unsigned long long)l2_off);
	if (l2_off && (l1e & QCOW2_OFLAG_COPIED))
		return qcow2_cache_get(q, &q->l2c, l2_off, true, out);
	ret = qcow2_alloc_cluster(q, &new_off);
	if (ret < 0)
		return ret;
	ret = qcow2_cache_get(q, &q->l2c, new_off, false, &ce);
	if (ret < 0)
		return ret;
	if (l2_off) {
		ret = qcow2_cache_get(q, &q->l2c, l2_off, true, &old);
		if (ret < 0) {
			qcow2_cache_put(ce);
			return ret;
		}
		memcpy(ce->buf, old->buf, q->cluster_size);
		qcow2_cache_put(old);
	}
	ce->dirty = true;
	q->l1[l1_idx] = new_off | QCOW2_OFLAG_COPIED;
	q->l1_dirty = true;
	if (l2_off) {
		ret = qcow2_defer_free(q, l2_off, false);
		if (ret < 0) {
			qcow2_cache_put(ce);
			return ret;
		}
	}
	*out = ce;
	return 0;
}

static bool entry_has_host(uint64_t e)
{
	return (e & QCOW2_OFLAG_COMPRESSED) || (e & QCOW2_OFFSET_MASK);
}

/* Write [off, off+len) inside one guest cluster; buf NULL writes zeroes. */
static int write_in_cluster(struct qcow2 *q, uint64_t off, const uint8_t *buf, size_t len)
{
	uint64_t in = off & (q->cluster_size - 1), idx, entry, host, new_off;
	struct qcow2_cache_entry *ce;
	bool whole = len == q->cluster_size;
	int ret;

	ret = l2_for_write(q, off, &ce, &idx);
	if (ret < 0)
		return ret;
	entry = qcow2_l2_entry(q, ce->buf, idx);
	host = entry & QCOW2_OFFSET_MASK;
	if (host && !(entry & QCOW2_OFLAG_COMPRESSED) &&
	    ((host & (q->cluster_size - 1)) || host < q->cluster_size)) {
		qcow2_cache_put(ce);
		return qcow2_mark_corrupt(q, "data cluster offset 0x%llx is invalid",
					  (unsigned long long)host);
	}
	if (qcow2_entry_is_plain(q, entry) && (entry & QCOW2_OFLAG_COPIED)) {
		/* Allocated and ours alone: overwrite in place. */
		qcow2_cache_put(ce);
		if (!buf) {
			memset(q->tmp, 0, len);
			buf = q->tmp;
		}
		return io_pwrite(&q->img->io, buf, len, host + in);
	}
	/* Build the whole new cluster: old contents (backing, zeroes, compressed, shared) + new data. */
	if (!whole || !buf) {
		if (whole)
			memset(q->tmp, 0, q->cluster_size);
		else if ((ret = qcow2_read_cluster_data(q, off, q->tmp)) < 0)
			goto out;
		if (buf)
			memcpy(q->tmp + in, buf, len);
		else
			memset(q->tmp + in, 0, len);
		buf = q->tmp;
	}
	if (host && !(entry & QCOW2_OFLAG_COMPRESSED) && (entry & QCOW2_OFLAG_COPIED)) {
		new_off = host; /* a preallocated zero cluster we own: reuse it */
	} else {
		ret = qcow2_alloc_cluster(q, &new_off);
		if (ret < 0)
			goto out;
	}
	/* Data first; the L2 entry reaches the disk only after a sync (qcow2_flush_meta). */
	ret = io_pwrite(&q->img->io, buf, q->cluster_size, new_off);
	if (ret < 0)
		goto out;
	qcow2_l2_set(q, ce->buf, idx, new_off | QCOW2_OFLAG_COPIED);
	ce->dirty = true;
	if (new_off != host && entry_has_host(entry))
		ret = qcow2_defer_free(q, entry, entry & QCOW2_OFLAG_COMPRESSED);
out:
	qcow2_cache_put(ce);
	return ret;
}

static int check_writable(struct qcow2 *q)
{
	if (!q->writable)
		return -EROFS;
	if (q->corrupt)
		return -EIO;
	return 0;
}

static int write_piece(struct qcow2 *q, uint64_t off, void *p, size_t n)
{
	return write_in_cluster(q, off, p, n);
}

int qcow2_writev(struct image *img, uint64_t off, const struct iovec *iov, int cnt)
{
	struct qcow2 *q = img->drv;
	int ret = check_writable(q);

	return ret < 0 ? ret : qcow2_for_each_piece(q, off, iov, cnt, write_piece);
}

/* Set the L2 entry of a whole cluster to `value` (0 or ZERO), freeing what it held. */
static int set_cluster_entry(struct qcow2 *q, uint64_t off, uint64_t value)
{
	uint64_t entry, bitmap, idx;
	struct qcow2_cache_entry *ce;
	int ret;

	ret = qcow2_l2_lookup(q, off, &entry, &bitmap);
	if (ret < 0)
		return ret;
	if (entry == value)
		return 0;
	if (!entry && !value && !q->img->backing)
		return 0;
	ret = l2_for_write(q, off, &ce, &idx);
	if (ret < 0)
		return ret;
	entry = qcow2_l2_entry(q, ce->buf, idx);
	qcow2_l2_set(q, ce->buf, idx, value);
	ce->dirty = true;
	qcow2_cache_put(ce);
	if (entry_has_host(entry) && !(!(entry & QCOW2_OFLAG_COMPRESSED) &&
				       (entry & QCOW2_OFFSET_MASK) == 0))
		return qcow2_defer_free(q, entry, entry & QCOW2_OFLAG_COMPRESSED);
	return 0;
}

int qcow2_discard(struct image *img, uint64_t off, uint64_t len)
{
	struct qcow2 *q = img->drv;
	uint64_t end = off + len, c;
	int ret = check_writable(q);

	if (ret < 0)
		return ret;
	/* Only whole clusters; a partial one is left alone (discard is a hint). */
	c = ALIGN_UP(off, q->cluster_size);
	for (; c + q->cluster_size <= end || (c < end && end == q->size); c += q->cluster_size) {
		/* With a backing file, v3 keeps the range reading as zeroes. */
		uint64_t v = img->backing && q->version >= 3 ? QCOW2_OFLAG_ZERO : 0;

		ret = set_cluster_entry(q, c, v);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int qcow2_write_zeroes(struct image *img, uint64_t off, uint64_t len, unsigned flags)
{
	struct qcow2 *q = img->drv;
	uint64_t end = off + len;
	int ret = check_writable(q);

	(void)flags;
	if (ret < 0)
		return ret;
	while (off < end) {
		uint64_t in = off & (q->cluster_size - 1);
		uint64_t n = MIN(end - off, q->cluster_size - in);
		bool whole = n == q->cluster_size || (in == 0 && off + n == q->size);

		if (whole && q->version >= 3) {
			ret = set_cluster_entry(q, off, QCOW2_OFLAG_ZERO);
		} else if (whole && !img->backing) {
			ret = set_cluster_entry(q, off, 0);
		} else {
			uint64_t entry, bitmap;

			ret = qcow2_l2_lookup(q, off, &entry, &bitmap);
			if (ret < 0)
				return ret;
			/* Already reading as zeroes: nothing to write. */
			if ((entry & QCOW2_OFLAG_ZERO && q->version >= 3 && !(entry & QCOW2_OFLAG_COMPRESSED)) ||
			    (!entry && !img->backing))
				ret = 0;
			else
				ret = write_in_cluster(q, off, NULL, (size_t)n);
		}
		if (ret < 0)
			return ret;
		off += n;
	}
	return 0;
}

size_t qcow2_compress_cluster(const struct qcow2 *q, const void *src, uint8_t *dst, size_t cap)
{
	if (q->compression_type == 1) {
		size_t r = ZSTD_compress(dst, cap, src, q->cluster_size, 3);
		return ZSTD_isError(r) ? 0 : r;
	}
	z_stream z;
	size_t out;

	memset(&z, 0, sizeof(z));
	/* Raw deflate with a 4 KiB window, as QEMU writes it. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	z.next_in = (Bytef *)src;
	z.avail_in = (uInt)q->cluster_size;
	z.next_out = dst;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		return 0;
	}
	out = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

int qcow2_write_compressed(struct image *img, uint64_t off, const void *buf, size_t len)
{
	struct qcow2 *q = img->drv;
	size_t clen;

	if (len != q->cluster_size)
		return -EINVAL;
	clen = qcow2_compress_cluster(q, buf, q->cbuf, q->cluster_size - 1);
	return qcow2_store_compressed(img, off, buf, q->cbuf, clen);
}

int qcow2_store_compressed(struct image *img, uint64_t off, const void *buf, const void *cdata,
			   size_t clen)
{
	struct qcow2 *q = img->drv;
	struct qcow2_cache_entry *ce;
	uint64_t idx, entry, coff, nsect;
	int ret = check_writable(q);

	if (ret < 0)
		return ret;
	if ((off & (q->cluster_size - 1)) || q->ext_l2)
		return -EINVAL;
	if (clen == 0 || clen >= q->cluster_size - 512) {
		struct iovec v = { (void *)buf, q->cluster_size };
		return qcow2_writev(img, off, &v, 1); /* does not shrink: store as is */
	}
	/* Pack into the current host cluster when it fits, else start a new one. */
	if (q->comp_next && (q->comp_next & (q->cluster_size - 1)) &&
	    clen <= q->cluster_size - (q->comp_next & (q->cluster_size - 1))) {
		coff = q->comp_next;
		ret = qcow2_update_refcount(q, coff >> q->cluster_bits, 1);
	} else {
		ret = qcow2_alloc_contig(q, 1, &coff);
	}
	if (ret < 0)
		return ret;
	ret = io_pwrite(&img->io, cdata, clen, coff);
	if (ret < 0)
		return ret;
	q->comp_next = coff + clen;
	nsect = ((coff + clen - 1) >> 9) - (coff >> 9);
	ret = l2_for_write(q, off, &ce, &idx);
	if (ret < 0)
		return ret;
	entry = qcow2_l2_entry(q, ce->buf, idx);
	qcow2_l2_set(q, ce->buf, idx, QCOW2_OFLAG_COMPRESSED | nsect << q->csize_shift | coff);
	ce->dirty = true;
	qcow2_cache_put(ce);
	if (entry_has_host(entry))
		return qcow2_defer_free(q, entry, entry & QCOW2_OFLAG_COMPRESSED);
	return 0;
}

static int grow_l1(struct qcow2 *q, uint64_t need)
{
	uint64_t n_cl = (need * 8 + q->cluster_size - 1) >> q->cluster_bits, off, *nl1;
	uint64_t old_off = q->l1_offset, old_cl = ((uint64_t)q->l1_size * 8 + q->cluster_size - 1) >> q->cluster_bits;
	uint8_t hdr[12];
	int ret;

	if (need * 8 > QCOW2_MAX_L1_BYTES)
		return -EFBIG;
	ret = qcow2_flush_meta(q);
	if (ret < 0)
		return ret;
	nl1 = calloc(need, 8);
	if (!nl1)
		return -ENOMEM;
	memcpy(nl1, q->l1, (size_t)q->l1_size * 8);
	ret = qcow2_alloc_contig(q, n_cl, &off);
	if (ret == 0)
		ret = qcow2_flush_meta(q); /* the new table's refcounts first */
	if (ret == 0) {
		uint64_t *be = calloc(n_cl, q->cluster_size);

		if (!be) {
			ret = -ENOMEM;
		} else {
			for (uint64_t i = 0; i < need; i++)
				be[i] = __builtin_bswap64(nl1[i]);
			ret = io_pwrite(&q->img->io, be, n_cl * q->cluster_size, off);
			free(be);
		}
	}
	if (ret == 0)
		ret = io_fdatasync(&q->img->io);
	if (ret < 0) {
		free(nl1);
		return ret;
	}
	{
		uint32_t sz = __builtin_bswap32((uint32_t)need);
		uint64_t o = __builtin_bswap64(off);

		memcpy(hdr, &sz, 4);
		memcpy(hdr + 4, &o, 8);
	}
	ret = qcow2_write_header_field(q, 36, hdr, 12);
	if (ret == 0)
		ret = io_fdatasync(&q->img->io);
	if (ret < 0) {
		free(nl1);
		return ret;
	}
	free(q->l1);
	q->l1 = nl1;
	q->l1_size = (uint32_t)need;
	q->l1_offset = off;
	for (uint64_t i = 0; old_off && i < old_cl; i++) {
		ret = qcow2_update_refcount(q, (old_off >> q->cluster_bits) + i, -1);
		if (ret < 0)
			return ret;
	}
	return qcow2_flush_meta(q);
}

int qcow2_truncate(struct image *img, uint64_t size, bool shrink, struct err *e)
{
	struct qcow2 *q = img->drv;
	uint64_t need, be;
	int ret = check_writable(q);

	if (ret < 0)
		return err_set(e, -ret, "%s: image is not writable", img->path);
	if (q->nb_snapshots)
		return err_set(e, ENOTSUP, "%s: cannot resize an image that has internal snapshots",
			       img->path);
	if (size > QCOW2_MAX_SIZE)
		return err_set(e, EFBIG, "%s: size too large", img->path);
	if (size < q->size) {
		if (!shrink)
			return err_set(e, EINVAL, "%s: shrinking needs --shrink (data past the new end is lost)",
				       img->path);
		/* Drop every cluster past the new end (the cluster holding it is kept). */
		for (uint64_t c = ALIGN_UP(size, q->cluster_size); c < q->size; c += q->cluster_size) {
			uint64_t entry, bm;

			ret = qcow2_l2_lookup(q, c, &entry, &bm);
			if (ret == 0 && entry)
				ret = set_cluster_entry(q, c, 0);
			if (ret < 0)
				return err_set(e, -ret, "%s: shrinking: %s", img->path, strerror(-ret));
		}
	}
	need = (size + (q->cluster_size << q->l2_bits) - 1) >> (q->cluster_bits + q->l2_bits);
	if (need > q->l1_size) {
		ret = grow_l1(q, need);
		if (ret < 0)
			return err_set(e, -ret, "%s: growing the L1 table: %s", img->path, strerror(-ret));
	}
	ret = qcow2_flush_meta(q);
	if (ret < 0)
		return err_set(e, -ret, "%s: %s", img->path, strerror(-ret));
	be = __builtin_bswap64(size);
	ret = qcow2_write_header_field(q, 24, &be, 8);
	if (ret == 0)
		ret = io_fdatasync(&img->io);
	if (ret < 0)
		return err_set(e, -ret, "%s: writing the header: %s", img->path, strerror(-ret));
	if (size > q->size && (q->size & (q->cluster_size - 1))) {
		/* The old last cluster may hold bytes past the old end (an earlier shrink). */
		uint64_t old = q->size, tail = MIN(ALIGN_UP(old, q->cluster_size), size) - old;

		q->size = size;
		ret = qcow2_write_zeroes(img, old, tail, 0);
		if (ret == 0)
			ret = qcow2_flush_meta(q);
		if (ret < 0)
			return err_set(e, -ret, "%s: zeroing the grown tail: %s", img->path, strerror(-ret));
	}
	q->size = size;
	return 0;
}
