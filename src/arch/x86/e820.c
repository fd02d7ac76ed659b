// SPDX-License-Identifier: MIT
/* e820.c: the BIOS-style memory map (e820) kvmm reports to a guest for its RAM layout. */
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "base/util.h"

#include <errno.h>

static int add(struct e820_entry *out, int max, int *n, uint64_t addr, uint64_t end, uint32_t type)
{
	if (end <= addr)
		return 0;
	if (*n >= max)
		return -ENOSPC;
	out[*n].addr = addr;
	out[*n].size = end - addr;
	out[*n].type = type;
	(*n)++;
	return 0;
}

int e820_build(uint64_t low_size, uint64_t high_size, struct e820_entry *out, int max)
{
	/* Guest RAM below 4 GiB never reaches into the PCI hole (layout.h). */
	uint64_t low_end = MIN(low_size, X86_MEM_HOLE_START);
	int n = 0, ret = 0;

	if (!out || max < 0)
		return -EINVAL;
	/* Conventional memory, then the EBDA/VGA/BIOS area (MP table, ACPI tables). */
	ret |= add(out, max, &n, 0, MIN(low_end, X86_LOW_RAM_END), E820_RAM);
	ret |= add(out, max, &n, X86_EBDA_START, X86_BIOS_END, E820_RESERVED);
	ret |= add(out, max, &n, X86_KERNEL_START, low_end, E820_RAM);
	/*
	 * IOAPIC, LAPIC and the top of the 32-bit space are not RAM and not
	 * free for PCI BARs: say so, so the guest never allocates over them.
	 * The PCI window [X86_PCI_MMIO_START, X86_PCI_MMIO_END) stays a gap,
	 * which is how Linux finds room for BARs (arch/x86/kernel/e820.c).
	 */
	ret |= add(out, max, &n, X86_PCI_MMIO_END, X86_MEM_HIGH_START, E820_RESERVED);
	if (high_size)
		ret |= add(out, max, &n, X86_MEM_HIGH_START, X86_MEM_HIGH_START + high_size, E820_RAM);
	return ret < 0 ? -ENOSPC : n;
}
