/* SPDX-License-Identifier: MIT */
/* virtq.h: split virtqueues (virtio 1.2, 2.7): walking descriptor chains safely and returning buffers. */
#ifndef KVMM_VIRTIO_VIRTQ_H
#define KVMM_VIRTIO_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct guest_mem;

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_USED_F_NO_NOTIFY 1
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define VIRTQ_MAX_SIZE 1024
/* Longest chain accepted, counting indirect descriptors (Linux uses far fewer). */
#define VIRTQ_MAX_SG 1024

/* One queue's guest-visible configuration and the device's private position. */
struct virtq {
	const struct guest_mem *gm;
	uint16_t size;     /* power of two, <= VIRTQ_MAX_SIZE */
	bool ready;
	bool event_idx;    /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;     /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail; /* next avail entry to take */
	uint16_t used_idx;   /* next used entry to fill */
	uint16_t signalled_used; /* used_idx at the last interrupt (EVENT_IDX) */
	bool signalled_valid;
	/* virtq_set_notify(false) in force: with EVENT_IDX, pops leave avail_event behind. */
	bool no_notify;
};

/* A buffer taken from the avail ring: out (device-readable) iovecs first, then in (writable). */
struct virtq_elem {
	uint16_t head;
	unsigned out_num, in_num;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_SG];
};

/* Validate and adopt the addresses the driver wrote; -EINVAL if the rings are not in RAM. */
int virtq_setup(struct virtq *q, const struct guest_mem *gm, uint16_t size, uint64_t desc,
		uint64_t avail, uint64_t used, bool event_idx, bool indirect);
void virtq_reset(struct virtq *q);
/*
 * Take the next available buffer: 1 when e is filled, 0 when the ring is
 * empty, -EINVAL when the driver broke the protocol (loop, chain too long,
 * address outside RAM, readable after writable, bad index): the caller puts
 * the device into NEEDS_RESET.
 */
int virtq_pop(struct virtq *q, struct virtq_elem *e);
/*
 * Give back the last k buffers popped and not pushed: the next pops take them
 * again. (With EVENT_IDX, avail_event already lies past them, so the driver's
 * next buffer still notifies.)
 */
void virtq_unpop(struct virtq *q, unsigned k);
/* Return a buffer with the number of bytes written into its in iovecs. */
int virtq_push(struct virtq *q, uint16_t head, uint32_t written);
/* After pushes: does the driver want an interrupt now? (flags or used_event). */
bool virtq_need_interrupt(struct virtq *q);
/*
 * Ask (or stop asking) the driver for notifications (used flags or avail_event).
 * After enabling, look at the ring again: the driver may have added work before
 * it saw the change.
 */
void virtq_set_notify(struct virtq *q, bool enable);
/* True when the avail ring has entries we have not taken. */
bool virtq_has_work(struct virtq *q);

/* Copy between an iovec array and a flat buffer, bounded by both. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);

#endif
