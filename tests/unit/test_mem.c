// SPDX-License-Identifier: MIT
/* test_mem.c: unit tests for guest RAM (mem_create, mem_regions) and the checked accessor gm_ptr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"
#include "vmm/mem.h"

/* Undefined behaviour fails the test: meson 1.0 does not set UBSAN_OPTIONS for us. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

static void make(struct guest_mem *gm, uint64_t size)
{
	/* The memfd backing (none): these tests read RAM back through the fd. */
	struct mem_opts o = { .size = size, .huge = MEM_HUGE_NONE };
	struct err e = { { 0 } };
	int r = mem_create(gm, &o, &e);

	if (r)
		print_error("mem_create(%llu): %s\n", (unsigned long long)size, e.msg);
	assert_int_equal(r, 0);
}

/* The default (auto): 2 MiB-aligned host RAM so guest huge pages can be host huge pages. */
static void test_auto_aligned(void **state)
{
	struct mem_opts o = { .size = 6 * MiB };
	struct guest_mem gm;
	struct err e;

	assert_int_equal(mem_create(&gm, &o, &e), 0);
	assert_int_equal((uintptr_t)gm.host % (2 * MiB), 0);
	assert_true(gm.anon ? gm.fd == -1 : gm.fd >= 0);
	assert_int_equal(gm_write(&gm, 6 * MiB - 1, "x", 1), 0);
	assert_null(gm_ptr(&gm, 6 * MiB, 1));
	mem_destroy(&gm);
}

static void test_create_small(void **state)
{
	struct guest_mem gm;
	struct mem_region reg[2];

	make(&gm, 1 * MiB);
	assert_true(gm.fd >= 0);
	assert_non_null(gm.host);
	assert_int_equal(gm.size, 1 * MiB);
	assert_int_equal(gm.low_size, 1 * MiB);
	assert_int_equal(gm.high_size, 0);
	assert_int_equal(gm.page_size, 4096);
	assert_int_equal(gm_end(&gm), 1 * MiB);
	assert_int_equal(mem_regions(&gm, reg), 1);
	assert_int_equal(reg[0].gpa, 0);
	assert_int_equal(reg[0].size, 1 * MiB);
	assert_ptr_equal(reg[0].host, gm.host);
	/* Fresh RAM reads as zeros; the memfd and the mapping are the same memory. */
	assert_int_equal(gm.host[4096], 0);
	gm.host[4096] = 0x5a;
	{
		uint8_t b = 0;

		assert_int_equal(pread(gm.fd, &b, 1, 4096), 1);
		assert_int_equal(b, 0x5a);
	}
	mem_destroy(&gm);
	assert_null(gm.host);
	assert_int_equal(gm.fd, -1);
	mem_destroy(&gm); /* twice is harmless */
}

static void test_create_one_page(void **state)
{
	struct guest_mem gm;

	make(&gm, 4096);
	assert_non_null(gm_ptr(&gm, 4095, 1));
	assert_null(gm_ptr(&gm, 4096, 1));
	mem_destroy(&gm);
}

/* Transparent huge pages, KSM and prefaulting are hints: the guest RAM works with all of them. */
static void test_create_options(void **state)
{
	struct mem_opts o = { .size = 4 * MiB, .huge = MEM_HUGE_THP, .merge = true, .prefault = true };
	struct guest_mem gm;
	struct err e = { { 0 } };

	assert_int_equal(mem_create(&gm, &o, &e), 0);
	assert_int_equal(gm.page_size, 4096);
	assert_int_equal(gm_write(&gm, 2 * MiB + 5, "abc", 3), 0);
	assert_memory_equal(gm.host + 2 * MiB + 5, "abc", 3);
	mem_destroy(&gm);
}

static void test_create_bad_sizes(void **state)
{
	static const uint64_t bad[] = { 0, 1, 4095, 4097, 1 * MiB + 512 };
	struct guest_mem gm;
	struct err e;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct mem_opts o = { .size = bad[i] };

		e.msg[0] = '\0';
		assert_int_equal(mem_create(&gm, &o, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "multiple of 4096"));
		assert_null(gm.host);
		assert_int_equal(gm.fd, -1);
		mem_destroy(&gm); /* safe after a failed create */
	}
	/* hugetlbfs needs 2 MiB multiples; the size check comes before any allocation. */
	{
		struct mem_opts o = { .size = 3 * MiB, .huge = MEM_HUGE_HUGETLBFS };

		assert_int_equal(mem_create(&gm, &o, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "2097152"));
		assert_int_equal(gm.fd, -1);
	}
}

static void test_gm_ptr_small(void **state)
{
	struct guest_mem gm;
	const uint64_t sz = 2 * MiB;

	make(&gm, sz);
	assert_ptr_equal(gm_ptr(&gm, 0, 1), gm.host);
	assert_ptr_equal(gm_ptr(&gm, 0, sz), gm.host);
	assert_ptr_equal(gm_ptr(&gm, sz - 8, 8), gm.host + sz - 8);
	/* len 0 is refused, even where a byte exists. */
	assert_null(gm_ptr(&gm, 0, 0));
	assert_null(gm_ptr(&gm, 100, 0));
	/* Past the end, or straddling it. */
	assert_null(gm_ptr(&gm, sz, 1));
	assert_null(gm_ptr(&gm, sz - 8, 9));
	assert_null(gm_ptr(&gm, 0, sz + 1));
	/* Wrap around 2^64. */
	assert_null(gm_ptr(&gm, UINT64_MAX, 1));
	assert_null(gm_ptr(&gm, UINT64_MAX, 2));
	assert_null(gm_ptr(&gm, 16, UINT64_MAX));
	assert_null(gm_ptr(&gm, UINT64_MAX - 4, 16));
	assert_null(gm_ptr(&gm, 1, UINT64_MAX));
	/* Nothing above 4 GiB for a small guest. */
	assert_null(gm_ptr(&gm, X86_MEM_HIGH_START, 1));
	assert_null(gm_ptr(&gm, X86_MEM_HIGH_START + 0x1000, 8));
	mem_destroy(&gm);
	/* A destroyed guest has no memory at all. */
	assert_null(gm_ptr(&gm, 0, 1));
}

static void test_gm_read_write(void **state)
{
	struct guest_mem gm;
	uint8_t in[64], out[64];

	make(&gm, 1 * MiB);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i ^ 0xa5);
	assert_int_equal(gm_write(&gm, 0x1000 - 32, in, sizeof(in)), 0);
	memset(out, 0, sizeof(out));
	assert_int_equal(gm_read(&gm, 0x1000 - 32, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));
	assert_memory_equal(gm.host + 0x1000 - 32, in, sizeof(in));
	/* Straddling the end: refused and memory not touched. */
	memset(out, 0x77, sizeof(out));
	assert_int_equal(gm_read(&gm, 1 * MiB - 32, out, sizeof(out)), -EFAULT);
	assert_int_equal(out[0], 0x77);
	assert_int_equal(gm_write(&gm, 1 * MiB - 32, in, sizeof(in)), -EFAULT);
	assert_int_equal(gm.host[1 * MiB - 32], 0);
	assert_int_equal(gm_read(&gm, 0, out, 0), -EFAULT);
	assert_int_equal(gm_write(&gm, UINT64_MAX - 10, in, 20), -EFAULT);
	mem_destroy(&gm);
}

/* Exactly 3 GiB: all of it below the hole, nothing high. */
static void test_three_gib(void **state)
{
	struct guest_mem gm;
	struct mem_region reg[2];

	make(&gm, X86_MEM_HOLE_START);
	assert_int_equal(gm.low_size, X86_MEM_HOLE_START);
	assert_int_equal(gm.high_size, 0);
	assert_int_equal(mem_regions(&gm, reg), 1);
	assert_int_equal(gm_end(&gm), X86_MEM_HOLE_START);
	assert_non_null(gm_ptr(&gm, X86_MEM_HOLE_START - 1, 1));
	assert_null(gm_ptr(&gm, X86_MEM_HOLE_START - 1, 2));
	assert_null(gm_ptr(&gm, X86_MEM_HIGH_START, 1));
	mem_destroy(&gm);
}

/*
 * A 5 GiB guest: 3 GiB low, 2 GiB from 4 GiB. The memfd is sparse and mapped
 * MAP_NORESERVE, so only the pages the test touches cost memory.
 */
static void test_high_memory(void **state)
{
	const uint64_t size = 5 * GiB, low = X86_MEM_HOLE_START, high = size - low;
	const uint64_t hi = X86_MEM_HIGH_START;
	struct guest_mem gm;
	struct mem_region reg[2];
	uint64_t v;

	make(&gm, size);
	assert_int_equal(gm.low_size, low);
	assert_int_equal(gm.high_size, high);
	assert_int_equal(gm_end(&gm), hi + high);

	assert_int_equal(mem_regions(&gm, reg), 2);
	assert_int_equal(reg[0].gpa, 0);
	assert_int_equal(reg[0].size, low);
	assert_ptr_equal(reg[0].host, gm.host);
	assert_int_equal(reg[1].gpa, hi);
	assert_int_equal(reg[1].size, high);
	assert_ptr_equal(reg[1].host, gm.host + low);

	/* Low region end, straddling the hole start, inside the hole. */
	assert_ptr_equal(gm_ptr(&gm, low - 4, 4), gm.host + low - 4);
	assert_null(gm_ptr(&gm, low - 4, 5));
	assert_null(gm_ptr(&gm, low, 1));
	assert_null(gm_ptr(&gm, low + 0x1000, 8));
	assert_null(gm_ptr(&gm, X86_IOAPIC_BASE, 4));
	assert_null(gm_ptr(&gm, X86_LAPIC_BASE, 4));
	assert_null(gm_ptr(&gm, hi - 1, 1));
	/* Straddling into high memory from the hole. */
	assert_null(gm_ptr(&gm, hi - 1, 2));
	/* A range covering the whole hole from low RAM to high RAM. */
	assert_null(gm_ptr(&gm, low - 1, hi - low + 2));

	/* High memory is backed right after the low part of the memfd. */
	assert_ptr_equal(gm_ptr(&gm, hi, 1), gm.host + low);
	assert_ptr_equal(gm_ptr(&gm, hi, high), gm.host + low);
	assert_ptr_equal(gm_ptr(&gm, hi + high - 8, 8), gm.host + size - 8);
	assert_null(gm_ptr(&gm, hi + high - 8, 9));
	assert_null(gm_ptr(&gm, hi + high, 1));
	assert_null(gm_ptr(&gm, hi, high + 1));
	assert_null(gm_ptr(&gm, UINT64_MAX, 1));
	assert_null(gm_ptr(&gm, hi + 8, UINT64_MAX - 4));

	/* Writes at 4 GiB land at host offset 3 GiB and are visible through the fd. */
	v = 0x1122334455667788ULL;
	assert_int_equal(gm_write(&gm, hi + 0x10, &v, sizeof(v)), 0);
	assert_memory_equal(gm.host + low + 0x10, &v, sizeof(v));
	{
		uint64_t w = 0;

		assert_int_equal(pread(gm.fd, &w, sizeof(w), (off_t)(low + 0x10)), (ssize_t)sizeof(w));
		assert_int_equal(w, v);
		assert_int_equal(gm_read(&gm, hi + 0x10, &w, sizeof(w)), 0);
		assert_int_equal(w, v);
	}
	/* The last byte of RAM. */
	assert_int_equal(gm_write(&gm, hi + high - 1, "\x42", 1), 0);
	assert_int_equal(gm.host[size - 1], 0x42);
	mem_destroy(&gm);
}

/* Just past 3 GiB: one page of high memory. */
static void test_one_high_page(void **state)
{
	struct guest_mem gm;
	struct mem_region reg[2];

	make(&gm, X86_MEM_HOLE_START + 4096);
	assert_int_equal(gm.high_size, 4096);
	assert_int_equal(mem_regions(&gm, reg), 2);
	assert_int_equal(reg[1].size, 4096);
	assert_int_equal(gm_end(&gm), X86_MEM_HIGH_START + 4096);
	assert_non_null(gm_ptr(&gm, X86_MEM_HIGH_START + 4095, 1));
	assert_null(gm_ptr(&gm, X86_MEM_HIGH_START + 4095, 2));
	assert_null(gm_ptr(&gm, X86_MEM_HIGH_START + 4096, 1));
	mem_destroy(&gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_small),
		cmocka_unit_test(test_auto_aligned),
		cmocka_unit_test(test_create_one_page),
		cmocka_unit_test(test_create_options),
		cmocka_unit_test(test_create_bad_sizes),
		cmocka_unit_test(test_gm_ptr_small),
		cmocka_unit_test(test_gm_read_write),
		cmocka_unit_test(test_three_gib),
		cmocka_unit_test(test_high_memory),
		cmocka_unit_test(test_one_high_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
