/* SPDX-License-Identifier: MIT */
/* smp.c: counts the CPUs in the MADT against cpus= on the command line, starts every AP
 * with INIT/SIPI/SIPI, and checks that all vCPUs run at once in ring 3: each one bumps its
 * own counter and waits until it has seen every other counter move. */
#include "lib/guest.h"

#define SPIN_SEEN 1000 /* increments of every other vCPU a vCPU must observe */
#define TIMEOUT_TSC 40000000000ULL

struct slot {
	volatile uint64_t count;
	volatile uint32_t alive;
	volatile uint32_t done;
} __attribute__((aligned(64)));

static struct slot slots[MAX_CPUS];
static volatile uint32_t ncpus; /* vCPUs taking part, set before the spin starts */
static volatile uint32_t go, ndone, timed_out;

static void spin_together(int me)
{
	uint64_t seen[MAX_CPUS];
	uint32_t n = ncpus, moved = 0;
	for (uint32_t j = 0; j < n; j++)
		seen[j] = slots[j].count;
	uint64_t start = rdtsc();
	for (uint64_t it = 1;; it++) {
		slots[me].count++;
		if (!slots[me].done) {
			moved = 0;
			for (uint32_t j = 0; j < n; j++)
				if (j == (uint32_t)me || slots[j].count - seen[j] >= SPIN_SEEN)
					moved++;
			if (moved == n) {
				slots[me].done = 1;
				__atomic_fetch_add(&ndone, 1, __ATOMIC_SEQ_CST);
			}
		}
		if (ndone == n || timed_out)
			return;
		if ((it & 0xffff) == 0 && rdtsc() - start > TIMEOUT_TSC) {
			timed_out = 1;
			return;
		}
	}
}

void ap_main(int index)
{
	slots[index].alive = 1;
	while (!go)
		cpu_relax();
	spin_together(index);
}

static int start_ap(int index, uint32_t apic_id)
{
	ap_boot_index = (uint32_t)index;
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, 0x4500); /* INIT, assert */
	delay_us(10000);
	for (int sipi = 0; sipi < 2 && !slots[index].alive; sipi++) {
		lapic_write(LAPIC_ICR_HI, apic_id << 24);
		lapic_write(LAPIC_ICR_LO, 0x4600 | (AP_TRAMPOLINE_ADDR >> 12)); /* start-up */
		/* The AP's ring-0 path is emulated slowly here: allow it a generous second. */
		uint64_t t0 = rdtsc();
		while (!slots[index].alive && rdtsc() - t0 < (sipi ? 8000000000ULL : 4000000000ULL))
			cpu_relax();
	}
	return slots[index].alive ? 0 : -1;
}

void guest_main(void)
{
	uint32_t ids[MAX_CPUS];
	int n = madt_cpus(ids, MAX_CPUS);
	if (n < 0)
		fail("no MADT");
	printf("smp: %d CPUs in the MADT, APIC IDs:", n);
	for (int i = 0; i < n && i < MAX_CPUS; i++)
		printf(" %u", ids[i]);
	printf("\n");
	if (n > MAX_CPUS)
		fail("more than %d CPUs", MAX_CPUS);
	uint64_t want = cmdline_u64("cpus", 0);
	if (want && want != (uint64_t)n)
		fail("MADT lists %d CPUs, command line says cpus=%lu", n, want);

	uint32_t bsp = lapic_read(LAPIC_ID) >> 24;
	int found = 0;
	for (int i = 0; i < n; i++)
		found |= ids[i] == bsp;
	if (!found)
		fail("BSP APIC ID %u not in the MADT", bsp);

	lapic_write(LAPIC_SVR, 0x100 | 0xff);
	memcpy((void *)AP_TRAMPOLINE_ADDR, ap_trampoline, ap_trampoline_end - ap_trampoline);
	slots[0].alive = 1;
	int index = 1;
	for (int i = 0; i < n; i++) {
		if (ids[i] == bsp)
			continue;
		if (start_ap(index, ids[i]))
			fail("AP with APIC ID %u did not start", ids[i]);
		index++;
	}
	printf("smp: %d vCPUs in ring 3\n", index);

	ncpus = (uint32_t)index;
	go = 1;
	spin_together(0);
	if (timed_out || ndone != ncpus)
		fail("vCPUs did not all run together (%u of %u done)", ndone, ncpus);
	for (int i = 0; i < index; i++)
		printf("smp: cpu %d counted %lu\n", i, slots[i].count);
}
