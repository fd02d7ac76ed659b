// SPDX-License-Identifier: MIT
/* test_pci.c: device tests for the PCI host bridge: mechanism #1 at 0xcf8/0xcfc and the 0xcf9 reset register. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "dev/legacy.h"
#include "dev/pci.h"
#include "fake.h"
#include "vmm/bus.h"
#include "vmm/mem.h"

#define ADDR X86_PORT_PCI_CONFIG
#define DATA (X86_PORT_PCI_CONFIG + 4)
#define RCR X86_PORT_RESET

#define EN 0x80000000u
#define CFG(bus, slot, fn, reg) (EN | (bus) << 16 | (slot) << 11 | (fn) << 8 | (reg))

static int setup(void **state)
{
	return fake_dev_setup(state, &pci_host_desc, false);
}

/* Read config space of (bus, slot, fn) at reg with width len, as Linux's pci_conf1_read does. */
static uint32_t cfg_read(struct fake_dev *t, unsigned bus, unsigned slot, unsigned fn, unsigned reg,
			 unsigned len)
{
	fake_out(&t->f, ADDR, 4, CFG(bus, slot, fn, reg & 0xfc));
	return fake_in(&t->f, (uint16_t)(DATA + (reg & 3)), len);
}

static void cfg_write(struct fake_dev *t, unsigned reg, unsigned len, uint32_t v)
{
	fake_out(&t->f, ADDR, 4, CFG(0, 0, 0, reg & 0xfc));
	fake_out(&t->f, (uint16_t)(DATA + (reg & 3)), len, v);
}

static void test_ports(void **state)
{
	struct fake_dev *t = *state;

	for (uint16_t p = ADDR; p < ADDR + 8; p++)
		assert_true(fake_claimed(&t->f, p, 1));
	assert_false(fake_claimed(&t->f, ADDR - 1, 1));
	assert_false(fake_claimed(&t->f, ADDR + 8, 1));
	assert_false(fake_claimed(&t->f, DATA + 2, 4));
	pci_host_desc.destroy(t->dev);
	assert_false(fake_claimed(&t->f, ADDR, 4));
	t->dev = fake_create(&t->f, &pci_host_desc);
}

static void test_config_address(void **state)
{
	struct fake_dev *t = *state;
	static const uint32_t vals[] = { 0x80000000, 0x80001234, 0x00fff8fc, 0 };

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		fake_out(&t->f, ADDR, 4, vals[i]);
		assert_int_equal(fake_in(&t->f, ADDR, 4), vals[i]);
	}
	/* Narrow accesses at 0xcf8 do not touch CONFIG_ADDRESS and read as all-ones. */
	fake_out(&t->f, ADDR, 4, 0x80000010);
	fake_out(&t->f, ADDR, 1, 0x55);
	fake_out(&t->f, ADDR, 2, 0x5555);
	assert_int_equal(fake_in(&t->f, ADDR, 4), 0x80000010);
	assert_int_equal(fake_in(&t->f, ADDR, 2), 0xffff);
	assert_int_equal(fake_in(&t->f, ADDR, 1), 0xff);
	assert_int_equal(fake_in(&t->f, ADDR + 2, 2), 0xffff);
}

static void test_bridge_ids(void **state)
{
	struct fake_dev *t = *state;

	/* Vendor 0x1b36 (Red Hat), device 0x0008 (generic PCIe host bridge). */
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x00, 4), 0x00081b36);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x00, 2), 0x1b36);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x02, 2), 0x0008);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x00, 1), 0x36);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x01, 1), 0x1b);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x02, 1), 0x08);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x03, 1), 0x00);
	/* Class 06/00: bridge, host; revision 0; header type 0. */
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x08, 4), 0x06000000);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x0a, 2), 0x0600);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x0b, 1), 0x06);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x0e, 1), 0x00);
	/* Command: memory and bus master on. */
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x04, 2) & 0x06, 0x06);
	/* No BARs, and the last dword of the 256-byte space exists. */
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x10, 4), 0);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0xfc, 4), 0);
}

static void test_absent(void **state)
{
	struct fake_dev *t = *state;

	/* Empty slots, other functions, other buses. */
	assert_int_equal(cfg_read(t, 0, 1, 0, 0x00, 4), 0xffffffff);
	assert_int_equal(cfg_read(t, 0, 31, 0, 0x00, 4), 0xffffffff);
	assert_int_equal(cfg_read(t, 0, 0, 1, 0x00, 4), 0xffffffff);
	assert_int_equal(cfg_read(t, 0, 0, 7, 0x00, 2), 0xffff);
	assert_int_equal(cfg_read(t, 1, 0, 0, 0x00, 4), 0xffffffff);
	assert_int_equal(cfg_read(t, 255, 0, 0, 0x00, 1), 0xff);
	/* Without the enable bit nothing is addressed. */
	fake_out(&t->f, ADDR, 4, 0x00000000);
	assert_int_equal(fake_in(&t->f, DATA, 4), 0xffffffff);
	/* Writes there go nowhere: the bridge's command register is unchanged. */
	fake_out(&t->f, DATA, 2, 0x0000);
	fake_out(&t->f, ADDR, 4, CFG(1, 0, 0, 0x04));
	fake_out(&t->f, DATA, 2, 0x0000);
	fake_out(&t->f, ADDR, 4, CFG(0, 0, 3, 0x04));
	fake_out(&t->f, DATA, 2, 0x0000);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x04, 2) & 0x06, 0x06);
}

static void test_read_only(void **state)
{
	struct fake_dev *t = *state;

	cfg_write(t, 0x00, 4, 0xdeadbeef);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x00, 4), 0x00081b36);
	cfg_write(t, 0x0a, 2, 0xffff);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x08, 4), 0x06000000);
	cfg_write(t, 0x0e, 1, 0x80);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x0e, 1), 0x00);
	cfg_write(t, 0x10, 4, 0xffffffff); /* BAR sizing finds no BAR */
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x10, 4), 0);
	cfg_write(t, 0x3c, 1, 0x0b);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x3c, 1), 0);
	cfg_write(t, 0xfc, 4, 0x12345678);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0xfc, 4), 0);
	/* The command register is writable. */
	cfg_write(t, 0x04, 2, 0x0000);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x04, 2), 0x0000);
	cfg_write(t, 0x04, 2, 0x0006);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x04, 2), 0x0006);
	/* A dword write at 0x04 changes the command register but not the status. */
	cfg_write(t, 0x04, 4, 0xffff0002);
	assert_int_equal(cfg_read(t, 0, 0, 0, 0x04, 4), 0x00000002);
	assert_int_equal(t->f.requests[VM_REQ_RESET], 0);
}

static void test_reset_register(void **state)
{
	struct fake_dev *t = *state;

	assert_int_equal(fake_inb(&t->f, RCR), 0x00);
	/* Bit 1 alone selects the reset type: no reset yet. */
	fake_outb(&t->f, RCR, 0x02);
	assert_int_equal(t->f.requests[VM_REQ_RESET], 0);
	assert_int_equal(fake_inb(&t->f, RCR), 0x02);
	/* Bit 2 starts it: exactly one request. */
	fake_outb(&t->f, RCR, 0x06);
	assert_int_equal(t->f.requests[VM_REQ_RESET], 1);
	assert_int_equal(t->f.requests[VM_REQ_POWEROFF], 0);
	fake_outb(&t->f, RCR, 0x04);
	assert_int_equal(t->f.requests[VM_REQ_RESET], 2);
	/* Bits other than 1-3 do not stick and bit 0 / bit 7 start nothing. */
	fake_outb(&t->f, RCR, 0xf1);
	assert_int_equal(fake_inb(&t->f, RCR), 0x00);
	assert_int_equal(t->f.requests[VM_REQ_RESET], 2);
	/* CONFIG_ADDRESS writes never reach the reset register, even with bit 10 set. */
	fake_out(&t->f, ADDR, 4, 0x80000400);
	assert_int_equal(t->f.requests[VM_REQ_RESET], 2);
	assert_int_equal(fake_inb(&t->f, RCR), 0x00);
	/* Only byte accesses address it. */
	fake_out(&t->f, RCR, 2, 0x0606);
	assert_int_equal(t->f.requests[VM_REQ_RESET], 2);
}

static void test_save_load(void **state)
{
	struct fake_dev *t = *state, *u;
	struct sbuf s = { 0 }, s2 = { 0 };

	cfg_write(t, 0x04, 2, 0x0002);
	fake_out(&t->f, ADDR, 4, CFG(0, 0, 0, 0x08));
	fake_outb(&t->f, RCR, 0x02);
	assert_int_equal(pci_host_desc.save(t->dev, &s), 0);

	assert_int_equal(setup((void **)&u), 0);
	assert_int_equal(pci_host_desc.load(u->dev, s.data, s.len), 0);
	/* Saving right after loading gives back the same record. */
	assert_int_equal(pci_host_desc.save(u->dev, &s2), 0);
	assert_int_equal(s2.len, s.len);
	assert_memory_equal(s2.data, s.data, s.len);
	assert_int_equal(fake_in(&u->f, ADDR, 4), CFG(0, 0, 0, 0x08));
	assert_int_equal(fake_in(&u->f, DATA + 2, 2), 0x0600);
	assert_int_equal(fake_inb(&u->f, RCR), 0x02);
	assert_int_equal(cfg_read(u, 0, 0, 0, 0x04, 2), 0x0002);

	assert_int_equal(pci_host_desc.load(u->dev, s.data, s.len - 1), -EINVAL);
	assert_int_equal(pci_host_desc.load(u->dev, s.data, 0), -EINVAL);
	s.data[0] = 0x7f;
	assert_int_equal(pci_host_desc.load(u->dev, s.data, s.len), -EINVAL);
	assert_int_equal(u->f.requests[VM_REQ_RESET], 0);
	fake_dev_teardown((void **)&u);
	sbuf_free(&s);
	sbuf_free(&s2);
}

/* A function with one 64-bit memory BAR of 4 KiB; records its bar_mapped calls. */
struct bar_dev {
	struct pci_device pci;
	unsigned mapped, unmapped;
	uint64_t last;
};

static void bar_dev_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	memset(data, 0x5a, len);
}

static void bar_dev_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	(void)data;
	(void)len;
}

static const struct bus_ops bar_dev_ops = { .read = bar_dev_read, .write = bar_dev_write };

static void bar_dev_mapped(void *opaque, int bar, uint64_t addr)
{
	struct bar_dev *b = opaque;

	assert_int_equal(bar, 0);
	if (addr)
		b->mapped++;
	else
		b->unmapped++;
	b->last = addr;
}

/* Slot 1, function 0: write the 64-bit BAR0 as a guest would (low dword, then high). */
static void bar_write64(struct fake_dev *t, uint64_t addr)
{
	fake_out(&t->f, ADDR, 4, CFG(0, 1, 0, PCI_BAR0));
	fake_out(&t->f, DATA, 4, (uint32_t)addr);
	fake_out(&t->f, ADDR, 4, CFG(0, 1, 0, PCI_BAR0 + 4));
	fake_out(&t->f, DATA, 4, (uint32_t)(addr >> 32));
}

/*
 * A guest that moves a 64-bit BAR onto its own RAM above 4 GiB (or over the
 * IOAPIC, or across the end of RAM) gets no decoding there: the BAR is off the
 * MMIO bus, as if unassigned, until it is moved somewhere legal.
 */
static void test_bar_over_ram(void **state)
{
	struct fake_dev *t = *state;
	/* 3 GiB below the hole and 2 GiB from 4 GiB: RAM ends at 6 GiB. */
	struct guest_mem gm = { .fd = -1, .size = 5ULL << 30, .low_size = 3ULL << 30,
				.high_size = 2ULL << 30, .page_size = 4096 };
	const uint64_t ram_end = X86_MEM_HIGH_START + (2ULL << 30);
	struct bar_dev b = { 0 };
	struct err e = { { 0 } };
	void *host;
	uint64_t assigned;

	/* The host bridge copies its context when created: a new one, with RAM. */
	pci_host_desc.destroy(t->dev);
	t->f.ctx.gm = &gm;
	host = t->dev = fake_create(&t->f, &pci_host_desc);
	b.pci.name = "bar-test";
	b.pci.bars[0] = (struct pci_bar_desc){ .size = 0x1000, .is64 = true, .ops = &bar_dev_ops,
					       .opaque = &b };
	b.pci.bar_mapped = bar_dev_mapped;
	b.pci.opaque = &b;
	assert_int_equal(pci_add_device(host, &b.pci, &e), 0);
	assert_int_equal(b.mapped, 1);
	assigned = b.last;
	assert_true(fake_mmio_claimed(&t->f, assigned, 4));

	/* Onto high RAM: unmapped, nothing decodes there. */
	bar_write64(t, X86_MEM_HIGH_START + 0x100000);
	assert_int_equal(cfg_read(t, 0, 1, 0, PCI_BAR0 + 4, 4), 1); /* the register holds it */
	assert_false(fake_mmio_claimed(&t->f, X86_MEM_HIGH_START + 0x100000, 4));
	assert_false(fake_mmio_claimed(&t->f, assigned, 4));
	assert_int_equal(b.last, 0);
	assert_int_equal(b.mapped, 1);
	/* The last page of RAM, and low RAM, are refused too. */
	bar_write64(t, ram_end - 0x1000);
	assert_false(fake_mmio_claimed(&t->f, ram_end - 0x1000, 4));
	bar_write64(t, 0x100000);
	assert_false(fake_mmio_claimed(&t->f, 0x100000, 4));
	/* Past the 32-bit window (IOAPIC) is not decoded either. */
	bar_write64(t, X86_IOAPIC_BASE);
	assert_false(fake_mmio_claimed(&t->f, X86_IOAPIC_BASE, 4));
	assert_int_equal(b.mapped, 1);

	/* Just above RAM is legal again, and so is the window. */
	bar_write64(t, ram_end);
	assert_true(fake_mmio_claimed(&t->f, ram_end, 4));
	assert_int_equal(fake_mmio_read(&t->f, ram_end, 1), 0x5a);
	assert_int_equal(b.last, ram_end);
	bar_write64(t, assigned);
	assert_false(fake_mmio_claimed(&t->f, ram_end, 4));
	assert_true(fake_mmio_claimed(&t->f, assigned, 4));
	assert_int_equal(b.last, assigned);

	pci_remove_device(host, &b.pci);
	assert_false(fake_mmio_claimed(&t->f, assigned, 4));
	/* The teardown destroys the new host bridge, which keeps no pointer into RAM. */
	t->f.ctx.gm = NULL;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fake_dev_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ports),
		T(test_config_address),
		T(test_bridge_ids),
		T(test_absent),
		T(test_read_only),
		T(test_reset_register),
		T(test_save_load),
		T(test_bar_over_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
