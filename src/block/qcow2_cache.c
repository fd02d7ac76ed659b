// SPDX-License-Identifier: MIT
/* qcow2_cache.c: the qcow2 metadata cache: L2 tables and refcount blocks, write-back, LRU, pinning. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"

/* ---- metadata cache: L2 tables and refcount blocks, write-back, LRU ---- */

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, size_t cs, bool is_l2)
{
	memset(c, 0, sizeof(*c));
	c->is_l2 = is_l2;
	c->n = n;
	c->nbuckets = n * 2;
	c->e = calloc(n, sizeof(*c->e));
	c->bucket = malloc(sizeof(int) * c->nbuckets);
	if (!c->e || !c->bucket)
		return -ENOMEM;
	for (unsigned i = 0; i < c->nbuckets; i++)
		c->bucket[i] = -1;
	/* Buffers are allocated on first use: most images touch few tables. */
	for (unsigned i = 0; i < n; i++)
		c->e[i].next = -1;
	c->cs = cs;
	return 0;
}

void qcow2_cache_fini(struct qcow2_cache *c)
{
	if (c->e)
		for (unsigned i = 0; i < c->n; i++)
			free(c->e[i].buf);
	free(c->e);
	free(c->bucket);
	memset(c, 0, sizeof(*c));
}

static unsigned cache_hash(const struct qcow2_cache *c, uint64_t off)
{
	return (unsigned)((off >> 9) * 0x9e3779b97f4a7c15ull >> 32) % c->nbuckets;
}

static void cache_unlink(struct qcow2_cache *c, int i)
{
	int *p = &c->bucket[cache_hash(c, c->e[i].offset)];

	while (*p != -1) {
		if (*p == i) {
			*p = c->e[i].next;
			break;
		}
		p = &c->e[*p].next;
	}
	c->e[i].next = -1;
	c->e[i].offset = 0;
}

/* Write every dirty entry of c (no ordering: callers order the caches). */
int qcow2_cache_write(struct qcow2 *q, struct qcow2_cache *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		struct qcow2_cache_entry *ce = &c->e[i];

		if (ce->offset && ce->dirty) {
			int ret = io_pwrite(&q->img->io, ce->buf, q->cluster_size, ce->offset);
			if (ret < 0)
				return ret;
			ce->dirty = false;
		}
	}
	return 0;
}

int qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, bool fill,
		    struct qcow2_cache_entry **out)
{
	unsigned h = cache_hash(c, off);
	int i, victim = -1;
	uint64_t best = UINT64_MAX;
	bool dirty_victim = false;
	int ret;

	for (i = c->bucket[h]; i != -1; i = c->e[i].next) {
		if (c->e[i].offset == off) {
			c->e[i].lru = ++c->tick;
			c->e[i].pins++;
			if (!fill) /* a freshly allocated cluster: forget stale contents */
				memset(c->e[i].buf, 0, q->cluster_size);
			*out = &c->e[i];
			return 0;
		}
	}
	/* Prefer a clean victim: evicting a dirty L2 table needs the ordered flush. */
	for (unsigned k = 0; k < c->n; k++) {
		struct qcow2_cache_entry *ce = &c->e[k];

		if (ce->pins)
			continue;
		if (!ce->offset) {
			victim = (int)k;
			dirty_victim = false;
			break;
		}
		if ((!ce->dirty && (dirty_victim || ce->lru < best)) || (victim == -1) ||
		    (ce->dirty && dirty_victim && ce->lru < best)) {
			victim = (int)k;
			best = ce->lru;
			dirty_victim = ce->dirty;
		}
	}
	if (victim == -1)
		return -EBUSY; /* every entry pinned: a driver bug */
	if (c->e[victim].offset && c->e[victim].dirty) {
		if (c->is_l2)
			ret = qcow2_flush_meta(q);
		else
			ret = io_pwrite(&q->img->io, c->e[victim].buf, q->cluster_size,
					c->e[victim].offset);
		if (ret < 0)
			return ret;
		c->e[victim].dirty = false;
	}
	if (c->e[victim].offset)
		cache_unlink(c, victim);
	if (!c->e[victim].buf && !(c->e[victim].buf = aligned_alloc(512, c->cs)))
		return -ENOMEM;
	if (fill) {
		ret = io_pread(&q->img->io, c->e[victim].buf, q->cluster_size, off);
		if (ret < 0)
			return ret;
	} else {
		memset(c->e[victim].buf, 0, q->cluster_size);
	}
	c->e[victim].offset = off;
	c->e[victim].dirty = false;
	c->e[victim].lru = ++c->tick;
	c->e[victim].pins = 1;
	c->e[victim].next = c->bucket[h];
	c->bucket[h] = victim;
	*out = &c->e[victim];
	return 0;
}

void qcow2_cache_put(struct qcow2_cache_entry *ce)
{
	if (ce && ce->pins)
		ce->pins--;
}

/* Forget a cached cluster that is being freed or rewritten elsewhere. */
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off)
{
	for (int i = c->bucket[cache_hash(c, off)]; i != -1; i = c->e[i].next) {
		if (c->e[i].offset == off) {
			c->e[i].dirty = false;
			cache_unlink(c, i);
			return;
		}
	}
}
