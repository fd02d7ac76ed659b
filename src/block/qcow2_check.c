// SPDX-License-Identifier: MIT
/* qcow2_check.c: recount every cluster reference and compare with the refcounts; repair leaks and errors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "block/qcow2.h"

struct counter {
	struct qcow2 *q;
	uint32_t *ref; /* computed references per cluster, saturating */
	uint64_t n;    /* clusters in the file */
	struct qcow2_check_result *r;
	FILE *out;
	uint8_t *l2buf; /* one cluster: the L2 table being walked (one buffer per check) */
};

static void note(struct counter *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct counter *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->out)
		return;
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
}

/* Count one reference to every cluster in [off, off+len). */
static void inc_range(struct counter *c, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (len == 0)
		return;
	first = off >> c->q->cluster_bits;
	last = (off + len - 1) >> c->q->cluster_bits;
	for (uint64_t i = first; i <= last; i++) {
		if (i >= c->n) {
			note(c, "ERROR: reference to cluster %llu beyond the end of the file",
			     (unsigned long long)i);
			c->r->corruptions++;
			return;
		}
		if (c->ref[i] != UINT32_MAX)
			c->ref[i]++;
	}
}

static int walk_l2(struct counter *c, uint64_t l2_off, bool active, uint64_t *last_host)
{
	struct qcow2 *q = c->q;
	uint64_t entries = 1ull << q->l2_bits;
	uint8_t *t = c->l2buf;
	int ret;

	ret = io_pread(&q->img->io, t, q->cluster_size, l2_off);
	if (ret < 0)
		return ret;
	for (uint64_t i = 0; i < entries; i++) {
		uint64_t e = qcow2_l2_entry(q, t, i), host = e & QCOW2_OFFSET_MASK;

		if (e & QCOW2_OFLAG_COMPRESSED) {
			uint64_t coff = e & q->coffset_mask;
			uint64_t nsect = ((e >> q->csize_shift) & q->csize_mask) + 1;

			inc_range(c, coff & ~511ull, nsect * 512);
			if (active) {
				c->r->allocated_clusters++;
				c->r->compressed_clusters++;
			}
			continue;
		}
		if (!host)
			continue;
		if (host & (q->cluster_size - 1)) {
			note(c, "ERROR: L2 entry 0x%llx: offset not cluster aligned", (unsigned long long)e);
			c->r->corruptions++;
			continue;
		}
		inc_range(c, host, q->cluster_size);
		if (active) {
			c->r->allocated_clusters++;
			if (*last_host && host != *last_host + q->cluster_size)
				c->r->fragmented_clusters++;
			*last_host = host;
		}
	}
	return 0;
}

static int walk_l1(struct counter *c, const uint64_t *l1, uint32_t size, uint64_t l1_off, bool active,
		   void (*progress)(void *, uint64_t, uint64_t), void *opaque)
{
	struct qcow2 *q = c->q;
	uint64_t last_host = 0;

	inc_range(c, l1_off, (uint64_t)size * 8);
	for (uint32_t i = 0; i < size; i++) {
		uint64_t l2 = l1[i] & QCOW2_OFFSET_MASK;
		int ret;

		if (progress && active)
			progress(opaque, i, size);
		if (!l2)
			continue;
		if ((l2 & (q->cluster_size - 1)) || (l2 >> q->cluster_bits) >= c->n) {
			note(c, "ERROR: L2 table offset 0x%llx invalid", (unsigned long long)l2);
			c->r->corruptions++;
			continue;
		}
		inc_range(c, l2, q->cluster_size);
		ret = walk_l2(c, l2, active, &last_host);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* OFLAG_COPIED must be set exactly when the refcount is 1 (active tables only). */
static int check_copied(struct counter *c, unsigned fix)
{
	struct qcow2 *q = c->q;

	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t l2 = q->l1[i] & QCOW2_OFFSET_MASK, rc;
		struct qcow2_cache_entry *ce;
		int ret;

		if (!l2 || (l2 & (q->cluster_size - 1)) || (l2 >> q->cluster_bits) >= c->n)
			continue;
		ret = qcow2_get_refcount(q, l2 >> q->cluster_bits, &rc);
		if (ret < 0)
			return ret;
		if ((rc == 1) != !!(q->l1[i] & QCOW2_OFLAG_COPIED)) {
			note(c, "ERROR OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%llx refcount=%llu", i,
			     (unsigned long long)q->l1[i], (unsigned long long)rc);
			if (fix & QCOW2_FIX_ERRORS) {
				q->l1[i] = rc == 1 ? q->l1[i] | QCOW2_OFLAG_COPIED : q->l1[i] & ~QCOW2_OFLAG_COPIED;
				q->l1_dirty = true;
				c->r->corruptions_fixed++;
			} else {
				c->r->corruptions++;
			}
		}
		ret = qcow2_cache_get(q, &q->l2c, l2, true, &ce);
		if (ret < 0)
			return ret;
		for (uint64_t j = 0; j < (1ull << q->l2_bits); j++) {
			uint64_t e = qcow2_l2_entry(q, ce->buf, j), host = e & QCOW2_OFFSET_MASK;

			if ((e & QCOW2_OFLAG_COMPRESSED) || !host || (host & (q->cluster_size - 1)) ||
			    (host >> q->cluster_bits) >= c->n)
				continue;
			ret = qcow2_get_refcount(q, host >> q->cluster_bits, &rc);
			if (ret < 0)
				break;
			if ((rc == 1) != !!(e & QCOW2_OFLAG_COPIED)) {
				note(c, "ERROR OFLAG_COPIED data cluster: l2_entry=%llx refcount=%llu",
				     (unsigned long long)e, (unsigned long long)rc);
				if (fix & QCOW2_FIX_ERRORS) {
					qcow2_l2_set(q, ce->buf, j,
						     rc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED);
					ce->dirty = true;
					c->r->corruptions_fixed++;
				} else {
					c->r->corruptions++;
				}
			}
		}
		qcow2_cache_put(ce);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int qcow2_check(struct image *img, unsigned fix, struct qcow2_check_result *r, FILE *out,
		void (*progress)(void *, uint64_t, uint64_t), void *opaque, struct err *e)
{
	struct qcow2 *q = qcow2_of(img);
	struct counter c = { .q = q, .r = r, .out = out };
	bool was_corrupt;
	int64_t fsize;
	uint64_t hi = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	if (!q)
		return err_set(e, ENOTSUP, "%s: check is only supported for qcow2 images", img->path);
	if (fix && !q->writable)
		return err_set(e, EROFS, "%s: repairing needs the image opened read-write", img->path);
	fsize = io_file_size(&img->io);
	if (fsize < 0)
		return err_set(e, (int)-fsize, "%s: %s", img->path, strerror((int)-fsize));
	/* Everything the image may reference lies in the file: bounded by its size. */
	c.n = ((uint64_t)fsize + q->cluster_size - 1) >> q->cluster_bits;
	c.n = MAX(c.n, q->alloc_end);
	c.ref = calloc(c.n ? c.n : 1, sizeof(*c.ref));
	c.l2buf = malloc(q->cluster_size);
	if (!c.ref || !c.l2buf) {
		free(c.ref);
		free(c.l2buf);
		return err_set(e, ENOMEM, "%s: out of memory for %llu clusters", img->path,
			       (unsigned long long)c.n);
	}
	was_corrupt = q->corrupt;
	q->corrupt = false; /* the repair itself must be able to write */
	ret = qcow2_flush_meta(q);
	if (ret < 0)
		goto io_fail;
	r->total_clusters = (q->size + q->cluster_size - 1) >> q->cluster_bits;
	inc_range(&c, 0, q->cluster_size);
	ret = walk_l1(&c, q->l1, q->l1_size, q->l1_offset, true, progress, opaque);
	for (uint32_t i = 0; ret == 0 && i < q->nb_snapshots; i++) {
		struct qcow2_snapshot *s = &q->snaps[i];
		uint64_t *l1 = calloc(s->l1_size ? s->l1_size : 1, 8);

		if (!l1) {
			ret = -ENOMEM;
			break;
		}
		ret = io_pread(&img->io, l1, (uint64_t)s->l1_size * 8, s->l1_offset);
		for (uint32_t j = 0; j < s->l1_size; j++)
			l1[j] = __builtin_bswap64(l1[j]);
		if (ret == 0)
			ret = walk_l1(&c, l1, s->l1_size, s->l1_offset, false, NULL, NULL);
		free(l1);
	}
	if (ret < 0)
		goto io_fail;
	if (q->nb_snapshots)
		inc_range(&c, q->snapshots_offset, qcow2_snapshot_table_bytes(q));
	inc_range(&c, q->reftable_offset, (uint64_t)q->reftable_clusters * q->cluster_size);
	for (uint64_t i = 0; i < q->reftable_size; i++) {
		uint64_t rb = q->reftable[i] & QCOW2_RT_OFFSET_MASK;

		if (!rb)
			continue;
		if ((rb & (q->cluster_size - 1)) || (rb >> q->cluster_bits) >= c.n) {
			note(&c, "ERROR refcount block %llu offset 0x%llx invalid", (unsigned long long)i,
			     (unsigned long long)rb);
			r->corruptions++;
			continue;
		}
		inc_range(&c, rb, q->cluster_size);
	}
	/* Compare. Stored < computed is corruption (a cluster could be handed out twice). */
	for (uint64_t i = 0; i < c.n; i++) {
		uint64_t stored;

		ret = qcow2_get_refcount(q, i, &stored);
		if (ret < 0) {
			if (ret == -EIO)
				break;
			goto io_fail;
		}
		if (c.ref[i] || stored)
			hi = i + 1;
		if (stored == c.ref[i])
			continue;
		if (stored > c.ref[i]) {
			note(&c, "%s cluster %llu refcount=%llu reference=%u",
			     fix & QCOW2_FIX_LEAKS ? "Repairing" : "Leaked", (unsigned long long)i,
			     (unsigned long long)stored, c.ref[i]);
			if (fix & QCOW2_FIX_LEAKS) {
				ret = qcow2_update_refcount(q, i, -(int64_t)(stored - c.ref[i]));
				if (ret < 0)
					goto io_fail;
				r->leaks_fixed++;
			} else {
				r->leaks++;
			}
		} else {
			note(&c, "%s cluster %llu refcount=%llu reference=%u",
			     fix & QCOW2_FIX_ERRORS ? "Repairing" : "ERROR", (unsigned long long)i,
			     (unsigned long long)stored, c.ref[i]);
			if (fix & QCOW2_FIX_ERRORS) {
				ret = qcow2_update_refcount(q, i, (int64_t)(c.ref[i] - stored));
				if (ret < 0)
					goto io_fail;
				r->corruptions_fixed++;
			} else {
				r->corruptions++;
			}
		}
	}
	ret = check_copied(&c, fix);
	if (ret < 0)
		goto io_fail;
	r->image_end_offset = hi << q->cluster_bits;
	if (fix) {
		ret = qcow2_flush_meta(q);
		if (ret < 0)
			goto io_fail;
		if (!r->corruptions && (q->incompat & (QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY))) {
			uint64_t v;

			q->incompat &= ~(QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY);
			v = __builtin_bswap64(q->incompat);
			ret = qcow2_write_header_field(q, 72, &v, 8);
			if (ret == 0)
				ret = io_fdatasync(&img->io);
			if (ret < 0)
				goto io_fail;
			was_corrupt = false;
		}
	}
	q->corrupt = was_corrupt || q->corrupt;
	free(c.ref);
	free(c.l2buf);
	return 0;
io_fail:
	q->corrupt = was_corrupt || q->corrupt;
	free(c.ref);
	free(c.l2buf);
	r->check_errors++;
	return err_set(e, -ret, "%s: check failed: %s", img->path, strerror(-ret));
}

/* Opening a dirty image read-write: rebuild refcounts first (lazy refcounts). */
int qcow2_check_and_repair_dirty(struct image *img, struct err *e)
{
	struct qcow2_check_result r;
	int ret = qcow2_check(img, QCOW2_FIX_LEAKS | QCOW2_FIX_ERRORS, &r, NULL, NULL, NULL, e);

	if (ret < 0)
		return err_prefix(e, ret, "repairing the dirty image");
	if (r.corruptions)
		return err_set(e, EIO, "%s: dirty image could not be repaired (%llu errors left)",
			       img->path, (unsigned long long)r.corruptions);
	return 0;
}
