// SPDX-License-Identifier: MIT
/* mptable.c: builds the MultiProcessor Specification 1.4 tables for guests without ACPI. */
#include "arch/x86/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"

#define MP_PACKED __attribute__((packed))

/* MP Floating Pointer Structure (MP spec 1.4 section 4.1). */
struct mp_fps {
	char signature[4]; /* "_MP_" */
	uint32_t config_addr;
	uint8_t length; /* in 16-byte units */
	uint8_t spec_rev;
	uint8_t checksum;
	uint8_t feature[5]; /* feature[0] 0: a configuration table is present */
} MP_PACKED;

/* MP Configuration Table Header (section 4.2). */
struct mp_config {
	char signature[4]; /* "PCMP" */
	uint16_t length; /* base table: header and entries */
	uint8_t spec_rev;
	uint8_t checksum;
	char oem_id[8];
	char product_id[12];
	uint32_t oem_table;
	uint16_t oem_table_size;
	uint16_t entry_count;
	uint32_t lapic_addr;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} MP_PACKED;

/* Base table entries (section 4.3). */
struct mp_cpu { /* type 0 */
	uint8_t type, apic_id, apic_version, flags;
	uint32_t signature;
	uint32_t features;
	uint32_t reserved[2];
} MP_PACKED;

struct mp_bus { /* type 1 */
	uint8_t type, bus_id;
	char bus_type[6];
} MP_PACKED;

struct mp_ioapic { /* type 2 */
	uint8_t type, ioapic_id, version, flags;
	uint32_t address;
} MP_PACKED;

struct mp_intsrc { /* type 3 (I/O interrupt) and 4 (local interrupt) */
	uint8_t type, irq_type;
	uint16_t flags;
	uint8_t src_bus, src_irq, dst_apic, dst_pin;
} MP_PACKED;

_Static_assert(sizeof(struct mp_fps) == 16, "MP floating pointer");
_Static_assert(sizeof(struct mp_config) == 44, "MP configuration header");
_Static_assert(sizeof(struct mp_cpu) == 20, "MP processor entry");
_Static_assert(sizeof(struct mp_bus) == 8, "MP bus entry");
_Static_assert(sizeof(struct mp_ioapic) == 8, "MP IOAPIC entry");
_Static_assert(sizeof(struct mp_intsrc) == 8, "MP interrupt entry");

#define MP_SPEC_REV 4 /* version 1.4 */
#define MP_TYPE_CPU 0
#define MP_TYPE_BUS 1
#define MP_TYPE_IOAPIC 2
#define MP_TYPE_IOINT 3
#define MP_TYPE_LINT 4
#define MP_CPU_EN (1u << 0)
#define MP_CPU_BP (1u << 1)
#define MP_IOAPIC_EN (1u << 0)
#define MP_INT_INT 0
#define MP_INT_NMI 1
#define MP_INT_EXTINT 3
/* Interrupt entry flags (table 4-10): polarity bits 0-1, trigger bits 2-3. */
#define MP_IRQ_ACTIVE_HIGH 0x1
#define MP_IRQ_LEVEL (0x3 << 2)
#define MP_APIC_VERSION 0x14 /* integrated local APIC */
#define MP_IOAPIC_VERSION 0x11
#define MP_ISA_BUS 0
#define MP_ALL_APICS 0xff
#define MP_ISA_IRQS 16

/* Entries other than the processors: bus, IOAPIC, 15 ISA IRQs, 2 LINTs. */
#define MP_FIXED_ENTRIES (1 + 1 + (MP_ISA_IRQS - 1) + 2)

static size_t mp_table_size(unsigned ncpus)
{
	return sizeof(struct mp_fps) + sizeof(struct mp_config) + ncpus * sizeof(struct mp_cpu) +
	       sizeof(struct mp_bus) + sizeof(struct mp_ioapic) +
	       (MP_ISA_IRQS - 1 + 2) * sizeof(struct mp_intsrc);
}

static uint8_t *mp_put_intsrc(uint8_t *p, uint8_t type, uint8_t irq_type, uint16_t flags,
			      uint8_t src_irq, uint8_t dst_apic, uint8_t dst_pin)
{
	struct mp_intsrc *s = (struct mp_intsrc *)p;

	s->type = type;
	s->irq_type = irq_type;
	s->flags = flags;
	s->src_bus = MP_ISA_BUS;
	s->src_irq = src_irq;
	s->dst_apic = dst_apic;
	s->dst_pin = dst_pin;
	return p + sizeof(*s);
}

/*
 * The floating pointer comes first (the OS scans the EBDA's first KiB on
 * 16-byte boundaries, section 4), the configuration table right after it.
 * -ENOSPC when the tables do not fit in len (or in the 1 KiB the EBDA
 * holds them in), or when an APIC ID does not fit the spec's 8 bits: the
 * caller then goes without an MP table, and the guest uses ACPI.
 */
int mptable_build(void *buf, size_t len, uint64_t gpa, const struct acpi_config *cfg,
		  size_t *used, struct err *e)
{
	size_t need, cap = len;
	struct mp_config *c;
	struct mp_ioapic *io;
	struct mp_fps *fps;
	struct mp_bus *bus;
	uint8_t *p;

	if (!cfg || cfg->ncpus == 0 || !cfg->apic_ids)
		return err_set(e, EINVAL, "MP table: no vCPUs to describe");
	if (cfg->ioapic_id > 0xfe || cfg->ioapic_addr > UINT32_MAX ||
	    cfg->lapic_addr > UINT32_MAX)
		return err_set(e, EINVAL, "MP table: IOAPIC ID or APIC addresses out of range");
	if (gpa > UINT32_MAX - sizeof(struct mp_fps))
		return err_set(e, EINVAL, "MP table at 0x%llx: not below 4 GiB",
			       (unsigned long long)gpa);
	if (gpa >= X86_EBDA_START && gpa < X86_EBDA_START + 1 * KiB)
		cap = (size_t)MIN((uint64_t)cap, X86_EBDA_START + 1 * KiB - gpa);
	for (unsigned i = 0; i < cfg->ncpus; i++)
		if (cfg->apic_ids[i] >= MP_ALL_APICS)
			return err_set(e, ENOSPC, "MP table: APIC ID %u needs x2APIC",
				       cfg->apic_ids[i]);
	need = mp_table_size(cfg->ncpus);
	if (cfg->ncpus > 0xffff - MP_FIXED_ENTRIES || need > cap)
		return err_set(e, ENOSPC, "MP table for %u vCPUs needs %zu bytes, %zu available",
			       cfg->ncpus, need, cap);
	memset(buf, 0, need);

	fps = buf;
	c = (struct mp_config *)(fps + 1);
	memcpy(fps->signature, "_MP_", 4);
	fps->config_addr = (uint32_t)(gpa + sizeof(*fps));
	fps->length = 1;
	fps->spec_rev = MP_SPEC_REV;

	memcpy(c->signature, "PCMP", 4);
	c->spec_rev = MP_SPEC_REV;
	memcpy(c->oem_id, "KVMM    ", 8);
	memcpy(c->product_id, "KVMM VM     ", 12);
	c->entry_count = (uint16_t)(cfg->ncpus + MP_FIXED_ENTRIES);
	c->lapic_addr = (uint32_t)cfg->lapic_addr;
	p = (uint8_t *)(c + 1);

	/* Processors (section 4.3.1): vCPU 0 is the bootstrap processor. */
	for (unsigned i = 0; i < cfg->ncpus; i++) {
		struct mp_cpu *cpu = (struct mp_cpu *)p;

		cpu->type = MP_TYPE_CPU;
		cpu->apic_id = (uint8_t)cfg->apic_ids[i];
		cpu->apic_version = MP_APIC_VERSION;
		cpu->flags = MP_CPU_EN | (i == 0 ? MP_CPU_BP : 0);
		cpu->signature = 0x600; /* family 6; the OS reads CPUID anyway */
		cpu->features = (1u << 0) | (1u << 9); /* FPU, APIC */
		p += sizeof(*cpu);
	}

	bus = (struct mp_bus *)p;
	bus->type = MP_TYPE_BUS;
	bus->bus_id = MP_ISA_BUS;
	memcpy(bus->bus_type, "ISA   ", 6);
	p += sizeof(*bus);

	io = (struct mp_ioapic *)p;
	io->type = MP_TYPE_IOAPIC;
	io->ioapic_id = (uint8_t)cfg->ioapic_id;
	io->version = MP_IOAPIC_VERSION;
	io->flags = MP_IOAPIC_EN;
	io->address = (uint32_t)cfg->ioapic_addr;
	p += sizeof(*io);

	/*
	 * ISA IRQs (section 4.3.4): IRQ n on IOAPIC pin n, except the PIT's
	 * IRQ 0 on pin 2 (as the MADT override says); IRQ 2, the 8259
	 * cascade, is never raised and has no entry. The SCI (IRQ 9) is
	 * level-triggered, active high, as in the MADT.
	 */
	for (unsigned irq = 0; irq < MP_ISA_IRQS; irq++) {
		uint16_t flags = irq == X86_IRQ_SCI ? MP_IRQ_ACTIVE_HIGH | MP_IRQ_LEVEL : 0;

		if (irq == 2)
			continue;
		p = mp_put_intsrc(p, MP_TYPE_IOINT, MP_INT_INT, flags, (uint8_t)irq,
				  (uint8_t)cfg->ioapic_id, irq == 0 ? 2 : (uint8_t)irq);
	}

	/* Virtual wire (section 3.6.2.2): the 8259 on LINT0, NMI on LINT1. */
	p = mp_put_intsrc(p, MP_TYPE_LINT, MP_INT_EXTINT, 0, 0, MP_ALL_APICS, 0);
	p = mp_put_intsrc(p, MP_TYPE_LINT, MP_INT_NMI, 0, 0, MP_ALL_APICS, 1);

	c->length = (uint16_t)(p - (uint8_t *)c);
	c->checksum = acpi_checksum(c, c->length);
	fps->checksum = acpi_checksum(fps, sizeof(*fps));
	*used = (size_t)(p - (uint8_t *)buf);
	return 0;
}
