// SPDX-License-Identifier: MIT
/* test_acpi.c: unit tests for acpi_build, mptable_build and the PCI INTx routing rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"

#define BIOS_LEN (X86_BIOS_END - X86_BIOS_START)

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* A built set of tables, as the guest sees them at X86_BIOS_START. */
struct tables {
	uint8_t *buf;
	size_t used;
	uint32_t ids[256];
	struct acpi_config cfg;
};

static void build(struct tables *t, unsigned ncpus)
{
	struct err e;

	t->buf = malloc(BIOS_LEN);
	assert_non_null(t->buf);
	memset(t->buf, 0xa5, BIOS_LEN);
	/* Distinct, non-contiguous APIC IDs for small counts catch index mixups. */
	for (unsigned i = 0; i < ncpus; i++)
		t->ids[i] = ncpus <= 8 ? i * 2 + 1 : i;
	t->cfg = (struct acpi_config){ .ncpus = ncpus, .apic_ids = t->ids, .ioapic_id = ncpus,
				       .ioapic_addr = X86_IOAPIC_BASE,
				       .lapic_addr = X86_LAPIC_BASE };
	assert_int_equal(acpi_build(t->buf, BIOS_LEN, X86_BIOS_START, &t->cfg, &t->used, &e), 0);
	assert_true(t->used > 0 && t->used <= BIOS_LEN);
}

/* Host pointer of a table at guest address gpa, checked to lie inside what was built. */
static const uint8_t *at(const struct tables *t, uint64_t gpa, size_t len)
{
	assert_true(gpa >= X86_BIOS_START);
	assert_true(range_ok(gpa - X86_BIOS_START, len, t->used));
	return t->buf + (gpa - X86_BIOS_START);
}

/* A table with a standard header: signature, length inside the buffer, checksum. */
static const uint8_t *table(const struct tables *t, uint64_t gpa, const char *sig)
{
	const uint8_t *h = at(t, gpa, 36);
	uint32_t len = rd32(h + 4);

	assert_memory_equal(h, sig, 4);
	assert_true(len >= 36);
	at(t, gpa, len);
	assert_int_equal(sum(h, len), 0);
	assert_memory_equal(h + 10, "KVMM  ", 6);
	return h;
}

static const uint8_t *xsdt_entry(const struct tables *t, const char *sig)
{
	const uint8_t *x = table(t, rd64(t->buf + 24), "XSDT");
	uint32_t n = (rd32(x + 4) - 36) / 8;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *h = at(t, rd64(x + 36 + 8 * i), 36);

		if (!memcmp(h, sig, 4))
			return table(t, rd64(x + 36 + 8 * i), sig);
	}
	fail_msg("%s not in the XSDT", sig);
	return NULL;
}

static void check_rsdp(const struct tables *t)
{
	const uint8_t *r = t->buf;

	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum(r, 20), 0);
	assert_int_equal(r[15], 2);
	assert_int_equal(rd32(r + 20), 36);
	assert_int_equal(sum(r, 36), 0);
	assert_memory_equal(r + 9, "KVMM  ", 6);
	table(t, rd64(r + 24), "XSDT");
}

static void check_gas_io(const uint8_t *g, uint16_t port, unsigned bits)
{
	assert_int_equal(g[0], 1); /* system I/O */
	assert_int_equal(g[1], bits);
	assert_int_equal(rd64(g + 4), port);
}

static void check_fadt(const struct tables *t)
{
	const uint8_t *f = xsdt_entry(t, "FACP");
	const uint8_t *facs, *dsdt;
	uint32_t flags = rd32(f + 112);

	assert_int_equal(rd32(f + 4), 276);
	assert_int_equal(f[8], 6);
	/* FACS and DSDT: the 32-bit and X_ pointers agree and land on the tables. */
	assert_int_equal(rd32(f + 36), rd64(f + 132));
	assert_int_equal(rd32(f + 40), rd64(f + 140));
	facs = at(t, rd64(f + 132), 64);
	assert_memory_equal(facs, "FACS", 4);
	assert_int_equal(rd32(facs + 4), 64);
	assert_int_equal(rd64(f + 132) % 64, 0);
	dsdt = table(t, rd64(f + 140), "DSDT");
	(void)dsdt;

	assert_int_equal(rd16(f + 46), X86_IRQ_SCI);
	assert_int_equal(rd32(f + 48), 0); /* SMI_CMD: always in ACPI mode */
	assert_int_equal(rd32(f + 56), X86_PORT_PM1A_EVT);
	assert_int_equal(rd32(f + 64), X86_PORT_PM1A_CNT);
	assert_int_equal(rd32(f + 76), X86_PORT_PM_TMR);
	assert_int_equal(rd32(f + 80), X86_PORT_GPE0);
	assert_int_equal(f[88], X86_PM1_EVT_LEN);
	assert_int_equal(f[89], X86_PM1_CNT_LEN);
	assert_int_equal(f[91], X86_PM_TMR_LEN);
	assert_int_equal(f[92], X86_GPE0_LEN);
	assert_int_equal(f[108], 0x32);
	assert_int_equal(rd16(f + 109), 0x3);
	assert_true(flags & (1u << 0));     /* WBINVD */
	assert_true(flags & (1u << 2));     /* PROC_C1 */
	assert_false(flags & (1u << 4));    /* fixed-feature power button */
	assert_true(flags & (1u << 5));     /* no sleep button */
	assert_false(flags & (1u << 8));    /* 24-bit timer */
	assert_true(flags & (1u << 10));    /* RESET_REG_SUP */
	assert_false(flags & (1u << 20));   /* not hardware-reduced */
	check_gas_io(f + 116, X86_PORT_RESET, 8);
	assert_int_equal(f[128], 0x06);
	check_gas_io(f + 148, X86_PORT_PM1A_EVT, 8 * X86_PM1_EVT_LEN);
	check_gas_io(f + 172, X86_PORT_PM1A_CNT, 8 * X86_PM1_CNT_LEN);
	check_gas_io(f + 208, X86_PORT_PM_TMR, 8 * X86_PM_TMR_LEN);
	check_gas_io(f + 220, X86_PORT_GPE0, 8 * X86_GPE0_LEN);
}

static void check_madt(const struct tables *t)
{
	const uint8_t *m = xsdt_entry(t, "APIC");
	uint32_t len = rd32(m + 4), off = 44;
	unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;

	assert_int_equal(rd32(m + 36), X86_LAPIC_BASE);
	assert_int_equal(rd32(m + 40), 1); /* PCAT_COMPAT */
	while (off < len) {
		const uint8_t *s = m + off;

		assert_true(off + 2 <= len && s[1] >= 2 && off + s[1] <= len);
		switch (s[0]) {
		case 0:
			assert_int_equal(s[1], 8);
			assert_int_equal(s[2], lapics); /* UID = index */
			assert_int_equal(s[3], t->ids[lapics]);
			assert_int_equal(rd32(s + 4), 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(s[1], 12);
			assert_int_equal(s[2], t->cfg.ioapic_id);
			assert_int_equal(rd32(s + 4), X86_IOAPIC_BASE);
			assert_int_equal(rd32(s + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(s[1], 10);
			assert_int_equal(s[2], 0);
			if (s[3] == 0) {
				assert_int_equal(rd32(s + 4), 2);
				assert_int_equal(rd16(s + 8), 0);
			} else {
				assert_int_equal(s[3], X86_IRQ_SCI);
				assert_int_equal(rd32(s + 4), X86_IRQ_SCI);
				assert_int_equal(rd16(s + 8), 0x0d); /* level, active high */
			}
			isos++;
			break;
		case 4:
			assert_int_equal(s[1], 6);
			assert_int_equal(s[2], 0xff);
			assert_int_equal(s[5], 1); /* LINT1 */
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", s[0]);
		}
		off += s[1];
	}
	assert_int_equal(off, len);
	assert_int_equal(lapics, t->cfg.ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 2);
	assert_int_equal(nmis, 1);
}

static void check_all(unsigned ncpus)
{
	struct tables t;

	build(&t, ncpus);
	assert_true(X86_BIOS_START + t.used <= X86_BIOS_END);
	check_rsdp(&t);
	check_fadt(&t);
	check_madt(&t);
	free(t.buf);
}

static void test_tables_1(void **state)
{
	check_all(1);
}

static void test_tables_2(void **state)
{
	check_all(2);
}

static void test_tables_8(void **state)
{
	check_all(8);
}

static void test_tables_255(void **state)
{
	check_all(255);
}

/* Find needle in the DSDT the guest gets; NULL when absent. */
static const uint8_t *dsdt_find(const uint8_t *d, const void *needle, size_t n)
{
	uint32_t len = rd32(d + 4);

	for (uint32_t i = 0; i + n <= len; i++)
		if (!memcmp(d + i, needle, n))
			return d + i;
	return NULL;
}

/* One AML integer (ACPI 6.x section 20.2.3): returns its size, 0 when not one. */
static size_t aml_int(const uint8_t *p, uint64_t *v)
{
	*v = 0;
	switch (p[0]) {
	case 0x00: *v = 0; return 1;
	case 0x01: *v = 1; return 1;
	case 0x0a: *v = p[1]; return 2;
	case 0x0b: *v = rd16(p + 1); return 3;
	case 0x0c: *v = rd32(p + 1); return 5;
	default: return 0;
	}
}

/* The DSDT source repeats numbers from layout.h: check the compiled bytes agree. */
static void test_dsdt_matches_layout(void **state)
{
	struct tables t;
	const uint8_t *f, *d, *p;
	uint8_t mmio[8], com1[] = { 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x08, 0x08 };
	uint8_t irq4[] = { 0x22, 1u << X86_IRQ_COM1, 0x00 };
	uint32_t start = X86_PCI_MMIO_START, end = X86_PCI_MMIO_END - 1;

	build(&t, 1);
	f = xsdt_entry(&t, "FACP");
	d = table(&t, rd64(f + 140), "DSDT");
	assert_int_equal(d[8], 2); /* 64-bit integers */

	/* \_S5_: Package (4) { 5, 5, 0, 0 } */
	p = dsdt_find(d, "_S5_", 4);
	assert_non_null(p);
	assert_int_equal(p[4], 0x12);
	assert_int_equal(p[6], 4);
	assert_int_equal(p[7], 0x0a);
	assert_int_equal(p[8], X86_SLP_TYP_S5);

	/* The 32-bit window: DWordMemory minimum and maximum. */
	memcpy(mmio, &start, 4);
	memcpy(mmio + 4, &end, 4);
	assert_non_null(dsdt_find(d, mmio, sizeof(mmio)));
	assert_int_equal(X86_PORT_COM1, 0x3f8);
	assert_non_null(dsdt_find(d, com1, sizeof(com1)));
	assert_non_null(dsdt_find(d, irq4, sizeof(irq4)));
	assert_non_null(dsdt_find(d, "PCI0", 4));
	assert_non_null(dsdt_find(d, "COM1", 4));
	free(t.buf);
}

/* Every _PRT entry agrees with x86_pci_intx_gsi(), and slots 1..31 x 4 pins are all there. */
static void test_dsdt_prt(void **state)
{
	struct tables t;
	const uint8_t *f, *d, *p, *end;
	uint8_t seen[32][4] = { { 0 } };
	unsigned n = 0;

	build(&t, 1);
	f = xsdt_entry(&t, "FACP");
	d = table(&t, rd64(f + 140), "DSDT");
	p = dsdt_find(d, "_PRT", 4);
	assert_non_null(p);
	end = d + rd32(d + 4);
	/* Entries: Package { DWord 0xSSSSFFFF, pin, Zero, GSI } */
	for (; p + 12 <= end; p++) {
		uint64_t addr, pin, src, gsi;
		size_t k;
		const uint8_t *q;

		if (p[0] != 0x12 || p[2] != 0x04 || p[3] != 0x0c)
			continue;
		q = p + 3;
		q += aml_int(q, &addr);
		k = aml_int(q, &pin);
		assert_true(k > 0);
		q += k;
		k = aml_int(q, &src);
		assert_true(k > 0);
		q += k;
		k = aml_int(q, &gsi);
		assert_true(k > 0);
		assert_int_equal(addr & 0xffff, 0xffff);
		assert_true((addr >> 16) >= 1 && (addr >> 16) <= 31);
		assert_true(pin <= 3);
		assert_int_equal(src, 0);
		assert_int_equal(gsi, x86_pci_intx_gsi((unsigned)(addr >> 16), (unsigned)pin));
		assert_false(seen[addr >> 16][pin]);
		seen[addr >> 16][pin] = 1;
		n++;
	}
	assert_int_equal(n, 31 * 4);
	free(t.buf);
}

static void test_intx_gsi(void **state)
{
	assert_int_equal(x86_pci_intx_gsi(1, 0), 17);
	assert_int_equal(x86_pci_intx_gsi(1, 3), 20);
	assert_int_equal(x86_pci_intx_gsi(7, 0), 23);
	assert_int_equal(x86_pci_intx_gsi(7, 1), 16);
	assert_int_equal(x86_pci_intx_gsi(31, 3), 18);
	for (unsigned s = 1; s < 32; s++)
		for (unsigned p = 0; p < 4; p++) {
			uint32_t g = x86_pci_intx_gsi(s, p);

			assert_true(g >= 16 && g <= 23);
		}
}

static void test_acpi_too_small(void **state)
{
	uint32_t ids[255];
	struct acpi_config cfg = { .ncpus = 255, .apic_ids = ids, .ioapic_id = 0,
				   .ioapic_addr = X86_IOAPIC_BASE, .lapic_addr = X86_LAPIC_BASE };
	uint8_t *buf = malloc(BIOS_LEN);
	size_t used = 0, need;
	struct err e;

	assert_non_null(buf);
	for (unsigned i = 0; i < 255; i++)
		ids[i] = i;
	assert_int_equal(acpi_build(buf, BIOS_LEN, X86_BIOS_START, &cfg, &need, &e), 0);
	assert_int_equal(acpi_build(buf, 100, X86_BIOS_START, &cfg, &used, &e), -ENOSPC);
	assert_true(strlen(e.msg) > 0);
	assert_int_equal(acpi_build(buf, need - 1, X86_BIOS_START, &cfg, &used, &e), -ENOSPC);
	assert_int_equal(acpi_build(buf, need, X86_BIOS_START, &cfg, &used, &e), 0);
	assert_int_equal(used, need);
	/* A large buffer placed too close to 1 MiB must not spill past the BIOS area. */
	assert_int_equal(acpi_build(buf, BIOS_LEN, X86_BIOS_END - 1024, &cfg, &used, &e),
			 -ENOSPC);
	cfg.ncpus = 0;
	assert_int_equal(acpi_build(buf, BIOS_LEN, X86_BIOS_START, &cfg, &used, &e), -EINVAL);
	free(buf);
}

/* APIC IDs of 255 and up get Processor Local x2APIC entries and an x2APIC NMI entry. */
static void test_acpi_x2apic(void **state)
{
	uint32_t ids[2] = { 0, 300 };
	struct acpi_config cfg = { .ncpus = 2, .apic_ids = ids, .ioapic_id = 0,
				   .ioapic_addr = X86_IOAPIC_BASE, .lapic_addr = X86_LAPIC_BASE };
	uint8_t *buf = calloc(1, BIOS_LEN);
	const uint8_t *x, *m;
	unsigned found = 0;
	size_t used;
	struct err e;

	assert_non_null(buf);
	assert_int_equal(acpi_build(buf, BIOS_LEN, X86_BIOS_START, &cfg, &used, &e), 0);
	x = buf + (rd64(buf + 24) - X86_BIOS_START);
	m = buf + (rd64(x + 44) - X86_BIOS_START);
	assert_memory_equal(m, "APIC", 4);
	assert_int_equal(sum(m, rd32(m + 4)), 0);
	for (uint32_t off = 44; off < rd32(m + 4); off += m[off + 1]) {
		if (m[off] == 9) {
			assert_int_equal(rd32(m + off + 4), 300);
			assert_int_equal(rd32(m + off + 12), 1);
			found |= 1;
		} else if (m[off] == 10) {
			assert_int_equal(m[off + 8], 1);
			found |= 2;
		}
	}
	assert_int_equal(found, 3);
	free(buf);
}

static void check_mptable(unsigned ncpus)
{
	uint8_t buf[1024];
	uint32_t ids[64];
	struct acpi_config cfg = { .ncpus = ncpus, .apic_ids = ids, .ioapic_id = ncpus,
				   .ioapic_addr = X86_IOAPIC_BASE, .lapic_addr = X86_LAPIC_BASE };
	const uint8_t *c, *p;
	unsigned cpus = 0, buses = 0, ioapics = 0, ioints = 0, lints = 0;
	size_t used;
	struct err e;

	for (unsigned i = 0; i < ncpus; i++)
		ids[i] = i + 1;
	memset(buf, 0xa5, sizeof(buf));
	assert_int_equal(mptable_build(buf, sizeof(buf), X86_MPTABLE_START, &cfg, &used, &e), 0);
	assert_true(used <= sizeof(buf));
	assert_memory_equal(buf, "_MP_", 4);
	assert_int_equal(buf[8], 1);
	assert_int_equal(buf[9], 4);
	assert_int_equal(sum(buf, 16), 0);
	assert_int_equal(buf[11], 0); /* a configuration table follows */
	assert_int_equal(rd32(buf + 4), X86_MPTABLE_START + 16);
	c = buf + 16;
	assert_memory_equal(c, "PCMP", 4);
	assert_int_equal(c[6], 4);
	assert_int_equal(16 + rd16(c + 4), used);
	assert_int_equal(sum(c, rd16(c + 4)), 0);
	assert_int_equal(rd32(c + 36), X86_LAPIC_BASE);
	p = c + 44;
	for (unsigned i = 0; i < rd16(c + 34); i++) {
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], ids[cpus]);
			assert_int_equal(p[3], cpus == 0 ? 3 : 1); /* EN, BP on vCPU 0 */
			cpus++;
			p += 20;
			break;
		case 1:
			assert_memory_equal(p + 2, "ISA   ", 6);
			buses++;
			p += 8;
			break;
		case 2:
			assert_int_equal(p[1], ncpus);
			assert_int_equal(rd32(p + 4), X86_IOAPIC_BASE);
			ioapics++;
			p += 8;
			break;
		case 3:
			assert_int_equal(p[6], ncpus);
			if (p[5] == 0)
				assert_int_equal(p[7], 2);
			else
				assert_int_equal(p[7], p[5]);
			ioints++;
			p += 8;
			break;
		case 4:
			assert_int_equal(p[1], lints == 0 ? 3 : 1); /* ExtINT, then NMI */
			assert_int_equal(p[7], lints);
			lints++;
			p += 8;
			break;
		default:
			fail_msg("unexpected MP entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, buf + used);
	assert_int_equal(cpus, ncpus);
	assert_int_equal(buses, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(ioints, 15);
	assert_int_equal(lints, 2);
}

static void test_mptable(void **state)
{
	check_mptable(1);
	check_mptable(2);
	check_mptable(8);
	check_mptable(40);
}

static void test_mptable_too_big(void **state)
{
	uint8_t *buf = malloc(64 * 1024);
	uint32_t ids[255];
	struct acpi_config cfg = { .ncpus = 255, .apic_ids = ids, .ioapic_id = 0,
				   .ioapic_addr = X86_IOAPIC_BASE, .lapic_addr = X86_LAPIC_BASE };
	size_t used;
	struct err e;

	assert_non_null(buf);
	for (unsigned i = 0; i < 255; i++)
		ids[i] = i;
	/* 255 vCPUs need more than the 1 KiB the EBDA keeps for the MP table. */
	assert_int_equal(mptable_build(buf, 64 * 1024, X86_MPTABLE_START, &cfg, &used, &e),
			 -ENOSPC);
	assert_int_equal(mptable_build(buf, 1024, X86_MPTABLE_START, &cfg, &used, &e), -ENOSPC);
	cfg.ncpus = 41;
	assert_int_equal(mptable_build(buf, 1024, X86_MPTABLE_START, &cfg, &used, &e), -ENOSPC);
	cfg.ncpus = 8;
	assert_int_equal(mptable_build(buf, 100, X86_MPTABLE_START, &cfg, &used, &e), -ENOSPC);
	ids[3] = 255;
	assert_int_equal(mptable_build(buf, 1024, X86_MPTABLE_START, &cfg, &used, &e), -ENOSPC);
	/* The caller may not want the message. */
	assert_int_equal(mptable_build(buf, 1024, X86_MPTABLE_START, &cfg, &used, NULL), -ENOSPC);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_1),
		cmocka_unit_test(test_tables_2),
		cmocka_unit_test(test_tables_8),
		cmocka_unit_test(test_tables_255),
		cmocka_unit_test(test_dsdt_matches_layout),
		cmocka_unit_test(test_dsdt_prt),
		cmocka_unit_test(test_intx_gsi),
		cmocka_unit_test(test_acpi_too_small),
		cmocka_unit_test(test_acpi_x2apic),
		cmocka_unit_test(test_mptable),
		cmocka_unit_test(test_mptable_too_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
