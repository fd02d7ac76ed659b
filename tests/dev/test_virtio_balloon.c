// SPDX-License-Identifier: MIT
/* test_virtio_balloon.c: device tests for virtio-balloon: inflate returns host pages (mincore), stats, reporting, hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/sbuf.h"
#include "vdrv.h"
#include "virtio/devices.h"

#define INFLATEQ 0
#define DEFLATEQ 1
#define F_STATS_VQ 1
#define F_DEFLATE_ON_OOM 2
#define F_REPORTING 5
#define CFG 0x2000
#define PAGE 4096ULL
#define AREA (8ULL << 20) /* guest pages the tests balloon */

static int setup_opts(void **state, const struct balloon_opts *o)
{
	struct vdrv *d = vdrv_setup(state);
	struct virtio_dev *vd;
	struct err e = { { 0 } };

	if (!d || virtio_balloon_create(&d->f.ctx, o, &vd, &e))
		return -1;
	vdrv_attach(d, vd);
	return 0;
}

static int setup(void **state)
{
	struct balloon_opts o = { .target = 1 << 20, .stats_period = 5 };

	return setup_opts(state, &o);
}

/* Touch n guest pages from gpa so the host backs them. */
static void touch(struct vdrv *d, uint64_t gpa, unsigned n)
{
	memset(vdrv_ptr(d, gpa, n * PAGE), 0xa5, n * PAGE);
}

/* How many of the n guest pages from gpa are resident on the host. */
static unsigned resident(struct vdrv *d, uint64_t gpa, unsigned n)
{
	unsigned char vec[512];
	unsigned c = 0;

	assert_true(n <= sizeof(vec));
	assert_int_equal(mincore(vdrv_ptr(d, gpa, n * PAGE), n * PAGE, vec), 0);
	for (unsigned i = 0; i < n; i++)
		c += vec[i] & 1;
	return c;
}

/* Send an array of PFNs on queue q and kick. */
static uint16_t send_pfns(struct vdrv *d, unsigned q, const uint32_t *pfns, unsigned n)
{
	uint64_t a = vdrv_alloc(d, 4ULL * n);
	struct vdrv_buf b = { a, 4 * n, false };

	memcpy(vdrv_ptr(d, a, 4ULL * n), pfns, 4ULL * n);
	uint16_t h = vdrv_add(d, q, &b, 1);
	vdrv_kick(d, q);
	return h;
}

static void test_identity_config(void **state)
{
	struct vdrv *d = *state;
	uint32_t f;
	uint8_t gen;

	assert_int_equal(vdrv_cfg_read(d, 0), 0x1af4u | (0x1040u + 5) << 16);
	vdrv_wr(d, 0x00, 4, 0);
	f = (uint32_t)vdrv_rd(d, 0x04, 4);
	assert_true(f & (1u << F_STATS_VQ));
	assert_true(f & (1u << F_REPORTING));
	assert_false(f & (1u << F_DEFLATE_ON_OOM));
	/* num_pages from the initial target; actual written by the driver only. */
	assert_int_equal(vdrv_rd(d, CFG, 4), 256);
	vdrv_start(d, 0, 2, 16);
	vdrv_wr(d, CFG, 4, 7);
	assert_int_equal(vdrv_rd(d, CFG, 4), 256);
	vdrv_wr(d, CFG + 4, 4, 100);
	assert_int_equal(vdrv_rd(d, CFG + 4, 4), 100);

	/* A new target: config generation moves and a config interrupt (ISR bit 1) comes. */
	gen = (uint8_t)vdrv_rd(d, 0x15, 1);
	vdrv_isr(d);
	assert_int_equal(virtio_balloon_set_target(d->vd, 4 << 20), 0);
	assert_int_equal(vdrv_rd(d, CFG, 4), 1024);
	assert_int_not_equal((uint8_t)vdrv_rd(d, 0x15, 1), gen);
	assert_int_equal(vdrv_isr(d) & 2, 2);
	assert_int_equal(virtio_balloon_set_target(d->vd, VDRV_MEM + PAGE), -ERANGE);

	struct balloon_info bi;
	virtio_balloon_info(d->vd, &bi);
	assert_int_equal(bi.target_bytes, 4 << 20);
	assert_int_equal(bi.actual_bytes, 100 * PAGE);
}

static void test_inflate_returns_memory(void **state)
{
	struct vdrv *d = *state;
	uint32_t pfns[64], id, len;
	struct balloon_info bi;
	unsigned n = 0, irqs;

	vdrv_start(d, 0, 2, 16);
	touch(d, AREA, 64);
	assert_int_equal(resident(d, AREA, 64), 64);
	/* 32 consecutive frames, then every other frame of the next 32, out of order. */
	for (unsigned i = 0; i < 32; i++)
		pfns[n++] = (uint32_t)(AREA / PAGE + 31 - i);
	for (unsigned i = 32; i < 64; i += 2)
		pfns[n++] = (uint32_t)(AREA / PAGE + i);
	irqs = vdrv_irqs(d);
	uint16_t h = send_pfns(d, INFLATEQ, pfns, n);
	assert_true(vdrv_used(d, INFLATEQ, &id, &len));
	assert_int_equal(id, h);
	assert_int_equal(vdrv_irqs(d), irqs + 1);
	assert_int_equal(resident(d, AREA, 32), 0);
	assert_int_equal(resident(d, AREA + 32 * PAGE, 32), 16);
	/* The guest sees zeroes when it touches a ballooned page again. */
	assert_int_equal(*(uint8_t *)vdrv_ptr(d, AREA, 1), 0);
	assert_int_equal(*(uint8_t *)vdrv_ptr(d, AREA + 33 * PAGE, 1), 0xa5);
	virtio_balloon_info(d->vd, &bi);
	assert_int_equal(bi.discarded_bytes, 48 * PAGE);

	/* Deflate: accepted, nothing to do. */
	vdrv_isr(d);
	send_pfns(d, DEFLATEQ, pfns, 32);
	assert_true(vdrv_used(d, DEFLATEQ, &id, &len));
	assert_false(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_bad_pfns(void **state)
{
	struct vdrv *d = *state;
	uint32_t pfns[4] = { (uint32_t)(AREA / PAGE), 0xffffffffu, (uint32_t)(VDRV_MEM / PAGE),
			     (uint32_t)(AREA / PAGE + 1) };
	uint32_t id, len;
	struct balloon_info bi;

	vdrv_start(d, 0, 2, 16);
	touch(d, AREA, 2);
	send_pfns(d, INFLATEQ, pfns, 4);
	assert_true(vdrv_used(d, INFLATEQ, &id, &len));
	/* Frames outside RAM are skipped and counted; the good ones still go. */
	virtio_balloon_info(d->vd, &bi);
	assert_int_equal(bi.bad_pfns, 2);
	assert_int_equal(resident(d, AREA, 2), 0);
	assert_false(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);

	/* A short buffer (6 bytes): one whole PFN is read, the trailing half ignored. */
	touch(d, AREA, 2);
	uint64_t a = vdrv_alloc(d, 8);
	uint32_t two[2] = { (uint32_t)(AREA / PAGE), (uint32_t)(AREA / PAGE + 1) };
	memcpy(vdrv_ptr(d, a, 8), two, 8);
	struct vdrv_buf b = { a, 6, false };
	vdrv_add(d, INFLATEQ, &b, 1);
	vdrv_kick(d, INFLATEQ);
	assert_true(vdrv_used(d, INFLATEQ, &id, &len));
	assert_int_equal(resident(d, AREA, 1), 0);
	assert_int_equal(resident(d, AREA + PAGE, 1), 1);

	/* More frames than one buffer may carry: only the first 4096 are looked at. */
	uint64_t big = vdrv_alloc(d, 4100 * 4);
	memset(vdrv_ptr(d, big, 4100 * 4), 0xff, 4100 * 4);
	struct vdrv_buf bb = { big, 4100 * 4, false };
	vdrv_add(d, INFLATEQ, &bb, 1);
	vdrv_kick(d, INFLATEQ);
	assert_true(vdrv_used(d, INFLATEQ, &id, &len));
	virtio_balloon_info(d->vd, &bi);
	assert_int_equal(bi.bad_pfns, 2 + 4096);
	assert_false(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);

	/* A descriptor loop: NEEDS_RESET, the VMM goes on. */
	vdrv_set_desc(d, INFLATEQ, 5, a, 4, VIRTQ_DESC_F_NEXT, 5);
	vdrv_publish(d, INFLATEQ, 5);
	vdrv_kick(d, INFLATEQ);
	assert_true(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* A PFN buffer pointing outside RAM after reset: NEEDS_RESET again. */
	vdrv_start(d, 0, 2, 16);
	struct vdrv_buf out = { VDRV_MEM - 4, 8, false };
	vdrv_add(d, INFLATEQ, &out, 1);
	vdrv_kick(d, INFLATEQ);
	assert_true(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_false(vdrv_used(d, INFLATEQ, &id, &len));
}

struct stat_ent {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

static void test_stats(void **state)
{
	struct vdrv *d = *state;
	struct stat_ent st[3] = { { 4, 111 }, { 5, 222 }, { 200, 333 } };
	uint64_t a = vdrv_alloc(d, sizeof(st));
	struct vdrv_buf b = { a, sizeof(st), false };
	struct balloon_info bi;
	uint32_t id, len;

	vdrv_start(d, VIRTIO_BIT(F_STATS_VQ), 3, 16);
	memcpy(vdrv_ptr(d, a, sizeof(st)), st, sizeof(st));
	uint16_t h = vdrv_add(d, 2, &b, 1);
	vdrv_kick(d, 2);
	/* The device keeps the buffer until it wants new figures. */
	assert_false(vdrv_used(d, 2, &id, &len));
	virtio_balloon_info(d->vd, &bi);
	assert_int_equal(bi.stats_updates, 1);
	assert_int_equal(bi.stats[4], 111);
	assert_int_equal(bi.stats[5], 222);
	assert_int_equal(bi.stats_valid, (1u << 4) | (1u << 5));
	vdrv_isr(d);
	virtio_balloon_request_stats(d->vd);
	assert_true(vdrv_used(d, 2, &id, &len));
	assert_int_equal(id, h);
	assert_int_equal(vdrv_isr(d) & 1, 1);
	/* Nothing held: a second request does nothing. */
	virtio_balloon_request_stats(d->vd);
	assert_false(vdrv_used(d, 2, &id, &len));

	/* The driver refills it with new figures. */
	st[0].val = 999;
	memcpy(vdrv_ptr(d, a, sizeof(st)), st, sizeof(st));
	vdrv_add(d, 2, &b, 1);
	vdrv_kick(d, 2);
	virtio_balloon_info(d->vd, &bi);
	assert_int_equal(bi.stats[4], 999);
	assert_int_equal(bi.stats_updates, 2);

	/* Snapshot keeps what the guest reported. */
	struct sbuf s = { 0 };
	assert_int_equal(virtio_save(d->vd, &s), 0);
	vdrv_wr(d, 0x14, 1, 0);
	assert_int_equal(virtio_load(d->vd, s.data, s.len), 0);
	virtio_balloon_info(d->vd, &bi);
	assert_int_equal(bi.stats[4], 999);
	virtio_balloon_request_stats(d->vd);
	assert_true(vdrv_used(d, 2, &id, &len));
	sbuf_free(&s);
}

/* Report one range as the Linux driver does: a device-writable descriptor. */
static void report(struct vdrv *d, unsigned q, uint64_t gpa, uint32_t len)
{
	struct vdrv_buf b = { gpa, len, true };
	uint32_t id, l;

	vdrv_add(d, q, &b, 1);
	vdrv_kick(d, q);
	assert_true(vdrv_used(d, q, &id, &l));
}

static void test_reporting(void **state)
{
	struct vdrv *d = *state;

	/* With the stats queue the reporting queue is index 3 ... */
	vdrv_start(d, VIRTIO_BIT(F_STATS_VQ) | VIRTIO_BIT(F_REPORTING), 4, 16);
	touch(d, AREA, 64);
	report(d, 3, AREA, 32 * PAGE);
	assert_int_equal(resident(d, AREA, 32), 0);
	assert_int_equal(resident(d, AREA + 32 * PAGE, 32), 32);
	/* ... without it, index 2. An unaligned range gives back only whole pages inside it. */
	vdrv_start(d, VIRTIO_BIT(F_REPORTING), 3, 16);
	report(d, 2, AREA + 32 * PAGE + 100, 8 * PAGE);
	assert_int_equal(resident(d, AREA + 32 * PAGE, 1), 1);
	assert_int_equal(resident(d, AREA + 33 * PAGE, 7), 0);
	assert_int_equal(resident(d, AREA + 40 * PAGE, 24), 24);
	assert_false(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	/* A queue that does not exist with these features is ignored. */
	vdrv_kick(d, 3);
	assert_false(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

static int setup_plain(void **state)
{
	struct balloon_opts o = { .no_reporting = true, .deflate_on_oom = true };

	return setup_opts(state, &o);
}

static void test_options(void **state)
{
	struct vdrv *d = *state;
	struct balloon_opts big = { .target = VDRV_MEM * 2 };
	struct virtio_dev *vd = NULL;
	struct err e = { { 0 } };
	uint32_t f;

	vdrv_wr(d, 0x00, 4, 0);
	f = (uint32_t)vdrv_rd(d, 0x04, 4);
	assert_false(f & (1u << F_STATS_VQ));
	assert_false(f & (1u << F_REPORTING));
	assert_true(f & (1u << F_DEFLATE_ON_OOM));
	assert_int_equal(vdrv_rd(d, CFG, 4), 0);
	assert_int_not_equal(virtio_balloon_create(&d->f.ctx, &big, &vd, &e), 0);
	assert_non_null(strstr(e.msg, "larger than guest RAM"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_config, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_inflate_returns_memory, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_bad_pfns, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_reporting, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_options, setup_plain, vdrv_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
