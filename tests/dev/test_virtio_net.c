// SPDX-License-Identifier: MIT
/* test_virtio_net.c: device tests for virtio-net through virtio-pci on a fake bus, with a socketpair (or a real tap) as the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/sbuf.h"
#include "net/tap.h"
#include "vdrv.h"
#include "virtio/devices.h"

#define RXQ 0
#define TXQ 1
#define CFG 0x2000
#define HDR 12

#define F_CSUM 0
#define F_GUEST_CSUM 1
#define F_MAC 5
#define F_MRG_RXBUF 15
#define F_STATUS 16

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* The event loop, faked: watched fds are polled by pump() on the test's thread. */
#define MAX_WATCH 8
struct watch {
	int fd;
	void (*cb)(void *arg);
	void *arg;
};

struct t {
	struct vdrv d;
	int peer;  /* the wire's far end */
	int local; /* the wire's end given to the device (it takes a copy) */
	struct watch w[MAX_WATCH];
	unsigned nw;
};

static int t_watch(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	struct t *t = opaque;

	if (t->nw == MAX_WATCH)
		return -ENOSPC;
	t->w[t->nw++] = (struct watch){ fd, cb, arg };
	return 0;
}

static void t_unwatch(void *opaque, int fd)
{
	struct t *t = opaque;

	for (unsigned i = 0; i < t->nw; i++)
		if (t->w[i].fd == fd)
			t->w[i].cb = NULL;
}

/* Run callbacks of readable fds until none is readable; returns the callbacks run. */
static unsigned pump(struct t *t)
{
	unsigned runs = 0, round;

	for (round = 0; round < 1000; round++) {
		bool any = false;

		for (unsigned i = 0; i < t->nw; i++) {
			struct pollfd p = { .fd = t->w[i].fd, .events = POLLIN };

			if (t->w[i].cb && poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
				t->w[i].cb(t->w[i].arg);
				runs++;
				any = true;
			}
		}
		if (!any)
			return runs;
	}
	fail_msg("the event loop never went idle (a callback spins)");
	return runs;
}

static int create_on(struct t *t, int fd)
{
	struct net_opts o = { .has_fd = true, .fd = fd, .has_mac = true, .vhost = NET_VHOST_AUTO };
	struct virtio_dev *vd;
	struct err e = { { 0 } };

	memcpy(o.mac, test_mac, 6);
	if (virtio_net_create(&t->d.f.ctx, &o, &vd, &e)) {
		fprintf(stderr, "virtio_net_create: %s\n", e.msg);
		return -1;
	}
	vdrv_attach(&t->d, vd);
	return 0;
}

static int setup_type(void **state, int type)
{
	struct t *t = calloc(1, sizeof(*t));
	int sv[2];

	if (!t || vdrv_init(&t->d))
		return -1;
	t->d.f.ctx.watch_fd = t_watch;
	t->d.f.ctx.unwatch_fd = t_unwatch;
	t->d.f.ctx.irq_opaque = &t->d.f; /* fake's irq_set needs its own opaque */
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv))
		return -1;
	t->local = sv[0];
	t->peer = sv[1];
	fcntl(t->peer, F_SETFL, O_NONBLOCK);
	*state = t;
	return 0;
}

static int setup_dev_type(void **state, int type)
{
	struct t *t;
	int r = setup_type(state, type);

	if (r)
		return r;
	t = *state;
	if (create_on(t, t->local))
		return -1;
	close(t->local); /* the device holds its own copy */
	t->local = -1;
	return 0;
}

static int setup_dev(void **state)
{
	return setup_dev_type(state, SOCK_DGRAM);
}

/* A seqpacket wire: its far end can hang up (a datagram socket never sees that). */
static int setup_dev_seqpacket(void **state)
{
	return setup_dev_type(state, SOCK_SEQPACKET);
}

static int teardown(void **state)
{
	struct t *t = *state;

	vdrv_fini(&t->d);
	if (t->peer >= 0)
		close(t->peer);
	free(t);
	return 0;
}

/*
 * The fake's irq_set uses ctx.irq_opaque, and so do watch_fd/unwatch_fd: the
 * two must agree. struct t starts with struct vdrv, which starts with struct
 * fake, so one pointer serves both.
 */
_Static_assert(offsetof(struct t, d) == 0 && offsetof(struct vdrv, f) == 0, "layout");

static struct virtio_dev *vd_of(struct t *t)
{
	return t->d.vd;
}

static void test_identity(void **state)
{
	struct t *t = *state;
	uint64_t f;

	assert_int_equal(vdrv_cfg_read(&t->d, 0), 0x1af4u | (0x1040u + 1) << 16);
	assert_int_equal(vdrv_cfg_read(&t->d, 8) >> 8, 0x020000);
	assert_int_equal(vdrv_rd(&t->d, 0x12, 2), 2);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(vdrv_rd(&t->d, CFG + i, 1), test_mac[i]);
	assert_int_equal(vdrv_rd(&t->d, CFG + 6, 2), 1);  /* LINK_UP */
	assert_int_equal(vdrv_rd(&t->d, CFG + 8, 2), 1);  /* one queue pair */
	assert_int_equal(vdrv_rd(&t->d, CFG + 10, 2), 1500);
	vdrv_wr(&t->d, 0x00, 4, 0);
	f = vdrv_rd(&t->d, 0x04, 4);
	assert_true(f & VIRTIO_BIT(F_MAC));
	assert_true(f & VIRTIO_BIT(F_MRG_RXBUF));
	assert_true(f & VIRTIO_BIT(F_CSUM));
	assert_true(f & VIRTIO_BIT(F_STATUS));
	/* Control queue (17) is not offered: asking for it fails negotiation. */
	assert_int_equal(vdrv_start(&t->d, VIRTIO_BIT(17), 2, 16) & VIRTIO_STATUS_FEATURES_OK, 0);
	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MAC), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
}

static void test_transmit(void **state)
{
	struct t *t = *state;
	uint64_t a = vdrv_alloc(&t->d, 256);
	uint8_t *p = vdrv_ptr(&t->d, a, 256), got[512];
	uint32_t id, len;
	unsigned irqs;
	ssize_t n;

	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	for (unsigned i = 0; i < 256; i++)
		p[i] = (uint8_t)(i * 7);
	/* Header in its own descriptor, the frame split over two more. */
	struct vdrv_buf c[3] = { { a, HDR, false }, { a + HDR, 30, false }, { a + HDR + 30, 34, false } };
	uint16_t h = vdrv_add(&t->d, TXQ, c, 3);

	irqs = vdrv_irqs(&t->d);
	vdrv_kick(&t->d, TXQ);
	pump(t);
	assert_true(vdrv_used(&t->d, TXQ, &id, &len));
	assert_int_equal(id, h);
	assert_int_equal(len, 0);
	assert_true(vdrv_irqs(&t->d) > irqs);
	n = recv(t->peer, got, sizeof(got), 0);
	assert_int_equal(n, HDR + 64);
	assert_memory_equal(got, p, HDR + 64);
	assert_int_equal(vd_of(t)->stats.bytes_out, 64);
	assert_int_equal(vd_of(t)->stats.requests, 1);
}

static void test_transmit_hostile(void **state)
{
	struct t *t = *state;
	uint64_t a = vdrv_alloc(&t->d, 80000);
	uint8_t got[256];
	uint32_t id, len;

	assert_true(vdrv_start(&t->d, 0, 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	/* Shorter than the header, zero length, longer than any frame: dropped and counted. */
	struct vdrv_buf shortb = { a, HDR - 1, false };
	struct vdrv_buf zero = { a, 0, false };
	struct vdrv_buf huge = { a, 80000, false };

	vdrv_add(&t->d, TXQ, &shortb, 1);
	vdrv_add(&t->d, TXQ, &zero, 1);
	vdrv_add(&t->d, TXQ, &huge, 1);
	vdrv_kick(&t->d, TXQ);
	pump(t);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(vdrv_used(&t->d, TXQ, &id, &len));
		assert_int_equal(len, 0);
	}
	assert_int_equal(recv(t->peer, got, sizeof(got), 0), -1);
	assert_int_equal(vd_of(t)->stats.errors, 3);
	assert_int_equal(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET, 0);

	/* A device-writable part in a transmit buffer breaks the protocol. */
	struct vdrv_buf wr[2] = { { a, 64, false }, { a + 64, 64, true } };

	vdrv_add(&t->d, TXQ, wr, 2);
	vdrv_kick(&t->d, TXQ);
	pump(t);
	assert_true(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(recv(t->peer, got, sizeof(got), 0), -1);

	/* After a reset: a descriptor loop is refused too, and the device stays usable. */
	assert_true(vdrv_start(&t->d, 0, 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	vdrv_set_desc(&t->d, TXQ, 0, a, 64, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(&t->d, TXQ, 1, a, 64, VIRTQ_DESC_F_NEXT, 0);
	vdrv_publish(&t->d, TXQ, 0);
	vdrv_kick(&t->d, TXQ);
	pump(t);
	assert_true(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_false(vdrv_used(&t->d, TXQ, &id, &len));
	/* A head outside the ring. */
	assert_true(vdrv_start(&t->d, 0, 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	vdrv_publish(&t->d, TXQ, 16);
	vdrv_kick(&t->d, TXQ);
	pump(t);
	assert_true(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET);
}

/* Send a frame of len bytes (header included) from the wire side; byte i is i*3+seed. */
static void wire_send(struct t *t, size_t len, uint8_t seed, uint8_t flags)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	memset(b, 0, HDR);
	b[0] = flags;
	for (size_t i = HDR; i < len; i++)
		b[i] = (uint8_t)(i * 3 + seed);
	assert_int_equal(send(t->peer, b, len, 0), (ssize_t)len);
	free(b);
}

static void test_receive_merged(void **state)
{
	struct t *t = *state;
	uint64_t b[3];
	uint32_t id, len;
	uint16_t heads[3], nb;
	unsigned irqs;

	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	for (unsigned i = 0; i < 3; i++) {
		b[i] = vdrv_alloc(&t->d, 100);
		memset(vdrv_ptr(&t->d, b[i], 100), 0xee, 100);
		struct vdrv_buf x = { b[i], 100, true };

		heads[i] = vdrv_add(&t->d, RXQ, &x, 1);
	}
	vdrv_kick(&t->d, RXQ);
	pump(t);
	irqs = vdrv_irqs(&t->d);
	wire_send(t, 250, 1, 0);
	pump(t);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(vdrv_used(&t->d, RXQ, &id, &len));
		assert_int_equal(id, heads[i]);
		assert_int_equal(len, i < 2 ? 100 : 50);
	}
	assert_false(vdrv_used(&t->d, RXQ, &id, &len));
	assert_true(vdrv_irqs(&t->d) > irqs);
	memcpy(&nb, (uint8_t *)vdrv_ptr(&t->d, b[0], 100) + 10, 2);
	assert_int_equal(nb, 3);
	for (size_t i = HDR; i < 250; i++) {
		uint8_t v = *(uint8_t *)vdrv_ptr(&t->d, b[i / 100] + i % 100, 1);

		assert_int_equal(v, (uint8_t)(i * 3 + 1));
	}
	/* Nothing written past the frame's end. */
	assert_int_equal(*(uint8_t *)vdrv_ptr(&t->d, b[2] + 50, 1), 0xee);
	assert_int_equal(vd_of(t)->stats.bytes_in, 250 - HDR);
}

static void test_receive_waits_for_buffers(void **state)
{
	struct t *t = *state;
	uint64_t b = vdrv_alloc(&t->d, 1600);
	uint32_t id, len;

	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	/* A frame with no buffer posted: kept, and the loop does not spin on the wire. */
	wire_send(t, 200, 2, 0);
	wire_send(t, 300, 3, 0);
	pump(t);
	assert_false(vdrv_used(&t->d, RXQ, &id, &len));
	struct vdrv_buf x = { b, 1600, true };

	vdrv_add(&t->d, RXQ, &x, 1);
	vdrv_kick(&t->d, RXQ);
	pump(t);
	assert_true(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(len, 200);
	assert_false(vdrv_used(&t->d, RXQ, &id, &len));
	/* The second frame waits for the next buffer. */
	vdrv_add(&t->d, RXQ, &x, 1);
	vdrv_kick(&t->d, RXQ);
	pump(t);
	assert_true(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(len, 300);
	assert_int_equal(*(uint8_t *)vdrv_ptr(&t->d, b + HDR, 1), (uint8_t)(HDR * 3 + 3));
}

static void test_receive_too_big_dropped(void **state)
{
	struct t *t = *state;
	uint64_t b = vdrv_alloc(&t->d, 128);
	uint32_t id, len;
	uint16_t nb;

	/* Without MRG_RXBUF a frame must fit one buffer; a bigger one is dropped, never split. */
	assert_true(vdrv_start(&t->d, 0, 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	memset(vdrv_ptr(&t->d, b, 128), 0xee, 128);
	struct vdrv_buf x = { b, 100, true };
	uint16_t h = vdrv_add(&t->d, RXQ, &x, 1);

	vdrv_kick(&t->d, RXQ);
	wire_send(t, 101, 4, 0);
	pump(t);
	assert_false(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(*(uint8_t *)vdrv_ptr(&t->d, b + 100, 1), 0xee);
	assert_int_equal(vd_of(t)->stats.errors, 1);
	/* The buffer stays available for the next frame that fits. */
	wire_send(t, 100, 5, 0);
	pump(t);
	assert_true(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(id, h);
	assert_int_equal(len, 100);
	memcpy(&nb, (uint8_t *)vdrv_ptr(&t->d, b, 12) + 10, 2);
	assert_int_equal(nb, 1);
	assert_int_equal(*(uint8_t *)vdrv_ptr(&t->d, b + 100, 1), 0xee);

	/* With merging, a frame larger than the whole ring's buffers is dropped too. */
	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 2) & VIRTIO_STATUS_DRIVER_OK);
	struct vdrv_buf y[1] = { { b, 64, true } };

	vdrv_add(&t->d, RXQ, y, 1);
	vdrv_add(&t->d, RXQ, y, 1);
	vdrv_kick(&t->d, RXQ);
	wire_send(t, 200, 6, 0);
	wire_send(t, 60, 7, 0);
	pump(t);
	assert_true(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(len, 60);
	assert_int_equal(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_receive_offload_not_negotiated(void **state)
{
	struct t *t = *state;
	uint64_t b = vdrv_alloc(&t->d, 2048);
	uint32_t id, len;

	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	struct vdrv_buf x = { b, 2048, true };

	vdrv_add(&t->d, RXQ, &x, 1);
	vdrv_kick(&t->d, RXQ);
	/* NEEDS_CSUM without GUEST_CSUM: the driver could not handle it. */
	wire_send(t, 100, 8, 1);
	/* A header alone, shorter than the header: dropped. */
	assert_int_equal(send(t->peer, "short", 5, 0), 5);
	pump(t);
	assert_false(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(vd_of(t)->stats.errors, 2);
	wire_send(t, 100, 9, 0);
	pump(t);
	assert_true(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(len, 100);
}

static void test_receive_hostile(void **state)
{
	struct t *t = *state;
	uint64_t b = vdrv_alloc(&t->d, 2048);
	uint32_t id, len;

	/* A read-only receive buffer. */
	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	struct vdrv_buf ro = { b, 2048, false };

	vdrv_add(&t->d, RXQ, &ro, 1);
	vdrv_kick(&t->d, RXQ);
	wire_send(t, 100, 10, 0);
	pump(t);
	assert_true(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_false(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(*(uint8_t *)vdrv_ptr(&t->d, b + HDR, 1), 0);

	/* A first buffer shorter than the header. */
	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	struct vdrv_buf tiny = { b, HDR - 2, true };

	vdrv_add(&t->d, RXQ, &tiny, 1);
	vdrv_kick(&t->d, RXQ);
	wire_send(t, 100, 11, 0);
	pump(t);
	assert_true(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_false(vdrv_used(&t->d, RXQ, &id, &len));

	/* A buffer pointing outside guest RAM. */
	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	struct vdrv_buf out = { VDRV_MEM - 16, 2048, true };

	vdrv_add(&t->d, RXQ, &out, 1);
	vdrv_kick(&t->d, RXQ);
	wire_send(t, 100, 12, 0);
	pump(t);
	assert_true(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET);
	/* Reset stops receive: frames stay on the wire, nothing is written. */
	vdrv_wr(&t->d, 0x14, 1, 0);
	wire_send(t, 100, 13, 0);
	pump(t);
	assert_int_equal(vdrv_status(&t->d), 0);
}

/* The wire's far end goes away: receive stops for good, the loop does not spin, transmit drops. */
static void test_peer_gone(void **state)
{
	struct t *t = *state;
	uint64_t b = vdrv_alloc(&t->d, 2048);
	uint32_t id, len;

	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	struct vdrv_buf x = { b, 2048, true };
	struct vdrv_buf y = { b, 100, false };

	vdrv_add(&t->d, RXQ, &x, 1);
	vdrv_kick(&t->d, RXQ);
	wire_send(t, 100, 14, 0);
	pump(t);
	assert_true(vdrv_used(&t->d, RXQ, &id, &len));
	vdrv_add(&t->d, RXQ, &x, 1);
	vdrv_kick(&t->d, RXQ);
	close(t->peer);
	t->peer = -1;
	pump(t); /* fails the test if a callback keeps firing */
	assert_false(vdrv_used(&t->d, RXQ, &id, &len));
	vdrv_add(&t->d, TXQ, &y, 1);
	vdrv_kick(&t->d, TXQ);
	pump(t);
	assert_true(vdrv_used(&t->d, TXQ, &id, &len));
	assert_int_equal(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET, 0);
	/* A reset and a new start do not bring the dead wire back into the loop. */
	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	vdrv_add(&t->d, RXQ, &x, 1);
	vdrv_kick(&t->d, RXQ);
	pump(t);
}

/* Received frames land in pages a live migration must send again. */
static void test_receive_marks_dirty(void **state)
{
	struct t *t = *state;
	uint64_t words = VDRV_MEM / 4096 / 64, b = vdrv_alloc(&t->d, 8192);
	uint64_t *bm = calloc(words, sizeof(uint64_t));
	uint64_t pg = (b + 4096) / 4096; /* the frame's second page */
	uint32_t id, len;

	assert_non_null(bm);
	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MRG_RXBUF), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	struct vdrv_buf x = { b, 8192, true };

	vdrv_add(&t->d, RXQ, &x, 1);
	vdrv_kick(&t->d, RXQ);
	atomic_store(&t->d.gm.vmm_dirty, bm);
	/* With tracking on, vhost is never asked to serve (it would escape the log). */
	virtio_net_allow_vhost(vd_of(t), true);
	wire_send(t, 6000, 15, 0);
	pump(t);
	assert_true(vdrv_used(&t->d, RXQ, &id, &len));
	assert_int_equal(len, 6000);
	assert_true(bm[pg / 64] & (1ULL << (pg % 64)));
	assert_true(bm[(b / 4096) / 64] & (1ULL << ((b / 4096) % 64)));
	atomic_store(&t->d.gm.vmm_dirty, NULL);
	free(bm);
	/* Held off and allowed again: without vhost the device just keeps working. */
	virtio_net_allow_vhost(vd_of(t), false);
	vdrv_add(&t->d, RXQ, &x, 1);
	vdrv_kick(&t->d, RXQ);
	wire_send(t, 64, 16, 0);
	pump(t);
	assert_true(vdrv_used(&t->d, RXQ, &id, &len));
	virtio_net_allow_vhost(vd_of(t), true);
	assert_int_equal(vdrv_status(&t->d) & VIRTIO_STATUS_NEEDS_RESET, 0);
}

static void test_save_load(void **state)
{
	struct t *t = *state;
	struct sbuf s = { 0 };
	uint8_t mac5;

	assert_true(vdrv_start(&t->d, VIRTIO_BIT(F_MAC), 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(virtio_save(vd_of(t), &s), 0);
	assert_int_equal(virtio_load(vd_of(t), s.data, s.len), 0);
	assert_int_equal(vdrv_rd(&t->d, CFG + 5, 1), test_mac[5]);
	assert_true(vdrv_status(&t->d) & VIRTIO_STATUS_DRIVER_OK);
	/* The device record is last: corrupt its version byte (9 bytes from the end). */
	mac5 = s.data[s.len - 9];
	s.data[s.len - 9] = 99;
	assert_int_equal(virtio_load(vd_of(t), s.data, s.len), -EINVAL);
	s.data[s.len - 9] = mac5;
	assert_int_equal(virtio_load(vd_of(t), s.data, s.len - 1), -EINVAL);
	sbuf_free(&s);
}

/* The hooks vhost uses: kicks diverted to an eventfd, and back. */
static void test_kick_handoff(void **state)
{
	struct t *t = *state;
	uint64_t a = vdrv_alloc(&t->d, 128), cnt;
	uint8_t got[256];
	uint32_t id, len;
	int fd;

	assert_true(vdrv_start(&t->d, 0, 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	/* MSI-X is off in this fake: no irqfd can stand for the queue's interrupt. */
	pthread_mutex_lock(&vd_of(t)->lock);
	assert_int_equal(virtio_queue_call_fd(vd_of(t), TXQ), -ENODEV);
	fd = virtio_queue_kick_fd(vd_of(t), TXQ);
	assert_int_equal(virtio_queue_kick_fd(vd_of(t), TXQ), fd);
	assert_int_equal(virtio_queue_kick_fd(vd_of(t), 5), -EINVAL);
	pthread_mutex_unlock(&vd_of(t)->lock);
	assert_true(fd >= 0);
	struct vdrv_buf c = { a, HDR + 20, false };

	vdrv_add(&t->d, TXQ, &c, 1);
	vdrv_kick(&t->d, TXQ);
	pump(t);
	assert_false(vdrv_used(&t->d, TXQ, &id, &len));
	assert_int_equal(read(fd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
	assert_int_equal(cnt, 1);
	pthread_mutex_lock(&vd_of(t)->lock);
	virtio_queue_kick_release(vd_of(t), TXQ);
	pthread_mutex_unlock(&vd_of(t)->lock);
	vdrv_kick(&t->d, TXQ);
	pump(t);
	assert_true(vdrv_used(&t->d, TXQ, &id, &len));
	assert_int_equal(recv(t->peer, got, sizeof(got), 0), HDR + 20);
}

static void test_backend_errors(void **state)
{
	struct tap tp;
	struct err e = { { 0 } };
	int sv[2], fd;
	char path[] = "/tmp/kvmm-net-XXXXXX";

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(tap_open_fd(fd, &tp, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "neither a tap nor a socket"));
	close(fd);
	assert_int_equal(tap_open_fd(fd, &tp, &e), -EBADF);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(tap_open_fd(sv[0], &tp, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "datagram or seqpacket"));
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(tap_open("", &tp, &e), -EINVAL);
	assert_int_equal(tap_open("name-much-too-long-for-linux", &tp, &e), -EINVAL);
}

/* A real tap: created by name, busy for a second opener, and adopted by fd. */
static void test_real_tap(void **state)
{
	struct tap a, b, c;
	struct err e = { { 0 } };
	char name[IFNAMSIZ];
	int r;

	(void)state;
	snprintf(name, sizeof(name), "kvmmt%d", (int)getpid() % 100000);
	r = tap_open(name, &a, &e);
	if (r == -EPERM || r == -EACCES || r == -ENOENT || r == -ENODEV) {
		print_message("# skipped: no tap here: %s\n", e.msg);
		skip();
	}
	assert_int_equal(r, 0);
	assert_string_equal(a.ifname, name);
	assert_true(a.is_tap);
	assert_int_equal(tap_set_offload(&a, TAP_OFFLOAD_CSUM | TAP_OFFLOAD_TSO4), 0);
	assert_int_equal(tap_open(name, &b, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "device busy"));
	r = dup(a.fd);
	assert_int_equal(tap_open_fd(r, &c, &e), 0);
	assert_true(c.is_tap);
	assert_string_equal(c.ifname, name);
	tap_close(&c);
	tap_close(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_transmit, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_hostile, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_receive_merged, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_receive_waits_for_buffers, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_receive_too_big_dropped, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_receive_offload_not_negotiated, setup_dev,
						teardown),
		cmocka_unit_test_setup_teardown(test_receive_hostile, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_peer_gone, setup_dev_seqpacket, teardown),
		cmocka_unit_test_setup_teardown(test_receive_marks_dirty, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup_dev, teardown),
		cmocka_unit_test_setup_teardown(test_kick_handoff, setup_dev, teardown),
		cmocka_unit_test(test_backend_errors),
		cmocka_unit_test(test_real_tap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
