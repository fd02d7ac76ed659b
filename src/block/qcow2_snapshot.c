// SPDX-License-Identifier: MIT
/* qcow2_snapshot.c: internal snapshots (create, apply, delete) of a qcow2 image (spec: "Snapshots"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "block/qcow2.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }

static int find(struct qcow2 *q, const char *name)
{
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (!strcmp(q->snaps[i].name, name))
			return (int)i;
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (!strcmp(q->snaps[i].id, name))
			return (int)i;
	return -1;
}

/* Add delta to the refcount of every cluster a table tree references (L2 tables, data). */
static int tree_refcount(struct qcow2 *q, const uint64_t *l1, uint32_t l1_size, int64_t delta)
{
	uint64_t entries = 1ull << q->l2_bits;

	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t l2 = l1[i] & QCOW2_OFFSET_MASK;
		struct qcow2_cache_entry *ce;
		int ret;

		if (!l2)
			continue;
		if (l2 & (q->cluster_size - 1))
			return qcow2_mark_corrupt(q, "L2 table offset 0x%llx is not aligned", (unsigned long long)l2);
		ret = qcow2_cache_get(q, &q->l2c, l2, true, &ce);
		if (ret < 0)
			return ret;
		for (uint64_t j = 0; j < entries && ret == 0; j++) {
			uint64_t e = qcow2_l2_entry(q, ce->buf, j);

			if (e & QCOW2_OFLAG_COMPRESSED) {
				uint64_t coff = (e & q->coffset_mask) & ~511ull;
				uint64_t nsect = ((e >> q->csize_shift) & q->csize_mask) + 1;

				for (uint64_t c = coff >> q->cluster_bits;
				     ret == 0 && c <= (coff + nsect * 512 - 1) >> q->cluster_bits; c++)
					ret = qcow2_update_refcount(q, c, delta);
			} else if (e & QCOW2_OFFSET_MASK) {
				ret = qcow2_update_refcount(q, (e & QCOW2_OFFSET_MASK) >> q->cluster_bits, delta);
			}
		}
		qcow2_cache_put(ce);
		/* The table itself last: dropping it to 0 evicts it from the cache. */
		if (ret == 0)
			ret = qcow2_update_refcount(q, l2 >> q->cluster_bits, delta);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* OFLAG_COPIED in the active tables: set exactly when the refcount is 1 (spec: "COPIED"). */
static int fix_copied(struct qcow2 *q)
{
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t l2 = q->l1[i] & QCOW2_OFFSET_MASK, rc, want;
		struct qcow2_cache_entry *ce;
		int ret;

		if (!l2)
			continue;
		ret = qcow2_get_refcount(q, l2 >> q->cluster_bits, &rc);
		if (ret < 0)
			return ret;
		want = rc == 1 ? q->l1[i] | QCOW2_OFLAG_COPIED : q->l1[i] & ~QCOW2_OFLAG_COPIED;
		if (want != q->l1[i]) {
			q->l1[i] = want;
			q->l1_dirty = true;
		}
		ret = qcow2_cache_get(q, &q->l2c, l2, true, &ce);
		if (ret < 0)
			return ret;
		for (uint64_t j = 0; j < (1ull << q->l2_bits) && ret == 0; j++) {
			uint64_t e = qcow2_l2_entry(q, ce->buf, j), h = e & QCOW2_OFFSET_MASK;

			if ((e & QCOW2_OFLAG_COMPRESSED) || !h)
				continue;
			ret = qcow2_get_refcount(q, h >> q->cluster_bits, &rc);
			want = rc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED;
			if (ret == 0 && want != e) {
				qcow2_l2_set(q, ce->buf, j, want);
				ce->dirty = true;
			}
		}
		qcow2_cache_put(ce);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Bytes of the snapshot table as stored: each entry padded to 8 (spec: "Snapshots"). */
uint64_t qcow2_snapshot_table_bytes(const struct qcow2 *q)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		n = ALIGN_UP(n + 40 + q->snaps[i].extra_size + strlen(q->snaps[i].id) + strlen(q->snaps[i].name), 8);
	return n;
}

/*
 * Write q->snaps as a new table, switch the header to it in one write
 * (nb_snapshots and snapshots_offset are adjacent), then free the old one.
 */
static int write_snapshot_table(struct qcow2 *q, uint64_t old_off, uint32_t old_n, uint64_t old_bytes)
{
	uint64_t bytes = qcow2_snapshot_table_bytes(q), off = 0, ncl = (bytes + q->cluster_size - 1) >> q->cluster_bits;
	uint8_t *t = calloc(1, ncl ? ncl * q->cluster_size : 1), hdr[12];
	uint64_t p = 0;
	int ret = 0;

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		struct qcow2_snapshot *s = &q->snaps[i];
		size_t il = strlen(s->id), nl = strlen(s->name);

		put64(t + p, s->l1_offset);
		put32(t + p + 8, s->l1_size);
		put16(t + p + 12, (uint16_t)il);
		put16(t + p + 14, (uint16_t)nl);
		put32(t + p + 16, s->date_sec);
		put32(t + p + 20, s->date_nsec);
		put64(t + p + 24, s->vm_clock_nsec);
		put32(t + p + 32, (uint32_t)MIN(s->vm_state_size, UINT32_MAX));
		put32(t + p + 36, s->extra_size);
		memcpy(t + p + 40, s->extra, s->extra_size);
		memcpy(t + p + 40 + s->extra_size, s->id, il);
		memcpy(t + p + 40 + s->extra_size + il, s->name, nl);
		p = ALIGN_UP(p + 40 + s->extra_size + il + nl, 8);
	}
	if (ncl)
		ret = qcow2_alloc_contig(q, ncl, &off);
	if (ret == 0)
		ret = qcow2_flush_meta(q);
	if (ret == 0 && ncl)
		ret = io_pwrite(&q->img->io, t, ncl * q->cluster_size, off);
	if (ret == 0)
		ret = io_fdatasync(&q->img->io);
	free(t);
	if (ret < 0)
		return ret;
	put32(hdr, q->nb_snapshots);
	put64(hdr + 4, off);
	ret = qcow2_write_header_field(q, 60, hdr, 12);
	if (ret == 0)
		ret = io_fdatasync(&q->img->io);
	if (ret < 0)
		return ret;
	q->snapshots_offset = off;
	for (uint64_t c = 0; old_n && c < (old_bytes + q->cluster_size - 1) >> q->cluster_bits; c++) {
		ret = qcow2_update_refcount(q, (old_off >> q->cluster_bits) + c, -1);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int writable(struct image *img, struct qcow2 **qp, struct err *e)
{
	struct qcow2 *q = qcow2_of(img);

	if (!q)
		return err_set(e, ENOTSUP, "%s: snapshots need a qcow2 image", img->path);
	if (!q->writable || q->corrupt)
		return err_set(e, EROFS, "%s: image is not writable", img->path);
	*qp = q;
	return 0;
}

int qcow2_snapshot_create(struct image *img, const char *name, struct err *e)
{
	uint64_t l1_bytes, l1_off = 0, old_off, old_bytes, *be = NULL;
	uint32_t old_n, next_id = 1;
	struct qcow2_snapshot *ns, *s;
	struct timespec now;
	struct qcow2 *q = NULL;
	int ret = writable(img, &q, e);

	if (ret < 0)
		return ret;
	if (!*name || strlen(name) > 65535 || find(q, name) >= 0)
		return err_set(e, EEXIST, "%s: a snapshot named '%s' exists or the name is invalid", img->path, name);
	if (q->nb_snapshots >= QCOW2_MAX_SNAPSHOTS)
		return err_set(e, ENOSPC, "%s: too many snapshots", img->path);
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		next_id = MAX(next_id, (uint32_t)strtoul(q->snaps[i].id, NULL, 10) + 1);
	old_off = q->snapshots_offset;
	old_n = q->nb_snapshots;
	old_bytes = qcow2_snapshot_table_bytes(q);
	ret = qcow2_flush_meta(q);
	/* 1. A copy of the active L1 table. */
	l1_bytes = (uint64_t)q->l1_size * 8;
	if (ret == 0 && l1_bytes)
		ret = qcow2_alloc_contig(q, (l1_bytes + q->cluster_size - 1) >> q->cluster_bits, &l1_off);
	if (ret == 0 && l1_bytes) {
		be = calloc(1, ALIGN_UP(l1_bytes, q->cluster_size));
		if (!be)
			ret = -ENOMEM;
		for (uint32_t i = 0; be && i < q->l1_size; i++)
			be[i] = __builtin_bswap64(q->l1[i]);
		if (be)
			ret = io_pwrite(&img->io, be, ALIGN_UP(l1_bytes, q->cluster_size), l1_off);
		free(be);
	}
	/* 2. Everything the active tables reference gains a reference; COPIED goes. Durable
	 *    before the snapshot table names the copy: a crash in between only leaks. */
	if (ret == 0)
		ret = tree_refcount(q, q->l1, q->l1_size, 1);
	if (ret == 0)
		ret = fix_copied(q);
	if (ret == 0)
		ret = qcow2_flush_meta(q);
	if (ret < 0)
		return err_set(e, -ret, "%s: creating snapshot: %s", img->path, strerror(-ret));
	/* 3. The new table entry. */
	ns = realloc(q->snaps, (q->nb_snapshots + 1) * sizeof(*ns));
	if (!ns)
		return err_set(e, ENOMEM, "out of memory");
	q->snaps = ns;
	s = &ns[q->nb_snapshots];
	memset(s, 0, sizeof(*s));
	clock_gettime(CLOCK_REALTIME, &now);
	s->l1_offset = l1_off;
	s->l1_size = q->l1_size;
	s->date_sec = (uint32_t)now.tv_sec;
	s->date_nsec = (uint32_t)now.tv_nsec;
	s->disk_size = q->size;
	s->extra_size = 16;
	s->extra = calloc(1, 16);
	s->name = strdup(name);
	if (asprintf(&s->id, "%u", next_id) < 0)
		s->id = NULL;
	if (!s->extra || !s->name || !s->id) {
		free(s->extra);
		free(s->name);
		free(s->id);
		return err_set(e, ENOMEM, "out of memory");
	}
	put64(s->extra + 8, q->size);
	q->nb_snapshots++;
	ret = write_snapshot_table(q, old_off, old_n, old_bytes);
	if (ret == 0)
		ret = qcow2_flush_meta(q);
	if (ret < 0)
		return err_set(e, -ret, "%s: writing the snapshot table: %s", img->path, strerror(-ret));
	return 0;
}

static int read_l1(struct qcow2 *q, const struct qcow2_snapshot *s, uint64_t **out)
{
	uint64_t *l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	int ret;

	if (!l1)
		return -ENOMEM;
	ret = io_pread(&q->img->io, l1, (uint64_t)s->l1_size * 8, s->l1_offset);
	if (ret < 0) {
		free(l1);
		return ret;
	}
	for (uint32_t i = 0; i < s->l1_size; i++)
		l1[i] = __builtin_bswap64(l1[i]);
	*out = l1;
	return 0;
}

int qcow2_snapshot_apply(struct image *img, const char *name, struct err *e)
{
	uint64_t *sl1 = NULL, *old = NULL;
	struct qcow2_snapshot *s;
	struct qcow2 *q = NULL;
	int idx, ret = writable(img, &q, e);

	if (ret < 0)
		return ret;
	idx = find(q, name);
	if (idx < 0)
		return err_set(e, ENOENT, "%s: no snapshot named '%s'", img->path, name);
	s = &q->snaps[idx];
	if (s->disk_size != q->size || s->l1_size > q->l1_size)
		return err_set(e, ENOTSUP, "%s: snapshot '%s' has another disk size", img->path, name);
	ret = read_l1(q, s, &sl1);
	if (ret == 0)
		ret = qcow2_flush_meta(q);
	/* 1. The snapshot's tree gains a reference (durable first). */
	if (ret == 0)
		ret = tree_refcount(q, sl1, s->l1_size, 1);
	if (ret == 0)
		ret = qcow2_flush_meta(q);
	/* 2. The active L1 becomes the snapshot's. */
	if (ret == 0 && !(old = malloc((size_t)q->l1_size * 8)))
		ret = -ENOMEM;
	if (ret == 0) {
		memcpy(old, q->l1, (size_t)q->l1_size * 8);
		memset(q->l1, 0, (size_t)q->l1_size * 8);
		memcpy(q->l1, sl1, (size_t)s->l1_size * 8);
		q->l1_dirty = true;
		q->dbuf_entry = 0;
		ret = qcow2_flush_meta(q);
	}
	/* 3. Only then does the old tree lose its reference. */
	if (ret == 0)
		ret = tree_refcount(q, old, q->l1_size, -1);
	if (ret == 0)
		ret = fix_copied(q);
	if (ret == 0)
		ret = qcow2_flush_meta(q);
	free(sl1);
	free(old);
	if (ret < 0)
		return err_set(e, -ret, "%s: applying snapshot: %s", img->path, strerror(-ret));
	return 0;
}

int qcow2_snapshot_delete(struct image *img, const char *name, struct err *e)
{
	uint64_t *sl1 = NULL, old_off, old_bytes;
	struct qcow2_snapshot s;
	uint32_t old_n;
	struct qcow2 *q = NULL;
	int idx, ret = writable(img, &q, e);

	if (ret < 0)
		return ret;
	idx = find(q, name);
	if (idx < 0)
		return err_set(e, ENOENT, "%s: no snapshot named '%s'", img->path, name);
	ret = read_l1(q, &q->snaps[idx], &sl1);
	if (ret < 0)
		return err_set(e, -ret, "%s: reading the snapshot: %s", img->path, strerror(-ret));
	old_off = q->snapshots_offset;
	old_n = q->nb_snapshots;
	old_bytes = qcow2_snapshot_table_bytes(q);
	s = q->snaps[idx];
	memmove(&q->snaps[idx], &q->snaps[idx + 1], (q->nb_snapshots - (uint32_t)idx - 1) * sizeof(s));
	q->nb_snapshots--;
	/* 1. The table stops naming it; 2. its tree and L1 table lose their references. */
	ret = write_snapshot_table(q, old_off, old_n, old_bytes);
	if (ret == 0)
		ret = tree_refcount(q, sl1, s.l1_size, -1);
	for (uint64_t c = 0; ret == 0 && s.l1_size && c < ((uint64_t)s.l1_size * 8 + q->cluster_size - 1) >> q->cluster_bits; c++)
		ret = qcow2_update_refcount(q, (s.l1_offset >> q->cluster_bits) + c, -1);
	if (ret == 0)
		ret = fix_copied(q);
	if (ret == 0)
		ret = qcow2_flush_meta(q);
	free(sl1);
	free(s.id);
	free(s.name);
	free(s.extra);
	if (ret < 0)
		return err_set(e, -ret, "%s: deleting snapshot: %s", img->path, strerror(-ret));
	return 0;
}
