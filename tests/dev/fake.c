// SPDX-License-Identifier: MIT
/* fake.c: the fake device context shared by the device tests (no KVM, no VM). */
#include "fake.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "vmm/bus.h"

/* Undefined behaviour fails the test: meson 1.0 does not set UBSAN_OPTIONS for us. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

static int fake_irq_set(void *opaque, uint32_t gsi, bool level)
{
	struct fake *f = opaque;

	if (gsi >= FAKE_GSIS) {
		fprintf(stderr, "fake: irq_set on gsi %u\n", gsi);
		abort();
	}
	f->sets[gsi]++;
	if (level && !f->level[gsi])
		f->raised[gsi]++;
	f->level[gsi] = level;
	return 0;
}

static void fake_request(void *opaque, enum vm_request req)
{
	struct fake *f = opaque;

	if ((unsigned)req >= 2) {
		fprintf(stderr, "fake: unknown request %d\n", (int)req);
		abort();
	}
	f->requests[req]++;
}

int fake_init(struct fake *f, bool console)
{
	memset(f, 0, sizeof(*f));
	f->out_rd = -1;
	f->ctx.pio = bus_create("pio");
	f->ctx.mmio = bus_create("mmio");
	if (!f->ctx.pio || !f->ctx.mmio)
		return -1;
	f->ctx.irq_set = fake_irq_set;
	f->ctx.irq_opaque = f;
	f->ctx.request = fake_request;
	f->ctx.request_opaque = f;
	f->ctx.console_in_fd = -1;
	f->ctx.console_out_fd = -1;
	if (console) {
		int p[2];

		if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
			return -1;
		f->out_rd = p[0];
		f->ctx.console_out_fd = p[1];
	}
	return 0;
}

void fake_fini(struct fake *f)
{
	bus_destroy(f->ctx.pio);
	bus_destroy(f->ctx.mmio);
	if (f->out_rd >= 0)
		close(f->out_rd);
	if (f->ctx.console_out_fd >= 0)
		close(f->ctx.console_out_fd);
	f->out_rd = f->ctx.console_out_fd = -1;
}

uint32_t fake_in(struct fake *f, uint16_t port, unsigned len)
{
	uint8_t d[8] = { 0 };
	uint32_t v = 0;

	bus_access(f->ctx.pio, port, d, len, false);
	for (unsigned i = 0; i < len && i < 4; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

void fake_out(struct fake *f, uint16_t port, unsigned len, uint32_t v)
{
	uint8_t d[8];

	for (unsigned i = 0; i < len && i < 4; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	bus_access(f->ctx.pio, port, d, len, true);
}

bool fake_claimed(struct fake *f, uint16_t port, unsigned len)
{
	uint8_t d[8];

	return bus_access(f->ctx.pio, port, d, len, false);
}

size_t fake_output(struct fake *f, uint8_t *buf, size_t cap)
{
	size_t got = 0;

	while (f->out_rd >= 0 && got < cap) {
		ssize_t n = read(f->out_rd, buf + got, cap - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

void *fake_create(struct fake *f, const struct dev_desc *d)
{
	struct err e = { { 0 } };
	void *priv = NULL;
	int r = d->create(&f->ctx, &priv, &e);

	if (r || !priv) {
		fprintf(stderr, "fake: creating %s: %d %s\n", d->name, r, e.msg);
		abort();
	}
	return priv;
}
