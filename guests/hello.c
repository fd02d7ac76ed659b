/* SPDX-License-Identifier: MIT */
/* hello.c: prints a greeting, the command line and the memory map's RAM, then powers off.
 * mem=N (MiB): fail unless the memory map's RAM is within 16 MiB below N. spin=1: spin in
 * ring 3 forever instead of powering off, making no exits (for tests that stop the VM). */
#include "lib/guest.h"

void guest_main(void)
{
	printf("Hello from kvmm test guest\n");
	printf("cmdline: %s\n", cmdline);
	printf("memmap: %d entries, %lu KiB RAM\n", memmap_entries, memmap_ram_bytes >> 10);
	if (memmap_entries < 0)
		fail("no memory map in hvm_start_info");
	if (!memmap_covers_image)
		fail("no RAM entry in the memory map covers the image at 1 MiB");
	uint64_t mem = cmdline_u64("mem", 0) << 20;
	if (mem && (memmap_ram_bytes > mem || memmap_ram_bytes + (16 << 20) < mem))
		fail("memory map has %lu KiB RAM, mem=%lu MiB", memmap_ram_bytes >> 10, mem >> 20);
	if (cmdline_u64("spin", 0)) {
		printf("spinning\n");
		for (;;)
			cpu_relax();
	}
}
