/* SPDX-License-Identifier: MIT */
/* bus.h: the port-I/O and MMIO buses that route vCPU exits to devices. */
#ifndef KVMM_VMM_BUS_H
#define KVMM_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A device claims [base, base+len) and gets accesses as (offset, bytes).
 * Accesses are at most 8 bytes. A device locks its own state: handlers run
 * on vCPU threads, possibly several at once.
 */
struct bus_ops {
	void (*read)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
	void (*write)(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);
};

struct bus;

struct bus *bus_create(const char *name);
void bus_destroy(struct bus *b);
/* -EEXIST if the range overlaps a registered one, -EINVAL for len 0 or wrap. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque);
int bus_unregister(struct bus *b, uint64_t base);
/*
 * Route one access. Returns true when a device claimed it. An unclaimed read
 * fills data with 0xff (what an empty ISA/PCI bus returns).
 */
bool bus_access(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
