/* SPDX-License-Identifier: MIT */
/* counter.c: a memory-dirtying guest whose progress a host can check: in ring 3 it
 * rewrites mb= MiB of RAM with a pattern derived from a 64-bit pass counter, verifies
 * the previous pass's pattern as it goes, and keeps the counter at a fixed guest-physical
 * address (COUNTER_PADDR) so that a memory dump can be checked too.
 *
 * Command line: mb=N (default 16) MiB of RAM rewritten per pass, from COUNTER_REGION;
 * every=K (default 64) prints "count=N" every K passes; max=N prints SUCCESS and powers
 * off once the counter reaches N (default: never); delay=US waits US microseconds after
 * each pass (default 0), to bound how fast memory is dirtied.
 *
 * Layout (also in guests/README.md):
 *   COUNTER_PADDR (2 MiB): u64 magic "KVMMCNT1", u64 counter (passes completed),
 *     u64 region start, u64 region length in bytes, u64 pass being written (0: none).
 *   COUNTER_REGION (4 MiB): mb MiB of 64-bit words; pass p writes the word at
 *     guest-physical address a as counter_pattern(p, a).
 * While pass p = counter + 1 runs, the words below some address hold pattern p and the
 * rest pattern p - 1 (pass 0: whatever RAM held). A dump taken while the VM is paused
 * satisfies exactly that; a resumed, restored or migrated guest checks it by itself
 * and prints "FAIL: memory at 0x...: ..." when it does not hold. */
#include "lib/guest.h"

#define COUNTER_PADDR 0x200000UL
#define COUNTER_REGION 0x400000UL
#define COUNTER_MAGIC 0x31544e434d4d564bULL /* "KVMMCNT1" little-endian */
#define REGION_LIMIT 0xc0000000UL /* the 32-bit PCI hole starts here */

struct counter_page {
	uint64_t magic;
	uint64_t counter;
	uint64_t region;
	uint64_t length;
	uint64_t pass;
};

static inline uint64_t counter_pattern(uint64_t pass, uint64_t addr)
{
	return pass * 0x9e3779b97f4a7c15ULL ^ addr;
}

/* One pass: check pass - 1's pattern (unless it is the first) and write pass's. */
static void rewrite(uint64_t pass, uint64_t start, uint64_t len)
{
	volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)start;
	uint64_t n = len / 8, prev = (pass - 1) * 0x9e3779b97f4a7c15ULL;
	uint64_t cur = pass * 0x9e3779b97f4a7c15ULL;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t a = start + 8 * i, v = w[i];
		if (pass > 1 && v != (prev ^ a))
			fail("memory at 0x%lx: 0x%lx, expected 0x%lx (pass %lu) or 0x%lx (pass %lu)",
			     a, v, prev ^ a, pass - 1, cur ^ a, pass);
		w[i] = cur ^ a;
	}
}

void guest_main(void)
{
	extern char __image_end[];
	volatile struct counter_page *pg = (volatile struct counter_page *)COUNTER_PADDR;
	uint64_t mb = cmdline_u64("mb", 16), every = cmdline_u64("every", 64);
	uint64_t max = cmdline_u64("max", 0), delay = cmdline_u64("delay", 0);
	uint64_t len = mb << 20;

	if ((uintptr_t)__image_end > COUNTER_PADDR)
		fail("image ends at %p, above the counter page at 0x%lx", (void *)__image_end,
		     COUNTER_PADDR);
	if (mb == 0 || mb > (REGION_LIMIT - COUNTER_REGION) >> 20)
		fail("mb=%lu: give 1 to %lu", mb, (REGION_LIMIT - COUNTER_REGION) >> 20);
	/* RAM below the hole is one block from 1 MiB, so the total bounds its end. */
	if (memmap_entries >= 0 && COUNTER_REGION + len > memmap_ram_bytes)
		fail("mb=%lu needs RAM up to 0x%lx, the memory map has %lu KiB", mb,
		     COUNTER_REGION + len, memmap_ram_bytes >> 10);
	if (every == 0)
		every = 1;

	pg->magic = 0;
	pg->counter = 0;
	pg->region = COUNTER_REGION;
	pg->length = len;
	pg->pass = 0;
	pg->magic = COUNTER_MAGIC;
	printf("counter: page 0x%lx, region 0x%lx-0x%lx (%lu MiB), every %lu, max %lu\n",
	       COUNTER_PADDR, COUNTER_REGION, COUNTER_REGION + len - 1, mb, every, max);

	for (uint64_t c = 0;;) {
		uint64_t p = c + 1;
		pg->pass = p;
		rewrite(p, COUNTER_REGION, len);
		/* The counter itself must never go back: check it is still ours, then store. */
		if (pg->counter != c)
			fail("counter at 0x%lx changed under us: %lu, expected %lu",
			     COUNTER_PADDR + 8, (uint64_t)pg->counter, c);
		pg->counter = p;
		pg->pass = 0;
		c = p;
		if (c % every == 0)
			printf("count=%lu\n", c);
		if (max && c >= max)
			return; /* SUCCESS and power-off */
		if (delay)
			delay_us(delay);
	}
}
