// SPDX-License-Identifier: MIT
/* virtq.c: split virtqueue processing; everything read from the guest is copied once, then checked. */
#include "virtio/virtq.h"

#include <errno.h>
#include <string.h>

#include "base/util.h"
#include "vmm/mem.h"

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Ring layouts (virtio 1.2, 2.7.6 and 2.7.8), offsets in bytes. */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING(i) (4 + 2 * (uint64_t)(i))
#define AVAIL_USED_EVENT(n) (4 + 2 * (uint64_t)(n))
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING(i) (4 + 8 * (uint64_t)(i))
#define USED_AVAIL_EVENT(n) (4 + 8 * (uint64_t)(n))

/* The guest writes these concurrently: read and write each field exactly once, atomically. */
static uint16_t ld16(const struct virtq *q, uint64_t gpa)
{
	uint16_t *p = gm_ptr(q->gm, gpa, 2);

	return p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;
}

static void st16(const struct virtq *q, uint64_t gpa, uint16_t v)
{
	uint16_t *p = gm_ptr(q->gm, gpa, 2);

	if (p) {
		__atomic_store_n(p, v, __ATOMIC_RELEASE);
		gm_mark_dirty(q->gm, p, 2);
	}
}

int virtq_setup(struct virtq *q, const struct guest_mem *gm, uint16_t size, uint64_t desc,
		uint64_t avail, uint64_t used, bool event_idx, bool indirect)
{
	if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	/* Alignment (2.7.5) and presence in RAM of each whole area. */
	if ((desc & 15) || (avail & 1) || (used & 3))
		return -EINVAL;
	if (!gm_ptr(gm, desc, 16ULL * size) || !gm_ptr(gm, avail, 6 + 2ULL * size) ||
	    !gm_ptr(gm, used, 6 + 8ULL * size))
		return -EINVAL;
	q->gm = gm;
	q->size = size;
	q->desc_gpa = desc;
	q->avail_gpa = avail;
	q->used_gpa = used;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled_valid = false;
	q->ready = true;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

bool virtq_has_work(struct virtq *q)
{
	return q->ready && ld16(q, q->avail_gpa + AVAIL_IDX) != q->last_avail;
}

static int read_desc(const struct virtq *q, uint64_t table, uint32_t n, uint32_t i,
		     struct vring_desc *d)
{
	if (i >= n)
		return -EINVAL;
	return gm_read(q->gm, table + 16ULL * i, d, sizeof(*d)) ? -EINVAL : 0;
}

static int add_iov(const struct virtq *q, struct virtq_elem *e, const struct vring_desc *d)
{
	unsigned idx = e->out_num + e->in_num;
	void *p;

	if (idx >= VIRTQ_MAX_SG)
		return -EINVAL;
	/* Device-writable descriptors must follow all readable ones (2.7.4.2). */
	if (!(d->flags & VIRTQ_DESC_F_WRITE) && e->in_num)
		return -EINVAL;
	if (d->len == 0) {
		p = NULL;
	} else {
		p = gm_ptr(q->gm, d->addr, d->len);
		if (!p)
			return -EINVAL;
	}
	e->iov[idx].iov_base = p;
	e->iov[idx].iov_len = d->len;
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		e->in_num++;
		e->in_len += d->len;
	} else {
		e->out_num++;
		e->out_len += d->len;
	}
	return 0;
}

/* Walk an indirect table (2.7.5.3): no nesting, length a multiple of 16, inside RAM. */
static int walk_indirect(const struct virtq *q, struct virtq_elem *e, const struct vring_desc *ind,
			 unsigned *budget)
{
	uint32_t n = ind->len / 16, i = 0, steps = 0;
	struct vring_desc d;

	if (!q->indirect || ind->len == 0 || ind->len % 16 || n > VIRTQ_MAX_SG ||
	    !gm_ptr(q->gm, ind->addr, ind->len))
		return -EINVAL;
	for (;;) {
		if (++steps > n || (*budget)-- == 0)
			return -EINVAL; /* a loop inside the table */
		if (read_desc(q, ind->addr, n, i, &d))
			return -EINVAL;
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return -EINVAL;
		if (add_iov(q, e, &d))
			return -EINVAL;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_elem *e)
{
	uint16_t avail_idx, head;
	uint32_t i, steps = 0;
	unsigned budget = VIRTQ_MAX_SG;
	struct vring_desc d;

	if (!q->ready)
		return 0;
	avail_idx = ld16(q, q->avail_gpa + AVAIL_IDX);
	if (avail_idx == q->last_avail)
		return 0;
	/* More entries than the ring holds means a corrupt index (2.7.13.3). */
	if ((uint16_t)(avail_idx - q->last_avail) > q->size)
		return -EINVAL;
	head = ld16(q, q->avail_gpa + AVAIL_RING(q->last_avail % q->size));
	if (head >= q->size)
		return -EINVAL;

	e->head = head;
	e->out_num = e->in_num = 0;
	e->out_len = e->in_len = 0;
	i = head;
	for (;;) {
		if (++steps > q->size)
			return -EINVAL; /* a loop in the descriptor table */
		if (read_desc(q, q->desc_gpa, q->size, i, &d))
			return -EINVAL;
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* An indirect descriptor is alone or last, never with NEXT (2.7.5.3.1). */
			if ((d.flags & VIRTQ_DESC_F_NEXT) || walk_indirect(q, e, &d, &budget))
				return -EINVAL;
			break;
		}
		if (budget-- == 0 || add_iov(q, e, &d))
			return -EINVAL;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		i = d.next;
	}
	q->last_avail++;
	if (q->event_idx && !q->no_notify)
		st16(q, q->used_gpa + USED_AVAIL_EVENT(q->size), q->last_avail);
	return 1;
}

void virtq_unpop(struct virtq *q, unsigned k)
{
	q->last_avail = (uint16_t)(q->last_avail - k);
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	struct {
		uint32_t id;
		uint32_t len;
	} ent = { head, written };
	void *p;

	if (!q->ready)
		return -EINVAL;
	p = gm_ptr(q->gm, q->used_gpa + USED_RING(q->used_idx % q->size), sizeof(ent));
	if (!p)
		return -EINVAL;
	memcpy(p, &ent, sizeof(ent));
	gm_mark_dirty(q->gm, p, sizeof(ent));
	q->used_idx++;
	/* The entry must be visible before the index that publishes it. */
	st16(q, q->used_gpa + USED_IDX, q->used_idx);
	return 0;
}

bool virtq_need_interrupt(struct virtq *q)
{
	uint16_t old, new_idx, event;
	bool valid;

	if (!q->ready)
		return false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(ld16(q, q->avail_gpa + AVAIL_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	/* vring_need_event() semantics (2.7.7.2): interrupt if used_event was crossed. */
	old = q->signalled_used;
	valid = q->signalled_valid;
	new_idx = q->used_idx;
	q->signalled_used = new_idx;
	q->signalled_valid = true;
	if (!valid)
		return true;
	event = ld16(q, q->avail_gpa + AVAIL_USED_EVENT(q->size));
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

void virtq_set_notify(struct virtq *q, bool enable)
{
	if (!q->ready)
		return;
	q->no_notify = !enable;
	if (q->event_idx) {
		/* A stale avail_event is one the driver's next additions never cross. */
		if (enable)
			st16(q, q->used_gpa + USED_AVAIL_EVENT(q->size), q->last_avail);
	} else {
		st16(q, q->used_gpa + USED_FLAGS, enable ? 0 : VIRTQ_USED_F_NO_NOTIFY);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Copy between iov (past its first skip bytes) and buf, in the direction to_buf says. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t skip, uint8_t *buf, size_t len,
		       bool to_buf)
{
	size_t done = 0;
	unsigned i;

	for (i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		uint8_t *p;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		p = (uint8_t *)iov[i].iov_base + skip;
		l = MIN(l - skip, len - done);
		if (to_buf)
			memcpy(buf + done, p, l);
		else
			memcpy(p, buf + done, l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	return iov_copy(iov, n, skip, buf, len, true);
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	/* buf is only read in this direction. */
	return iov_copy(iov, n, skip, (uint8_t *)buf, len, false);
}
