// SPDX-License-Identifier: MIT
/* test_bus.c: unit tests for the I/O bus: registration, overlap, dispatch offsets, unclaimed accesses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "vmm/bus.h"

/* Undefined behaviour fails the test: meson 1.0 does not set UBSAN_OPTIONS for us. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

/* A recording device: remembers its last access and answers reads with a pattern. */
struct rec {
	int id;
	unsigned reads, writes;
	uint64_t off;
	uint32_t len;
	uint8_t wdata[8];
};

static void rec_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct rec *r = opaque;

	r->reads++;
	r->off = off;
	r->len = len;
	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(r->id * 16 + off + i);
}

static void rec_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct rec *r = opaque;

	r->writes++;
	r->off = off;
	r->len = len;
	memcpy(r->wdata, data, len);
}

static const struct bus_ops rec_ops = { .read = rec_read, .write = rec_write };
static const struct bus_ops no_ops = { 0 };

static int bus_setup(void **state)
{
	*state = bus_create("test");
	return *state ? 0 : -1;
}

static int bus_teardown(void **state)
{
	bus_destroy(*state);
	return 0;
}

static void test_dispatch_offsets(void **state)
{
	struct bus *b = *state;
	struct rec a = { .id = 1 };
	uint8_t d[8];

	assert_int_equal(bus_register(b, 0x3f8, 8, &rec_ops, &a), 0);

	memset(d, 0, sizeof(d));
	assert_true(bus_access(b, 0x3fd, d, 1, false));
	assert_int_equal(a.reads, 1);
	assert_int_equal(a.off, 5);
	assert_int_equal(a.len, 1);
	assert_int_equal(d[0], 16 + 5);

	/* A wide access at the start covers the whole range. */
	assert_true(bus_access(b, 0x3f8, d, 8, false));
	assert_int_equal(a.off, 0);
	assert_int_equal(a.len, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(d[i], 16 + i);

	memcpy(d, "\x11\x22\x33\x44", 4);
	assert_true(bus_access(b, 0x3fc, d, 4, true));
	assert_int_equal(a.writes, 1);
	assert_int_equal(a.off, 4);
	assert_int_equal(a.len, 4);
	assert_memory_equal(a.wdata, "\x11\x22\x33\x44", 4);
	assert_int_equal(a.reads, 2);
}

static void test_unclaimed(void **state)
{
	struct bus *b = *state;
	struct rec a = { .id = 1 };
	uint8_t d[8];

	/* Empty bus: reads see all-ones, writes vanish. */
	memset(d, 0, sizeof(d));
	assert_false(bus_access(b, 0x80, d, 4, false));
	assert_memory_equal(d, "\xff\xff\xff\xff\0\0\0\0", 8);
	assert_false(bus_access(b, 0x80, d, 1, true));

	assert_int_equal(bus_register(b, 0x100, 4, &rec_ops, &a), 0);
	/* Just before, just after. */
	memset(d, 0, sizeof(d));
	assert_false(bus_access(b, 0xff, d, 1, false));
	assert_int_equal(d[0], 0xff);
	assert_false(bus_access(b, 0x104, d, 1, false));
	assert_int_equal(d[0], 0xff);
	/* Straddling the end or the start of the range: not claimed, device not called. */
	memset(d, 0, sizeof(d));
	assert_false(bus_access(b, 0x102, d, 4, false));
	assert_memory_equal(d, "\xff\xff\xff\xff", 4);
	assert_false(bus_access(b, 0xfe, d, 4, false));
	assert_false(bus_access(b, 0x103, d, 2, true));
	assert_false(bus_access(b, 0xff, d, 2, true));
	assert_int_equal(a.reads, 0);
	assert_int_equal(a.writes, 0);
	/* The exact last byte is claimed. */
	assert_true(bus_access(b, 0x103, d, 1, false));
	assert_int_equal(a.off, 3);
}

static void test_bad_lengths(void **state)
{
	struct bus *b = *state;
	struct rec a = { .id = 2 };
	uint8_t d[16];

	assert_int_equal(bus_register(b, 0, 64, &rec_ops, &a), 0);
	memset(d, 0x11, sizeof(d));
	assert_false(bus_access(b, 0, d, 0, false));
	assert_false(bus_access(b, 0, d, 9, false));
	assert_false(bus_access(b, 0, d, 16, true));
	assert_false(bus_access(b, 0, d, UINT32_MAX, false));
	assert_int_equal(a.reads + a.writes, 0);
	/* A refused length touches no data. */
	assert_int_equal(d[0], 0x11);
	assert_true(bus_access(b, 0, d, 8, false));
}

static void test_register_errors(void **state)
{
	struct bus *b = *state;
	struct rec a = { .id = 1 };

	assert_int_equal(bus_register(b, 0x10, 0, &rec_ops, &a), -EINVAL);
	assert_int_equal(bus_register(b, 0x10, 4, NULL, &a), -EINVAL);
	/* Wrapping past 2^64. */
	assert_int_equal(bus_register(b, UINT64_MAX, 2, &rec_ops, &a), -EINVAL);
	assert_int_equal(bus_register(b, 2, UINT64_MAX, &rec_ops, &a), -EINVAL);
	assert_int_equal(bus_register(b, UINT64_MAX - 3, 5, &rec_ops, &a), -EINVAL);
	/* Ending exactly at 2^64 - 1 is fine. */
	assert_int_equal(bus_register(b, UINT64_MAX - 3, 4, &rec_ops, &a), 0);
	{
		uint8_t d[4];

		assert_true(bus_access(b, UINT64_MAX - 3, d, 4, false));
		assert_int_equal(a.off, 0);
		assert_true(bus_access(b, UINT64_MAX, d, 1, false));
		assert_int_equal(a.off, 3);
		/* An access wrapping around 2^64 is not claimed. */
		assert_false(bus_access(b, UINT64_MAX, d, 2, false));
	}
	assert_int_equal(bus_unregister(b, UINT64_MAX - 3), 0);
	/* The whole address space as one range. */
	assert_int_equal(bus_register(b, 0, UINT64_MAX, &rec_ops, &a), 0);
	assert_int_equal(bus_register(b, 5, 1, &rec_ops, &a), -EEXIST);
}

static void test_overlap(void **state)
{
	struct bus *b = *state;
	struct rec a = { .id = 1 }, c = { .id = 2 };
	static const struct {
		uint64_t base, len;
	} clash[] = {
		{ 0x100, 0x10 }, /* identical */
		{ 0x104, 4 },	 /* inside */
		{ 0xf0, 0x20 },	 /* over the start */
		{ 0x10f, 8 },	 /* over the end */
		{ 0x80, 0x100 }, /* containing */
		{ 0x10f, 1 },	 /* last byte */
		{ 0xff, 2 },	 /* first byte */
	};

	assert_int_equal(bus_register(b, 0x100, 0x10, &rec_ops, &a), 0);
	for (size_t i = 0; i < ARRAY_SIZE(clash); i++)
		assert_int_equal(bus_register(b, clash[i].base, clash[i].len, &rec_ops, &c), -EEXIST);
	/* Adjacent on both sides is fine. */
	assert_int_equal(bus_register(b, 0xf0, 0x10, &rec_ops, &c), 0);
	assert_int_equal(bus_register(b, 0x110, 1, &rec_ops, &c), 0);
	/* A range spanning a gap that would hit the neighbour. */
	assert_int_equal(bus_register(b, 0x111, 0x10, &rec_ops, &c), 0);
	assert_int_equal(bus_register(b, 0x121, 0x10, &rec_ops, &c), 0);
	assert_int_equal(bus_register(b, 0x200, 1, &rec_ops, &c), 0);
	assert_int_equal(bus_register(b, 0x131, 0xd0, &rec_ops, &c), -EEXIST);
	assert_int_equal(bus_register(b, 0x131, 0xcf, &rec_ops, &c), 0);

	/* The original range still routes to its device. */
	{
		uint8_t d[1];

		assert_true(bus_access(b, 0x105, d, 1, false));
		assert_int_equal(a.reads, 1);
		assert_int_equal(a.off, 5);
		assert_true(bus_access(b, 0x1ff, d, 1, false));
		assert_int_equal(c.off, 0xce);
	}
}

static void test_unregister(void **state)
{
	struct bus *b = *state;
	struct rec a = { .id = 1 }, c = { .id = 2 };
	uint8_t d[2];

	assert_int_equal(bus_register(b, 0x60, 1, &rec_ops, &a), 0);
	assert_int_equal(bus_register(b, 0x64, 1, &rec_ops, &c), 0);
	assert_int_equal(bus_unregister(b, 0x61), -ENOENT);
	assert_int_equal(bus_unregister(b, 0x63), -ENOENT);
	assert_int_equal(bus_unregister(b, 0x1000), -ENOENT);
	assert_int_equal(bus_unregister(b, 0x60), 0);
	assert_int_equal(bus_unregister(b, 0x60), -ENOENT);
	assert_false(bus_access(b, 0x60, d, 1, false));
	assert_int_equal(d[0], 0xff);
	assert_int_equal(a.reads, 0);
	assert_true(bus_access(b, 0x64, d, 1, false));
	assert_int_equal(c.reads, 1);
	/* The freed range can be claimed again, by someone else. */
	assert_int_equal(bus_register(b, 0x60, 4, &rec_ops, &c), 0);
	assert_true(bus_access(b, 0x63, d, 1, false));
	assert_int_equal(c.off, 3);
	/* Unregistering by an address inside a range is refused. */
	{
		struct rec e = { .id = 3 };

		assert_int_equal(bus_register(b, 0x1000, 0x100, &rec_ops, &e), 0);
		assert_int_equal(bus_unregister(b, 0x1080), -ENOENT);
		assert_true(bus_access(b, 0x1080, d, 2, false));
		assert_int_equal(e.off, 0x80);
	}
}

/* A device without handlers: reads are claimed and see all-ones, writes are dropped. */
static void test_no_handlers(void **state)
{
	struct bus *b = *state;
	uint8_t d[4] = { 1, 2, 3, 4 };

	assert_int_equal(bus_register(b, 0x500, 4, &no_ops, NULL), 0);
	assert_true(bus_access(b, 0x500, d, 4, true));
	assert_memory_equal(d, "\x01\x02\x03\x04", 4);
	assert_true(bus_access(b, 0x501, d, 2, false));
	assert_memory_equal(d, "\xff\xff\x03\x04", 4);
}

/* Many ranges registered in scrambled order: each address reaches its own device. */
static void test_many_sorted(void **state)
{
	struct bus *b = *state;
	enum { N = 300 };
	static struct rec recs[N];
	uint8_t d[2];
	size_t i;

	for (i = 0; i < N; i++) {
		/* 7 is coprime with N: visits every index once, out of order. */
		size_t k = (i * 7 + 3) % N;

		recs[k] = (struct rec){ .id = (int)k };
		assert_int_equal(bus_register(b, 0x10000 + k * 0x10, 0x8, &rec_ops, &recs[k]), 0);
	}
	for (i = 0; i < N; i++) {
		uint64_t base = 0x10000 + i * 0x10;

		assert_true(bus_access(b, base + 6, d, 2, false));
		assert_int_equal(recs[i].reads, 1);
		assert_int_equal(recs[i].off, 6);
		/* The gap after each range is unclaimed. */
		assert_false(bus_access(b, base + 8, d, 1, false));
		assert_false(bus_access(b, base + 7, d, 2, false));
		/* Every range overlaps itself. */
		assert_int_equal(bus_register(b, base + 4, 1, &rec_ops, &recs[0]), -EEXIST);
	}
	/* Remove every other one; the rest still route. */
	for (i = 0; i < N; i += 2)
		assert_int_equal(bus_unregister(b, 0x10000 + i * 0x10), 0);
	for (i = 0; i < N; i++) {
		bool claimed = bus_access(b, 0x10000 + i * 0x10, d, 1, true);

		assert_int_equal(claimed, i % 2 == 1);
		assert_int_equal(recs[i].writes, i % 2 == 1 ? 1 : 0);
	}
	/* And reregistering in the gaps works. */
	for (i = 0; i < N; i += 2)
		assert_int_equal(bus_register(b, 0x10000 + i * 0x10, 0x10, &rec_ops, &recs[i]), 0);
	assert_int_equal(bus_register(b, 0x10000 + 1 * 0x10 + 8, 8, &rec_ops, &recs[0]), 0);
	assert_int_equal(bus_register(b, 0x10000 + 1 * 0x10 + 7, 1, &rec_ops, &recs[0]), -EEXIST);
}

/* Two buses are independent (no hidden global table). */
static void test_two_buses(void **state)
{
	struct bus *b = *state, *b2 = bus_create("second");
	struct rec a = { .id = 1 }, c = { .id = 2 };
	uint8_t d[1];

	assert_non_null(b2);
	assert_int_equal(bus_register(b, 0x10, 1, &rec_ops, &a), 0);
	assert_int_equal(bus_register(b2, 0x10, 1, &rec_ops, &c), 0);
	assert_true(bus_access(b2, 0x10, d, 1, false));
	assert_int_equal(d[0], 2 * 16);
	assert_int_equal(a.reads, 0);
	bus_destroy(b2);
	bus_destroy(NULL);
}

/* Dispatch on one thread while another registers and unregisters. */
struct race {
	struct bus *b;
	int stop;     /* atomic */
	unsigned loops; /* atomic */
	unsigned bad;
};

static void *race_reader(void *arg)
{
	struct race *r = arg;
	uint8_t d[4];

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (bus_access(r->b, 0x2000, d, 4, false) && d[0] != 0x10)
			r->bad++;
		if (bus_access(r->b, 0x3000, d, 1, false) && d[0] != 0x20)
			r->bad++;
		__atomic_fetch_add(&r->loops, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct race r = { .b = *state };
	struct rec a = { .id = 1 }, c = { .id = 2 };
	pthread_t t;

	/* Only the reader thread calls the devices, so their unlocked counters are safe. */
	assert_int_equal(bus_register(r.b, 0x2000, 4, &rec_ops, &a), 0);
	assert_int_equal(pthread_create(&t, NULL, race_reader, &r), 0);
	for (int i = 0; i < 2000 || __atomic_load_n(&r.loops, __ATOMIC_RELAXED) < 2000; i++) {
		assert_int_equal(bus_register(r.b, 0x3000, 1, &rec_ops, &c), 0);
		assert_int_equal(bus_unregister(r.b, 0x3000), 0);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_int_equal(r.bad, 0);
	assert_true(a.reads > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dispatch_offsets, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_unclaimed, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_bad_lengths, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_register_errors, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_overlap, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_unregister, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_no_handlers, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_many_sorted, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_two_buses, bus_setup, bus_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, bus_setup, bus_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
