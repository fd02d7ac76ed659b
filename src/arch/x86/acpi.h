/* SPDX-License-Identifier: MIT */
/* acpi.h: ACPI tables (RSDP, XSDT, FADT, DSDT, MADT) and the MP table for an x86 guest. */
#ifndef KVMM_ARCH_X86_ACPI_H
#define KVMM_ARCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct err;

struct acpi_config {
	unsigned ncpus;
	const uint32_t *apic_ids; /* ncpus entries, APIC ID of vCPU i */
	uint32_t ioapic_id;
	uint64_t ioapic_addr;
	uint64_t lapic_addr;
};

/*
 * Build RSDP (at buf offset 0), XSDT, FADT (with FACS, DSDT pointers, PM1a
 * event/control ports, PM timer, reset register, SCI IRQ from layout.h),
 * DSDT (\_S5, PCI root bridge with _CRS over the PCI windows, COM1) and MADT
 * (one local APIC entry per vCPU, IOAPIC, interrupt source overrides) into
 * buf, which the guest sees at guest-physical address gpa. Returns 0 and the
 * bytes used, -ENOSPC if buf is too small.
 */
int acpi_build(void *buf, size_t len, uint64_t gpa, const struct acpi_config *cfg, size_t *used,
	       struct err *e);

/* MP floating pointer + MP configuration table (MP spec 1.4). */
int mptable_build(void *buf, size_t len, uint64_t gpa, const struct acpi_config *cfg,
		  size_t *used, struct err *e);

/* ACPI checksum helper: the byte that makes the sum of len bytes zero. */
uint8_t acpi_checksum(const void *p, size_t len);

/*
 * GSI that PCI slot `slot` (1..31) pin `pin` (0 = INTA .. 3 = INTD) is wired
 * to: 16 + ((slot + pin) % 8), the rule the DSDT's _PRT lists.
 */
uint32_t x86_pci_intx_gsi(unsigned slot, unsigned pin);

/*
 * Sizes of the ACPI fixed-hardware register blocks at the X86_PORT_PM*
 * ports of layout.h (the FADT advertises them, src/dev/acpi_pm.c decodes
 * them).
 */
#define X86_PM1_EVT_LEN 4 /* PM1_STS(2), PM1_EN(2) */
#define X86_PM1_CNT_LEN 2
#define X86_PM_TMR_LEN 4
#define X86_GPE0_LEN 4 /* GPE0_STS(2), GPE0_EN(2) */

#endif
