/* SPDX-License-Identifier: MIT */
/* vpci.h: the modern virtio-pci transport (virtio 1.2 section 4.1) for the test guests'
 * ring-3 polling drivers (virtio.c, net.c): PCI bus 0 through configuration mechanism #1,
 * the vendor capabilities, device status, feature negotiation and queue set-up. */
#ifndef GUEST_VPCI_H
#define GUEST_VPCI_H

#include "guest.h"

#define PCI_VENDOR_VIRTIO 0x1af4

/* Device status (2.1). */
#define VIRTIO_ST_ACK 1
#define VIRTIO_ST_DRIVER 2
#define VIRTIO_ST_DRIVER_OK 4
#define VIRTIO_ST_FEATURES_OK 8
#define VIRTIO_ST_NEEDS_RESET 0x40
#define VIRTIO_ST_FAILED 0x80

#define VIRTIO_F_VERSION_1 32

/* Split virtqueue (2.7): descriptor flags, a descriptor, and the layout of a ring of
 * qsize entries: descriptors, then the driver area; the device area at used_off. */
#define VQ_DESC_NEXT 1
#define VQ_DESC_WRITE 2
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
#define VQ_SPLIT_RING(qsize, used_off)                                                   \
	{                                                                                \
		struct vq_desc desc[qsize];                                              \
		volatile uint16_t avail_flags, avail_idx, avail_ring[qsize], used_event; \
		uint8_t pad[(used_off) - 16 * (qsize) - 6 - 2 * (qsize)];                \
		volatile uint16_t used_flags, used_idx;                                  \
		volatile struct {                                                        \
			uint32_t id, len;                                                \
		} used_ring[qsize];                                                      \
		volatile uint16_t avail_event;                                           \
	} __attribute__((aligned(4096)))

/* One virtio function on bus 0 and where its structures are mapped. */
struct vpci {
	uint8_t slot, fn;
	uint16_t id; /* PCI device ID: 0x1040 + virtio device type */
	const char *name; /* for messages */
	uintptr_t common, isr, device; /* 0 when the capability is missing */
	uintptr_t notify; /* base of the notification structure */
	uint32_t mult; /* notify_off_multiplier */
};

/* MMIO (identity-mapped user pages below 4 GiB). */
static inline uint8_t rd8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t rd16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t rd32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline void wr8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void wr16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void wr32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
/* 64-bit fields as two 32-bit writes, low half first (4.1.3.1). */
static inline void wr64(uintptr_t a, uint64_t v)
{
	wr32(a, (uint32_t)v);
	wr32(a + 4, (uint32_t)(v >> 32));
}
static inline void mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* PCI configuration space of d's function. */
uint32_t vpci_cfg_rd32(const struct vpci *d, unsigned off);
uint16_t vpci_cfg_rd16(const struct vpci *d, unsigned off);
uint8_t vpci_cfg_rd8(const struct vpci *d, unsigned off);
void vpci_cfg_wr16(const struct vpci *d, unsigned off, uint16_t v);

/* The next virtio function on bus 0 from *pos (start at 0): 1 and *d filled in (slot,
 * fn, id), or 0 when there is none left. */
int vpci_next(struct vpci *d, unsigned *pos);
/* Memory decoding and bus mastering on, INTx off (the drivers poll). */
void vpci_enable(const struct vpci *d);
/* The address the VMM assigned to a memory BAR (fails when above 4 GiB or unassigned). */
uint64_t vpci_bar_addr(const struct vpci *d, unsigned bar);
/* Walks the capability list: the first common, notify, ISR and device structure (4.1.4);
 * fails without common, notify or ISR. */
void vpci_find_caps(struct vpci *d);

uint8_t vpci_status(const struct vpci *d);
void vpci_set_status(const struct vpci *d, uint8_t s);
/* Resets the device and waits for the status to read back 0 (4.1.4.3.2). */
void vpci_reset(const struct vpci *d);
/* Reset, ACKNOWLEDGE, DRIVER, then the features: fails unless VERSION_1 and every bit of
 * need is offered; accepts need (VERSION_1 always) plus the bits of want that are offered,
 * and sets FEATURES_OK (3.1.1 steps 1-6). Returns the features the device offered. */
uint64_t vpci_negotiate(const struct vpci *d, uint64_t need, uint64_t want);
/* Queue qi of min(its maximum, want) entries (a power of 2), polled (no MSI-X vector),
 * with its three areas at the given addresses, enabled. Returns the size. */
uint16_t vpci_queue_setup(const struct vpci *d, unsigned qi, uint16_t want, uint64_t desc,
			  uint64_t driver, uint64_t device);
/* Where to write qi to notify queue qi. */
uintptr_t vpci_queue_notify(const struct vpci *d, unsigned qi);
/* DRIVER_OK, and fails when the device then says it needs a reset or failed. */
void vpci_driver_ok(const struct vpci *d);

#endif
