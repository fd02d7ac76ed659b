/* SPDX-License-Identifier: MIT */
/* dev.h: what a device sees of the VM (buses, memory, interrupt lines, requests) and its description. */
#ifndef KVMM_DEV_DEV_H
#define KVMM_DEV_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

struct bus;
struct guest_mem;
struct err;

/* What a device may ask of the VM (from a vCPU thread). */
enum vm_request {
	VM_REQ_POWEROFF, /* guest powered off (ACPI S5) */
	VM_REQ_RESET,    /* guest asked for a reset (i8042 0xfe, 0xcf9, ACPI reset) */
};

/*
 * Devices never call KVM: they reach the VM only through this context, so
 * device tests run on a fake (tests/dev).
 */
struct dev_ctx {
	struct bus *pio;
	struct bus *mmio;
	struct guest_mem *gm;
	/* Drive a GSI (IOAPIC pin / PIC line) to a level. */
	int (*irq_set)(void *opaque, uint32_t gsi, bool level);
	void *irq_opaque;
	void (*request)(void *opaque, enum vm_request req);
	void *request_opaque;
	/* Console backend for the serial port: -1 when absent. */
	int console_in_fd;
	int console_out_fd;

	/*
	 * Hooks for PCI/virtio devices; all take irq_opaque. Any may be NULL in a
	 * test context. watch_fd runs cb(arg) on the VM's event-loop thread each
	 * time fd becomes readable.
	 */
	int (*watch_fd)(void *opaque, int fd, void (*cb)(void *arg), void *arg);
	void (*unwatch_fd)(void *opaque, int fd);
	/* Route a GSI (allocated when gsi < 0) to an MSI address/data; returns the GSI. */
	int (*msi_route)(void *opaque, int gsi, uint64_t addr, uint32_t data);
	/* Attach/detach an eventfd that injects gsi when written. */
	int (*irqfd)(void *opaque, int fd, uint32_t gsi, bool assign);
	/* A guest write of len bytes at MMIO address addr signals fd (no exit to userspace). */
	int (*ioeventfd)(void *opaque, int fd, uint64_t addr, uint32_t len, bool assign);
	/* The PCI host bridge (priv of pci_host_desc) for pci_add_device; NULL before it exists. */
	void *pci;
};

static inline int dev_irq_set(const struct dev_ctx *c, uint32_t gsi, bool level)
{
	return c->irq_set ? c->irq_set(c->irq_opaque, gsi, level) : 0;
}

static inline void dev_irq_pulse(const struct dev_ctx *c, uint32_t gsi)
{
	dev_irq_set(c, gsi, true);
	dev_irq_set(c, gsi, false);
}

/*
 * One device = one .c file exporting a const struct dev_desc. State records
 * start with a version byte chosen by the device; load refuses versions and
 * lengths it does not know with -EINVAL.
 */
struct dev_desc {
	const char *name;
	int (*create)(const struct dev_ctx *ctx, void **priv, struct err *e);
	void (*destroy)(void *priv);
	int (*save)(void *priv, struct sbuf *out);
	int (*load)(void *priv, const uint8_t *buf, size_t len);
};

#endif
