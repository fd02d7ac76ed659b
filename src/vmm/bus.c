// SPDX-License-Identifier: MIT
/* bus.c: a sorted table of address ranges routing vCPU accesses to devices. */
#include "vmm/bus.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	const char *name;
	/* Readers: vCPU threads dispatching. Writers: (un)registration, e.g. PCI BAR moves. */
	pthread_rwlock_t lock;
	struct bus_range *ranges; /* sorted by base, non-overlapping */
	size_t n, cap;
};

struct bus *bus_create(const char *name)
{
	struct bus *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->name = name;
	pthread_rwlock_init(&b->lock, NULL);
	return b;
}

void bus_destroy(struct bus *b)
{
	if (!b)
		return;
	pthread_rwlock_destroy(&b->lock);
	free(b->ranges);
	free(b);
}

/* Index of the first range whose end is above addr (binary search). */
static size_t bus_lower(const struct bus *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &b->ranges[mid];

		if (r->base + (r->len - 1) < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque)
{
	size_t i;
	int ret = 0;

	if (len == 0 || base + (len - 1) < base || !ops)
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	i = bus_lower(b, base);
	if (i < b->n && b->ranges[i].base <= base + (len - 1)) {
		ret = -EEXIST;
		goto out;
	}
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 16;
		struct bus_range *nr = realloc(b->ranges, ncap * sizeof(*nr));

		if (!nr) {
			ret = -ENOMEM;
			goto out;
		}
		b->ranges = nr;
		b->cap = ncap;
	}
	memmove(&b->ranges[i + 1], &b->ranges[i], (b->n - i) * sizeof(*b->ranges));
	b->ranges[i] = (struct bus_range){ base, len, ops, opaque };
	b->n++;
out:
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_unregister(struct bus *b, uint64_t base)
{
	size_t i;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&b->lock);
	i = bus_lower(b, base);
	if (i < b->n && b->ranges[i].base == base) {
		memmove(&b->ranges[i], &b->ranges[i + 1], (b->n - i - 1) * sizeof(*b->ranges));
		b->n--;
		ret = 0;
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

bool bus_access(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	const struct bus_range *r = NULL;
	struct bus_range hit;
	size_t i;

	if (len == 0 || len > 8)
		return false;
	pthread_rwlock_rdlock(&b->lock);
	i = bus_lower(b, addr);
	if (i < b->n && b->ranges[i].base <= addr &&
	    range_ok(addr - b->ranges[i].base, len, b->ranges[i].len)) {
		hit = b->ranges[i];
		r = &hit;
	}
	/*
	 * The handler runs under the read lock so a concurrent unregister
	 * cannot free the device under it.
	 */
	if (r) {
		if (is_write) {
			if (r->ops->write)
				r->ops->write(r->opaque, addr - r->base, data, len);
		} else if (r->ops->read) {
			r->ops->read(r->opaque, addr - r->base, data, len);
		} else {
			memset(data, 0xff, len);
		}
	}
	pthread_rwlock_unlock(&b->lock);
	if (!r && !is_write)
		memset(data, 0xff, len);
	return r != NULL;
}
