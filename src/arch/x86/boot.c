// SPDX-License-Identifier: MIT
/* boot.c: direct kernel boot: bzImage, vmlinux or PVH ELF, initrd and boot data in guest RAM. */
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/pvh.h"
#include "base/err.h"
#include "base/util.h"
#include "vmm/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KERNEL_MAX (256 * MiB)
#define INITRD_MAX (2 * GiB)
#define DECOMPRESSED_MAX (512 * MiB)
/* Linux's COMMAND_LINE_SIZE on x86 is 2048: what a zero page built for a vmlinux announces. */
#define VMLINUX_CMDLINE_SIZE 2047
/* boot.rst "64-bit Boot Protocol": the 64-bit entry is 0x200 past the protected-mode kernel. */
#define STARTUP_64_OFFSET 0x200
/* Real-mode heap end as every 64-bit loader sets it; only the real-mode setup reads it. */
#define HEAP_END_PTR 0xfe00
/* Sizes in messages: whole MiB, rounded up so that nothing shows as 0 MiB. */
#define MIB_UP(x) ((unsigned long long)(((x) + MiB - 1) / MiB))

/* boot_params.e820_table holds struct boot_e820_entry, 20 packed bytes. */
_Static_assert(sizeof(struct e820_entry) == 20, "e820 entry layout");
_Static_assert(BP_E820_TABLE + E820_MAX * 20 <= BP_SIZE, "e820 table fits the zero page");

/* What the kernel loaders found, for the initrd and the boot parameters. */
struct loaded {
	const uint8_t *hdr;       /* setup header source (bzImage) or NULL (ELF) */
	size_t hdr_end;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
};

static void put16(uint8_t *p, size_t off, uint16_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

static void put64(uint8_t *p, size_t off, uint64_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

static int open_error(struct err *e, int ret, const char *what, const char *path, uint64_t max)
{
	if (ret == -EFBIG)
		return err_set(e, EFBIG, "%s %s: larger than %llu MiB", what, path,
			       (unsigned long long)(max / MiB));
	if (ret == -EINVAL)
		return err_set(e, EINVAL, "%s %s: not a regular file", what, path);
	return err_set(e, -ret, "%s %s: %s", what, path, strerror(-ret));
}

/* Load PT_LOAD segments at their physical addresses; bss is zeroed. */
static int load_elf_segs(struct guest_mem *gm, const uint8_t *buf, const struct elf_info *ei,
			 struct err *e)
{
	for (int i = 0; i < ei->nsegs; i++) {
		const struct elf_load_seg *s = &ei->segs[i];
		uint8_t *dst;

		dst = s->paddr >= X86_KERNEL_START ? gm_ptr(gm, s->paddr, s->mem_size) : NULL;
		if (!dst)
			return err_set(e, EINVAL,
				       "segment [0x%llx, 0x%llx) is not in guest RAM above 1 MiB "
				       "(%llu MiB of RAM): use a larger --memory or fix the link address",
				       (unsigned long long)s->paddr,
				       (unsigned long long)(s->paddr + s->mem_size),
				       (unsigned long long)(gm->size / MiB));
		memcpy(dst, buf + s->file_off, s->file_size);
		memset(dst + s->file_size, 0, s->mem_size - s->file_size);
	}
	return 0;
}

static bool in_segment(const struct elf_info *ei, uint64_t addr)
{
	for (int i = 0; i < ei->nsegs; i++)
		if (addr >= ei->segs[i].paddr && addr - ei->segs[i].paddr < ei->segs[i].mem_size)
			return true;
	return false;
}

/* An ELF's entry: PVH when asked for (or allowed) and noted, 64-bit Linux otherwise. */
static int load_elf(struct guest_mem *gm, const uint8_t *buf, size_t len,
		    enum boot_protocol_pref pref, struct boot_info *bi, struct err *e)
{
	struct elf_info ei;
	int ret;

	ret = elf_parse(buf, len, &ei, e);
	if (ret < 0)
		return ret;
	if (pref == BOOT_PREF_PVH && !ei.has_pvh)
		return err_set(e, EINVAL,
			       "PVH boot requested but the ELF has no Xen PVH note "
			       "(XEN_ELFNOTE_PHYS32_ENTRY)");
	ret = load_elf_segs(gm, buf, &ei, e);
	if (ret < 0)
		return ret;
	if (ei.has_pvh && pref != BOOT_PREF_LINUX64) {
		if (!in_segment(&ei, ei.pvh_entry))
			return err_set(e, EINVAL, "PVH entry 0x%x is outside every PT_LOAD segment",
				       ei.pvh_entry);
		bi->entry_kind = BOOT_ENTRY_PVH;
		bi->entry = ei.pvh_entry;
		bi->params_gpa = X86_PVH_INFO;
	} else {
		if (!in_segment(&ei, ei.entry_phys))
			return err_set(e, EINVAL, "entry point 0x%llx is outside every PT_LOAD segment",
				       (unsigned long long)ei.entry);
		bi->entry_kind = BOOT_ENTRY_LINUX64;
		bi->entry = ei.entry_phys;
		bi->params_gpa = X86_ZERO_PAGE;
	}
	bi->kernel_start = ei.lowest;
	bi->kernel_end = ei.highest;
	return 0;
}

/*
 * boot.rst "Loading the rest of the kernel" and the runtime start address
 * rule under "pref_address": a relocatable kernel loaded at 1 MiB runs from
 * align_up(max(1 MiB, pref_address), kernel_alignment) and needs init_size
 * bytes from there; a fixed one runs from pref_address.
 */
static int load_bzimage(struct guest_mem *gm, const uint8_t *buf, const struct bzimage_info *bz,
			struct boot_info *bi, struct err *e)
{
	uint64_t run_start, end;
	uint8_t *dst;

	if (!(bz->xloadflags & BZ_XLF_KERNEL_64))
		return err_set(e, EINVAL, "no 64-bit entry point (XLF_KERNEL_64 not in xloadflags, "
			       "protocol %u.%02u)", bz->version >> 8, bz->version & 0xff);
	run_start = X86_KERNEL_START;
	if (bz->pref_address > X86_MEM_HIGH_START)
		return err_set(e, EINVAL, "pref_address 0x%llx is above 4 GiB",
			       (unsigned long long)bz->pref_address);
	if (bz->relocatable)
		run_start = ALIGN_UP(MAX(run_start, bz->pref_address), bz->kernel_alignment);
	else if (bz->pref_address)
		run_start = bz->pref_address;
	if (run_start < X86_KERNEL_START)
		return err_set(e, EINVAL, "non-relocatable kernel runs at 0x%llx, below 1 MiB",
			       (unsigned long long)run_start);
	end = MAX(X86_KERNEL_START + bz->pm_size, run_start + bz->init_size);
	if (end > gm->low_size || !gm_ptr(gm, X86_KERNEL_START, end - X86_KERNEL_START))
		return err_set(e, EINVAL,
			       "needs RAM up to %llu MiB (init_size %llu MiB from 0x%llx) but the "
			       "guest has %llu MiB below the PCI hole: use a larger --memory",
			       MIB_UP(end),
			       MIB_UP(bz->init_size),
			       (unsigned long long)run_start,
			       (unsigned long long)(gm->low_size / MiB));
	dst = gm_ptr(gm, X86_KERNEL_START, bz->pm_size);
	memcpy(dst, buf + bz->pm_offset, bz->pm_size);
	bi->entry_kind = BOOT_ENTRY_LINUX64;
	bi->entry = X86_KERNEL_START + STARTUP_64_OFFSET;
	bi->params_gpa = X86_ZERO_PAGE;
	bi->kernel_start = X86_KERNEL_START;
	bi->kernel_end = end;
	bi->format = "bzImage";
	return 0;
}

static const char *decompressed_format(const char *method)
{
	if (!method)
		return "bzImage (host-decompressed, uncompressed payload)";
	if (!strcmp(method, "gzip"))
		return "bzImage (host-decompressed gzip)";
	if (!strcmp(method, "xz"))
		return "bzImage (host-decompressed xz)";
	if (!strcmp(method, "lzma"))
		return "bzImage (host-decompressed lzma)";
	if (!strcmp(method, "zstd"))
		return "bzImage (host-decompressed zstd)";
	return "bzImage (host-decompressed lz4)";
}

/* Decompress the payload on the host and boot the vmlinux ELF inside it. */
static int load_decompressed(struct guest_mem *gm, const uint8_t *buf,
			     const struct bzimage_info *bz, enum boot_protocol_pref pref,
			     struct boot_info *bi, struct err *e)
{
	const uint8_t *payload = buf + bz->pm_offset + bz->payload_offset;
	const char *method = NULL;
	uint8_t *elf = NULL;
	size_t elf_len;
	int ret;

	if (bz->payload_length == 0)
		return err_set(e, EINVAL, "no payload to decompress (protocol %u.%02u)",
			       bz->version >> 8, bz->version & 0xff);
	/* CONFIG_KERNEL_UNCOMPRESSED: the payload is the ELF itself. */
	if (bz->payload_length >= 4 && !memcmp(payload, "\x7f" "ELF", 4)) {
		ret = load_elf(gm, payload, bz->payload_length,
			       pref == BOOT_PREF_PVH ? BOOT_PREF_PVH : BOOT_PREF_LINUX64, bi, e);
	} else {
		ret = kernel_decompress(payload, bz->payload_length, DECOMPRESSED_MAX, &elf, &elf_len,
					&method, e);
		if (ret < 0)
			return err_prefix(e, ret, "payload");
		ret = load_elf(gm, elf, elf_len,
			       pref == BOOT_PREF_PVH ? BOOT_PREF_PVH : BOOT_PREF_LINUX64, bi, e);
		free(elf);
	}
	if (ret < 0)
		return err_prefix(e, ret, "decompressed payload");
	bi->format = decompressed_format(method);
	return 0;
}

/*
 * boot.rst "initrd": as high as possible, below initrd_addr_max and the end
 * of low RAM, page aligned, and above everything the kernel occupies.
 * The file is read straight into guest RAM.
 */
static int load_initrd(struct guest_mem *gm, const char *path, uint64_t addr_max,
		       struct boot_info *bi, struct err *e)
{
	uint64_t max = MIN(INITRD_MAX, gm->size), limit, size, gpa, floor;
	struct stat st;
	uint8_t *dst;
	size_t got = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return open_error(e, -errno, "initrd", path, max);
	if (fstat(fd, &st) < 0) {
		ret = open_error(e, -errno, "initrd", path, max);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = open_error(e, -EINVAL, "initrd", path, max);
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (size > max) {
		ret = err_set(e, EFBIG, "initrd %s: %llu MiB is larger than %s (%llu MiB)", path,
			      MIB_UP(size),
			      max == INITRD_MAX ? "the initrd limit" : "guest RAM",
			      (unsigned long long)(max / MiB));
		goto out;
	}
	if (size == 0) {
		ret = err_set(e, EINVAL, "initrd %s: empty file", path);
		goto out;
	}
	limit = MIN(addr_max + 1, gm->low_size);
	floor = ALIGN_UP(bi->kernel_end, 4096);
	gpa = limit >= size ? ALIGN_DOWN(limit - size, 4096) : 0;
	dst = limit >= size && gpa >= floor ? gm_ptr(gm, gpa, size) : NULL;
	if (!dst) {
		ret = err_set(e, ENOMEM,
			      "initrd %s (%llu MiB) does not fit below 0x%llx and above the kernel "
			      "(ends at 0x%llx) with %llu MiB of RAM: use a larger --memory",
			      path, MIB_UP(size), (unsigned long long)limit,
			      (unsigned long long)floor, (unsigned long long)(gm->size / MiB));
		goto out;
	}
	while (got < size) {
		ssize_t n = pread(fd, dst + got, size - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = err_set(e, n < 0 ? errno : EIO, "initrd %s: %s", path,
				      n < 0 ? strerror(errno) : "file shrank while reading");
			goto out;
		}
		got += (size_t)n;
	}
	bi->initrd_gpa = gpa;
	bi->initrd_size = size;
out:
	close(fd);
	return ret;
}

static int write_cmdline(struct guest_mem *gm, const char *cmdline, uint64_t limit, struct err *e)
{
	const char *c = cmdline ? cmdline : "";
	size_t len = strlen(c);

	limit = MIN(limit, X86_CMDLINE_MAX - 1);
	if (len > limit)
		return err_set(e, EINVAL, "command line is %zu bytes, the kernel accepts at most %llu",
			       len, (unsigned long long)limit);
	if (gm_write(gm, X86_CMDLINE, c, len + 1) < 0)
		return err_set(e, ENOMEM, "command line at 0x%llx is not in guest RAM", X86_CMDLINE);
	return 0;
}

/*
 * The zero page (struct boot_params): the kernel's own setup header when
 * there is one (boot.rst "The real-mode kernel header"), otherwise one made
 * up as a bzImage of protocol 2.15 would carry, then the loader's fields.
 */
static int write_zero_page(struct guest_mem *gm, const struct boot_opts *o,
			   const struct loaded *ld, const struct boot_info *bi, struct err *e)
{
	uint8_t zp[BP_SIZE];
	struct e820_entry map[E820_MAX];
	int n;

	memset(zp, 0, sizeof(zp));
	if (ld->hdr) {
		memcpy(zp + BZ_SETUP_SECTS, ld->hdr + BZ_SETUP_SECTS, ld->hdr_end - BZ_SETUP_SECTS);
	} else {
		put16(zp, BZ_BOOT_FLAG, 0xaa55);
		memcpy(zp + BZ_HDR_MAGIC, "HdrS", 4);
		put16(zp, BZ_VERSION, 0x020f);
		put32(zp, BZ_KERNEL_ALIGNMENT, 0x1000000);
		put32(zp, BZ_CMDLINE_SIZE, ld->cmdline_size);
	}
	zp[BZ_TYPE_OF_LOADER] = 0xff; /* undefined loader id */
	zp[BZ_LOADFLAGS] |= BZ_LOADED_HIGH | BZ_CAN_USE_HEAP;
	put16(zp, BZ_HEAP_END_PTR, HEAP_END_PTR);
	put32(zp, BZ_CMD_LINE_PTR, (uint32_t)X86_CMDLINE);
	put32(zp, BP_EXT_CMD_LINE_PTR, (uint32_t)(X86_CMDLINE >> 32));
	put32(zp, BZ_RAMDISK_IMAGE, (uint32_t)bi->initrd_gpa);
	put32(zp, BZ_RAMDISK_SIZE, (uint32_t)bi->initrd_size);
	put32(zp, BP_EXT_RAMDISK_IMAGE, (uint32_t)(bi->initrd_gpa >> 32));
	put32(zp, BP_EXT_RAMDISK_SIZE, (uint32_t)(bi->initrd_size >> 32));
	put64(zp, BP_ACPI_RSDP_ADDR, o->rsdp_gpa);
	n = e820_build(gm->low_size, gm->high_size, map, E820_MAX);
	if (n < 0)
		return err_set(e, -n, "cannot build the e820 map");
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(zp + BP_E820_TABLE, map, (size_t)n * sizeof(map[0]));
	if (gm_write(gm, X86_ZERO_PAGE, zp, sizeof(zp)) < 0)
		return err_set(e, ENOMEM, "zero page at 0x%llx is not in guest RAM", X86_ZERO_PAGE);
	return 0;
}

/* PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h), version 1 with a memory map. */
static int write_pvh_info(struct guest_mem *gm, const struct boot_opts *o,
			  const struct boot_info *bi, struct err *e)
{
	uint8_t page[X86_PVH_INFO_MAX];
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;
	struct e820_entry map[E820_MAX];
	size_t mod_off = ALIGN_UP(sizeof(si), 8), map_off = mod_off + sizeof(mod);
	int n;

	n = e820_build(gm->low_size, gm->high_size, map, E820_MAX);
	if (n < 0)
		return err_set(e, -n, "cannot build the e820 map");
	if (map_off + (size_t)n * sizeof(struct hvm_memmap_table_entry) > sizeof(page))
		return err_set(e, ENOSPC, "PVH start info does not fit in %llu bytes",
			       X86_PVH_INFO_MAX);
	memset(page, 0, sizeof(page));
	memset(&si, 0, sizeof(si));
	si.magic = HVM_START_MAGIC;
	si.version = 1;
	si.cmdline_paddr = X86_CMDLINE;
	si.rsdp_paddr = o->rsdp_gpa;
	if (bi->initrd_size) {
		memset(&mod, 0, sizeof(mod));
		mod.paddr = bi->initrd_gpa;
		mod.size = bi->initrd_size;
		memcpy(page + mod_off, &mod, sizeof(mod));
		si.nr_modules = 1;
		si.modlist_paddr = X86_PVH_INFO + mod_off;
	}
	for (int i = 0; i < n; i++) {
		struct hvm_memmap_table_entry me = {
			.addr = map[i].addr, .size = map[i].size, .type = map[i].type,
		};

		memcpy(page + map_off + (size_t)i * sizeof(me), &me, sizeof(me));
	}
	si.memmap_paddr = X86_PVH_INFO + map_off;
	si.memmap_entries = (uint32_t)n;
	memcpy(page, &si, sizeof(si));
	if (gm_write(gm, X86_PVH_INFO, page, sizeof(page)) < 0)
		return err_set(e, ENOMEM, "PVH start info at 0x%llx is not in guest RAM", X86_PVH_INFO);
	return 0;
}

int x86_boot_load(struct guest_mem *gm, const struct boot_opts *o, struct boot_info *bi,
		  struct err *e)
{
	struct loaded ld = { .cmdline_size = VMLINUX_CMDLINE_SIZE, .initrd_addr_max = UINT32_MAX };
	struct bzimage_info bz;
	uint8_t *buf = NULL;
	size_t len;
	int ret;

	memset(bi, 0, sizeof(*bi));
	if (!o->kernel)
		return err_set(e, EINVAL, "no kernel given");
	ret = read_file(o->kernel, KERNEL_MAX, &buf, &len);
	if (ret < 0)
		return open_error(e, ret, "kernel", o->kernel, KERNEL_MAX);

	if (len >= 4 && !memcmp(buf, "\x7f" "ELF", 4)) {
		ret = load_elf(gm, buf, len, o->pref, bi, e);
		if (ret == 0)
			bi->format = bi->entry_kind == BOOT_ENTRY_PVH ? "PVH ELF" : "ELF";
	} else {
		ret = bzimage_parse(buf, len, &bz, e);
		if (ret == 0 && o->pref == BOOT_PREF_PVH && !o->decompress)
			ret = err_set(e, EINVAL, "PVH boot of a bzImage needs --decompress "
				      "(the PVH note is in the ELF inside)");
		if (ret == 0) {
			ld.hdr = buf;
			ld.hdr_end = bzimage_hdr_end(buf, len);
			ld.cmdline_size = bz.cmdline_size;
			ld.initrd_addr_max = bz.initrd_addr_max ? bz.initrd_addr_max : 0x37ffffff;
			ret = o->decompress ? load_decompressed(gm, buf, &bz, o->pref, bi, e) :
					      load_bzimage(gm, buf, &bz, bi, e);
		}
	}
	if (ret < 0) {
		err_prefix(e, ret, "kernel %s", o->kernel);
		goto out;
	}

	if (o->initrd) {
		ret = load_initrd(gm, o->initrd, ld.initrd_addr_max, bi, e);
		if (ret < 0)
			goto out;
	}
	if (bi->entry_kind == BOOT_ENTRY_PVH) {
		ret = write_cmdline(gm, o->cmdline, X86_CMDLINE_MAX - 1, e);
		if (ret == 0)
			ret = write_pvh_info(gm, o, bi, e);
	} else {
		ret = write_cmdline(gm, o->cmdline, ld.cmdline_size, e);
		if (ret == 0)
			ret = write_zero_page(gm, o, &ld, bi, e);
	}
out:
	free(buf);
	return ret;
}
