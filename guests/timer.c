/* SPDX-License-Identifier: MIT */
/* timer.c: waits in ring 3, interrupts enabled, until ticks= (default 20) timer interrupts
 * arrived. Default: the local APIC timer, periodic, vector 0x40. With pit=1:
 * PIT channel 0 at 1 kHz through the IOAPIC (GSI from the MADT's IRQ0 override), vector
 * 0x41 (gsi=N overrides the MADT's GSI). With deadline=1: the local APIC timer in
 * TSC-deadline mode, re-armed period= (default 20M) TSC cycles ahead after each interrupt,
 * printing count=N per interrupt (what snapshot tests follow across a restore). */
#include "lib/guest.h"

#define LAPIC_VECTOR 0x40
#define PIT_VECTOR 0x41
#define PIT_HZ 1193182

static uint32_t ioapic_base, pit_gsi, pit_flags;

static void ioapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)ioapic_base = reg;
	*(volatile uint32_t *)(uintptr_t)(ioapic_base + 0x10) = v;
}

static uint32_t ioapic_read(uint32_t reg)
{
	*(volatile uint32_t *)(uintptr_t)ioapic_base = reg;
	return *(volatile uint32_t *)(uintptr_t)(ioapic_base + 0x10);
}

/* The IOAPIC (MADT type 1, GSI base 0) and the GSI of ISA IRQ 0 (type 2 override). */
static void find_pit_route(void)
{
	const uint8_t *madt = acpi_find_table("APIC");
	if (!madt)
		fail("no MADT");
	uint32_t len;
	memcpy(&len, madt + 4, 4);
	pit_gsi = 0;
	pit_flags = 0;
	for (uint32_t off = 44; off + 2 <= len && madt[off + 1] >= 2; off += madt[off + 1]) {
		const uint8_t *e = madt + off;
		uint32_t gsi;
		if (e[0] == 1 && e[1] >= 12) {
			memcpy(&gsi, e + 8, 4);
			if (gsi == 0)
				memcpy(&ioapic_base, e + 4, 4);
		} else if (e[0] == 2 && e[1] >= 10 && e[3] == 0) {
			memcpy(&gsi, e + 4, 4);
			pit_gsi = gsi;
			pit_flags = e[8] | e[9] << 8;
		}
	}
	if (!ioapic_base)
		fail("no IOAPIC with GSI base 0 in the MADT");
}

static void start_pit(void)
{
	find_pit_route();
	pit_gsi = (uint32_t)cmdline_u64("gsi", pit_gsi); /* for diagnosing a VMM's routing */
	uint32_t max = (ioapic_read(1) >> 16) & 0xff;
	if (pit_gsi > max)
		fail("IRQ0 routed to GSI %u, the IOAPIC has %u pins", pit_gsi, max + 1);
	uint32_t lo = PIT_VECTOR; /* fixed delivery, physical destination */
	if ((pit_flags & 3) == 3)
		lo |= 1u << 13; /* active low */
	if (((pit_flags >> 2) & 3) == 3)
		lo |= 1u << 15; /* level triggered */
	ioapic_write(0x10 + 2 * pit_gsi + 1, (lapic_read(LAPIC_ID) >> 24) << 24);
	ioapic_write(0x10 + 2 * pit_gsi, lo);
	printf("timer: PIT on IOAPIC %x pin %u, flags %x\n", ioapic_base, pit_gsi, pit_flags);
	uint16_t div = PIT_HZ / 1000;
	outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2 */
	outb(0x40, div & 0xff);
	outb(0x40, div >> 8);
}

static void stop_pit(void)
{
	ioapic_write(0x10 + 2 * pit_gsi, 1u << 16); /* masked */
	outb(0x43, 0x30); /* mode 0 with no count written: the output stays low */
}

#define MSR_TSC_DEADLINE 0x6e0

/* One-shot TSC deadlines, one after another: an interrupt that never comes fails. */
static void run_deadline(uint64_t want, uint64_t period)
{
	uint32_t eax = 1, ebx, ecx = 0, edx;

	__asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
	if (!(ecx & 1u << 24))
		fail("no TSC-deadline timer in CPUID");
	lapic_write(LAPIC_LVT_TIMER, LAPIC_VECTOR | 2u << 17); /* TSC-deadline mode */
	for (uint64_t n = 1; n <= want; n++) {
		uint32_t seen = irq_count[LAPIC_VECTOR];
		uint64_t t0 = rdtsc();

		wrmsr_r3(MSR_TSC_DEADLINE, t0 + period);
		while (irq_count[LAPIC_VECTOR] == seen) {
			cpu_relax();
			if (rdtsc() - t0 > period + 10000000000ULL) /* 2.5-5 s late */
				fail("no interrupt for the TSC deadline armed at %lu (+%lu)", t0, period);
		}
		printf("count=%lu\n", n);
	}
	lapic_write(LAPIC_LVT_TIMER, 1u << 16); /* masked */
	for (uint32_t v = 0; v < 256; v++)
		if (v != LAPIC_VECTOR && v != 0xff && irq_count[v])
			fail("unexpected interrupt on vector 0x%x (%u times)", v, irq_count[v]);
}

void guest_main(void)
{
	uint64_t want = cmdline_u64("ticks", 20);
	uint32_t count = (uint32_t)cmdline_u64("count", 100000);
	int pit = cmdline_u64("pit", 0) != 0;
	uint32_t vector = pit ? PIT_VECTOR : LAPIC_VECTOR;

	lapic_write(LAPIC_SVR, 0x100 | 0xff); /* software enable, spurious vector 0xff */
	if (cmdline_u64("deadline", 0)) {
		run_deadline(want, cmdline_u64("period", 20000000));
		return;
	}
	if (pit) {
		start_pit();
	} else {
		lapic_write(LAPIC_TIMER_DIV, 0x3); /* divide by 16 */
		lapic_write(LAPIC_LVT_TIMER, LAPIC_VECTOR | 1u << 17); /* periodic */
		lapic_write(LAPIC_TIMER_INIT, count);
	}

	/* Busy ring-3 work between ticks: a running sum whose registers the handler must keep. */
	uint64_t start = rdtsc(), sum = 0, i = 0;
	while (irq_count[vector] < want) {
		sum += i ^ (i >> 3);
		i++;
		if ((i & 0xfffff) == 0 && rdtsc() - start > 10000000000ULL) /* 2.5-5 s */
			break;
	}
	if (pit) {
		stop_pit();
	} else {
		lapic_write(LAPIC_LVT_TIMER, 1u << 16); /* masked */
		lapic_write(LAPIC_TIMER_INIT, 0);
	}

	uint32_t got = irq_count[vector];
	uint64_t check = 0;
	for (uint64_t j = 0; j < i; j++)
		check += j ^ (j >> 3);
	printf("timer: %u ticks on vector 0x%x, %lu loop iterations\n", got, vector, i);
	for (uint32_t v = 0; v < 256; v++)
		if (v != vector && v != 0xff && irq_count[v])
			fail("unexpected interrupt on vector 0x%x (%u times)", v, irq_count[v]);
	if (got < want)
		fail("only %u of %lu timer interrupts arrived", got, want);
	if (check != sum)
		fail("ring-3 state corrupted across interrupts");
}
