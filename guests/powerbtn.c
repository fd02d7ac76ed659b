/* SPDX-License-Identifier: MIT */
/* powerbtn.c: waits for the ACPI power button and powers off when it is pressed.
 *
 * Enables PWRBTN_EN (PM1_EN bit 8, at the FADT's PM1a_EVT_BLK + PM1_EVT_LEN / 2) and
 * prints "powerbtn: armed". By default the SCI (the FADT's SCI_INT, through the MADT's
 * interrupt source override) is routed to vector 0x49 on the IOAPIC pin, programmed
 * edge-triggered: the SCI is a level that stays up until PWRBTN_STS is cleared, and a
 * level-triggered pin would re-interrupt right after each EOI before ring 3 could clear
 * it. Ring 3 waits for the interrupt, then checks and clears PWRBTN_STS (write 1).
 * With poll=1 it polls PM1_STS from ring 3 every millisecond instead.
 * Prints "powerbtn: pressed" and SUCCESS, then powers off (ACPI S5). */
#include "lib/guest.h"

#define SCI_VECTOR 0x49
#define PM1_PWRBTN (1u << 8)

static uint32_t ioapic_base, ioapic_gsi_base, sci_pin;

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

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

/* The SCI's GSI and MPS INTI flags: the MADT override for its ISA IRQ, else identity. */
static uint32_t sci_route(uint32_t irq, uint32_t *flags)
{
	const uint8_t *madt = acpi_find_table("APIC");
	uint32_t len, gsi = irq;

	*flags = 0;
	if (!madt)
		fail("no MADT");
	memcpy(&len, madt + 4, 4);
	for (uint32_t off = 44; off + 2 <= len && madt[off + 1] >= 2; off += madt[off + 1]) {
		const uint8_t *e = madt + off;
		if (e[0] == 1 && e[1] >= 12 && !ioapic_base) {
			memcpy(&ioapic_base, e + 4, 4);
			memcpy(&ioapic_gsi_base, e + 8, 4);
		} else if (e[0] == 2 && e[1] >= 10 && e[3] == irq) {
			memcpy(&gsi, e + 4, 4);
			*flags = e[8] | e[9] << 8;
		}
	}
	if (!ioapic_base)
		fail("no IOAPIC in the MADT");
	return gsi;
}

/* Wait for the SCI. Every ~0.5 s look at PM1_STS: a press that raised no interrupt
 * within a further ~0.5 s is reported with the IOAPIC's view rather than waited on. */
static void sci_wait(uint16_t sts_port, uint16_t en_port)
{
	uint64_t next = rdtsc() + 2000000000ULL, seen = 0;

	while (!irq_count[SCI_VECTOR]) {
		cpu_relax();
		if ((int64_t)(rdtsc() - next) < 0)
			continue;
		next = rdtsc() + 2000000000ULL;
		if (!(inw(sts_port) & PM1_PWRBTN) || irq_count[SCI_VECTOR])
			continue;
		if (seen++ == 0)
			continue;
		uint32_t lo = ioapic_read(0x10 + 2 * sci_pin), hi = ioapic_read(0x11 + 2 * sci_pin);
		fail("PWRBTN_STS set (PM1_EN 0x%x) but no SCI on vector 0x%x: IOAPIC pin %u "
		     "entry 0x%x:%08x (delivery status %u, remote IRR %u, mask %u), LAPIC ISR/IRR "
		     "word 2: 0x%x/0x%x, TPR 0x%x",
		     inw(en_port), SCI_VECTOR, sci_pin, hi, lo, lo >> 12 & 1, lo >> 14 & 1,
		     lo >> 16 & 1, lapic_read(0x100 + 0x10 * (SCI_VECTOR / 32)),
		     lapic_read(0x200 + 0x10 * (SCI_VECTOR / 32)), lapic_read(0x80));
	}
}

void guest_main(void)
{
	const uint8_t *fadt = acpi_find_table("FACP");
	int poll = cmdline_u64("poll", 0) != 0;
	uint32_t flen, evt = 0;
	uint16_t sci = 0;

	if (!fadt)
		fail("no FADT");
	memcpy(&flen, fadt + 4, 4);
	if (flen < 89)
		fail("FADT too short (%u bytes)", flen);
	memcpy(&evt, fadt + 56, 4); /* PM1a_EVT_BLK */
	memcpy(&sci, fadt + 46, 2); /* SCI_INT */
	uint8_t evt_len = fadt[88]; /* PM1_EVT_LEN */
	if (!evt || evt > 0xfffc || evt_len < 4)
		fail("FADT: PM1a_EVT_BLK 0x%x, PM1_EVT_LEN %u", evt, evt_len);
	uint16_t sts_port = (uint16_t)evt, en_port = (uint16_t)(evt + evt_len / 2);

	if (!poll) {
		uint32_t flags, gsi = sci_route(sci, &flags);
		uint32_t pin = gsi - ioapic_gsi_base, max = (ioapic_read(1) >> 16) & 0xff;
		sci_pin = pin;
		if (gsi < ioapic_gsi_base || pin > max)
			fail("SCI (IRQ %u) on GSI %u: not on the IOAPIC (GSIs %u-%u)", sci, gsi,
			     ioapic_gsi_base, ioapic_gsi_base + max);
		uint32_t lo = SCI_VECTOR; /* fixed, physical, edge (see above) */
		if ((flags & 3) == 3)
			lo |= 1u << 13; /* active low */
		lapic_write(LAPIC_SVR, 0x100 | 0xff);
		ioapic_write(0x10 + 2 * pin + 1, (lapic_read(LAPIC_ID) >> 24) << 24);
		ioapic_write(0x10 + 2 * pin, lo);
		printf("powerbtn: SCI IRQ %u -> GSI %u (IOAPIC 0x%x pin %u, flags 0x%x), vector "
		       "0x%x\n",
		       sci, gsi, ioapic_base, pin, flags, SCI_VECTOR);
	}

	outw(sts_port, PM1_PWRBTN); /* clear a stale press (write 1 to clear) */
	outw(en_port, (uint16_t)(inw(en_port) | PM1_PWRBTN));
	if (!(inw(en_port) & PM1_PWRBTN))
		fail("PWRBTN_EN does not stick (PM1_EN at 0x%x reads 0x%x)", en_port, inw(en_port));
	printf("powerbtn: armed (PM1_STS 0x%x, PM1_EN 0x%x, %s)\n", sts_port, en_port,
	       poll ? "polling" : "SCI");

	for (;;) {
		if (poll) {
			delay_us(1000);
		} else {
			sci_wait(sts_port, en_port);
		}
		uint16_t s = inw(sts_port);
		if (s & PM1_PWRBTN) {
			outw(sts_port, PM1_PWRBTN);
			if (inw(sts_port) & PM1_PWRBTN)
				fail("PWRBTN_STS still set after writing 1 to it");
			break;
		}
		if (!poll)
			fail("SCI (vector 0x%x) without PWRBTN_STS (PM1_STS 0x%x)", SCI_VECTOR, s);
	}
	for (uint32_t v = 0x20; v < 0xff; v++)
		if (v != SCI_VECTOR && irq_count[v])
			fail("unexpected interrupt on vector 0x%x", v);
	printf("powerbtn: pressed (%u SCI interrupts)\n", irq_count[SCI_VECTOR]);
}
