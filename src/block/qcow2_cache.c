// SPDX-License-Identifier: MIT
/* qcow2_cache.c: the qcow2 metadata cache: L2 tables and refcount blocks, write-back, LRU, pinning. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"

/* ---- metadata cache: L2 tables and refcount blocks, write-back, LRU ---- */

static void free_set(struct qcow2_cache *c, int i)
{
	c->freemap[i / 64] |= 1ull << (i % 64);
	c->nfree++;
	c->e[i].where = QCOW2_CE_FREE;
}

static void free_clear(struct qcow2_cache *c, int i)
{
	c->freemap[i / 64] &= ~(1ull << (i % 64));
	c->nfree--;
	c->e[i].where = QCOW2_CE_NONE;
}

/* The lowest-numbered unused entry (the one a scan in index order meets first), -1: none. */
static int free_first(const struct qcow2_cache *c)
{
	if (!c->nfree)
		return -1;
	for (unsigned w = 0;; w++)
		if (c->freemap[w])
			return (int)(w * 64 + (unsigned)__builtin_ctzll(c->freemap[w]));
}

static struct qcow2_lru_list *list_of(struct qcow2_cache *c, int i)
{
	return c->e[i].where == QCOW2_CE_DIRTY ? &c->dirty : &c->clean;
}

static void list_remove(struct qcow2_cache *c, int i)
{
	struct qcow2_cache_entry *ce = &c->e[i];
	struct qcow2_lru_list *l = list_of(c, i);

	if (ce->where != QCOW2_CE_CLEAN && ce->where != QCOW2_CE_DIRTY)
		return;
	if (ce->prev_lru != -1)
		c->e[ce->prev_lru].next_lru = ce->next_lru;
	else
		l->head = ce->next_lru;
	if (ce->next_lru != -1)
		c->e[ce->next_lru].prev_lru = ce->prev_lru;
	else
		l->tail = ce->prev_lru;
	ce->prev_lru = ce->next_lru = -1;
	ce->where = QCOW2_CE_NONE;
}

/* Insert entry i before `at` (-1: at the tail) of list l. */
static void list_insert_before(struct qcow2_cache *c, struct qcow2_lru_list *l, int i, int at)
{
	struct qcow2_cache_entry *ce = &c->e[i];

	ce->next_lru = at;
	ce->prev_lru = at == -1 ? l->tail : c->e[at].prev_lru;
	if (ce->prev_lru != -1)
		c->e[ce->prev_lru].next_lru = i;
	else
		l->head = i;
	if (at != -1)
		c->e[at].prev_lru = i;
	else
		l->tail = i;
	ce->where = l == &c->dirty ? QCOW2_CE_DIRTY : QCOW2_CE_CLEAN;
}

/* An entry that changed lists joins the other one in lru order: mostly near the tail. */
static void list_add_sorted(struct qcow2_cache *c, int i)
{
	struct qcow2_lru_list *l = c->e[i].dirty ? &c->dirty : &c->clean;
	int at = -1, p = l->tail;

	while (p != -1 && c->e[p].lru > c->e[i].lru) {
		at = p;
		p = c->e[p].prev_lru;
	}
	list_insert_before(c, l, i, at);
}

/* The least recently used entry of l that is not pinned, -1: none. Pinned entries are
 * few and were got recently, so they sit near the tail. */
static int first_unpinned(const struct qcow2_cache *c, const struct qcow2_lru_list *l)
{
	int i = l->head;

	while (i != -1 && c->e[i].pins)
		i = c->e[i].next_lru;
	return i;
}

/* Entries on the dirty list that were written back move to the clean list, in lru order
 * (both lists are sorted, so one merge pass). */
static void settle_written(struct qcow2_cache *c)
{
	int cur = c->clean.head, i = c->dirty.head;

	while (i != -1) {
		int next = c->e[i].next_lru;

		if (!c->e[i].dirty) {
			list_remove(c, i);
			while (cur != -1 && c->e[cur].lru < c->e[i].lru)
				cur = c->e[cur].next_lru;
			list_insert_before(c, &c->clean, i, cur);
		}
		i = next;
	}
}

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, size_t cs, bool is_l2)
{
	memset(c, 0, sizeof(*c));
	c->is_l2 = is_l2;
	c->n = n;
	c->nbuckets = n * 2;
	c->e = calloc(n, sizeof(*c->e));
	c->bucket = malloc(sizeof(int) * c->nbuckets);
	c->freemap = calloc((n + 63) / 64, sizeof(uint64_t));
	if (!c->e || !c->bucket || !c->freemap)
		return -ENOMEM;
	for (unsigned i = 0; i < c->nbuckets; i++)
		c->bucket[i] = -1;
	c->clean.head = c->clean.tail = c->dirty.head = c->dirty.tail = -1;
	/* Buffers are allocated on first use: most images touch few tables. */
	for (unsigned i = 0; i < n; i++) {
		c->e[i].cache = c;
		c->e[i].next = c->e[i].prev_lru = c->e[i].next_lru = -1;
		free_set(c, (int)i);
	}
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
	free(c->freemap);
	memset(c, 0, sizeof(*c));
}

static unsigned cache_hash(const struct qcow2_cache *c, uint64_t off)
{
	return (unsigned)((off >> 9) * 0x9e3779b97f4a7c15ull >> 32) % c->nbuckets;
}

/* Take entry i out of the hash; the caller files it (unused or pinned) afterwards. */
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
	int ret = 0;

	/* Index order, as before; written entries change lists after the loop. */
	for (unsigned i = 0; i < c->n; i++) {
		struct qcow2_cache_entry *ce = &c->e[i];

		if (ce->offset && ce->dirty) {
			ret = io_pwrite(&q->img->io, ce->buf, q->cluster_size, ce->offset);
			if (ret < 0)
				break;
			ce->dirty = false;
		}
	}
	settle_written(c);
	return ret;
}

int qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, bool fill,
		    struct qcow2_cache_entry **out)
{
	unsigned h = cache_hash(c, off);
	struct qcow2_cache_entry *ve;
	int i, victim;
	int ret;

	for (i = c->bucket[h]; i != -1; i = c->e[i].next) {
		if (c->e[i].offset == off) {
			/* Now the most recently used: to the tail, unless already there. */
			if (c->e[i].next_lru != -1) {
				struct qcow2_lru_list *l = list_of(c, i);

				list_remove(c, i);
				list_insert_before(c, l, i, -1);
			}
			c->e[i].lru = ++c->tick;
			c->e[i].pins++;
			if (!fill) /* a freshly allocated cluster: forget stale contents */
				memset(c->e[i].buf, 0, q->cluster_size);
			*out = &c->e[i];
			return 0;
		}
	}
	/* An unused entry, else the least recently used clean one: evicting a dirty L2
	 * table needs the ordered flush. */
	victim = free_first(c);
	if (victim == -1)
		victim = first_unpinned(c, &c->clean);
	if (victim == -1)
		victim = first_unpinned(c, &c->dirty);
	if (victim == -1)
		return -EBUSY; /* every entry pinned: a driver bug */
	ve = &c->e[victim];
	if (ve->offset && ve->dirty) {
		if (c->is_l2)
			ret = qcow2_flush_meta(q);
		else
			ret = io_pwrite(&q->img->io, ve->buf, q->cluster_size, ve->offset);
		if (ret < 0)
			return ret;
		ve->dirty = false;
	}
	/* The flush may have moved the victim to the clean list, or dropped it (unused). */
	if (ve->where == QCOW2_CE_FREE)
		free_clear(c, victim);
	else
		list_remove(c, victim);
	if (ve->offset)
		cache_unlink(c, victim);
	if (!ve->buf && !(ve->buf = aligned_alloc(512, c->cs))) {
		free_set(c, victim);
		return -ENOMEM;
	}
	if (fill) {
		ret = io_pread(&q->img->io, ve->buf, q->cluster_size, off);
		if (ret < 0) {
			free_set(c, victim);
			return ret;
		}
	} else {
		memset(ve->buf, 0, q->cluster_size);
	}
	ve->offset = off;
	ve->dirty = false;
	ve->lru = ++c->tick;
	ve->pins = 1;
	ve->next = c->bucket[h];
	c->bucket[h] = victim;
	list_insert_before(c, &c->clean, victim, -1);
	*out = ve;
	return 0;
}

void qcow2_cache_put(struct qcow2_cache_entry *ce)
{
	struct qcow2_cache *c;
	int i;

	if (!ce || !ce->pins || --ce->pins)
		return;
	c = ce->cache;
	i = (int)(ce - c->e);
	if (!ce->offset) {
		free_set(c, i); /* dropped while pinned */
	} else if (ce->dirty != (ce->where == QCOW2_CE_DIRTY)) {
		/* Made dirty while pinned: an unpinned entry is on the list its state names. */
		list_remove(c, i);
		list_add_sorted(c, i);
	}
}

/* Forget a cached cluster that is being freed or rewritten elsewhere. */
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off)
{
	for (int i = c->bucket[cache_hash(c, off)]; i != -1; i = c->e[i].next) {
		if (c->e[i].offset == off) {
			list_remove(c, i);
			c->e[i].dirty = false;
			cache_unlink(c, i);
			if (c->e[i].pins == 0)
				free_set(c, i);
			return;
		}
	}
}
