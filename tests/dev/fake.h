/* SPDX-License-Identifier: MIT */
/* fake.h: a fake device context for device tests: a real pio bus, recorded IRQ lines and VM requests, a console pipe. */
#ifndef KVMM_TESTS_DEV_FAKE_H
#define KVMM_TESTS_DEV_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dev/dev.h"

#define FAKE_GSIS 24

struct fake {
	struct dev_ctx ctx;
	bool level[FAKE_GSIS];     /* current level of each line */
	unsigned raised[FAKE_GSIS]; /* low-to-high transitions seen */
	unsigned sets[FAKE_GSIS];   /* irq_set calls */
	unsigned requests[2];       /* VM_REQ_POWEROFF, VM_REQ_RESET */
	int out_rd;                 /* read end of the console output pipe, -1 if none */
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

#endif
