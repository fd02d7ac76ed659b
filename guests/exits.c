/* SPDX-License-Identifier: MIT */
/* exits.c: n (cmdline n=, default 100000) port writes to 0x510 from ring 3, each one an
 * exit to the VMM, for the exit-cost benchmark. */
#include "lib/guest.h"

void guest_main(void)
{
	uint64_t n = cmdline_u64("n", 100000);
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++)
		outb(0x510, 0);
	uint64_t t1 = rdtsc();
	printf("exits: n=%lu tsc=%lu\n", n, t1 - t0);
}
