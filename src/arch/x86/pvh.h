/* SPDX-License-Identifier: MIT */
/* pvh.h: the PVH boot ABI's start info (xen/include/public/arch-x86/hvm/start_info.h),
 * freestanding (only <stdint.h>): written by kvmm (boot.c), read by the test guests. */
#ifndef KVMM_ARCH_X86_PVH_H
#define KVMM_ARCH_X86_PVH_H

#include <stdint.h>

#define HVM_START_MAGIC 0x336ec578
/* hvm_memmap_table_entry.type: RAM, as in E820. */
#define HVM_MEMMAP_TYPE_RAM 1

/* At the address in EBX on entry. */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr; /* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};
struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(__builtin_offsetof(struct hvm_start_info, memmap_paddr) == 40,
	       "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");

#endif
