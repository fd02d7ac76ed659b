// SPDX-License-Identifier: MIT
/* test_elf.c: unit tests for the ELF64 kernel parser (elf_parse): PT_LOAD checks, the PVH note. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"

/* A small ELF image under construction: header, room for 24 phdrs, then data. */
#define EB_DATA 0x800
#define EB_MAX_PH 24
struct eb {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[EB_MAX_PH];
	uint8_t buf[32 * 1024];
	size_t len;
	int nph;
};

static Elf64_Ehdr *eb_hdr(struct eb *b)
{
	return &b->eh;
}

/* The file image: headers serialised in front of the data. */
static const uint8_t *eb_bytes(struct eb *b)
{
	memcpy(b->buf, &b->eh, sizeof(b->eh));
	memcpy(b->buf + sizeof(b->eh), b->ph, sizeof(b->ph));
	return b->buf;
}

static void eb_init(struct eb *b, uint64_t entry)
{
	Elf64_Ehdr *h = eb_hdr(b);

	memset(b, 0, sizeof(*b));
	memcpy(h->e_ident, ELFMAG, SELFMAG);
	h->e_ident[EI_CLASS] = ELFCLASS64;
	h->e_ident[EI_DATA] = ELFDATA2LSB;
	h->e_ident[EI_VERSION] = EV_CURRENT;
	h->e_type = ET_EXEC;
	h->e_machine = EM_X86_64;
	h->e_version = EV_CURRENT;
	h->e_entry = entry;
	h->e_phoff = sizeof(Elf64_Ehdr);
	h->e_ehsize = sizeof(Elf64_Ehdr);
	h->e_phentsize = sizeof(Elf64_Phdr);
	b->len = EB_DATA;
}

static Elf64_Phdr *eb_ph(struct eb *b, uint32_t type, uint64_t off, uint64_t filesz, uint64_t vaddr,
			 uint64_t paddr, uint64_t memsz)
{
	Elf64_Phdr *ph;

	assert_true(b->nph < EB_MAX_PH);
	ph = &b->ph[b->nph++];
	ph->p_type = type;
	ph->p_flags = PF_R | PF_X;
	ph->p_offset = off;
	ph->p_filesz = filesz;
	ph->p_vaddr = vaddr;
	ph->p_paddr = paddr;
	ph->p_memsz = memsz;
	ph->p_align = 4096;
	eb_hdr(b)->e_phnum = (uint16_t)b->nph;
	return ph;
}

static uint64_t eb_data(struct eb *b, const void *data, size_t n)
{
	uint64_t off = b->len;

	assert_true(off + n <= sizeof(b->buf));
	memcpy(b->buf + off, data, n);
	b->len += n;
	return off;
}

/* One ELF note (gABI): header, name and descriptor each padded to 4 bytes. */
static size_t make_note(uint8_t *out, const char *name, uint32_t type, const void *desc,
			uint32_t descsz)
{
	Elf64_Nhdr n = { .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz, .n_type = type };
	size_t off = sizeof(n);

	memcpy(out, &n, sizeof(n));
	memset(out + off, 0, ALIGN_UP(n.n_namesz, 4));
	memcpy(out + off, name, n.n_namesz);
	off += ALIGN_UP(n.n_namesz, 4);
	memset(out + off, 0, ALIGN_UP(descsz, 4));
	memcpy(out + off, desc, descsz);
	return off + ALIGN_UP(descsz, 4);
}

/* A vmlinux-like image: two PT_LOADs linked high with physical load addresses. */
static void make_vmlinux(struct eb *b, bool pvh, int pvh_size)
{
	static uint8_t text[256], data[128];
	uint8_t notes[128];
	size_t nlen = 0;
	uint64_t off;

	memset(text, 0x90, sizeof(text));
	memset(data, 0x5a, sizeof(data));
	eb_init(b, 0xffffffff81000010ULL);
	nlen += make_note(notes, "GNU", 3, "\x01\x02\x03\x04", 4);
	if (pvh) {
		uint64_t entry = 0x1000040;

		nlen += make_note(notes + nlen, "Xen", 18, &entry, (uint32_t)pvh_size);
	}
	off = eb_data(b, notes, nlen);
	eb_ph(b, PT_NOTE, off, nlen, 0, 0, nlen);
	off = eb_data(b, data, sizeof(data));
	eb_ph(b, PT_LOAD, off, sizeof(data), 0xffffffff81200000ULL, 0x1200000, 0x3000);
	off = eb_data(b, text, sizeof(text));
	eb_ph(b, PT_LOAD, off, sizeof(text), 0xffffffff81000000ULL, 0x1000000, sizeof(text));
}

static void test_vmlinux_ok(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;

	make_vmlinux(&b, false, 0);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_int_equal(ei.nsegs, 2);
	assert_false(ei.has_pvh);
	assert_int_equal(ei.entry, 0xffffffff81000010ULL);
	assert_int_equal(ei.entry_phys, 0x1000010);
	assert_int_equal(ei.lowest, 0x1000000);
	assert_int_equal(ei.highest, 0x1203000);
	assert_int_equal(ei.segs[0].paddr, 0x1200000);
	assert_int_equal(ei.segs[0].file_size, 128);
	assert_int_equal(ei.segs[0].mem_size, 0x3000);
}

static void test_physical_entry(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;

	make_vmlinux(&b, false, 0);
	eb_hdr(&b)->e_entry = 0x1000020; /* vmlinux: ENTRY(phys_startup_64) */
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_int_equal(ei.entry_phys, 0x1000020);

	/* In no segment: left alone, the loader refuses it for a 64-bit boot. */
	eb_hdr(&b)->e_entry = 0x5000000;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_int_equal(ei.entry_phys, 0x5000000);
}

static void test_pvh_note(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;

	make_vmlinux(&b, true, 4);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_true(ei.has_pvh);
	assert_int_equal(ei.pvh_entry, 0x1000040);

	/* Linux emits the entry as an 8-byte _ASM_PTR. */
	make_vmlinux(&b, true, 8);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_true(ei.has_pvh);
	assert_int_equal(ei.pvh_entry, 0x1000040);

	make_vmlinux(&b, true, 2);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "PVH"));
}

static void test_pvh_note_variants(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;
	uint8_t notes[256], seg[16] = { 0 };
	uint64_t big = 0x100000000ULL, off;
	uint32_t ent = 0x100000;
	size_t n;

	/* A Xen note of another type, and a "Xenx" name, are not the PVH entry. */
	eb_init(&b, 0x100000);
	n = make_note(notes, "Xen", 17, &ent, 4);
	n += make_note(notes + n, "Xenx", 18, &ent, 4);
	off = eb_data(&b, notes, n);
	eb_ph(&b, PT_NOTE, off, n, 0, 0, 0);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000, 0x100000, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_false(ei.has_pvh);

	/* An 8-byte entry above 4 GiB cannot be a 32-bit entry point. */
	eb_init(&b, 0x100000);
	n = make_note(notes, "Xen", 18, &big, 8);
	off = eb_data(&b, notes, n);
	eb_ph(&b, PT_NOTE, off, n, 0, 0, 0);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000, 0x100000, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	/* A note whose descriptor runs past its PT_NOTE segment. */
	eb_init(&b, 0x100000);
	n = make_note(notes, "Xen", 18, &ent, 4);
	off = eb_data(&b, notes, n);
	eb_ph(&b, PT_NOTE, off, n - 4, 0, 0, 0);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000, 0x100000, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "PT_NOTE"));

	/* A huge namesz must not wrap the offset arithmetic. */
	eb_init(&b, 0x100000);
	n = make_note(notes, "Xen", 18, &ent, 4);
	((Elf64_Nhdr *)notes)->n_namesz = 0xfffffffe;
	off = eb_data(&b, notes, n);
	eb_ph(&b, PT_NOTE, off, n, 0, 0, 0);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000, 0x100000, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	/* PT_NOTE outside the file. */
	eb_init(&b, 0x100000);
	eb_ph(&b, PT_NOTE, 0xffffffffffff0000ULL, 0x20000, 0, 0, 0);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000, 0x100000, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
}

static void test_segment_outside_file(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;
	Elf64_Phdr *ph;

	make_vmlinux(&b, false, 0);
	ph = &b.ph[2];
	ph->p_filesz += 1;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "past the end of the file"));

	ph->p_filesz = 16;
	ph->p_offset = UINT64_MAX - 8; /* offset + size wraps */
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
}

static void test_memsz_smaller_than_filesz(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;

	make_vmlinux(&b, false, 0);
	(&b.ph[2])->p_memsz = 16;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "memsz"));
}

static void test_paddr_wraps(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;
	uint8_t seg[16] = { 0 };
	uint64_t off;

	eb_init(&b, 0x100000);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000, UINT64_MAX - 0xfff, 0x2000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "wraps"));
}

static void test_overlaps_hole(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;
	uint8_t seg[16] = { 0 };
	uint64_t off;

	eb_init(&b, 0xbffff000);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0xbffff000, 0xbffff000, 0x2000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "PCI hole"));

	/* Right below the hole, and at 4 GiB, are fine. */
	eb_init(&b, 0xbffff000);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0xbffff000, 0xbffff000, 0x1000);
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000000ULL, 0x100000000ULL, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_int_equal(ei.highest, 0x100001000ULL);
}

static void test_too_many_segments(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;
	uint8_t seg[16] = { 0 };
	uint64_t off;
	int i;

	eb_init(&b, 0x100000);
	off = eb_data(&b, seg, sizeof(seg));
	for (i = 0; i < ELF_MAX_SEGS; i++)
		eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000 + i * 0x1000ULL,
		      0x100000 + i * 0x1000ULL, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_int_equal(ei.nsegs, ELF_MAX_SEGS);
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x200000, 0x200000, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "PT_LOAD segments"));
}

static void test_empty_segments_skipped(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;
	uint8_t seg[16] = { 0 };
	uint64_t off;

	eb_init(&b, 0x100000);
	off = eb_data(&b, seg, sizeof(seg));
	eb_ph(&b, PT_LOAD, 0, 0, 0, 0, 0);
	eb_ph(&b, PT_LOAD, off, sizeof(seg), 0x100000, 0x100000, 0x1000);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	assert_int_equal(ei.nsegs, 1);

	eb_init(&b, 0x100000);
	eb_ph(&b, PT_LOAD, 0, 0, 0, 0, 0);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "no PT_LOAD"));
}

static void test_bad_headers(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;

	make_vmlinux(&b, false, 0);
	b.eh.e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "class"));

	make_vmlinux(&b, false, 0);
	b.eh.e_ident[EI_DATA] = ELFDATA2MSB;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	make_vmlinux(&b, false, 0);
	eb_hdr(&b)->e_machine = EM_386;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "machine"));

	make_vmlinux(&b, false, 0);
	eb_hdr(&b)->e_type = ET_DYN;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	make_vmlinux(&b, false, 0);
	eb_hdr(&b)->e_phentsize = 32;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	make_vmlinux(&b, false, 0);
	eb_hdr(&b)->e_phnum = 0;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	make_vmlinux(&b, false, 0);
	eb_hdr(&b)->e_phnum = PN_XNUM;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	make_vmlinux(&b, false, 0);
	eb_hdr(&b)->e_phoff = b.len - 8;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	make_vmlinux(&b, false, 0);
	eb_hdr(&b)->e_phoff = UINT64_MAX - 16;
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);

	make_vmlinux(&b, false, 0);
	b.eh.e_ident[0] = 'X';
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "magic"));

	assert_int_equal(elf_parse(NULL, 0, &ei, &e), -EINVAL);
}

/* Every proper prefix of a valid image is refused, none crashes (the data ends the file). */
static void test_every_truncation(void **state)
{
	struct eb b;
	struct elf_info ei;
	struct err e;

	make_vmlinux(&b, true, 8);
	assert_int_equal(elf_parse(eb_bytes(&b), b.len, &ei, &e), 0);
	for (size_t len = 0; len < b.len; len++) {
		uint8_t *copy = test_malloc(len ? len : 1);

		memcpy(copy, eb_bytes(&b), len);
		assert_int_equal(elf_parse(copy, len, &ei, &e), -EINVAL);
		assert_true(e.msg[0] != '\0');
		test_free(copy);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vmlinux_ok),
		cmocka_unit_test(test_physical_entry),
		cmocka_unit_test(test_pvh_note),
		cmocka_unit_test(test_pvh_note_variants),
		cmocka_unit_test(test_segment_outside_file),
		cmocka_unit_test(test_memsz_smaller_than_filesz),
		cmocka_unit_test(test_paddr_wraps),
		cmocka_unit_test(test_overlaps_hole),
		cmocka_unit_test(test_too_many_segments),
		cmocka_unit_test(test_empty_segments_skipped),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_every_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
