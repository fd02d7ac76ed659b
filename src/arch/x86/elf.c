// SPDX-License-Identifier: MIT
/* elf.c: parser and validator for ELF64 x86-64 kernels (vmlinux, PVH guests): PT_LOAD, PVH note. */
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

/* xen/include/public/elfnote.h */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/*
 * Walk the notes of one PT_NOTE segment (ELF gABI "Note Section": namesz,
 * descsz, type, then name and desc each padded to 4 bytes) looking for
 * Xen's PHYS32_ENTRY, the 32-bit physical entry point of the PVH boot ABI.
 */
static int scan_notes(const uint8_t *p, uint64_t len, struct elf_info *ei, struct err *e)
{
	uint64_t off = 0;

	while (len - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr n;
		uint64_t name_off, desc_off, name_len, desc_len;

		memcpy(&n, p + off, sizeof(n));
		name_off = off + sizeof(n);
		name_len = ALIGN_UP((uint64_t)n.n_namesz, 4);
		if (!range_ok(name_off, name_len, len))
			return err_set(e, EINVAL, "PT_NOTE: note name runs past the segment");
		desc_off = name_off + name_len;
		desc_len = ALIGN_UP((uint64_t)n.n_descsz, 4);
		if (!range_ok(desc_off, desc_len, len))
			return err_set(e, EINVAL, "PT_NOTE: note descriptor runs past the segment");

		if (n.n_namesz == 4 && memcmp(p + name_off, "Xen", 4) == 0 &&
		    n.n_type == XEN_ELFNOTE_PHYS32_ENTRY) {
			/* Linux emits it with _ASM_PTR (8 bytes on x86-64); others use 4. */
			if (n.n_descsz == 4) {
				uint32_t v;

				memcpy(&v, p + desc_off, 4);
				ei->pvh_entry = v;
			} else if (n.n_descsz == 8) {
				uint64_t v;

				memcpy(&v, p + desc_off, 8);
				if (v > UINT32_MAX)
					return err_set(e, EINVAL,
						       "PVH entry 0x%llx is above 4 GiB",
						       (unsigned long long)v);
				ei->pvh_entry = (uint32_t)v;
			} else {
				return err_set(e, EINVAL, "PVH note has a %u-byte entry (4 or 8 expected)",
					       n.n_descsz);
			}
			ei->has_pvh = true;
		}
		off = desc_off + desc_len;
	}
	return 0;
}

static int add_load(const Elf64_Phdr *ph, size_t len, struct elf_info *ei, struct err *e)
{
	struct elf_load_seg *s;
	uint64_t end;

	if (!range_ok(ph->p_offset, ph->p_filesz, len))
		return err_set(e, EINVAL,
			       "PT_LOAD at 0x%llx: file range [0x%llx, +0x%llx) is past the end of the "
			       "file (%zu bytes)",
			       (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_offset,
			       (unsigned long long)ph->p_filesz, len);
	if (ph->p_memsz < ph->p_filesz)
		return err_set(e, EINVAL, "PT_LOAD at 0x%llx: memsz 0x%llx is smaller than filesz 0x%llx",
			       (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz,
			       (unsigned long long)ph->p_filesz);
	if (ph->p_memsz == 0)
		return 0; /* occupies nothing */
	if (ph->p_paddr + ph->p_memsz < ph->p_paddr || ph->p_vaddr + ph->p_memsz < ph->p_vaddr)
		return err_set(e, EINVAL, "PT_LOAD at 0x%llx: size 0x%llx wraps around",
			       (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz);
	end = ph->p_paddr + ph->p_memsz;
	/* The PCI/MMIO hole below 4 GiB is never RAM in our layout (layout.h). */
	if (ph->p_paddr < X86_MEM_HIGH_START && end > X86_MEM_HOLE_START)
		return err_set(e, EINVAL,
			       "PT_LOAD [0x%llx, 0x%llx) overlaps the PCI hole [0x%llx, 0x%llx)",
			       (unsigned long long)ph->p_paddr, (unsigned long long)end,
			       X86_MEM_HOLE_START, X86_MEM_HIGH_START);
	if (ei->nsegs == ELF_MAX_SEGS)
		return err_set(e, EINVAL, "more than %d PT_LOAD segments", ELF_MAX_SEGS);
	s = &ei->segs[ei->nsegs++];
	s->file_off = ph->p_offset;
	s->file_size = ph->p_filesz;
	s->paddr = ph->p_paddr;
	s->mem_size = ph->p_memsz;
	if (ei->nsegs == 1 || s->paddr < ei->lowest)
		ei->lowest = s->paddr;
	if (ei->nsegs == 1 || end > ei->highest)
		ei->highest = end;
	return 0;
}

/*
 * e_entry may be physical (vmlinux links ENTRY(phys_startup_64)) or virtual
 * (a kernel-half address): in the latter case translate it through the
 * PT_LOAD segment whose virtual range holds it. An entry in no segment is
 * left as it is: a PVH-only image need not have a usable e_entry, so the
 * loader judges it when it boots the 64-bit entry.
 */
static void find_entry_phys(const uint8_t *buf, const Elf64_Ehdr *eh, struct elf_info *ei)
{
	uint64_t entry = eh->e_entry;
	int i;

	ei->entry_phys = entry;
	for (i = 0; i < ei->nsegs; i++)
		if (entry >= ei->segs[i].paddr && entry - ei->segs[i].paddr < ei->segs[i].mem_size)
			return;
	for (i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, buf + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (entry >= ph.p_vaddr && entry - ph.p_vaddr < ph.p_memsz) {
			ei->entry_phys = entry - ph.p_vaddr + ph.p_paddr;
			return;
		}
	}
}

int elf_parse(const uint8_t *buf, size_t len, struct elf_info *ei, struct err *e)
{
	Elf64_Ehdr eh;
	int i, ret;

	memset(ei, 0, sizeof(*ei));
	if (!buf || len < sizeof(eh))
		return err_set(e, EINVAL, "file too small for an ELF header (%zu bytes)", len);
	memcpy(&eh, buf, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return err_set(e, EINVAL, "ELF magic missing");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return err_set(e, EINVAL, "ELF class %u is not ELFCLASS64", eh.e_ident[EI_CLASS]);
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return err_set(e, EINVAL, "ELF is not little-endian");
	if (eh.e_machine != EM_X86_64)
		return err_set(e, EINVAL, "ELF machine %u is not x86-64 (%u)", eh.e_machine, EM_X86_64);
	if (eh.e_type != ET_EXEC)
		return err_set(e, EINVAL, "ELF type %u is not an executable (ET_EXEC)", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return err_set(e, EINVAL, "ELF e_phentsize %u, expected %zu", eh.e_phentsize,
			       sizeof(Elf64_Phdr));
	if (eh.e_phnum == 0 || eh.e_phnum == PN_XNUM)
		return err_set(e, EINVAL, "ELF has %s program headers",
			       eh.e_phnum ? "extended numbering of" : "no");
	if (!range_ok(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), len))
		return err_set(e, EINVAL, "ELF program headers [0x%llx, +%u) lie past the end of the file",
			       (unsigned long long)eh.e_phoff, eh.e_phnum);

	ei->entry = eh.e_entry;
	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, buf + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD) {
			ret = add_load(&ph, len, ei, e);
		} else if (ph.p_type == PT_NOTE) {
			if (!range_ok(ph.p_offset, ph.p_filesz, len))
				return err_set(e, EINVAL, "PT_NOTE [0x%llx, +0x%llx) is past the end of the file",
					       (unsigned long long)ph.p_offset,
					       (unsigned long long)ph.p_filesz);
			ret = scan_notes(buf + ph.p_offset, ph.p_filesz, ei, e);
		} else {
			ret = 0;
		}
		if (ret < 0)
			return ret;
	}
	if (ei->nsegs == 0)
		return err_set(e, EINVAL, "ELF has no PT_LOAD segment");
	find_entry_phys(buf, &eh, ei);
	return 0;
}
