// SPDX-License-Identifier: MIT
/* fake.c: the fake device context shared by the device tests (no KVM, no VM). */
#include "fake.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "dev/legacy.h"
#include "virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/mem.h"

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

int fake_dev_setup(void **state, const struct dev_desc *d, bool console)
{
	struct fake_dev *t = calloc(1, sizeof(*t));

	if (!t || fake_init(&t->f, console))
		return -1;
	t->desc = d;
	t->dev = fake_create(&t->f, d);
	*state = t;
	return 0;
}

int fake_dev_teardown(void **state)
{
	struct fake_dev *t = *state;

	t->desc->destroy(t->dev);
	fake_fini(&t->f);
	free(t);
	return 0;
}

/* --- guest RAM, MMIO, event loop and MSI for PCI/virtio device tests --- */

void *fake_pci_host(struct fake *f)
{
	f->ctx.pci = fake_create(f, &pci_host_desc);
	return f->ctx.pci;
}

void fake_virtio_fini(struct fake *f, struct virtio_dev *vd, void *host)
{
	if (vd)
		virtio_pci_destroy(vd);
	if (host)
		pci_host_desc.destroy(host);
	fake_ext_fini(f);
	fake_fini(f);
}

#define FAKE_WATCH_MAX 16

struct fake_watch {
	int fd;
	void (*cb)(void *arg);
	void *arg;
};

struct fake_ext {
	struct guest_mem gm;
	struct fake_watch watch[FAKE_WATCH_MAX];
	unsigned nwatch;
	struct fake_msi_route msi[FAKE_MSI_MAX];
	unsigned msi_calls;
};

static struct fake_ext *fake_ext(struct fake *f)
{
	if (!f->ext) {
		f->ext = calloc(1, sizeof(*f->ext));
		if (!f->ext) {
			fprintf(stderr, "fake: out of memory\n");
			abort();
		}
		f->ext->gm.fd = -1;
		for (unsigned i = 0; i < FAKE_MSI_MAX; i++)
			f->ext->msi[i].irqfd = -1;
	}
	return f->ext;
}

int fake_mem_init(struct fake *f, uint64_t size)
{
	struct guest_mem *gm = &fake_ext(f)->gm;

	gm->host = calloc(1, size);
	if (!gm->host)
		return -1;
	gm->fd = -1;
	gm->size = gm->low_size = size;
	gm->high_size = 0;
	gm->page_size = 4096;
	f->ctx.gm = gm;
	return 0;
}

void *fake_gpa(struct fake *f, uint64_t gpa, uint64_t len)
{
	void *p = f->ext ? gm_ptr(&f->ext->gm, gpa, len) : NULL;

	if (!p) {
		fprintf(stderr, "fake: gpa 0x%llx+0x%llx is not RAM\n", (unsigned long long)gpa,
			(unsigned long long)len);
		abort();
	}
	return p;
}

uint64_t fake_mmio_read(struct fake *f, uint64_t addr, unsigned len)
{
	uint8_t d[8] = { 0 };
	uint64_t v = 0;

	bus_access(f->ctx.mmio, addr, d, len, false);
	memcpy(&v, d, len < 8 ? len : 8);
	return v;
}

void fake_mmio_write(struct fake *f, uint64_t addr, unsigned len, uint64_t v)
{
	uint8_t d[8];

	memcpy(d, &v, 8);
	bus_access(f->ctx.mmio, addr, d, len, true);
}

bool fake_mmio_claimed(struct fake *f, uint64_t addr, unsigned len)
{
	uint8_t d[8];

	return bus_access(f->ctx.mmio, addr, d, len, false);
}

static int fake_watch_fd(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	struct fake_ext *x = fake_ext(opaque);

	if (x->nwatch == FAKE_WATCH_MAX)
		return -ENOSPC;
	x->watch[x->nwatch++] = (struct fake_watch){ fd, cb, arg };
	return 0;
}

static void fake_unwatch_fd(void *opaque, int fd)
{
	struct fake_ext *x = fake_ext(opaque);

	for (unsigned i = 0; i < x->nwatch; i++)
		if (x->watch[i].fd == fd)
			x->watch[i].cb = NULL;
}

void fake_loop(struct fake *f)
{
	fake_ext(f);
	f->ctx.watch_fd = fake_watch_fd;
	f->ctx.unwatch_fd = fake_unwatch_fd;
}

unsigned fake_pump(struct fake *f, int timeout_ms)
{
	struct fake_ext *x = fake_ext(f);
	struct pollfd p[FAKE_WATCH_MAX];
	unsigned i, n = 0, runs = 0;

	for (i = 0; i < x->nwatch; i++) {
		p[i] = (struct pollfd){ .fd = x->watch[i].cb ? x->watch[i].fd : -1, .events = POLLIN };
		n++;
	}
	if (n == 0 || poll(p, n, timeout_ms) <= 0)
		return 0;
	for (i = 0; i < n; i++) {
		/* A callback may unwatch another fd: look again before each call. */
		if ((p[i].revents & POLLIN) && x->watch[i].cb) {
			x->watch[i].cb(x->watch[i].arg);
			runs++;
		}
	}
	return runs;
}

static int fake_msi_route_cb(void *opaque, int gsi, uint64_t addr, uint32_t data)
{
	struct fake_ext *x = fake_ext(opaque);
	int i;

	x->msi_calls++;
	if (gsi < 0) {
		for (i = 0; i < FAKE_MSI_MAX && x->msi[i].used; i++)
			;
		if (i == FAKE_MSI_MAX)
			return -ENOSPC;
		gsi = FAKE_GSIS + i;
		x->msi[i].used = true;
	} else if (gsi < FAKE_GSIS || gsi >= FAKE_GSIS + FAKE_MSI_MAX || !x->msi[gsi - FAKE_GSIS].used) {
		fprintf(stderr, "fake: msi_route on unallocated gsi %d\n", gsi);
		abort();
	}
	x->msi[gsi - FAKE_GSIS].addr = addr;
	x->msi[gsi - FAKE_GSIS].data = data;
	x->msi[gsi - FAKE_GSIS].routes++;
	return gsi;
}

static int fake_irqfd_cb(void *opaque, int fd, uint32_t gsi, bool assign)
{
	struct fake_ext *x = fake_ext(opaque);
	struct fake_msi_route *m;

	if (gsi < FAKE_GSIS || gsi >= FAKE_GSIS + FAKE_MSI_MAX || !x->msi[gsi - FAKE_GSIS].used) {
		fprintf(stderr, "fake: irqfd on unrouted gsi %u\n", gsi);
		abort();
	}
	m = &x->msi[gsi - FAKE_GSIS];
	if (assign == (m->irqfd >= 0) || (!assign && m->irqfd != fd)) {
		fprintf(stderr, "fake: irqfd %s twice on gsi %u\n", assign ? "assigned" : "released",
			gsi);
		abort();
	}
	m->irqfd = assign ? fd : -1;
	return 0;
}

void fake_msi(struct fake *f)
{
	fake_ext(f);
	f->ctx.msi_route = fake_msi_route_cb;
	f->ctx.irqfd = fake_irqfd_cb;
}

const struct fake_msi_route *fake_msi_get(struct fake *f, int gsi)
{
	struct fake_ext *x = fake_ext(f);

	if (gsi < FAKE_GSIS || gsi >= FAKE_GSIS + FAKE_MSI_MAX || !x->msi[gsi - FAKE_GSIS].used)
		return NULL;
	return &x->msi[gsi - FAKE_GSIS];
}

int fake_msi_find(struct fake *f, uint64_t addr, uint32_t data)
{
	struct fake_ext *x = fake_ext(f);

	for (int i = 0; i < FAKE_MSI_MAX; i++)
		if (x->msi[i].used && x->msi[i].addr == addr && x->msi[i].data == data)
			return FAKE_GSIS + i;
	return -1;
}

uint64_t fake_msi_fired(struct fake *f, int gsi)
{
	struct fake_ext *x = fake_ext(f);
	struct fake_msi_route *m;
	uint64_t n;

	if (gsi < FAKE_GSIS || gsi >= FAKE_GSIS + FAKE_MSI_MAX)
		return 0;
	m = &x->msi[gsi - FAKE_GSIS];
	/* The irqfds are non-blocking eventfds: a read takes and clears the count. */
	if (m->irqfd >= 0 && read(m->irqfd, &n, sizeof(n)) == (ssize_t)sizeof(n))
		m->fired += n;
	return m->fired;
}

unsigned fake_msi_calls(struct fake *f)
{
	return fake_ext(f)->msi_calls;
}

void fake_ext_fini(struct fake *f)
{
	if (!f->ext)
		return;
	if (f->ctx.gm == &f->ext->gm)
		f->ctx.gm = NULL;
	free(f->ext->gm.host);
	free(f->ext);
	f->ext = NULL;
}
