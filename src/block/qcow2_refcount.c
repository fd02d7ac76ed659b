// SPDX-License-Identifier: MIT
/* qcow2_refcount.c: qcow2 refcounts, cluster allocation and the crash-safe ordered metadata flush. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "block/qcow2.h"

/* Refcount block entries: sub-byte widths are packed LSB first (spec: "Refcount table"). */
uint64_t qcow2_rb_get(const struct qcow2 *q, const uint8_t *blk, uint64_t i)
{
	const uint8_t *p;

	switch (q->refcount_order) {
	case 0: return (blk[i / 8] >> (i % 8)) & 1;
	case 1: return (blk[i / 4] >> (2 * (i % 4))) & 3;
	case 2: return (blk[i / 2] >> (4 * (i % 2))) & 15;
	case 3: return blk[i];
	case 4: p = blk + i * 2; return (uint64_t)p[0] << 8 | p[1];
	case 5: p = blk + i * 4; return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
	default: return __builtin_bswap64(((const uint64_t *)blk)[i]);
	}
}

void qcow2_rb_set(const struct qcow2 *q, uint8_t *blk, uint64_t i, uint64_t v)
{
	unsigned sh;
	uint8_t *p;

	switch (q->refcount_order) {
	case 0: sh = i % 8; blk[i / 8] = (uint8_t)((blk[i / 8] & ~(1u << sh)) | (v & 1) << sh); break;
	case 1: sh = 2 * (i % 4); blk[i / 4] = (uint8_t)((blk[i / 4] & ~(3u << sh)) | (v & 3) << sh); break;
	case 2: sh = 4 * (i % 2); blk[i / 2] = (uint8_t)((blk[i / 2] & ~(15u << sh)) | (v & 15) << sh); break;
	case 3: blk[i] = (uint8_t)v; break;
	case 4: p = blk + i * 2; p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; break;
	case 5:
		p = blk + i * 4;
		p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
		break;
	default: ((uint64_t *)blk)[i] = __builtin_bswap64(v); break;
	}
}

static int refblock_offset(struct qcow2 *q, uint64_t rt_idx, uint64_t *off)
{
	*off = 0;
	if (rt_idx >= q->reftable_size)
		return 0;
	*off = q->reftable[rt_idx] & QCOW2_RT_OFFSET_MASK;
	if (*off && ((*off & (q->cluster_size - 1)) || *off < q->cluster_size))
		return qcow2_mark_corrupt(q, "refcount block offset 0x%llx is invalid",
					  (unsigned long long)*off);
	return 0;
}

int qcow2_get_refcount(struct qcow2 *q, uint64_t cluster, uint64_t *rc)
{
	struct qcow2_cache_entry *ce;
	uint64_t rb;
	int ret = refblock_offset(q, cluster >> q->rb_bits, &rb);

	*rc = 0;
	if (ret < 0 || !rb)
		return ret;
	ret = qcow2_cache_get(q, &q->rbc, rb, true, &ce);
	if (ret < 0)
		return ret;
	*rc = qcow2_rb_get(q, ce->buf, cluster & ((1ull << q->rb_bits) - 1));
	qcow2_cache_put(ce);
	return 0;
}

static int grow_reftable(struct qcow2 *q, uint64_t min_entries);

/*
 * Make sure the refcount block for range rt_idx exists. A new block goes to
 * the end of the image (alloc_end); it counts itself when it lands in its own
 * range, otherwise the end range gets its own block first (which then always
 * counts itself), so the recursion is at most one level deep.
 */
static int ensure_refblock(struct qcow2 *q, uint64_t rt_idx)
{
	struct qcow2_cache_entry *ce;
	uint64_t rb, pos, pos_rt;
	int ret;

	if (rt_idx >= q->reftable_size) {
		ret = grow_reftable(q, rt_idx + 1);
		if (ret < 0)
			return ret;
	}
	ret = refblock_offset(q, rt_idx, &rb);
	if (ret < 0 || rb)
		return ret;
	pos = q->alloc_end;
	pos_rt = pos >> q->rb_bits;
	if ((pos << q->cluster_bits) >> q->cluster_bits != pos || pos << q->cluster_bits >= QCOW2_MAX_SIZE)
		return -ENOSPC;
	if (pos_rt != rt_idx) {
		ret = ensure_refblock(q, pos_rt);
		if (ret < 0)
			return ret;
		/* That may have moved the end or even created our block: look again. */
		ret = refblock_offset(q, rt_idx, &rb);
		if (ret < 0 || rb)
			return ret;
		pos = q->alloc_end;
		pos_rt = pos >> q->rb_bits;
	}
	ret = qcow2_cache_get(q, &q->rbc, pos << q->cluster_bits, false, &ce);
	if (ret < 0)
		return ret;
	ce->dirty = true;
	q->alloc_end = pos + 1;
	q->reftable[rt_idx] = pos << q->cluster_bits;
	q->reftable_dirty = true;
	if (pos_rt == rt_idx) {
		qcow2_rb_set(q, ce->buf, pos & ((1ull << q->rb_bits) - 1), 1);
		qcow2_cache_put(ce);
		return 0;
	}
	qcow2_cache_put(ce);
	return qcow2_update_refcount(q, pos, 1);
}

int qcow2_update_refcount(struct qcow2 *q, uint64_t cluster, int64_t delta)
{
	struct qcow2_cache_entry *ce;
	uint64_t rt_idx = cluster >> q->rb_bits, rb, v, idx;
	int ret;

	if (delta > 0) {
		ret = ensure_refblock(q, rt_idx);
		if (ret < 0)
			return ret;
	}
	ret = refblock_offset(q, rt_idx, &rb);
	if (ret < 0)
		return ret;
	if (!rb)
		return qcow2_mark_corrupt(q, "freeing cluster %llu that has no refcount block",
					  (unsigned long long)cluster);
	ret = qcow2_cache_get(q, &q->rbc, rb, true, &ce);
	if (ret < 0)
		return ret;
	idx = cluster & ((1ull << q->rb_bits) - 1);
	v = qcow2_rb_get(q, ce->buf, idx);
	if ((delta < 0 && v < (uint64_t)-delta) || (delta > 0 && q->refcount_max - v < (uint64_t)delta)) {
		qcow2_cache_put(ce);
		return qcow2_mark_corrupt(q, "refcount of cluster %llu would leave its range (%llu%+lld)",
					  (unsigned long long)cluster, (unsigned long long)v, (long long)delta);
	}
	v += (uint64_t)delta;
	qcow2_rb_set(q, ce->buf, idx, v);
	ce->dirty = true;
	qcow2_cache_put(ce);
	if (v == 0) {
		/* A freed table must not be written back over its next owner's data. */
		qcow2_cache_drop(&q->l2c, cluster << q->cluster_bits);
		qcow2_cache_drop(&q->rbc, cluster << q->cluster_bits);
		if (cluster < q->free_hint)
			q->free_hint = cluster;
	}
	if (cluster >= q->alloc_end)
		q->alloc_end = cluster + 1;
	return 0;
}

/* First cluster with refcount 0 at or after `from`. */
static int find_free(struct qcow2 *q, uint64_t from, uint64_t *out)
{
	uint64_t c = from, per = 1ull << q->rb_bits;

	for (;;) {
		struct qcow2_cache_entry *ce;
		uint64_t rb;
		int ret;

		if (c >= q->alloc_end) {
			*out = c;
			return 0;
		}
		ret = refblock_offset(q, c >> q->rb_bits, &rb);
		if (ret < 0)
			return ret;
		if (!rb) {
			*out = c;
			return 0;
		}
		ret = qcow2_cache_get(q, &q->rbc, rb, true, &ce);
		if (ret < 0)
			return ret;
		for (uint64_t i = c & (per - 1); i < per && c < q->alloc_end; i++, c++) {
			if (qcow2_rb_get(q, ce->buf, i) == 0) {
				qcow2_cache_put(ce);
				*out = c;
				return 0;
			}
		}
		qcow2_cache_put(ce);
	}
}

int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *off)
{
	uint64_t c, rb;
	int ret;

	for (;;) {
		ret = find_free(q, q->free_hint, &c);
		if (ret < 0)
			return ret;
		if (c << q->cluster_bits >= QCOW2_MAX_SIZE)
			return -ENOSPC;
		ret = refblock_offset(q, c >> q->rb_bits, &rb);
		if (ret < 0)
			return ret;
		if (rb) {
			/* The refblock may have been placed at c itself just now. */
			uint64_t rc;

			ret = qcow2_get_refcount(q, c, &rc);
			if (ret < 0)
				return ret;
			if (rc == 0)
				break;
			q->free_hint = c + 1;
			continue;
		}
		ret = ensure_refblock(q, c >> q->rb_bits);
		if (ret < 0)
			return ret;
	}
	ret = qcow2_update_refcount(q, c, 1);
	if (ret < 0)
		return ret;
	q->free_hint = c + 1;
	*off = c << q->cluster_bits;
	return 0;
}

/* n contiguous clusters at the end of the image (compressed data, tables). */
int qcow2_alloc_contig(struct qcow2 *q, uint64_t n, uint64_t *off)
{
	uint64_t c;
	int ret;

	for (;;) {
		uint64_t start = q->alloc_end;
		bool moved = false;

		for (uint64_t r = start >> q->rb_bits; r <= (start + n - 1) >> q->rb_bits; r++) {
			ret = ensure_refblock(q, r);
			if (ret < 0)
				return ret;
			if (q->alloc_end != start) {
				moved = true;
				break;
			}
		}
		if (!moved) {
			c = start;
			break;
		}
	}
	if ((c + n) << q->cluster_bits >= QCOW2_MAX_SIZE)
		return -ENOSPC;
	for (uint64_t i = 0; i < n; i++) {
		ret = qcow2_update_refcount(q, c + i, 1);
		if (ret < 0)
			return ret;
	}
	*off = c << q->cluster_bits;
	return 0;
}

/*
 * Refcount decrements wait until the L2/L1 tables that stopped referencing
 * the cluster are on disk; otherwise a crash could leave a cluster that is
 * still referenced with refcount 0, and reusing it would give it two owners.
 * Compressed entries drop one reference on every host cluster they touch.
 */
static int push_pending(struct qcow2 *q, uint64_t cluster)
{
	if (q->npending == q->cap_pending) {
		size_t cap = q->cap_pending ? q->cap_pending * 2 : 64;
		uint64_t *p = realloc(q->pending, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		q->pending = p;
		q->cap_pending = cap;
	}
	q->pending[q->npending++] = cluster;
	return 0;
}

int qcow2_defer_free(struct qcow2 *q, uint64_t entry, bool compressed)
{
	if (compressed) {
		uint64_t coff = entry & q->coffset_mask;
		uint64_t nsect = ((entry >> q->csize_shift) & q->csize_mask) + 1;
		uint64_t first = (coff & ~511ull) >> q->cluster_bits;
		uint64_t last = ((coff & ~511ull) + nsect * 512 - 1) >> q->cluster_bits;

		for (uint64_t c = first; c <= last; c++) {
			int ret = push_pending(q, c);
			if (ret < 0)
				return ret;
		}
		if (q->dbuf_entry == entry)
			q->dbuf_entry = 0;
		return 0;
	}
	return push_pending(q, (entry & QCOW2_OFFSET_MASK) >> q->cluster_bits);
}

static int write_table(struct qcow2 *q, const uint64_t *t, uint64_t entries, uint64_t off)
{
	uint64_t bytes = ALIGN_UP(entries * 8, 512);
	uint64_t *be = calloc(1, bytes);
	int ret;

	if (!be)
		return -ENOMEM;
	for (uint64_t i = 0; i < entries; i++)
		be[i] = __builtin_bswap64(t[i]);
	ret = io_pwrite(&q->img->io, be, entries * 8, off);
	free(be);
	return ret;
}

static bool cache_has_dirty(const struct qcow2_cache *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].offset && c->e[i].dirty)
			return true;
	return false;
}

/*
 * The ordered flush (crash consistency). Each step is made durable before
 * the next one can point at it:
 *   1. refcount blocks (increments only), then sync: data and refcounts durable
 *   2. refcount table (new blocks), then sync
 *   3. L2 tables, then sync               4. L1 table, then sync
 *   5. deferred decrements into refcount blocks, written, then sync.
 * A crash between steps leaves clusters with too high a refcount (leaks), never
 * a referenced cluster with too low a one.
 */
int qcow2_flush_meta(struct qcow2 *q)
{
	struct io_engine *io = &q->img->io;
	bool synced = false;
	int ret;

	if (!q->writable)
		return 0;
	if (q->corrupt)
		return -EIO;
	if (cache_has_dirty(&q->rbc)) {
		ret = qcow2_cache_write(q, &q->rbc);
		if (ret < 0)
			return ret;
	}
	if (q->reftable_dirty) {
		ret = io_fdatasync(io);
		if (ret < 0)
			return ret;
		ret = write_table(q, q->reftable, q->reftable_size, q->reftable_offset);
		if (ret < 0)
			return ret;
		q->reftable_dirty = false;
	}
	if (cache_has_dirty(&q->l2c)) {
		ret = io_fdatasync(io);
		if (ret < 0)
			return ret;
		ret = qcow2_cache_write(q, &q->l2c);
		if (ret < 0)
			return ret;
	}
	if (q->l1_dirty) {
		ret = io_fdatasync(io);
		if (ret < 0)
			return ret;
		ret = write_table(q, q->l1, q->l1_size, q->l1_offset);
		if (ret < 0)
			return ret;
		q->l1_dirty = false;
	}
	if (q->npending) {
		size_t n = q->npending;

		ret = io_fdatasync(io);
		if (ret < 0)
			return ret;
		q->npending = 0;
		for (size_t i = 0; i < n; i++) {
			ret = qcow2_update_refcount(q, q->pending[i], -1);
			if (ret < 0)
				return ret;
		}
		ret = qcow2_cache_write(q, &q->rbc);
		if (ret < 0)
			return ret;
	}
	ret = io_fdatasync(io);
	synced = true;
	(void)synced;
	return ret;
}

/*
 * Replace the refcount table with a bigger one at the end of the image. The
 * new table and any refcount blocks it needs for itself are laid out together,
 * made durable, then the header is switched in one write (offset and size are
 * adjacent), then the old table is freed.
 */
static int grow_reftable(struct qcow2 *q, uint64_t min_entries)
{
	uint64_t per_cl = q->cluster_size / 8, entries, n_tab, k = 0, start, *nt, old_off;
	uint64_t old_size = q->reftable_size, *old = q->reftable;
	uint32_t old_clusters = q->reftable_clusters;
	uint8_t hdr[12];
	int ret;

	ret = qcow2_flush_meta(q);
	if (ret < 0)
		return ret;
	start = q->alloc_end;
	entries = MAX(min_entries, old_size + old_size / 2);
	for (;;) {
		uint64_t first_r, last_r, missing = 0;

		n_tab = (entries + per_cl - 1) / per_cl;
		first_r = start >> q->rb_bits;
		last_r = (start + n_tab + k - 1) >> q->rb_bits;
		if (last_r + 1 > entries) {
			entries = last_r + 1;
			continue;
		}
		for (uint64_t r = first_r; r <= last_r; r++)
			if (r >= old_size || !(old[r] & QCOW2_RT_OFFSET_MASK))
				missing++;
		if (missing == k)
			break;
		k = missing;
	}
	entries = n_tab * per_cl;
	if (n_tab * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
		return -ENOSPC;
	nt = calloc(entries, 8);
	if (!nt)
		return -ENOMEM;
	memcpy(nt, old, old_size * 8);
	/* New refcount blocks right after the new table, one per uncovered range. */
	{
		uint64_t pos = start + n_tab;

		for (uint64_t r = start >> q->rb_bits; r <= (start + n_tab + k - 1) >> q->rb_bits; r++) {
			struct qcow2_cache_entry *ce;

			if (nt[r] & QCOW2_RT_OFFSET_MASK)
				continue;
			ret = qcow2_cache_get(q, &q->rbc, pos << q->cluster_bits, false, &ce);
			if (ret < 0) {
				free(nt);
				return ret;
			}
			ce->dirty = true;
			qcow2_cache_put(ce);
			nt[r] = pos << q->cluster_bits;
			pos++;
		}
	}
	q->reftable = nt;
	q->reftable_size = entries;
	q->alloc_end = start + n_tab + k;
	for (uint64_t c = start; c < start + n_tab + k; c++) {
		ret = qcow2_update_refcount(q, c, 1);
		if (ret < 0)
			goto undo;
	}
	ret = qcow2_cache_write(q, &q->rbc);
	if (ret == 0)
		ret = write_table(q, nt, entries, start << q->cluster_bits);
	if (ret == 0)
		ret = io_fdatasync(&q->img->io);
	if (ret < 0)
		goto undo;
	old_off = q->reftable_offset;
	{
		uint64_t o = __builtin_bswap64(start << q->cluster_bits);
		uint32_t n = __builtin_bswap32((uint32_t)n_tab);

		memcpy(hdr, &o, 8);
		memcpy(hdr + 8, &n, 4);
	}
	ret = qcow2_write_header_field(q, 48, hdr, 12);
	if (ret == 0)
		ret = io_fdatasync(&q->img->io);
	if (ret < 0)
		goto undo;
	q->reftable_offset = start << q->cluster_bits;
	q->reftable_clusters = (uint32_t)n_tab;
	q->reftable_dirty = false;
	free(old);
	for (uint64_t i = 0; i < old_clusters; i++) {
		ret = qcow2_update_refcount(q, (old_off >> q->cluster_bits) + i, -1);
		if (ret < 0)
			return ret;
	}
	return 0;
undo:
	/* The header still names the old table; clusters written so far are leaks. */
	q->reftable = old;
	q->reftable_size = old_size;
	free(nt);
	return ret;
}
