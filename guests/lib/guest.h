/* SPDX-License-Identifier: MIT */
/* guest.h: the ring-3 runtime of the freestanding test guests (serial, printf, ACPI, LAPIC). */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define COM1 0x3f8
#define LAPIC_BASE 0xfee00000UL
#define LAPIC_ID 0x20
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

/* Written by entry.S (ring 0) and read or set here. */
extern uint32_t start_info_paddr;
extern volatile uint32_t ap_boot_index;
extern uint16_t acpi_pm1a_cnt;
extern uint16_t acpi_s5_value;
extern volatile uint32_t irq_count[256];
extern const char ap_trampoline[], ap_trampoline_end[];

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline uint32_t lapic_read(uint32_t reg) { return *(volatile uint32_t *)(LAPIC_BASE + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { *(volatile uint32_t *)(LAPIC_BASE + reg) = v; }

/* string.c-style helpers (gcc may also emit calls to the first four). */
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* Console on COM1. */
void serial_putc(char c);
void serial_puts(const char *s);
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vprintf(const char *fmt, va_list ap);

/* Kernel command line from hvm_start_info ("" when absent). */
extern const char *cmdline;
/* From hvm_start_info's memory map: entries (-1: none), total RAM (type 1), and whether
 * one RAM entry covers the guest image from 1 MiB. */
extern int memmap_entries;
extern uint64_t memmap_ram_bytes;
extern int memmap_covers_image;
/* Value of "key=<number>" on the command line (decimal or 0x hex), else def. */
uint64_t cmdline_u64(const char *key, uint64_t def);

/* ACPI (filled in before main()). */
const void *acpi_find_table(const char sig[4]);
/* Enabled CPUs in the MADT: their APIC IDs into ids[] (up to max); returns the count or -1. */
int madt_cpus(uint32_t *ids, int max);

/* Waiting: busy-wait using the TSC, assuming at most 4 GHz (so never shorter). */
void delay_us(uint64_t us);

/* Ending the run: both print the verdict on COM1 and power off (ACPI S5, else i8042 reset). */
__attribute__((noreturn)) void success(void);
__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);
__attribute__((noreturn)) void poweroff(void);
void i8042_reset(void);
/* ud2 from ring 3 with a magic RAX: ring 0 loads an empty IDT and faults again. */
void triple_fault(void);
/* WRMSR from ring 3: a ud2 request that ring 0 carries out (entry.S). */
static inline void wrmsr_r3(uint32_t msr, uint64_t v)
{
	uint64_t req = UD2_WRMSR;

	__asm__ volatile("ud2" : "+a"(req) : "c"(msr), "S"(v) : "rdx", "memory");
}

/* Provided by each guest. */
void guest_main(void);
/* Optional (weak): ring-3 code of an AP started by smp_start_ap(). */
void ap_main(int index);

#endif
