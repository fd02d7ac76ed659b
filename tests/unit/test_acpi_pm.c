// SPDX-License-Identifier: MIT
/* test_acpi_pm.c: unit tests for the ACPI fixed-hardware device, driven through a real port bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/sbuf.h"
#include "dev/acpi_pm.h"
#include "vmm/bus.h"

#define PWRBTN (1u << 8)
#define SLP_EN (1u << 13)

/* What the device asked of the fake VM. */
struct fake_vm {
	struct bus *pio;
	struct dev_ctx ctx;
	void *pm;
	unsigned poweroffs, resets;
	bool sci;
	unsigned sci_calls;
	uint32_t other_gsi_calls;
};

static int fake_irq_set(void *opaque, uint32_t gsi, bool level)
{
	struct fake_vm *vm = opaque;

	if (gsi != X86_IRQ_SCI) {
		vm->other_gsi_calls++;
		return 0;
	}
	vm->sci = level;
	vm->sci_calls++;
	return 0;
}

static void fake_request(void *opaque, enum vm_request req)
{
	struct fake_vm *vm = opaque;

	if (req == VM_REQ_POWEROFF)
		vm->poweroffs++;
	else if (req == VM_REQ_RESET)
		vm->resets++;
}

static int setup(void **state)
{
	struct fake_vm *vm = calloc(1, sizeof(*vm));
	struct err e;

	assert_non_null(vm);
	vm->pio = bus_create("pio");
	assert_non_null(vm->pio);
	vm->ctx = (struct dev_ctx){ .pio = vm->pio, .irq_set = fake_irq_set, .irq_opaque = vm,
				    .request = fake_request, .request_opaque = vm,
				    .console_in_fd = -1, .console_out_fd = -1 };
	assert_int_equal(acpi_pm_desc.create(&vm->ctx, &vm->pm, &e), 0);
	*state = vm;
	return 0;
}

static int teardown(void **state)
{
	struct fake_vm *vm = *state;

	acpi_pm_desc.destroy(vm->pm);
	bus_destroy(vm->pio);
	free(vm);
	return 0;
}

static uint32_t in(struct fake_vm *vm, uint16_t port, uint32_t len)
{
	uint8_t d[4] = { 0 };
	uint32_t v = 0;

	bus_access(vm->pio, port, d, len, false);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void out(struct fake_vm *vm, uint16_t port, uint32_t len, uint32_t v)
{
	uint8_t d[4];

	for (uint32_t i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	assert_true(bus_access(vm->pio, port, d, len, true));
}

static void test_ports_claimed(void **state)
{
	struct fake_vm *vm = *state;
	static const struct bus_ops none = { 0 };
	void *second;
	struct err e;

	/* A second instance cannot claim the same ports, and unwinds what it took. */
	assert_int_equal(acpi_pm_desc.create(&vm->ctx, &second, &e), -EEXIST);
	assert_true(strlen(e.msg) > 0);
	assert_int_equal(in(vm, X86_PORT_PM1A_CNT, 2) & 1, 1);
	/* 0xcf8-0xcff (with the reset register) stays free for the PCI host. */
	assert_int_equal(bus_register(vm->pio, X86_PORT_PCI_CONFIG, 8, &none, NULL), 0);
	/* Unclaimed neighbours read as an empty bus. */
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT + X86_PM1_EVT_LEN + X86_PM1_CNT_LEN, 1), 0xff);
}

static void test_sci_en(void **state)
{
	struct fake_vm *vm = *state;

	assert_int_equal(in(vm, X86_PORT_PM1A_CNT, 2), 1);
	/* SCI_EN cannot be cleared: there is no legacy mode to return to. */
	out(vm, X86_PORT_PM1A_CNT, 2, 0);
	assert_int_equal(in(vm, X86_PORT_PM1A_CNT, 1), 1);
	/* SLP_TYP keeps its value, SLP_EN reads 0. */
	out(vm, X86_PORT_PM1A_CNT, 2, 3 << 10);
	assert_int_equal(in(vm, X86_PORT_PM1A_CNT, 2), (3 << 10) | 1);
	assert_int_equal(vm->poweroffs, 0);
}

static void test_s5_poweroff(void **state)
{
	struct fake_vm *vm = *state;

	out(vm, X86_PORT_PM1A_CNT, 2, (X86_SLP_TYP_S5 << 10) | SLP_EN | 1);
	assert_int_equal(vm->poweroffs, 1);
	assert_int_equal(vm->resets, 0);
	/* Without SLP_EN, nothing happens. */
	out(vm, X86_PORT_PM1A_CNT, 2, X86_SLP_TYP_S5 << 10);
	assert_int_equal(vm->poweroffs, 1);
	/* A byte write to the high half carries both SLP_TYP and SLP_EN. */
	out(vm, X86_PORT_PM1A_CNT + 1, 1, ((X86_SLP_TYP_S5 << 10) | SLP_EN) >> 8);
	assert_int_equal(vm->poweroffs, 2);
}

static void test_other_sleep_types(void **state)
{
	struct fake_vm *vm = *state;

	for (unsigned typ = 0; typ < 8; typ++) {
		if (typ == X86_SLP_TYP_S5)
			continue;
		out(vm, X86_PORT_PM1A_CNT, 2, (typ << 10) | SLP_EN);
	}
	assert_int_equal(vm->poweroffs, 0);
	assert_int_equal(vm->resets, 0);
}

static void test_pm1_sts_w1c(void **state)
{
	struct fake_vm *vm = *state;

	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 2) & PWRBTN, 0);
	acpi_pm_power_button(vm->pm);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 2) & PWRBTN, PWRBTN);
	/* Writing 0 (or other bits) leaves it set; writing 1 clears it. */
	out(vm, X86_PORT_PM1A_EVT, 2, 0);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 2) & PWRBTN, PWRBTN);
	out(vm, X86_PORT_PM1A_EVT, 1, 0xff);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 2) & PWRBTN, PWRBTN);
	out(vm, X86_PORT_PM1A_EVT + 1, 1, PWRBTN >> 8);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 2) & PWRBTN, 0);
}

static void test_power_button_sci(void **state)
{
	struct fake_vm *vm = *state;

	/* Not enabled: status set, no SCI. */
	acpi_pm_power_button(vm->pm);
	assert_false(vm->sci);
	/* Enabling raises it (re-evaluated on the write). */
	out(vm, X86_PORT_PM1A_EVT + 2, 2, PWRBTN);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT + 2, 2), PWRBTN);
	assert_true(vm->sci);
	/* Clearing the status lowers it. */
	out(vm, X86_PORT_PM1A_EVT, 2, PWRBTN);
	assert_false(vm->sci);
	/* Enabled first, then the button: asserted right away, as a level. */
	acpi_pm_power_button(vm->pm);
	assert_true(vm->sci);
	acpi_pm_power_button(vm->pm);
	assert_true(vm->sci);
	/* Disabling lowers it with the status still set. */
	out(vm, X86_PORT_PM1A_EVT + 2, 2, 0);
	assert_false(vm->sci);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 2) & PWRBTN, PWRBTN);
	assert_int_equal(vm->other_gsi_calls, 0);
}

static void test_gpe(void **state)
{
	struct fake_vm *vm = *state;

	acpi_pm_gpe_raise(vm->pm, 3);
	acpi_pm_gpe_raise(vm->pm, 99); /* out of range: ignored */
	assert_int_equal(in(vm, X86_PORT_GPE0, 2), 1u << 3);
	assert_false(vm->sci);
	/* OSes touch GPE registers a byte at a time. */
	out(vm, X86_PORT_GPE0 + 2, 1, 1u << 3);
	assert_true(vm->sci);
	out(vm, X86_PORT_GPE0, 1, 1u << 3);
	assert_int_equal(in(vm, X86_PORT_GPE0, 4), (1u << 3) << 16);
	assert_false(vm->sci);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000L };

	nanosleep(&ts, NULL);
}

static void test_timer(void **state)
{
	struct fake_vm *vm = *state;
	uint32_t a, b, d;

	a = in(vm, X86_PORT_PM_TMR, 4);
	sleep_ms(5);
	b = in(vm, X86_PORT_PM_TMR, 4);
	assert_int_equal(a >> 24, 0);
	assert_int_equal(b >> 24, 0);
	d = (b - a) & 0xffffff;
	/* 5 ms at 3.579545 MHz is ~17898 ticks; allow a slow machine plenty. */
	assert_true(d >= 17000 && d < 3579545);
	/* Read-only: a write changes nothing and does not crash. */
	out(vm, X86_PORT_PM_TMR, 4, 0);
	assert_true(((in(vm, X86_PORT_PM_TMR, 4) - b) & 0xffffff) < 3579545);
	/* Byte reads return the bytes of the counter. */
	assert_int_equal(in(vm, X86_PORT_PM_TMR + 3, 1), 0);
}

/* TMR_STS follows bit 23 of the counter: restore it just below, then wait. */
static void test_tmr_sts(void **state)
{
	struct fake_vm *vm = *state;
	struct sbuf s = { 0 };

	assert_int_equal(acpi_pm_desc.save(vm->pm, &s), 0);
	assert_int_equal(s.len, 16);
	s.data[2] = 0;
	memcpy(s.data + 12, &(uint32_t){ 0x7ffff0 }, 4);
	assert_int_equal(acpi_pm_desc.load(vm->pm, s.data, s.len), 0);
	sleep_ms(1);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 2) & 1, 1);
	/* No SCI: TMR_EN is not emulated as an interrupt source. */
	out(vm, X86_PORT_PM1A_EVT + 2, 2, 1);
	assert_false(vm->sci);
	out(vm, X86_PORT_PM1A_EVT, 2, 1);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 2) & 1, 0);
	sbuf_free(&s);
}

static void test_odd_widths(void **state)
{
	struct fake_vm *vm = *state;
	uint8_t d[8];

	acpi_pm_power_button(vm->pm);
	out(vm, X86_PORT_PM1A_EVT + 2, 2, PWRBTN);
	/* 4-byte read: PM1_STS low half, PM1_EN high half. */
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 4) & ~1u, PWRBTN | PWRBTN << 16);
	/* 3 bytes at offset 1: STS high, EN low, EN high. */
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT + 1, 3), 0x01 | 0x01 << 16);
	/* A 2-byte write straddling STS high and EN low applies bytewise. */
	out(vm, X86_PORT_PM1A_EVT + 1, 2, 0x0001);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 4) & ~1u, PWRBTN << 16);
	assert_false(vm->sci);
	/* So does a 3-byte one: STS high, EN low, EN high. */
	acpi_pm_power_button(vm->pm);
	assert_true(vm->sci);
	out(vm, X86_PORT_PM1A_EVT + 1, 3, 0x000001);
	assert_int_equal(in(vm, X86_PORT_PM1A_EVT, 4) & ~1u, 0);
	assert_false(vm->sci);
	/* Accesses running past a block are not claimed: the bus returns 0xff. */
	assert_false(bus_access(vm->pio, X86_PORT_PM1A_CNT, d, 4, false));
	assert_int_equal(d[0], 0xff);
	assert_false(bus_access(vm->pio, X86_PORT_PM1A_EVT + 3, d, 2, true));
	/* 8-byte access on the 4-byte timer: not claimed either. */
	assert_false(bus_access(vm->pio, X86_PORT_PM_TMR, d, 8, false));
	/* Every width at every offset inside the blocks works. */
	for (uint32_t len = 1; len <= 4; len++)
		for (uint32_t off = 0; off + len <= 4; off++) {
			memset(d, 0, sizeof(d));
			assert_true(bus_access(vm->pio, X86_PORT_PM1A_EVT + off, d, len, false));
			assert_true(bus_access(vm->pio, X86_PORT_GPE0 + off, d, len, true));
			assert_true(bus_access(vm->pio, X86_PORT_PM_TMR + off, d, len, false));
		}
}

static void test_save_load(void **state)
{
	struct fake_vm *vm = *state;
	struct fake_vm vm2 = { 0 };
	struct sbuf s = { 0 };
	uint32_t tmr, tmr2;
	void *pm2;
	struct err e;

	acpi_pm_power_button(vm->pm);
	out(vm, X86_PORT_PM1A_EVT + 2, 2, PWRBTN);
	out(vm, X86_PORT_PM1A_CNT, 2, 3 << 10);
	acpi_pm_gpe_raise(vm->pm, 1);
	out(vm, X86_PORT_GPE0 + 2, 2, 0x0006);
	assert_true(vm->sci);
	tmr = in(vm, X86_PORT_PM_TMR, 4);
	assert_int_equal(acpi_pm_desc.save(vm->pm, &s), 0);
	assert_true(s.len > 0);

	vm2.pio = bus_create("pio2");
	assert_non_null(vm2.pio);
	vm2.ctx = (struct dev_ctx){ .pio = vm2.pio, .irq_set = fake_irq_set, .irq_opaque = &vm2,
				    .request = fake_request, .request_opaque = &vm2 };
	assert_int_equal(acpi_pm_desc.create(&vm2.ctx, &pm2, &e), 0);
	assert_false(vm2.sci);
	assert_int_equal(acpi_pm_desc.load(pm2, s.data, s.len), 0);
	/* The SCI line is driven to the restored level. */
	assert_true(vm2.sci);
	assert_int_equal(in(&vm2, X86_PORT_PM1A_EVT, 4) & ~1u, PWRBTN | PWRBTN << 16);
	assert_int_equal(in(&vm2, X86_PORT_PM1A_CNT, 2), (3 << 10) | 1);
	assert_int_equal(in(&vm2, X86_PORT_GPE0, 4), 0x0002 | 0x0006 << 16);
	/* The counter goes on from where it was saved. */
	tmr2 = in(&vm2, X86_PORT_PM_TMR, 4);
	assert_true(((tmr2 - tmr) & 0xffffff) < 3579545);

	/* Bad records are refused and change nothing. */
	s.data[0] = 99;
	assert_int_equal(acpi_pm_desc.load(pm2, s.data, s.len), -EINVAL);
	s.data[0] = 1;
	assert_int_equal(acpi_pm_desc.load(pm2, s.data, s.len - 1), -EINVAL);
	assert_int_equal(acpi_pm_desc.load(pm2, s.data, 0), -EINVAL);
	s.data[4] = 0xff; /* PM1_EN with bits no register holds */
	s.data[5] = 0xff;
	assert_int_equal(acpi_pm_desc.load(pm2, s.data, s.len), -EINVAL);
	assert_int_equal(in(&vm2, X86_PORT_PM1A_EVT + 2, 2), PWRBTN);

	sbuf_free(&s);
	acpi_pm_desc.destroy(pm2);
	bus_destroy(vm2.pio);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ports_claimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sci_en, setup, teardown),
		cmocka_unit_test_setup_teardown(test_s5_poweroff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_sleep_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pm1_sts_w1c, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_button_sci, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmr_sts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_widths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
