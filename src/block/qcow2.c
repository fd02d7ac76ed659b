// SPDX-License-Identifier: MIT
/* qcow2.c: the qcow2 driver: header validation, metadata cache, the read path (docs/interop/qcow2.txt). */
#include "block/qcow2.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "base/log.h"
#include "base/util.h"

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

bool qcow2_probe(const uint8_t *buf, size_t len)
{
	/* Magic only: an unknown version then gets qcow2_open's clear error, not a raw open. */
	return len >= 4 && be32(buf) == QCOW2_MAGIC;
}

struct qcow2 *qcow2_of(struct image *img)
{
	return img->format == IMAGE_FMT_QCOW2 ? img->drv : NULL;
}

/* ---- header ---- */

int qcow2_write_header_field(struct qcow2 *q, unsigned off, const void *be_val, size_t len)
{
	return io_pwrite(&q->img->io, be_val, len, off);
}

int qcow2_mark_corrupt(struct qcow2 *q, const char *fmt, ...)
{
	va_list ap;
	char msg[400];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err_set(&q->img->last_err, EIO, "%s: %s", q->img->path, msg);
	if (!q->corrupt && q->writable && q->version >= 3) {
		uint64_t v = __builtin_bswap64(q->incompat | QCOW2_INCOMPAT_CORRUPT);

		/* Stop further writes and tell every later opener (spec: corrupt bit). */
		log_error("%s: %s; marking the image corrupt", q->img->path, msg);
		q->incompat |= QCOW2_INCOMPAT_CORRUPT;
		qcow2_write_header_field(q, 72, &v, 8);
		io_fdatasync(&q->img->io);
	}
	q->corrupt = true;
	return -EIO;
}

static const char *feature_name(const uint8_t *table, uint32_t len, int type, int bit, char *out,
				size_t outlen)
{
	/* Feature name table entries: type (1), bit (1), name (46). */
	for (uint32_t i = 0; table && i + 48 <= len; i += 48) {
		if (table[i] == type && table[i + 1] == bit) {
			size_t n = strnlen((const char *)table + i + 2, 46);

			snprintf(out, outlen, " (%.*s)", (int)n, table + i + 2);
			for (char *p = out; *p; p++)
				if (*p < 0x20 || *p > 0x7e)
					*p = '?';
			return out;
		}
	}
	return "";
}

static int parse_extensions(struct qcow2 *q, const uint8_t *hdr, size_t hdr_len, struct err *e,
			    const uint8_t **ftable, uint32_t *ftable_len)
{
	struct image *img = q->img;
	uint64_t off = q->version >= 3 ? q->header_length : 72;
	/* Extensions end before the backing file name, or at the cluster's end. */
	uint64_t end = q->backing_offset ? q->backing_offset : hdr_len;

	end = MIN(end, hdr_len);
	while (off + 8 <= end) {
		uint32_t type = be32(hdr + off), len = be32(hdr + off + 4);
		const uint8_t *data = hdr + off + 8;

		if (type == QCOW2_EXT_END)
			break;
		if (len > end - off - 8)
			return err_set(e, EINVAL, "%s: header extension 0x%08x runs past the header",
				       img->path, type);
		switch (type) {
		case QCOW2_EXT_BACKING_FORMAT: {
			char fmt[16] = { 0 };

			memcpy(fmt, data, MIN(len, sizeof(fmt) - 1));
			if (image_format_parse(fmt, &img->backing_format) < 0)
				return err_set(e, ENOTSUP, "%s: unsupported backing file format '%.15s'",
					       img->path, fmt);
			break;
		}
		case QCOW2_EXT_FEATURE_TABLE:
			*ftable = data;
			*ftable_len = len;
			break;
		case QCOW2_EXT_DATA_FILE:
			return err_set(e, ENOTSUP, "%s: images with an external data file are not supported",
				       img->path);
		case QCOW2_EXT_CRYPTO:
			return err_set(e, ENOTSUP, "%s: encrypted images are not supported", img->path);
		default:
			break; /* bitmaps and unknown extensions are ignored (autoclear covers them) */
		}
		off += 8 + ALIGN_UP((uint64_t)len, 8);
	}
	return 0;
}

static int read_snapshots(struct qcow2 *q, uint64_t file_size, struct err *e)
{
	struct image *img = q->img;
	uint64_t off = q->snapshots_offset;
	uint8_t h[40];
	int ret;

	if (!q->nb_snapshots)
		return 0;
	if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return err_set(e, EINVAL, "%s: too many snapshots (%u)", img->path, q->nb_snapshots);
	if (off & (q->cluster_size - 1) || off >= file_size)
		return err_set(e, EINVAL, "%s: snapshot table offset 0x%llx is invalid", img->path,
			       (unsigned long long)off);
	q->snaps = calloc(q->nb_snapshots, sizeof(*q->snaps));
	if (!q->snaps)
		return err_set(e, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		struct qcow2_snapshot *s = &q->snaps[i];
		uint32_t id_len, name_len;

		if (!range_ok(off, 40, file_size))
			return err_set(e, EINVAL, "%s: snapshot table runs past end of file", img->path);
		ret = io_pread(&img->io, h, 40, off);
		if (ret < 0)
			return err_set(e, -ret, "%s: reading snapshots: %s", img->path, strerror(-ret));
		s->l1_offset = be64(h);
		s->l1_size = be32(h + 8);
		id_len = (uint32_t)h[12] << 8 | h[13];
		name_len = (uint32_t)h[14] << 8 | h[15];
		s->date_sec = be32(h + 16);
		s->date_nsec = be32(h + 20);
		s->vm_clock_nsec = be64(h + 24);
		s->vm_state_size = be32(h + 32);
		s->extra_size = be32(h + 36);
		if (s->extra_size > 1024)
			return err_set(e, EINVAL, "%s: snapshot %u: extra data too large", img->path, i);
		if (s->l1_size > QCOW2_MAX_L1_BYTES / 8 || (s->l1_offset & (q->cluster_size - 1)) ||
		    !range_ok(s->l1_offset, (uint64_t)s->l1_size * 8, file_size))
			return err_set(e, EINVAL, "%s: snapshot %u: invalid L1 table", img->path, i);
		off += 40;
		if (!range_ok(off, (uint64_t)s->extra_size + id_len + name_len, file_size))
			return err_set(e, EINVAL, "%s: snapshot table runs past end of file", img->path);
		s->extra = malloc(s->extra_size + 1);
		s->id = calloc(1, id_len + 1);
		s->name = calloc(1, name_len + 1);
		if (!s->extra || !s->id || !s->name)
			return err_set(e, ENOMEM, "out of memory");
		ret = io_pread(&img->io, s->extra, s->extra_size, off);
		if (ret == 0)
			ret = io_pread(&img->io, s->id, id_len, off + s->extra_size);
		if (ret == 0)
			ret = io_pread(&img->io, s->name, name_len, off + s->extra_size + id_len);
		if (ret < 0)
			return err_set(e, -ret, "%s: reading snapshots: %s", img->path, strerror(-ret));
		if (s->extra_size >= 8)
			s->vm_state_size = be64(s->extra);
		s->disk_size = s->extra_size >= 16 ? be64(s->extra + 8) : q->size;
		off += s->extra_size + id_len + name_len;
		off = ALIGN_UP(off, 8);
	}
	return 0;
}

static int l2_table_check(struct qcow2 *q, uint64_t l2_off)
{
	if (l2_off & (q->cluster_size - 1))
		return qcow2_mark_corrupt(q, "L2 table offset 0x%llx is not cluster aligned",
					  (unsigned long long)l2_off);
	if (l2_off < q->cluster_size)
		return qcow2_mark_corrupt(q, "L2 table overlaps the header");
	return 0;
}

/* The L2 entry (and subcluster bitmap) for a guest offset; 0 when unallocated. */
int qcow2_l2_lookup(struct qcow2 *q, uint64_t guest_off, uint64_t *entry, uint64_t *bitmap)
{
	uint64_t l2_entries = 1ull << q->l2_bits;
	uint64_t cl = guest_off >> q->cluster_bits;
	uint64_t l1_idx = cl >> q->l2_bits, l2_off;
	struct qcow2_cache_entry *ce;
	int ret;

	*entry = 0;
	*bitmap = 0;
	if (l1_idx >= q->l1_size)
		return 0;
	l2_off = q->l1[l1_idx] & QCOW2_OFFSET_MASK;
	if (!l2_off)
		return 0;
	ret = l2_table_check(q, l2_off);
	if (ret < 0)
		return ret;
	ret = qcow2_cache_get(q, &q->l2c, l2_off, true, &ce);
	if (ret < 0)
		return ret;
	*entry = qcow2_l2_entry(q, ce->buf, cl & (l2_entries - 1));
	*bitmap = qcow2_l2_bitmap(q, ce->buf, cl & (l2_entries - 1));
	qcow2_cache_put(ce);
	return 0;
}

int qcow2_decompress(struct qcow2 *q, uint64_t entry, uint8_t *out)
{
	uint64_t coff = entry & q->coffset_mask;
	uint64_t nsect = ((entry >> q->csize_shift) & q->csize_mask) + 1;
	uint64_t clen = nsect * 512 - (coff & 511);
	int ret;

	if (q->dbuf_entry == entry && entry) {
		memcpy(out, q->dbuf, q->cluster_size);
		return 0;
	}
	if (coff < q->cluster_size)
		return qcow2_mark_corrupt(q, "compressed cluster overlaps the header");
	ret = io_pread(&q->img->io, q->cbuf, clen, coff);
	if (ret < 0)
		return ret;
	if (q->compression_type == 0) {
		z_stream z;

		memset(&z, 0, sizeof(z));
		if (inflateInit2(&z, -12) != Z_OK)
			return -ENOMEM;
		z.next_in = q->cbuf;
		z.avail_in = (uInt)clen;
		z.next_out = q->dbuf;
		z.avail_out = (uInt)q->cluster_size;
		ret = inflate(&z, Z_FINISH);
		inflateEnd(&z);
		if ((ret != Z_STREAM_END && ret != Z_BUF_ERROR) || z.avail_out != 0)
			return qcow2_mark_corrupt(q, "compressed cluster at 0x%llx does not inflate",
						  (unsigned long long)coff);
	} else {
		ZSTD_inBuffer in = { q->cbuf, clen, 0 };
		ZSTD_outBuffer o = { q->dbuf, q->cluster_size, 0 };

		if (!q->zstd_dctx && !(q->zstd_dctx = ZSTD_createDCtx()))
			return -ENOMEM;
		ZSTD_DCtx_reset(q->zstd_dctx, ZSTD_reset_session_only);
		/* Frames may follow each other; stop once the cluster is full. */
		while (o.pos < o.size) {
			size_t r = ZSTD_decompressStream(q->zstd_dctx, &o, &in);

			if (ZSTD_isError(r) || (in.pos == in.size && o.pos < o.size))
				return qcow2_mark_corrupt(q, "compressed cluster at 0x%llx does not decompress",
							  (unsigned long long)coff);
		}
	}
	q->dbuf_entry = entry;
	memcpy(out, q->dbuf, q->cluster_size);
	return 0;
}

/* Read [off, off+len) of one cluster's worth, from the backing chain or zeroes. */
static int read_backing(struct qcow2 *q, uint64_t off, uint8_t *buf, size_t len)
{
	struct image *b = q->img->backing;
	uint64_t bsize;
	size_t n = 0;

	if (b) {
		bsize = b->ops->size(b);
		if (off < bsize) {
			struct iovec v = { buf, n = (size_t)MIN((uint64_t)len, bsize - off) };
			int ret = b->ops->readv(b, off, &v, 1);
			if (ret < 0)
				return ret;
		}
	}
	memset(buf + n, 0, len - n);
	return 0;
}

/* Read part of one guest cluster whose L2 entry (and bitmap) the caller looked up:
 * [off, off+len) lies within that single cluster. */
static int read_mapped(struct qcow2 *q, uint64_t off, uint64_t entry, uint64_t bitmap, uint8_t *buf,
		       size_t len)
{
	uint64_t in = off & (q->cluster_size - 1), host;
	int ret;

	if (entry & QCOW2_OFLAG_COMPRESSED) {
		ret = qcow2_decompress(q, entry, q->tmp);
		if (ret < 0)
			return ret;
		memcpy(buf, q->tmp + in, len);
		return 0;
	}
	host = entry & QCOW2_OFFSET_MASK;
	if (q->ext_l2) {
		/* Extended L2: 32 subclusters, each allocated, zero or unallocated. */
		uint64_t sc_size = q->cluster_size / 32;

		while (len > 0) {
			unsigned sc = (unsigned)(in / sc_size);
			size_t n = (size_t)MIN((uint64_t)len, (sc + 1) * sc_size - in);

			if ((bitmap >> sc) & 1) {
				if (!host || (host & (q->cluster_size - 1)))
					return qcow2_mark_corrupt(q, "bad L2 entry 0x%llx",
								  (unsigned long long)entry);
				ret = io_pread(&q->img->io, buf, n, host + in);
			} else if ((bitmap >> (32 + sc)) & 1) {
				memset(buf, 0, n);
				ret = 0;
			} else {
				ret = read_backing(q, (off & ~(q->cluster_size - 1)) + in, buf, n);
			}
			if (ret < 0)
				return ret;
			buf += n;
			in += n;
			len -= n;
		}
		return 0;
	}
	if (entry & QCOW2_OFLAG_ZERO && q->version >= 3) {
		memset(buf, 0, len);
		return 0;
	}
	if (!host)
		return read_backing(q, off, buf, len);
	if (host & (q->cluster_size - 1))
		return qcow2_mark_corrupt(q, "data cluster offset 0x%llx is not cluster aligned",
					  (unsigned long long)host);
	if (host < q->cluster_size)
		return qcow2_mark_corrupt(q, "data cluster overlaps the header");
	return io_pread(&q->img->io, buf, len, host + in);
}

int qcow2_read_cluster_data(struct qcow2 *q, uint64_t guest_off, uint8_t *buf)
{
	uint64_t off = guest_off & ~(q->cluster_size - 1), entry, bitmap;
	int ret = qcow2_l2_lookup(q, off, &entry, &bitmap);

	return ret < 0 ? ret : read_mapped(q, off, entry, bitmap, buf, q->cluster_size);
}

/* An entry whose whole cluster is plain data at a sane host offset: I/O goes straight there. */
static bool plain_data(const struct qcow2 *q, uint64_t entry)
{
	uint64_t host = entry & QCOW2_OFFSET_MASK;

	return !q->ext_l2 && qcow2_entry_is_plain(q, entry) && !(host & (q->cluster_size - 1)) &&
	       host >= q->cluster_size;
}

/* Split a request at guest cluster boundaries: fn gets each piece, which lies in one cluster. */
int qcow2_for_each_piece(struct qcow2 *q, uint64_t off, const struct iovec *iov, int cnt,
			 int (*fn)(struct qcow2 *q, uint64_t off, void *p, size_t n))
{
	for (int i = 0; i < cnt; i++) {
		uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left > 0) {
			size_t n = (size_t)MIN((uint64_t)left, q->cluster_size - (off & (q->cluster_size - 1)));
			int ret = fn(q, off, p, n);

			if (ret < 0)
				return ret;
			p += n;
			off += n;
			left -= n;
		}
	}
	return 0;
}

static int read_piece(struct qcow2 *q, uint64_t off, void *p, size_t n)
{
	uint64_t entry, bitmap;
	int ret = qcow2_l2_lookup(q, off, &entry, &bitmap);

	if (ret < 0)
		return ret;
	/* Fast path: plain allocated clusters are read in place. */
	if (plain_data(q, entry))
		return io_pread(&q->img->io, p, n, (entry & QCOW2_OFFSET_MASK) + (off & (q->cluster_size - 1)));
	return read_mapped(q, off, entry, bitmap, p, n);
}

static int qcow2_readv(struct image *img, uint64_t off, const struct iovec *iov, int cnt)
{
	return qcow2_for_each_piece(img->drv, off, iov, cnt, read_piece);
}

/*
 * Several requests at once (from the worker, non-overlapping): reads of
 * allocated clusters and in-place writes to clusters this image owns
 * (COPIED) need no metadata change, so they go to the I/O engine together;
 * anything else (allocation, copy-on-write, compressed, zero, spanning
 * clusters) runs through the normal path first.
 */
static void qcow2_rw_batch(struct image *img, struct blk_req **reqs, int n)
{
	struct qcow2 *q = img->drv;
	struct io_op ops[IO_BATCH_MAX];
	struct iovec iov[IO_BATCH_MAX];
	int owner[IO_BATCH_MAX], m = 0;

	for (int i = 0; i < n; i++) {
		struct blk_req *r = reqs[i];
		uint64_t in = r->offset & (q->cluster_size - 1), entry = 0, bitmap;
		bool write = r->op == BLK_WRITE, fast = false;
		size_t len = r->iovcnt == 1 ? r->iov[0].iov_len : 0;

		if (len && in + len <= q->cluster_size && !q->ext_l2 && !q->corrupt && (!write || q->writable) &&
		    qcow2_l2_lookup(q, r->offset, &entry, &bitmap) == 0)
			fast = plain_data(q, entry) && (!write || (entry & QCOW2_OFLAG_COPIED));
		if (!fast) {
			r->ret = write ? qcow2_writev(img, r->offset, r->iov, r->iovcnt)
				       : qcow2_readv(img, r->offset, r->iov, r->iovcnt);
			continue;
		}
		iov[m] = r->iov[0];
		ops[m] = (struct io_op){ .write = write, .iov = &iov[m], .iovcnt = 1,
					 .off = (entry & QCOW2_OFFSET_MASK) + in };
		owner[m++] = i;
	}
	io_batch(&img->io, ops, m);
	for (int k = 0; k < m; k++)
		reqs[owner[k]]->ret = ops[k].ret;
}

static int qcow2_flush(struct image *img)
{
	struct qcow2 *q = img->drv;

	if (!q->writable)
		return 0;
	return qcow2_flush_meta(q);
}

static uint64_t qcow2_size(struct image *img)
{
	return ((struct qcow2 *)img->drv)->size;
}

static int qcow2_block_status(struct image *img, uint64_t off, uint64_t len, uint64_t *pnum,
			      struct image_status *st)
{
	struct qcow2 *q = img->drv;
	uint64_t first = 0;
	bool have = false;
	uint64_t done = 0;

	/* Merge consecutive clusters with the same kind (and contiguous host offsets). */
	while (done < len) {
		uint64_t o = off + done, in = o & (q->cluster_size - 1);
		uint64_t n = MIN(len - done, q->cluster_size - in);
		uint64_t entry, bitmap, host;
		struct image_status s = { 0 };
		int ret = qcow2_l2_lookup(q, o, &entry, &bitmap);

		if (ret < 0)
			return ret;
		host = entry & QCOW2_OFFSET_MASK;
		if (entry & QCOW2_OFLAG_COMPRESSED) {
			s.flags = IMAGE_ST_ALLOCATED | IMAGE_ST_DATA | IMAGE_ST_COMPRESSED;
		} else if (q->ext_l2) {
			uint64_t sc_size = q->cluster_size / 32;
			unsigned sc = (unsigned)(in / sc_size);

			n = MIN(n, (sc + 1) * sc_size - in);
			if ((bitmap >> sc) & 1) {
				s.flags = IMAGE_ST_ALLOCATED | IMAGE_ST_DATA;
				s.host_offset = host + in;
			} else if ((bitmap >> (32 + sc)) & 1) {
				s.flags = IMAGE_ST_ALLOCATED | IMAGE_ST_ZERO;
			}
		} else if ((entry & QCOW2_OFLAG_ZERO) && q->version >= 3) {
			s.flags = IMAGE_ST_ALLOCATED | IMAGE_ST_ZERO;
		} else if (host) {
			s.flags = IMAGE_ST_ALLOCATED | IMAGE_ST_DATA;
			s.host_offset = host + in;
		}
		if (!have) {
			*st = s;
			first = s.host_offset;
			have = true;
		} else if (s.flags != st->flags || (s.flags & IMAGE_ST_DATA && !(s.flags & IMAGE_ST_COMPRESSED) &&
						    s.host_offset != first + done)) {
			break;
		}
		done += n;
	}
	*pnum = done;
	return 0;
}

void qcow2_free_state(struct qcow2 *q)
{
	if (!q)
		return;
	qcow2_cache_fini(&q->l2c);
	qcow2_cache_fini(&q->rbc);
	free(q->l1);
	free(q->reftable);
	free(q->pending);
	free(q->cbuf);
	free(q->dbuf);
	free(q->tmp);
	if (q->zstd_dctx)
		ZSTD_freeDCtx(q->zstd_dctx);
	for (uint32_t i = 0; q->snaps && i < q->nb_snapshots; i++) {
		free(q->snaps[i].id);
		free(q->snaps[i].name);
		free(q->snaps[i].extra);
	}
	free(q->snaps);
	free(q);
}

static void qcow2_close(struct image *img)
{
	struct qcow2 *q = img->drv;

	if (q->writable && !q->corrupt) {
		int ret = qcow2_flush_meta(q);
		if (ret < 0)
			log_error("%s: flushing metadata on close: %s", img->path, strerror(-ret));
	}
	qcow2_free_state(q);
	img->drv = NULL;
}

static const struct image_ops qcow2_ops = {
	.name = "qcow2",
	.readv = qcow2_readv,
	.writev = qcow2_writev,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.size = qcow2_size,
	.close = qcow2_close,
	.block_status = qcow2_block_status,
	.truncate = qcow2_truncate,
	.write_compressed = qcow2_write_compressed,
	.rw_batch = qcow2_rw_batch,
};

static int load_table(struct qcow2 *q, uint64_t off, uint64_t entries, uint64_t **out)
{
	uint64_t *t = calloc(entries ? entries : 1, 8);
	int ret;

	if (!t)
		return -ENOMEM;
	ret = io_pread(&q->img->io, t, entries * 8, off);
	if (ret < 0) {
		free(t);
		return ret;
	}
	for (uint64_t i = 0; i < entries; i++)
		t[i] = __builtin_bswap64(t[i]);
	*out = t;
	return 0;
}

int qcow2_check_and_repair_dirty(struct image *img, struct err *e);

int qcow2_open(struct image *img, const struct image_open_opts *o, struct err *e)
{
	const char *path = img->path;
	uint8_t *hdr = NULL;
	const uint8_t *ftable = NULL;
	uint32_t ftable_len = 0;
	struct qcow2 *q;
	int64_t fsize;
	uint64_t file_size, need_l1, hlen;
	int ret;

	fsize = io_file_size(&img->io);
	if (fsize < 0)
		return err_set(e, (int)-fsize, "%s: %s", path, strerror((int)-fsize));
	file_size = (uint64_t)fsize;
	if (file_size < 72)
		return err_set(e, EINVAL, "%s: file too small for a qcow2 header", path);
	q = calloc(1, sizeof(*q));
	if (!q)
		return err_set(e, ENOMEM, "out of memory");
	q->img = img;
	img->drv = q;
	img->ops = &qcow2_ops;
	hdr = calloc(1, 65536);
	if (!hdr) {
		ret = err_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	ret = io_pread(&img->io, hdr, MIN(file_size, 65536), 0);
	if (ret < 0) {
		ret = err_set(e, -ret, "%s: cannot read the header: %s", path, strerror(-ret));
		goto fail;
	}
	q->version = be32(hdr + 4);
	q->backing_offset = be64(hdr + 8);
	q->backing_len = be32(hdr + 16);
	q->cluster_bits = be32(hdr + 20);
	q->size = be64(hdr + 24);
	q->l1_size = be32(hdr + 36);
	q->l1_offset = be64(hdr + 40);
	q->reftable_offset = be64(hdr + 48);
	q->reftable_clusters = be32(hdr + 56);
	q->nb_snapshots = be32(hdr + 60);
	q->snapshots_offset = be64(hdr + 64);
	if (be32(hdr) != QCOW2_MAGIC || (q->version != 2 && q->version != 3)) {
		ret = err_set(e, ENOTSUP, "%s: not a qcow2 image this program reads (version %u)", path,
			      q->version);
		goto fail;
	}
	if (q->cluster_bits < 9 || q->cluster_bits > 21) {
		ret = err_set(e, EINVAL, "%s: cluster_bits %u out of range (9-21)", path, q->cluster_bits);
		goto fail;
	}
	q->cluster_size = 1ull << q->cluster_bits;
	if (be32(hdr + 32) != 0) {
		ret = err_set(e, ENOTSUP, "%s: encrypted images are not supported", path);
		goto fail;
	}
	q->refcount_order = 4;
	q->header_length = 72;
	if (q->version >= 3) {
		if (file_size < 104) {
			ret = err_set(e, EINVAL, "%s: file too small for a version 3 header", path);
			goto fail;
		}
		q->incompat = be64(hdr + 72);
		q->compat = be64(hdr + 80);
		q->autoclear = be64(hdr + 88);
		q->refcount_order = be32(hdr + 96);
		q->header_length = be32(hdr + 100);
		if (q->header_length < 104 || q->header_length > MIN(q->cluster_size, 65536) ||
		    q->header_length > file_size) {
			ret = err_set(e, EINVAL, "%s: header length %u is invalid", path, q->header_length);
			goto fail;
		}
		if (q->header_length > 104)
			q->compression_type = hdr[104];
	}
	/* The header, its extensions and the backing name live in the first cluster. */
	hlen = MIN(MIN(q->cluster_size, 65536), file_size);
	if (q->backing_offset) {
		if (q->backing_len == 0 || q->backing_len > QCOW2_MAX_BACKING_NAME ||
		    !range_ok(q->backing_offset, q->backing_len, hlen)) {
			ret = err_set(e, EINVAL, "%s: backing file name is invalid or too long", path);
			goto fail;
		}
	}
	ret = parse_extensions(q, hdr, hlen, e, &ftable, &ftable_len);
	if (ret < 0)
		goto fail;
	if (q->incompat & ~QCOW2_INCOMPAT_KNOWN) {
		char name[64];
		int bit = __builtin_ctzll(q->incompat & ~QCOW2_INCOMPAT_KNOWN);

		ret = err_set(e, ENOTSUP, "%s: unsupported incompatible feature bit %d%s", path, bit,
			      feature_name(ftable, ftable_len, 0, bit, name, sizeof(name)));
		goto fail;
	}
	if (q->incompat & QCOW2_INCOMPAT_DATA_FILE) {
		ret = err_set(e, ENOTSUP, "%s: images with an external data file are not supported", path);
		goto fail;
	}
	if (q->refcount_order > 6) {
		ret = err_set(e, EINVAL, "%s: refcount_order %u out of range (0-6)", path, q->refcount_order);
		goto fail;
	}
	if (q->compression_type > 1 ||
	    (q->compression_type && !(q->incompat & QCOW2_INCOMPAT_COMPRESSION))) {
		ret = err_set(e, ENOTSUP, "%s: unsupported compression type %u", path, q->compression_type);
		goto fail;
	}
	q->ext_l2 = q->incompat & QCOW2_INCOMPAT_EXTL2;
	if (q->ext_l2 && q->cluster_bits < 14) {
		ret = err_set(e, EINVAL, "%s: extended L2 entries need clusters of 16 KiB or more", path);
		goto fail;
	}
	q->l2_entry_size = q->ext_l2 ? 16 : 8;
	q->l2_bits = q->cluster_bits - (q->ext_l2 ? 4 : 3);
	q->rb_bits = q->cluster_bits + 3 - q->refcount_order;
	q->refcount_max = q->refcount_order == 6 ? UINT64_MAX : (1ull << (1u << q->refcount_order)) - 1;
	q->csize_shift = 62 - (q->cluster_bits - 8);
	q->csize_mask = (1ull << (q->cluster_bits - 8)) - 1;
	q->coffset_mask = (1ull << q->csize_shift) - 1;
	if (q->size > QCOW2_MAX_SIZE) {
		ret = err_set(e, EINVAL, "%s: virtual size %llu is too large", path, (unsigned long long)q->size);
		goto fail;
	}
	/* L1 table: big enough for the virtual size, bounded, inside the file. */
	need_l1 = (q->size + (q->cluster_size << q->l2_bits) - 1) >> (q->cluster_bits + q->l2_bits);
	if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES || q->l1_size < need_l1) {
		ret = err_set(e, EINVAL, "%s: L1 table size %u is invalid for a %llu-byte disk", path,
			      q->l1_size, (unsigned long long)q->size);
		goto fail;
	}
	if ((q->l1_offset & (q->cluster_size - 1)) || (q->l1_size && q->l1_offset < q->cluster_size) ||
	    !range_ok(q->l1_offset, (uint64_t)q->l1_size * 8, file_size)) {
		ret = err_set(e, EINVAL, "%s: L1 table offset 0x%llx is invalid or beyond end of file", path,
			      (unsigned long long)q->l1_offset);
		goto fail;
	}
	if (q->reftable_clusters == 0 ||
	    (uint64_t)q->reftable_clusters * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES ||
	    (q->reftable_offset & (q->cluster_size - 1)) || q->reftable_offset < q->cluster_size ||
	    !range_ok(q->reftable_offset, (uint64_t)q->reftable_clusters * q->cluster_size, file_size)) {
		ret = err_set(e, EINVAL, "%s: refcount table (offset 0x%llx, %u clusters) is invalid", path,
			      (unsigned long long)q->reftable_offset, q->reftable_clusters);
		goto fail;
	}
	if (q->nb_snapshots && q->snapshots_offset < q->cluster_size) {
		ret = err_set(e, EINVAL, "%s: snapshot table overlaps the header", path);
		goto fail;
	}
	if (q->backing_offset) {
		img->backing_name = calloc(1, q->backing_len + 1);
		if (!img->backing_name) {
			ret = err_set(e, ENOMEM, "out of memory");
			goto fail;
		}
		memcpy(img->backing_name, hdr + q->backing_offset, q->backing_len);
		if (strlen(img->backing_name) != q->backing_len) {
			ret = err_set(e, EINVAL, "%s: backing file name contains a NUL byte", path);
			goto fail;
		}
	}
	ret = load_table(q, q->l1_offset, q->l1_size, &q->l1);
	if (ret == 0) {
		q->reftable_size = (uint64_t)q->reftable_clusters * q->cluster_size / 8;
		ret = load_table(q, q->reftable_offset, q->reftable_size, &q->reftable);
	}
	if (ret < 0) {
		ret = err_set(e, -ret, "%s: cannot read tables: %s", path, strerror(-ret));
		goto fail;
	}
	ret = read_snapshots(q, file_size, e);
	if (ret < 0)
		goto fail;
	{
		unsigned n_l2 = (unsigned)MAX(16, MIN(2048, (16 * MiB) >> q->cluster_bits));
		unsigned n_rb = (unsigned)MAX(8, MIN(1024, (4 * MiB) >> q->cluster_bits));

		q->cbuf = malloc(2 * q->cluster_size + 512);
		q->dbuf = malloc(q->cluster_size);
		q->tmp = malloc(q->cluster_size);
		if (!q->cbuf || !q->dbuf || !q->tmp || qcow2_cache_init(&q->l2c, n_l2, q->cluster_size, true) ||
		    qcow2_cache_init(&q->rbc, n_rb, q->cluster_size, false)) {
			ret = err_set(e, ENOMEM, "out of memory");
			goto fail;
		}
	}
	q->alloc_end = (file_size + q->cluster_size - 1) >> q->cluster_bits;
	q->corrupt = q->incompat & QCOW2_INCOMPAT_CORRUPT;
	if (!img->read_only) {
		if (q->corrupt && !o->for_check) {
			ret = err_set(e, EROFS, "%s: image is marked corrupt; it can only be opened read-only "
				      "(repair with 'kvmm img check -r all')", path);
			goto fail;
		}
		if (q->ext_l2) {
			ret = err_set(e, ENOTSUP, "%s: writing images with extended L2 entries is not supported; "
				      "open read-only", path);
			goto fail;
		}
		q->writable = true;
		if (q->autoclear) {
			/* We do not maintain what autoclear bits describe (bitmaps): clear them. */
			uint64_t z = 0;

			q->autoclear = 0;
			qcow2_write_header_field(q, 88, &z, 8);
		}
		if ((q->incompat & QCOW2_INCOMPAT_DIRTY) && !o->for_check) {
			/* Refcounts may be stale (lazy refcounts): rebuild before writing. */
			ret = qcow2_check_and_repair_dirty(img, e);
			if (ret < 0)
				goto fail;
		}
	}
	free(hdr);
	return 0;
fail:
	free(hdr);
	qcow2_free_state(q);
	img->drv = NULL;
	img->ops = NULL;
	return ret;
}
