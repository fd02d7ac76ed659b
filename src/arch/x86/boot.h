/* SPDX-License-Identifier: MIT */
/* boot.h: loading a kernel into guest memory (bzImage, vmlinux ELF, PVH ELF) without firmware. */
#ifndef KVMM_ARCH_X86_BOOT_H
#define KVMM_ARCH_X86_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_mem;
struct err;

/* How the boot vCPU is entered. */
enum boot_entry {
	BOOT_ENTRY_LINUX64, /* 64-bit long mode, identity paging, RSI = zero page */
	BOOT_ENTRY_PVH,     /* 32-bit protected mode, paging off, EBX = hvm_start_info */
};

enum boot_protocol_pref {
	BOOT_PREF_AUTO,    /* PVH when an ELF carries the PVH note, Linux 64-bit otherwise */
	BOOT_PREF_LINUX64, /* never PVH */
	BOOT_PREF_PVH,     /* PVH required (error if the image has no PVH note) */
};

struct boot_opts {
	const char *kernel;  /* path: bzImage or ELF64 (vmlinux / PVH guest) */
	const char *initrd;  /* path or NULL */
	const char *cmdline; /* may be NULL (empty) */
	bool decompress;     /* bzImage: decompress the payload on the host, boot the ELF inside */
	enum boot_protocol_pref pref;
	uint64_t rsdp_gpa;   /* where the ACPI RSDP lives (0: none) */
};

/* Result of loading: how to start the boot vCPU. */
struct boot_info {
	enum boot_entry entry_kind;
	uint64_t entry;       /* guest-physical entry point */
	uint64_t params_gpa;  /* zero page (LINUX64) or hvm_start_info (PVH) */
	uint64_t kernel_start, kernel_end; /* guest-physical span occupied by the kernel */
	uint64_t initrd_gpa, initrd_size;
	const char *format;   /* "bzImage", "bzImage (decompressed lz4)", "ELF", "PVH ELF" */
};

/* e820 types (boot.rst / ACPI). */
#define E820_RAM 1
#define E820_RESERVED 2
#define E820_ACPI 3

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

#define E820_MAX 16

/*
 * The guest's memory map for a RAM layout: RAM [0, X86_LOW_RAM_END),
 * reserved [X86_EBDA_START, 1 MiB), RAM [1 MiB, low_end), reserved
 * hole entries as needed, RAM [4 GiB, 4 GiB + high). Returns the count.
 */
int e820_build(uint64_t low_size, uint64_t high_size, struct e820_entry *out, int max);

/*
 * Load kernel (+initrd, +cmdline) into guest memory, write the zero page or
 * start_info, and fill bi. Every file is validated; a bad one gives -EINVAL
 * (or -ENOENT, -EFBIG, -ENOMEM) with one line in e naming the file and the fault.
 */
int x86_boot_load(struct guest_mem *gm, const struct boot_opts *o, struct boot_info *bi,
		  struct err *e);

/* --- Pure parsers, exposed for unit tests and `kvmm` tools --- */

struct bzimage_info {
	uint16_t version;         /* boot protocol version, >= 0x0206 accepted */
	uint8_t setup_sects;
	uint32_t setup_size;      /* (setup_sects + 1) * 512 */
	uint64_t pm_offset;       /* file offset of the protected-mode kernel */
	uint64_t pm_size;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size;
	uint16_t xloadflags;
	bool relocatable;
	uint32_t payload_offset;  /* in the protected-mode part */
	uint32_t payload_length;
};

/*
 * Offsets in struct boot_params (the "zero page") and in the setup header it
 * embeds at 0x1f1, from Documentation/arch/x86/boot.rst and bootparam.h.
 * The setup header offsets are also file offsets in a bzImage.
 */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
#define BP_SIZE 0x1000

#define BZ_SETUP_SECTS 0x1f1
#define BZ_BOOT_FLAG 0x1fe
#define BZ_HDR_JUMP 0x200
#define BZ_HDR_MAGIC 0x202
#define BZ_VERSION 0x206
#define BZ_TYPE_OF_LOADER 0x210
#define BZ_LOADFLAGS 0x211
#define BZ_RAMDISK_IMAGE 0x218
#define BZ_RAMDISK_SIZE 0x21c
#define BZ_HEAP_END_PTR 0x224
#define BZ_CMD_LINE_PTR 0x228
#define BZ_INITRD_ADDR_MAX 0x22c
#define BZ_KERNEL_ALIGNMENT 0x230
#define BZ_RELOCATABLE 0x234
#define BZ_XLOADFLAGS 0x236
#define BZ_CMDLINE_SIZE 0x238
#define BZ_PAYLOAD_OFFSET 0x248
#define BZ_PAYLOAD_LENGTH 0x24c
#define BZ_PREF_ADDRESS 0x258
#define BZ_INIT_SIZE 0x260
#define BZ_HDR_MAX 0x290 /* end of setup_header's room in boot_params */

#define BZ_LOADED_HIGH 0x01
#define BZ_CAN_USE_HEAP 0x80
#define BZ_XLF_KERNEL_64 0x01

/* End offset of the setup header in buf (0x202 + the jump byte at 0x201, capped). */
size_t bzimage_hdr_end(const uint8_t *buf, size_t len);

int bzimage_parse(const uint8_t *buf, size_t len, struct bzimage_info *bz, struct err *e);

struct elf_load_seg {
	uint64_t file_off, file_size, paddr, mem_size;
};
#define ELF_MAX_SEGS 16
struct elf_info {
	uint64_t entry;          /* e_entry */
	bool has_pvh;
	uint32_t pvh_entry;      /* XEN_ELFNOTE_PHYS32_ENTRY (18) */
	int nsegs;
	struct elf_load_seg segs[ELF_MAX_SEGS];
	uint64_t lowest, highest; /* paddr span */
	uint64_t entry_phys;     /* e_entry as a physical address (vaddr->paddr of its segment) */
};

int elf_parse(const uint8_t *buf, size_t len, struct elf_info *ei, struct err *e);

/*
 * Decompress a kernel payload (gzip, xz, lzma, zstd, lz4 legacy frames) found
 * by magic number. Output is limited to max bytes. -EINVAL on bad data.
 */
int kernel_decompress(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len,
		      const char **method, struct err *e);

#endif
