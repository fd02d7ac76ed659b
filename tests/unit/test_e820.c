// SPDX-License-Identifier: MIT
/* test_e820.c: unit tests for the guest e820 memory map (e820_build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "base/util.h"

static void expect_entry(const struct e820_entry *en, uint64_t addr, uint64_t end, uint32_t type)
{
	assert_int_equal(en->addr, addr);
	assert_int_equal(en->size, end - addr);
	assert_int_equal(en->type, type);
}

/* Entries come sorted, non-overlapping, never empty. */
static void check_sane(const struct e820_entry *m, int n)
{
	for (int i = 0; i < n; i++) {
		assert_true(m[i].size > 0);
		if (i)
			assert_true(m[i - 1].addr + m[i - 1].size <= m[i].addr);
	}
}

static void test_small_guest(void **state)
{
	struct e820_entry m[E820_MAX];
	int n = e820_build(64 * MiB, 0, m, E820_MAX);

	assert_int_equal(n, 4);
	expect_entry(&m[0], 0, X86_LOW_RAM_END, E820_RAM);
	expect_entry(&m[1], X86_EBDA_START, 1 * MiB, E820_RESERVED);
	expect_entry(&m[2], 1 * MiB, 64 * MiB, E820_RAM);
	expect_entry(&m[3], X86_PCI_MMIO_END, 4 * GiB, E820_RESERVED);
	check_sane(m, n);
}

static void test_3g_guest(void **state)
{
	struct e820_entry m[E820_MAX];
	int n = e820_build(3 * GiB, 0, m, E820_MAX);

	assert_int_equal(n, 4);
	expect_entry(&m[2], 1 * MiB, 3 * GiB, E820_RAM);
	expect_entry(&m[3], X86_PCI_MMIO_END, 4 * GiB, E820_RESERVED);
	check_sane(m, n);
}

static void test_6g_guest(void **state)
{
	struct e820_entry m[E820_MAX];
	int n = e820_build(3 * GiB, 3 * GiB, m, E820_MAX);

	assert_int_equal(n, 5);
	expect_entry(&m[0], 0, X86_LOW_RAM_END, E820_RAM);
	expect_entry(&m[2], 1 * MiB, X86_MEM_HOLE_START, E820_RAM);
	expect_entry(&m[4], 4 * GiB, 7 * GiB, E820_RAM);
	check_sane(m, n);
}

/* low_size is clamped to the hole even if a caller passes more. */
static void test_low_clamped_to_hole(void **state)
{
	struct e820_entry m[E820_MAX];
	int n = e820_build(4 * GiB, 0, m, E820_MAX);

	assert_int_equal(n, 4);
	expect_entry(&m[2], 1 * MiB, X86_MEM_HOLE_START, E820_RAM);
}

static void test_tiny_guest(void **state)
{
	struct e820_entry m[E820_MAX];
	int n = e820_build(512 * KiB, 0, m, E820_MAX);

	assert_int_equal(n, 3);
	expect_entry(&m[0], 0, 512 * KiB, E820_RAM);
	expect_entry(&m[1], X86_EBDA_START, 1 * MiB, E820_RESERVED);
	expect_entry(&m[2], X86_PCI_MMIO_END, 4 * GiB, E820_RESERVED);
}

static void test_no_room(void **state)
{
	struct e820_entry m[E820_MAX];

	assert_int_equal(e820_build(3 * GiB, 3 * GiB, m, 4), -ENOSPC);
	assert_int_equal(e820_build(64 * MiB, 0, m, 0), -ENOSPC);
	assert_int_equal(e820_build(64 * MiB, 0, m, 4), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_guest),
		cmocka_unit_test(test_3g_guest),
		cmocka_unit_test(test_6g_guest),
		cmocka_unit_test(test_low_clamped_to_hole),
		cmocka_unit_test(test_tiny_guest),
		cmocka_unit_test(test_no_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
