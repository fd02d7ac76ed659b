/* SPDX-License-Identifier: MIT */
/* layout.h: the guest-physical address map kvmm presents to an x86-64 guest. */
#ifndef KVMM_ARCH_X86_LAYOUT_H
#define KVMM_ARCH_X86_LAYOUT_H

/*
 * Low memory (all below 1 MiB is RAM in the memslot, some of it reported as
 * reserved in the e820 map):
 *   0x00500  boot GDT (4 entries: null, null, code64 0x10, data 0x18)
 *   0x00520  boot IDT (empty, limit 0)
 *   0x06000  PVH hvm_start_info, followed by its memory map (up to 0x6fff)
 *   0x07000  Linux zero page (struct boot_params)
 *   0x09000  PML4, 0x0a000 PDPT, 0x0b000..0x0efff four PDs: identity map of
 *            the first 4 GiB with 2 MiB pages
 *   0x20000  kernel command line (up to X86_CMDLINE_MAX bytes)
 *   0x9fc00  EBDA (reserved): MP floating pointer and MP table
 *   0xe0000  ACPI tables, RSDP first (reserved), up to 0xfffff
 *   0x100000 kernel load address (bzImage protected-mode code, or ELF segments)
 * Above: RAM up to X86_MEM_HOLE_START, then the 32-bit PCI/MMIO hole, then
 * the rest of RAM from 4 GiB.
 */
#define X86_BOOT_GDT 0x500ULL
#define X86_BOOT_IDT 0x520ULL
#define X86_PVH_INFO 0x6000ULL
#define X86_PVH_INFO_MAX 0x1000ULL
#define X86_ZERO_PAGE 0x7000ULL
#define X86_PML4 0x9000ULL
#define X86_PDPT 0xa000ULL
#define X86_PD 0xb000ULL
#define X86_CMDLINE 0x20000ULL
#define X86_CMDLINE_MAX 0x10000ULL
#define X86_EBDA_START 0x9fc00ULL
#define X86_MPTABLE_START 0x9fc00ULL
#define X86_BIOS_START 0xe0000ULL /* RSDP and ACPI tables */
#define X86_BIOS_END 0x100000ULL
#define X86_KERNEL_START 0x100000ULL
/* Lowest address an initrd may use (above the kernel is chosen at load time). */
#define X86_LOW_RAM_END 0x9fc00ULL

#define X86_MEM_HOLE_START 0xc0000000ULL /* 3 GiB: PCI MMIO below 4 GiB */
#define X86_MEM_HIGH_START 0x100000000ULL
#define X86_PCI_MMIO_START 0xc0000000ULL
#define X86_PCI_MMIO_END 0xfec00000ULL /* exclusive */
#define X86_IOAPIC_BASE 0xfec00000ULL
#define X86_LAPIC_BASE 0xfee00000ULL

/* Legacy I/O ports. */
#define X86_PORT_COM1 0x3f8
#define X86_IRQ_COM1 4
#define X86_PORT_I8042_DATA 0x60
#define X86_PORT_I8042_CMD 0x64
#define X86_PORT_RTC 0x70 /* 0x70 index, 0x71 data */
#define X86_IRQ_RTC 8
#define X86_PORT_PCI_CONFIG 0xcf8 /* 0xcf8 address, 0xcfc..0xcff data */
#define X86_PORT_RESET 0xcf9 /* reset control register (FADT RESET_REG) */
/* ACPI fixed hardware (PIIX-like layout, at our own ports). */
#define X86_PORT_PM1A_EVT 0x600 /* 4 bytes: PM1_STS(2), PM1_EN(2) */
#define X86_PORT_PM1A_CNT 0x604 /* 2 bytes */
#define X86_PORT_PM_TMR 0x608 /* 4 bytes, 3.579545 MHz */
#define X86_PORT_GPE0 0x620 /* 4 bytes: GPE0_STS(2), GPE0_EN(2) */
#define X86_IRQ_SCI 9
/* SLP_TYP value the DSDT's \_S5 package advertises. */
#define X86_SLP_TYP_S5 5

#endif
