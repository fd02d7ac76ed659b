// SPDX-License-Identifier: MIT
/* test_boot.c: unit tests for bzimage_parse and x86_boot_load (zero page, PVH, initrd, ELF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"
#include "vmm/mem.h"
#include "compress.h"

#define REAL_KERNEL_DIR "/root/.cache/kvmm/k/boot"

/* ---- fixture: a scratch directory and guest RAM over an anonymous mapping ---- */

struct fx {
	char dir[64];
	char kernel[PATH_MAX], initrd[PATH_MAX];
	struct guest_mem gm;
};

static void gm_new(struct guest_mem *gm, uint64_t low, uint64_t high)
{
	void *p = mmap(NULL, low + high, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	assert_true(p != MAP_FAILED);
	*gm = (struct guest_mem){ .fd = -1, .host = p, .size = low + high, .low_size = low,
				  .high_size = high, .page_size = 4096 };
}

static void gm_free(struct guest_mem *gm)
{
	if (gm->host)
		munmap(gm->host, gm->size);
	gm->host = NULL;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/kvmm-test-boot-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->kernel, sizeof(f->kernel), "%s/kernel", f->dir);
	snprintf(f->initrd, sizeof(f->initrd), "%s/initrd", f->dir);
	gm_new(&f->gm, 64 * MiB, 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	unlink(f->kernel);
	unlink(f->initrd);
	rmdir(f->dir);
	gm_free(&f->gm);
	free(f);
	return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void write_initrd(struct fx *f, size_t len)
{
	uint8_t *p = malloc(len);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	write_file(f->initrd, p, len);
	free(p);
}

static uint8_t *gp(struct fx *f, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gm_ptr(&f->gm, gpa, len);

	assert_non_null(p);
	return p;
}

static uint8_t zp8(struct fx *f, size_t off)
{
	return *gp(f, X86_ZERO_PAGE + off, 1);
}

static uint16_t zp16(struct fx *f, size_t off)
{
	uint16_t v;

	memcpy(&v, gp(f, X86_ZERO_PAGE + off, 2), 2);
	return v;
}

static uint32_t zp32(struct fx *f, size_t off)
{
	uint32_t v;

	memcpy(&v, gp(f, X86_ZERO_PAGE + off, 4), 4);
	return v;
}

static uint64_t zp64(struct fx *f, size_t off)
{
	uint64_t v;

	memcpy(&v, gp(f, X86_ZERO_PAGE + off, 8), 8);
	return v;
}

/* ---- synthetic images ---- */

struct bzp {
	uint16_t version;
	uint8_t setup_sects; /* as stored: 0 means 4 */
	uint8_t loadflags;
	uint32_t init_size, initrd_addr_max, cmdline_size, align;
	uint16_t xloadflags;
	uint64_t pref;
	uint8_t reloc;
	const uint8_t *payload;
	size_t payload_len, pm_code;
};

static const uint8_t default_payload[64] = "not compressed: bytes at the end of the image";

static struct bzp bzp_default(void)
{
	return (struct bzp){
		.version = 0x020f, .setup_sects = 4, .loadflags = BZ_LOADED_HIGH,
		.init_size = 8 * MiB, .initrd_addr_max = 0x7fffffff, .cmdline_size = 2047,
		.align = 2 * MiB, .xloadflags = 0x3, .pref = 16 * MiB, .reloc = 1,
		.payload = default_payload, .payload_len = sizeof(default_payload), .pm_code = 4096,
	};
}

static void put(uint8_t *b, size_t off, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

/* A minimal bzImage: boot sector + setup sectors holding the header, then code and payload. */
static uint8_t *make_bz(const struct bzp *p, size_t *len)
{
	size_t setup = ((size_t)(p->setup_sects ? p->setup_sects : 4) + 1) * 512;
	uint8_t *b;

	*len = setup + p->pm_code + p->payload_len;
	b = calloc(1, *len);
	assert_non_null(b);
	b[BZ_SETUP_SECTS] = p->setup_sects;
	put(b, BZ_BOOT_FLAG, 0xaa55, 2);
	b[BZ_HDR_JUMP] = 0xeb;
	b[BZ_HDR_JUMP + 1] = 0x6a; /* header up to 0x26c, as in Linux */
	memcpy(b + BZ_HDR_MAGIC, "HdrS", 4);
	put(b, BZ_VERSION, p->version, 2);
	b[BZ_LOADFLAGS] = p->loadflags;
	put(b, BZ_INITRD_ADDR_MAX, p->initrd_addr_max, 4);
	put(b, BZ_KERNEL_ALIGNMENT, p->align, 4);
	b[BZ_RELOCATABLE] = p->reloc;
	put(b, BZ_XLOADFLAGS, p->xloadflags, 2);
	put(b, BZ_CMDLINE_SIZE, p->cmdline_size, 4);
	put(b, BZ_PAYLOAD_OFFSET, p->pm_code, 4);
	put(b, BZ_PAYLOAD_LENGTH, p->payload_len, 4);
	put(b, BZ_PREF_ADDRESS, p->pref, 8);
	put(b, BZ_INIT_SIZE, p->init_size, 4);
	for (size_t i = 0; i < p->pm_code; i++)
		b[setup + i] = (uint8_t)(i ^ 0x5a);
	memcpy(b + setup + p->pm_code, p->payload, p->payload_len);
	return b;
}

static void write_bz(struct fx *f, const struct bzp *p)
{
	size_t len;
	uint8_t *b = make_bz(p, &len);

	write_file(f->kernel, b, len);
	free(b);
}

struct seg {
	uint64_t vaddr, paddr, filesz, memsz;
};

/*
 * A minimal ELF64 executable: PT_NOTE with the Xen PVH entry (8 bytes, as
 * Linux writes it) when pvh_entry is not 0, then each segment's data filled
 * with (0x40 + segment index).
 */
static uint8_t *make_elf(const struct seg *s, int n, uint64_t entry, uint64_t pvh_entry,
			 size_t *len)
{
	size_t off = 0x400, total = off;
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr ph;
	uint8_t *b;
	int i, np = 0;

	for (i = 0; i < n; i++)
		total += s[i].filesz;
	b = calloc(1, total);
	assert_non_null(b);
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = entry;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(ph);
	if (pvh_entry) {
		Elf64_Nhdr nh = { .n_namesz = 4, .n_descsz = 8, .n_type = 18 };

		memcpy(b + 0x300, &nh, sizeof(nh));
		memcpy(b + 0x300 + sizeof(nh), "Xen", 4);
		memcpy(b + 0x300 + sizeof(nh) + 4, &pvh_entry, 8);
		ph = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = 0x300, .p_filesz = 24 };
		memcpy(b + sizeof(eh) + np++ * sizeof(ph), &ph, sizeof(ph));
	}
	for (i = 0; i < n; i++) {
		ph = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = off, .p_vaddr = s[i].vaddr,
				   .p_paddr = s[i].paddr, .p_filesz = s[i].filesz,
				   .p_memsz = s[i].memsz };
		memcpy(b + sizeof(eh) + np++ * sizeof(ph), &ph, sizeof(ph));
		memset(b + off, 0x40 + i, s[i].filesz);
		off += s[i].filesz;
	}
	eh.e_phnum = (uint16_t)np;
	memcpy(b, &eh, sizeof(eh));
	*len = total;
	return b;
}

/* A vmlinux-like ELF: text at 16 MiB linked high, data + bss after it. */
static const struct seg vmlinux_segs[2] = {
	{ 0xffffffff81000000ULL, 0x1000000, 0x3000, 0x3000 },
	{ 0xffffffff81200000ULL, 0x1200000, 0x1000, 0x40000 },
};

static void write_vmlinux(struct fx *f, uint64_t pvh_entry)
{
	size_t len;
	uint8_t *b = make_elf(vmlinux_segs, 2, 0xffffffff81000100ULL, pvh_entry, &len);

	write_file(f->kernel, b, len);
	free(b);
}

/* ---- bzimage_parse ---- */

static void test_bzimage_parse_fields(void **state)
{
	struct bzp p = bzp_default();
	struct bzimage_info bz;
	struct err e;
	size_t len;
	uint8_t *b = make_bz(&p, &len);

	assert_int_equal(bzimage_parse(b, len, &bz, &e), 0);
	assert_int_equal(bz.version, 0x020f);
	assert_int_equal(bz.setup_sects, 4);
	assert_int_equal(bz.setup_size, 5 * 512);
	assert_int_equal(bz.pm_offset, 5 * 512);
	assert_int_equal(bz.pm_size, 4096 + sizeof(default_payload));
	assert_int_equal(bz.init_size, 8 * MiB);
	assert_int_equal(bz.initrd_addr_max, 0x7fffffff);
	assert_int_equal(bz.cmdline_size, 2047);
	assert_int_equal(bz.kernel_alignment, 2 * MiB);
	assert_int_equal(bz.pref_address, 16 * MiB);
	assert_int_equal(bz.xloadflags, 3);
	assert_true(bz.relocatable);
	assert_int_equal(bz.payload_offset, 4096);
	assert_int_equal(bz.payload_length, sizeof(default_payload));
	assert_int_equal(bzimage_hdr_end(b, len), 0x26c);
	free(b);
}

static void test_bzimage_setup_sects_zero(void **state)
{
	struct bzp p = bzp_default();
	struct bzimage_info bz;
	struct err e;
	size_t len;
	uint8_t *b;

	p.setup_sects = 0; /* boot.rst: means 4 */
	b = make_bz(&p, &len);
	assert_int_equal(bzimage_parse(b, len, &bz, &e), 0);
	assert_int_equal(bz.setup_sects, 4);
	assert_int_equal(bz.pm_offset, 5 * 512);
	free(b);
}

static void test_bzimage_oversized_setup_sects(void **state)
{
	struct bzp p = bzp_default();
	struct bzimage_info bz;
	struct err e;
	size_t len;
	uint8_t *b = make_bz(&p, &len);

	b[BZ_SETUP_SECTS] = 255;
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "setup_sects 255"));
	/* Setup reaching exactly the end leaves no kernel: also refused. */
	b[BZ_SETUP_SECTS] = (uint8_t)(len / 512 - 1);
	assert_int_equal(len % 512, sizeof(default_payload));
	assert_int_equal(bzimage_parse(b, len - sizeof(default_payload), &bz, &e), -EINVAL);
	free(b);
}

static void test_bzimage_bad_headers(void **state)
{
	struct bzp p = bzp_default();
	struct bzimage_info bz;
	struct err e;
	size_t len;
	uint8_t *b;

	b = make_bz(&p, &len);
	b[BZ_HDR_MAGIC] = 'h';
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	assert_string_equal(e.msg, "setup header magic missing (not a bzImage?)");
	free(b);

	b = make_bz(&p, &len);
	b[BZ_BOOT_FLAG] = 0;
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "boot_flag"));
	free(b);

	p.version = 0x0205;
	b = make_bz(&p, &len);
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "2.05 is too old"));
	free(b);

	p = bzp_default();
	p.loadflags = 0;
	b = make_bz(&p, &len);
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "zImage"));
	free(b);

	p = bzp_default();
	p.align = 3 * MiB;
	b = make_bz(&p, &len);
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "power of two"));
	free(b);

	/* Payload past the end of the protected-mode part, and one whose end wraps. */
	p = bzp_default();
	b = make_bz(&p, &len);
	put(b, BZ_PAYLOAD_LENGTH, sizeof(default_payload) + 1, 4);
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "payload"));
	put(b, BZ_PAYLOAD_OFFSET, 0xffffff00, 4);
	put(b, BZ_PAYLOAD_LENGTH, 0x200, 4);
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	/* A header that says it is too short for the fields its version has. */
	put(b, BZ_PAYLOAD_OFFSET, 4096, 4);
	put(b, BZ_PAYLOAD_LENGTH, sizeof(default_payload), 4);
	b[BZ_HDR_JUMP + 1] = 0x10;
	assert_int_equal(bzimage_parse(b, len, &bz, &e), -EINVAL);
	free(b);

	assert_int_equal(bzimage_parse(NULL, 0, &bz, &e), -EINVAL);
	assert_int_equal(bzimage_parse((const uint8_t *)"MZ", 2, &bz, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "too small"));
}

/* Old protocols: fields they do not define read as 0, whatever the file holds. */
static void test_bzimage_protocol_206(void **state)
{
	struct bzp p = bzp_default();
	struct bzimage_info bz;
	struct err e;
	size_t len;
	uint8_t *b;

	p.version = 0x0206;
	b = make_bz(&p, &len);
	assert_int_equal(bzimage_parse(b, len, &bz, &e), 0);
	assert_int_equal(bz.payload_length, 0);
	assert_int_equal(bz.init_size, 0);
	assert_int_equal(bz.pref_address, 0);
	assert_int_equal(bz.xloadflags, 0);
	free(b);
}

/* Every proper prefix of a small image is refused, and none crashes (ASan watches). */
static void test_bzimage_every_truncation(void **state)
{
	struct bzp p = bzp_default();
	struct bzimage_info bz;
	struct err e;
	size_t len;
	uint8_t *b = make_bz(&p, &len);

	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, b, n);
		e.msg[0] = '\0';
		assert_int_equal(bzimage_parse(copy, n, &bz, &e), -EINVAL);
		assert_true(e.msg[0] != '\0');
		free(copy);
	}
	free(b);
}

/* ---- x86_boot_load: bzImage ---- */

static void test_load_bzimage_zero_page(void **state)
{
	struct fx *f = *state;
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel, .initrd = f->initrd,
			       .cmdline = "console=ttyS0 quiet", .rsdp_gpa = 0xe0000 };
	struct boot_info bi;
	struct e820_entry map[E820_MAX];
	struct err e;
	size_t len, isize = 1 * MiB + 1;
	uint8_t *img = make_bz(&p, &len);
	int n;

	write_file(f->kernel, img, len);
	write_initrd(f, isize);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);

	assert_int_equal(bi.entry_kind, BOOT_ENTRY_LINUX64);
	assert_int_equal(bi.entry, 0x100200);
	assert_int_equal(bi.params_gpa, X86_ZERO_PAGE);
	assert_string_equal(bi.format, "bzImage");
	assert_int_equal(bi.kernel_start, 1 * MiB);
	assert_int_equal(bi.kernel_end, 24 * MiB); /* pref 16 MiB + init_size 8 MiB */
	/* The protected-mode kernel sits at 1 MiB. */
	assert_memory_equal(gp(f, 1 * MiB, len - 5 * 512), img + 5 * 512, len - 5 * 512);

	/* Setup header copied from the file. */
	assert_int_equal(zp8(f, BZ_SETUP_SECTS), 4);
	assert_int_equal(zp16(f, BZ_BOOT_FLAG), 0xaa55);
	assert_memory_equal(gp(f, X86_ZERO_PAGE + BZ_HDR_MAGIC, 4), "HdrS", 4);
	assert_int_equal(zp16(f, BZ_VERSION), 0x020f);
	assert_int_equal(zp32(f, BZ_INIT_SIZE), 8 * MiB);
	assert_int_equal(zp8(f, 0x26c), 0); /* nothing past the header */
	/* Loader fields. */
	assert_int_equal(zp8(f, BZ_TYPE_OF_LOADER), 0xff);
	assert_int_equal(zp8(f, BZ_LOADFLAGS) & (BZ_LOADED_HIGH | BZ_CAN_USE_HEAP),
			 BZ_LOADED_HIGH | BZ_CAN_USE_HEAP);
	assert_int_not_equal(zp16(f, BZ_HEAP_END_PTR), 0);
	assert_int_equal(zp32(f, BZ_CMD_LINE_PTR), X86_CMDLINE);
	assert_int_equal(zp32(f, BP_EXT_CMD_LINE_PTR), 0);
	assert_string_equal((char *)gp(f, X86_CMDLINE, 20), "console=ttyS0 quiet");
	assert_int_equal(zp32(f, BZ_RAMDISK_IMAGE), bi.initrd_gpa);
	assert_int_equal(zp32(f, BZ_RAMDISK_SIZE), isize);
	assert_int_equal(zp32(f, BP_EXT_RAMDISK_IMAGE), 0);
	assert_int_equal(zp32(f, BP_EXT_RAMDISK_SIZE), 0);
	assert_int_equal(zp64(f, BP_ACPI_RSDP_ADDR), 0xe0000);
	/* e820 as e820_build gives it. */
	n = e820_build(64 * MiB, 0, map, E820_MAX);
	assert_int_equal(zp8(f, BP_E820_ENTRIES), n);
	assert_memory_equal(gp(f, X86_ZERO_PAGE + BP_E820_TABLE, n * 20), map, n * 20);
	assert_int_equal(zp32(f, BP_E820_TABLE + 2 * 20 + 16), E820_RAM);
	assert_int_equal(zp64(f, BP_E820_TABLE + 2 * 20 + 8), 63 * MiB);

	/* initrd: highest page-aligned spot below the end of RAM, contents intact. */
	assert_int_equal(bi.initrd_size, isize);
	assert_int_equal(bi.initrd_gpa, ALIGN_DOWN(64 * MiB - isize, 4096));
	assert_int_equal(gp(f, bi.initrd_gpa, isize)[isize - 1], (uint8_t)((isize - 1) * 7 + 3));
	assert_int_equal(gp(f, bi.initrd_gpa, 1)[0], 3);
	free(img);
}

static void test_initrd_below_addr_max(void **state)
{
	struct fx *f = *state;
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel, .initrd = f->initrd };
	struct boot_info bi;
	struct err e;
	size_t isize = 3 * MiB + 123;

	p.initrd_addr_max = 40 * MiB - 1;
	write_bz(f, &p);
	write_initrd(f, isize);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.initrd_gpa, ALIGN_DOWN(40 * MiB - isize, 4096));
	assert_true(bi.initrd_gpa + isize <= 40 * MiB);
	assert_int_equal(bi.initrd_gpa % 4096, 0);
	assert_int_equal(zp32(f, BZ_RAMDISK_IMAGE), bi.initrd_gpa);
	assert_int_equal(zp32(f, BZ_INITRD_ADDR_MAX), 40 * MiB - 1);

	/* Below the kernel's end is not allowed: 24 MiB is where it ends. */
	p.initrd_addr_max = 26 * MiB - 1;
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -ENOMEM);
	assert_non_null(strstr(e.msg, "does not fit"));
}

static void test_initrd_does_not_fit(void **state)
{
	struct fx *f = *state;
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel, .initrd = f->initrd };
	struct boot_info bi;
	struct err e;
	char want[PATH_MAX + 64];

	gm_free(&f->gm);
	gm_new(&f->gm, 32 * MiB, 0);
	write_bz(f, &p);
	write_initrd(f, 8 * MiB + 1);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -ENOMEM);
	snprintf(want, sizeof(want), "initrd %s (9 MiB) does not fit below", f->initrd);
	assert_non_null(strstr(e.msg, want));
	assert_non_null(strstr(e.msg, "32 MiB of RAM: use a larger --memory"));

	/* 8 MiB exactly fits between 24 MiB and 32 MiB. */
	write_initrd(f, 8 * MiB);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.initrd_gpa, 24 * MiB);

	/* Empty and missing initrds. */
	write_file(f->initrd, "", 0);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "empty"));
	unlink(f->initrd);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -ENOENT);
	snprintf(want, sizeof(want), "initrd %s: No such file or directory", f->initrd);
	assert_string_equal(e.msg, want);

	/* Larger than guest RAM. */
	write_initrd(f, 32 * MiB + 1);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "guest RAM"));
}

static void test_kernel_does_not_fit(void **state)
{
	struct fx *f = *state;
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel };
	struct boot_info bi;
	struct err e;

	p.init_size = 60 * MiB; /* 16 + 60 > 64 */
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, f->kernel));
	assert_non_null(strstr(e.msg, "use a larger --memory"));

	/* Non-relocatable: runs at pref_address. */
	p.init_size = 8 * MiB;
	p.reloc = 0;
	p.pref = 1 * MiB;
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.kernel_end, 9 * MiB);

	/* Non-relocatable, wanting to run below 1 MiB (over the zero page). */
	p.pref = 0x10000;
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "below 1 MiB"));

	/* pref_address far away must not overflow the fit check. */
	p.reloc = 1;
	p.pref = UINT64_MAX - 4096;
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
}

static void test_cmdline_limits(void **state)
{
	struct fx *f = *state;
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel, .cmdline = "0123456789abcdef" };
	struct boot_info bi;
	struct err e;

	p.cmdline_size = 16; /* boot.rst: without the terminating NUL */
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_string_equal((char *)gp(f, X86_CMDLINE, 17), "0123456789abcdef");

	o.cmdline = "0123456789abcdefX";
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "command line is 17 bytes"));

	/* NULL is an empty command line. */
	o.cmdline = NULL;
	memset(gp(f, X86_CMDLINE, 4), 'x', 4);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(gp(f, X86_CMDLINE, 1)[0], 0);
	assert_int_equal(zp32(f, BZ_RAMDISK_SIZE), 0);
	assert_int_equal(bi.initrd_size, 0);
}

static void test_missing_and_bad_kernel(void **state)
{
	struct fx *f = *state;
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel };
	struct boot_info bi;
	struct err e;
	char want[PATH_MAX + 64];

	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -ENOENT);
	snprintf(want, sizeof(want), "kernel %s: No such file or directory", f->kernel);
	assert_string_equal(e.msg, want);

	write_file(f->kernel, "hello, world, this is not a kernel", 34);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	snprintf(want, sizeof(want), "kernel %s: file too small", f->kernel);
	assert_non_null(strstr(e.msg, want));

	p.xloadflags = 0;
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "XLF_KERNEL_64"));

	o.kernel = f->dir;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a regular file"));

	/* PVH needs the ELF inside: asking for it on a plain bzImage load is refused. */
	p = bzp_default();
	write_bz(f, &p);
	o.kernel = f->kernel;
	o.pref = BOOT_PREF_PVH;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "PVH"));
}

static void make_sparse(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

/* Size limits are checked before anything is read (sparse files, no real I/O). */
static void test_file_size_limits(void **state)
{
	struct fx *f = *state;
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel, .initrd = f->initrd };
	struct boot_info bi;
	struct err e;

	make_sparse(f->kernel, 256 * MiB + 1);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "larger than 256 MiB"));

	gm_free(&f->gm);
	gm_new(&f->gm, 3 * GiB, 1 * GiB);
	write_bz(f, &p);
	make_sparse(f->initrd, 2 * GiB + 1);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "initrd limit (2048 MiB)"));
}

/* ---- x86_boot_load: ELF ---- */

static void test_load_vmlinux(void **state)
{
	struct fx *f = *state;
	struct boot_opts o = { .kernel = f->kernel, .initrd = f->initrd, .cmdline = "root=/dev/vda",
			       .rsdp_gpa = 0xe0000 };
	struct boot_info bi;
	struct err e;

	write_vmlinux(f, 0);
	write_initrd(f, 4096);
	memset(gp(f, 0x1200000, 0x40000), 0xaa, 0x40000); /* stale bytes where bss goes */
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.entry_kind, BOOT_ENTRY_LINUX64);
	assert_int_equal(bi.entry, 0x1000100); /* virtual entry translated */
	assert_int_equal(bi.params_gpa, X86_ZERO_PAGE);
	assert_string_equal(bi.format, "ELF");
	assert_int_equal(bi.kernel_start, 0x1000000);
	assert_int_equal(bi.kernel_end, 0x1240000);
	assert_int_equal(gp(f, 0x1000000, 0x3000)[0x2fff], 0x40);
	assert_int_equal(gp(f, 0x1200000, 0x1000)[0xfff], 0x41);
	for (size_t i = 0x1000; i < 0x40000; i++)
		assert_int_equal(gp(f, 0x1200000, 0x40000)[i], 0);

	/* A zero page made from scratch, as a bzImage would get. */
	assert_int_equal(zp16(f, BZ_BOOT_FLAG), 0xaa55);
	assert_memory_equal(gp(f, X86_ZERO_PAGE + BZ_HDR_MAGIC, 4), "HdrS", 4);
	assert_int_equal(zp16(f, BZ_VERSION), 0x020f);
	assert_int_equal(zp32(f, BZ_KERNEL_ALIGNMENT), 0x1000000);
	assert_int_equal(zp32(f, BZ_CMDLINE_SIZE), 2047);
	assert_int_equal(zp8(f, BZ_TYPE_OF_LOADER), 0xff);
	assert_int_equal(zp8(f, BZ_LOADFLAGS), BZ_LOADED_HIGH | BZ_CAN_USE_HEAP);
	assert_int_equal(zp32(f, BZ_CMD_LINE_PTR), X86_CMDLINE);
	assert_string_equal((char *)gp(f, X86_CMDLINE, 14), "root=/dev/vda");
	assert_int_equal(zp32(f, BZ_RAMDISK_IMAGE), 64 * MiB - 4096);
	assert_int_equal(zp32(f, BZ_RAMDISK_SIZE), 4096);
	assert_int_equal(zp64(f, BP_ACPI_RSDP_ADDR), 0xe0000);
	assert_int_equal(zp8(f, BP_E820_ENTRIES), 4);

	/* A PVH-capable vmlinux booted with the Linux protocol on request. */
	write_vmlinux(f, 0x1000200);
	o.pref = BOOT_PREF_LINUX64;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.entry_kind, BOOT_ENTRY_LINUX64);
	assert_string_equal(bi.format, "ELF");
}

static void test_load_pvh(void **state)
{
	struct fx *f = *state;
	struct boot_opts o = { .kernel = f->kernel, .initrd = f->initrd, .cmdline = "console=hvc0",
			       .rsdp_gpa = 0xe0000 };
	struct boot_info bi;
	struct e820_entry map[E820_MAX];
	struct err e;
	uint8_t *si;
	uint32_t u32;
	uint64_t u64, modlist, memmap;
	int n;

	write_vmlinux(f, 0x1000200);
	write_initrd(f, 10000);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.entry_kind, BOOT_ENTRY_PVH);
	assert_int_equal(bi.entry, 0x1000200);
	assert_int_equal(bi.params_gpa, X86_PVH_INFO);
	assert_string_equal(bi.format, "PVH ELF");

	si = gp(f, X86_PVH_INFO, 56);
	memcpy(&u32, si + 0, 4);
	assert_int_equal(u32, 0x336ec578);
	memcpy(&u32, si + 4, 4);
	assert_int_equal(u32, 1);
	memcpy(&u32, si + 12, 4);
	assert_int_equal(u32, 1); /* nr_modules */
	memcpy(&modlist, si + 16, 8);
	memcpy(&u64, si + 24, 8);
	assert_int_equal(u64, X86_CMDLINE);
	assert_string_equal((char *)gp(f, X86_CMDLINE, 13), "console=hvc0");
	memcpy(&u64, si + 32, 8);
	assert_int_equal(u64, 0xe0000);
	memcpy(&memmap, si + 40, 8);
	memcpy(&u32, si + 48, 4);
	n = e820_build(64 * MiB, 0, map, E820_MAX);
	assert_int_equal(u32, n);

	/* Module list and memory map inside the start-info page. */
	assert_true(modlist >= X86_PVH_INFO && modlist + 32 <= X86_PVH_INFO + X86_PVH_INFO_MAX);
	memcpy(&u64, gp(f, modlist, 8), 8);
	assert_int_equal(u64, bi.initrd_gpa);
	memcpy(&u64, gp(f, modlist + 8, 8), 8);
	assert_int_equal(u64, 10000);
	assert_true(memmap >= X86_PVH_INFO && memmap + n * 24 <= X86_PVH_INFO + X86_PVH_INFO_MAX);
	for (int i = 0; i < n; i++) {
		memcpy(&u64, gp(f, memmap + i * 24, 8), 8);
		assert_int_equal(u64, map[i].addr);
		memcpy(&u64, gp(f, memmap + i * 24 + 8, 8), 8);
		assert_int_equal(u64, map[i].size);
		memcpy(&u32, gp(f, memmap + i * 24 + 16, 4), 4);
		assert_int_equal(u32, map[i].type);
	}

	/* No initrd: no module. */
	o.initrd = NULL;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	memcpy(&u32, gp(f, X86_PVH_INFO + 12, 4), 4);
	assert_int_equal(u32, 0);

	/* PVH asked for, no note. */
	write_vmlinux(f, 0);
	o.pref = BOOT_PREF_PVH;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "no Xen PVH note"));
	assert_non_null(strstr(e.msg, f->kernel));

	/* A PVH entry outside the loaded image. */
	write_vmlinux(f, 0x3000000);
	o.pref = BOOT_PREF_AUTO;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
}

static void test_elf_placement_errors(void **state)
{
	struct fx *f = *state;
	struct boot_opts o = { .kernel = f->kernel };
	struct boot_info bi;
	struct err e;
	struct seg low = { 0x80000, 0x80000, 0x100, 0x1000 };
	struct seg beyond = { 0x3f00000, 0x3f00000, 0x100, 0x200000 };
	size_t len;
	uint8_t *b;

	b = make_elf(&low, 1, 0x80000, 0, &len);
	write_file(f->kernel, b, len);
	free(b);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "above 1 MiB"));

	b = make_elf(&beyond, 1, 0x3f00000, 0, &len);
	write_file(f->kernel, b, len);
	free(b);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not in guest RAM"));

	/* An entry point in no segment: refused for the 64-bit entry, irrelevant for PVH. */
	b = make_elf(vmlinux_segs, 2, 0x5000000, 0x1000200, &len);
	write_file(f->kernel, b, len);
	free(b);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.entry_kind, BOOT_ENTRY_PVH);
	o.pref = BOOT_PREF_LINUX64;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "entry point 0x5000000"));
}

/* A segment loaded above 4 GiB, in the high RAM region. */
static void test_elf_high_memory(void **state)
{
	struct fx *f = *state;
	struct boot_opts o = { .kernel = f->kernel };
	struct boot_info bi;
	struct err e;
	struct seg s[2] = { { 0x100000, 0x100000, 0x100, 0x100 },
			    { 0x100000000ULL, 0x100000000ULL, 0x200, 0x1000 } };
	size_t len;
	uint8_t *b = make_elf(s, 2, 0x100000, 0, &len);

	gm_free(&f->gm);
	gm_new(&f->gm, 16 * MiB, 16 * MiB);
	write_file(f->kernel, b, len);
	free(b);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(gp(f, 0x100000000ULL, 0x200)[0x1ff], 0x41);
	assert_int_equal(bi.kernel_end, 0x100001000ULL);
	assert_int_equal(zp8(f, BP_E820_ENTRIES), 5);
}

/* ---- x86_boot_load: host decompression ---- */

static void decompress_case(struct fx *f, bool lz4)
{
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel, .initrd = f->initrd, .decompress = true,
			       .cmdline = "x" };
	struct boot_info bi;
	struct err e;
	size_t elen, clen;
	uint8_t *elf = make_elf(vmlinux_segs, 2, 0x1000000, 0x1000200, &elen);
	uint8_t *c = malloc(elen + 4096);

	if (lz4) {
		clen = compress_lz4_legacy(elf, elen, c, elen + 4092);
		compress_put_le32(c, &clen, (uint32_t)elen); /* the kernel build's size trailer */
	} else {
		clen = compress_gzip(elf, elen, c, elen + 4096, 9);
	}
	p.payload = c;
	p.payload_len = clen;
	p.version = 0x020d;
	write_bz(f, &p);
	write_initrd(f, 4096);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.entry_kind, BOOT_ENTRY_LINUX64);
	assert_int_equal(bi.entry, 0x1000000);
	assert_int_equal(bi.params_gpa, X86_ZERO_PAGE);
	assert_string_equal(bi.format, lz4 ? "bzImage (host-decompressed lz4)" :
					     "bzImage (host-decompressed gzip)");
	assert_int_equal(bi.kernel_end, 0x1240000);
	assert_int_equal(gp(f, 0x1000000, 1)[0], 0x40);
	/* The zero page carries the bzImage's own header. */
	assert_int_equal(zp16(f, BZ_VERSION), 0x020d);
	assert_int_equal(zp32(f, BZ_INIT_SIZE), 8 * MiB);
	assert_int_equal(zp8(f, BZ_TYPE_OF_LOADER), 0xff);
	assert_int_equal(zp32(f, BZ_RAMDISK_SIZE), 4096);

	/* And the PVH entry when asked. */
	o.pref = BOOT_PREF_PVH;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.entry_kind, BOOT_ENTRY_PVH);
	assert_int_equal(bi.entry, 0x1000200);
	assert_int_equal(bi.params_gpa, X86_PVH_INFO);

	/* A truncated payload gives a clear error naming the kernel. */
	p.payload_len = clen / 2;
	write_bz(f, &p);
	o.pref = BOOT_PREF_AUTO;
	assert_true(x86_boot_load(&f->gm, &o, &bi, &e) < 0);
	assert_non_null(strstr(e.msg, f->kernel));
	free(c);
	free(elf);
}

static void test_decompress_gzip(void **state)
{
	decompress_case(*state, false);
}

static void test_decompress_lz4(void **state)
{
	decompress_case(*state, true);
}

/* CONFIG_KERNEL_UNCOMPRESSED: the payload is the ELF itself. */
static void test_decompress_uncompressed(void **state)
{
	struct fx *f = *state;
	struct bzp p = bzp_default();
	struct boot_opts o = { .kernel = f->kernel, .decompress = true };
	struct boot_info bi;
	struct err e;
	size_t elen;
	uint8_t *elf = make_elf(vmlinux_segs, 2, 0x1000000, 0, &elen);

	p.payload = elf;
	p.payload_len = elen;
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.entry, 0x1000000);
	assert_non_null(strstr(bi.format, "uncompressed"));

	/* Garbage payload: unknown compression, named. */
	p.payload = default_payload;
	p.payload_len = sizeof(default_payload);
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "unknown compression"));

	/* Protocol 2.06 has no payload fields: nothing to decompress. */
	p.version = 0x0206;
	write_bz(f, &p);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "no payload"));
	free(elf);
}

/* ---- the real Debian kernel, when the test machine has it ---- */

static bool find_real_kernel(char *path, size_t size)
{
	DIR *d = opendir(REAL_KERNEL_DIR);
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d)))
		if (!strncmp(de->d_name, "vmlinuz-", 8)) {
			snprintf(path, size, "%s/%s", REAL_KERNEL_DIR, de->d_name);
			found = true;
		}
	closedir(d);
	return found;
}

static void test_real_kernel(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];
	struct bzimage_info bz;
	struct elf_info ei;
	struct boot_info bi;
	struct boot_opts o = { .kernel = path, .cmdline = "console=ttyS0" };
	struct err e;
	uint8_t *buf, *out;
	size_t len, olen;
	const char *method;

	if (!find_real_kernel(path, sizeof(path))) {
		print_message("# no " REAL_KERNEL_DIR "/vmlinuz-*: real kernel test skipped\n");
		skip();
	}
	assert_int_equal(read_file(path, 256 * MiB, &buf, &len), 0);
	assert_int_equal(bzimage_parse(buf, len, &bz, &e), 0);
	assert_true(bz.version >= 0x020c);
	assert_true(bz.xloadflags & BZ_XLF_KERNEL_64);
	assert_true(bz.payload_length > 0);
	assert_int_equal(kernel_decompress(buf + bz.pm_offset + bz.payload_offset, bz.payload_length,
					   512 * MiB, &out, &olen, &method, &e),
			 0);
	assert_int_equal(elf_parse(out, olen, &ei, &e), 0);
	assert_true(ei.has_pvh);
	assert_true(ei.lowest >= 1 * MiB);
	assert_true(ei.entry_phys >= ei.lowest && ei.entry_phys < ei.highest);
	free(out);
	free(buf);

	gm_free(&f->gm);
	gm_new(&f->gm, 256 * MiB, 0);
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_string_equal(bi.format, "bzImage");
	o.decompress = true;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_non_null(strstr(bi.format, "host-decompressed"));
	assert_int_equal(bi.entry_kind, BOOT_ENTRY_LINUX64);
	o.pref = BOOT_PREF_PVH;
	assert_int_equal(x86_boot_load(&f->gm, &o, &bi, &e), 0);
	assert_int_equal(bi.entry_kind, BOOT_ENTRY_PVH);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bzimage_parse_fields),
		cmocka_unit_test(test_bzimage_setup_sects_zero),
		cmocka_unit_test(test_bzimage_oversized_setup_sects),
		cmocka_unit_test(test_bzimage_bad_headers),
		cmocka_unit_test(test_bzimage_protocol_206),
		cmocka_unit_test(test_bzimage_every_truncation),
		T(test_load_bzimage_zero_page),
		T(test_initrd_below_addr_max),
		T(test_initrd_does_not_fit),
		T(test_kernel_does_not_fit),
		T(test_cmdline_limits),
		T(test_missing_and_bad_kernel),
		T(test_file_size_limits),
		T(test_load_vmlinux),
		T(test_load_pvh),
		T(test_elf_placement_errors),
		T(test_elf_high_memory),
		T(test_decompress_gzip),
		T(test_decompress_lz4),
		T(test_decompress_uncompressed),
		T(test_real_kernel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
