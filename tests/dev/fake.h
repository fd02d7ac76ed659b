/* SPDX-License-Identifier: MIT */
/* fake.h: a fake device context for device tests: a real pio bus, recorded IRQ lines and VM requests, a console pipe. */
#ifndef KVMM_TESTS_DEV_FAKE_H
#define KVMM_TESTS_DEV_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dev/dev.h"

#define FAKE_GSIS 24

struct fake_ext;
struct virtio_dev;

struct fake {
	struct dev_ctx ctx;
	bool level[FAKE_GSIS];     /* current level of each line */
	unsigned raised[FAKE_GSIS]; /* low-to-high transitions seen */
	unsigned sets[FAKE_GSIS];   /* irq_set calls */
	unsigned requests[2];       /* VM_REQ_POWEROFF, VM_REQ_RESET */
	int out_rd;                 /* read end of the console output pipe, -1 if none */
	struct fake_ext *ext;       /* fake_mem/fake_loop/fake_msi state, NULL until used */
};

/*
 * Set up a fake with its own pio bus (and an mmio bus). With console true,
 * ctx.console_out_fd is the write end of a non-blocking pipe read by fake_output.
 * The struct must not move while devices hold its context.
 */
int fake_init(struct fake *f, bool console);
void fake_fini(struct fake *f);

/* Port I/O through the bus, as a vCPU exit would do it (little-endian). */
uint32_t fake_in(struct fake *f, uint16_t port, unsigned len);
void fake_out(struct fake *f, uint16_t port, unsigned len, uint32_t v);
static inline uint8_t fake_inb(struct fake *f, uint16_t port)
{
	return (uint8_t)fake_in(f, port, 1);
}
static inline void fake_outb(struct fake *f, uint16_t port, uint8_t v)
{
	fake_out(f, port, 1, v);
}
/* Whether a device claims the access (reads only; data discarded). */
bool fake_claimed(struct fake *f, uint16_t port, unsigned len);

/* Bytes the device wrote to the console so far (non-blocking); returns the count. */
size_t fake_output(struct fake *f, uint8_t *buf, size_t cap);

/* Create a device on the fake; fails the test on error. */
void *fake_create(struct fake *f, const struct dev_desc *d);
/* Create the PCI host bridge on the fake and make it ctx.pci; fails the test on error. */
void *fake_pci_host(struct fake *f);

/* One device on its own fake: the state of a cmocka test of a legacy device. */
struct fake_dev {
	struct fake f;
	void *dev;
	const struct dev_desc *desc; /* what fake_dev_teardown destroys dev with */
};

/* cmocka setup: a calloc'ed fake_dev in *state, d created on it (console as for fake_init). */
int fake_dev_setup(void **state, const struct dev_desc *d, bool console);
/* cmocka teardown of fake_dev_setup: destroys the device, the fake and the struct. */
int fake_dev_teardown(void **state);

/*
 * Helpers for PCI/virtio device tests. Each sets up its part on first use
 * (f->ext); fake_ext_fini releases all of them (call it before fake_fini).
 */

/* Guest RAM: a calloc'ed struct guest_mem (fd -1, [0, size) only) set as ctx.gm. */
int fake_mem_init(struct fake *f, uint64_t size);
/* Host pointer for [gpa, gpa+len) of that RAM; fails the test outside it. */
void *fake_gpa(struct fake *f, uint64_t gpa, uint64_t len);

/* An MMIO access through ctx.mmio, as a vCPU exit would do it (little-endian). */
uint64_t fake_mmio_read(struct fake *f, uint64_t addr, unsigned len);
void fake_mmio_write(struct fake *f, uint64_t addr, unsigned len, uint64_t v);
/* Whether a device claims an MMIO read at addr. */
bool fake_mmio_claimed(struct fake *f, uint64_t addr, unsigned len);

/*
 * The VM's event loop, faked: sets ctx.watch_fd/unwatch_fd; fake_pump waits up
 * to timeout_ms for a watched fd to become readable and runs the callbacks of
 * every readable one; returns the callbacks run.
 */
void fake_loop(struct fake *f);
unsigned fake_pump(struct fake *f, int timeout_ms);

/*
 * MSI routing and irqfds, faked: sets ctx.msi_route/irqfd. GSIs are handed out
 * from FAKE_GSIS. fake_msi_fired reads (and accumulates) the irqfd counter of
 * gsi: the interrupts injected through it so far.
 */
#define FAKE_MSI_MAX 32
void fake_msi(struct fake *f);
struct fake_msi_route {
	bool used;
	uint64_t addr;
	uint32_t data;
	unsigned routes; /* msi_route calls for this GSI */
	int irqfd;       /* -1 when none is attached */
	uint64_t fired;
};
/* The route of an MSI GSI (NULL when never allocated). */
const struct fake_msi_route *fake_msi_get(struct fake *f, int gsi);
/* The GSI routed to addr/data, or -1. */
int fake_msi_find(struct fake *f, uint64_t addr, uint32_t data);
uint64_t fake_msi_fired(struct fake *f, int gsi);
/* msi_route calls so far (all GSIs). */
unsigned fake_msi_calls(struct fake *f);

void fake_ext_fini(struct fake *f);

/* A virtio device test's end: destroys vd and host (each when set), then the fake. */
void fake_virtio_fini(struct fake *f, struct virtio_dev *vd, void *host);

#endif
