// SPDX-License-Identifier: MIT
/* regs.c: x86 vCPU register state at boot (64-bit Linux entry and PVH), MSRs, FPU, dumps. */
#include "arch/x86/cpu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/util.h"
#include "kvm/kvm.h"
#include "vmm/mem.h"

/* Boot GDT selectors (layout.h: X86_BOOT_GDT). */
#define SEL_CODE32 0x08
#define SEL_CODE64 0x10
#define SEL_DATA 0x18
#define SEL_TSS 0x20

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_PS 0x80ULL

static const uint64_t boot_gdt[] = {
	0,
	0x00cf9b000000ffffULL, /* 0x08: 32-bit code, flat (PVH entry) */
	0x00af9b000000ffffULL, /* 0x10: 64-bit code (boot.rst: __BOOT_CS) */
	0x00cf93000000ffffULL, /* 0x18: data, flat (__BOOT_DS) */
	0x00008b000000ffffULL, /* 0x20: TSS (busy), base 0: VMX requires a usable TR */
	0,
};

int x86_setup_boot_tables(struct guest_mem *gm)
{
	uint64_t *pml4 = gm_ptr(gm, X86_PML4, 4096);
	uint64_t *pdpt = gm_ptr(gm, X86_PDPT, 4096);
	uint64_t *pd = gm_ptr(gm, X86_PD, 4 * 4096);
	unsigned i;

	if (!pml4 || !pdpt || !pd || gm_write(gm, X86_BOOT_GDT, boot_gdt, sizeof(boot_gdt)))
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	/* Identity map of the first 4 GiB with 2 MiB pages (boot.rst, 64-bit protocol). */
	pml4[0] = X86_PDPT | PTE_P | PTE_RW;
	for (i = 0; i < 4; i++)
		pdpt[i] = (X86_PD + i * 4096) | PTE_P | PTE_RW;
	for (i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | PTE_P | PTE_RW | PTE_PS;
	return 0;
}

/* MSR numbers (Intel SDM vol. 4). */
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_IA32_TSC 0x10

int x86_vcpu_init(struct kvm *k, struct kvm_vcpu *v, const struct kvm_cpuid2 *cpuid,
		  struct err *e)
{
	static const struct kvm_msr_entry wanted[] = {
		{ .index = MSR_IA32_SYSENTER_CS }, { .index = MSR_IA32_SYSENTER_ESP },
		{ .index = MSR_IA32_SYSENTER_EIP }, { .index = MSR_STAR },
		{ .index = MSR_LSTAR }, { .index = MSR_CSTAR },
		{ .index = MSR_SYSCALL_MASK }, { .index = MSR_KERNEL_GS_BASE },
		{ .index = MSR_IA32_TSC },
		/* Fast strings on, as firmware leaves it. */
		{ .index = MSR_IA32_MISC_ENABLE, .data = 1 },
		/* MTRRs enabled, default type write-back: no firmware will set them. */
		{ .index = MSR_MTRR_DEF_TYPE, .data = (1u << 11) | 6 },
	};
	struct kvm_msr_entry msrs[ARRAY_SIZE(wanted)];
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct kvm_lapic_state lapic;
	uint32_t n = 0, *lvt;
	size_t i;
	int r;

	r = kvm_vcpu_set_cpuid(v, cpuid);
	if (r)
		return err_set(e, -r, "vCPU %u: KVM_SET_CPUID2: %s", v->id, strerror(-r));
	for (i = 0; i < ARRAY_SIZE(wanted); i++)
		if (kvm_msr_supported(k, wanted[i].index))
			msrs[n++] = wanted[i];
	r = kvm_vcpu_set_msrs(v, msrs, n);
	if (r)
		return err_set(e, -r, "vCPU %u: KVM_SET_MSRS refused a boot MSR", v->id);
	r = kvm_vcpu_set_fpu(v, &fpu);
	if (r)
		return err_set(e, -r, "vCPU %u: KVM_SET_FPU: %s", v->id, strerror(-r));

	/* LINT0 = ExtINT (the 8259 PIC), LINT1 = NMI, as a PC BIOS leaves them (SDM 3A 10.5.1). */
	r = kvm_vcpu_get_lapic(v, &lapic);
	if (r)
		return err_set(e, -r, "vCPU %u: KVM_GET_LAPIC: %s", v->id, strerror(-r));
	lvt = (uint32_t *)&lapic.regs[0x350];
	*lvt = (*lvt & ~0x700u & ~0x10000u) | 0x700u;
	lvt = (uint32_t *)&lapic.regs[0x360];
	*lvt = (*lvt & ~0x700u & ~0x10000u) | 0x400u;
	r = kvm_vcpu_set_lapic(v, &lapic);
	if (r)
		return err_set(e, -r, "vCPU %u: KVM_SET_LAPIC: %s", v->id, strerror(-r));
	return 0;
}

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code64;
	s->db = !code64;
}

int x86_vcpu_set_boot_regs(struct kvm_vcpu *v, const struct boot_info *bi, struct err *e)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	int ret;

	ret = kvm_vcpu_get_sregs(v, &s);
	if (ret)
		return err_set(e, -ret, "KVM_GET_SREGS: %s", strerror(-ret));

	s.gdt.base = X86_BOOT_GDT;
	s.gdt.limit = sizeof(boot_gdt) - 1;
	s.idt.base = X86_BOOT_IDT;
	s.idt.limit = 0;
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.selector = SEL_TSS;
	s.tr.limit = 0xffff;
	s.tr.type = 11; /* busy 32/64-bit TSS */
	s.tr.present = 1;
	memset(&s.ldt, 0, sizeof(s.ldt));
	s.ldt.type = 2;
	s.ldt.present = 1;
	s.ldt.unusable = 1;

	memset(&r, 0, sizeof(r));
	r.rflags = 0x2;

	if (bi->entry_kind == BOOT_ENTRY_LINUX64) {
		/* boot.rst "64-bit Boot Protocol": long mode, identity paging, RSI = zero page. */
		seg_flat(&s.cs, SEL_CODE64, 0xb, true);
		seg_flat(&s.ds, SEL_DATA, 0x3, false);
		s.es = s.fs = s.gs = s.ss = s.ds;
		s.cr3 = X86_PML4;
		s.cr4 = CR4_PAE;
		s.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
		s.efer = EFER_LME | EFER_LMA;
		r.rip = bi->entry;
		r.rsi = bi->params_gpa;
	} else {
		/* Xen PVH ABI: 32-bit protected mode, paging off, EBX = hvm_start_info. */
		seg_flat(&s.cs, SEL_CODE32, 0xb, false);
		seg_flat(&s.ds, SEL_DATA, 0x3, false);
		s.es = s.fs = s.gs = s.ss = s.ds;
		s.cr0 = CR0_PE | CR0_ET | CR0_NE;
		s.cr3 = 0;
		s.cr4 = 0;
		s.efer = 0;
		r.rip = bi->entry;
		r.rbx = bi->params_gpa;
	}
	ret = kvm_vcpu_set_sregs(v, &s);
	if (ret)
		return err_set(e, -ret, "KVM_SET_SREGS: %s", strerror(-ret));
	ret = kvm_vcpu_set_regs(v, &r);
	if (ret)
		return err_set(e, -ret, "KVM_SET_REGS: %s", strerror(-ret));
	return 0;
}

static void dump_seg(FILE *f, const char *n, const struct kvm_segment *s)
{
	fprintf(f, "%-3s sel=%04x base=%016llx limit=%08x type=%x p=%u dpl=%u db=%u s=%u l=%u g=%u\n",
		n, s->selector, (unsigned long long)s->base, s->limit, s->type, s->present, s->dpl,
		s->db, s->s, s->l, s->g);
}

void x86_vcpu_dump(struct kvm_vcpu *v, char *buf, size_t len)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	FILE *f;

	buf[0] = '\0';
	f = fmemopen(buf, len, "w");
	if (!f)
		return;
	fprintf(f, "vCPU %u state:\n", v->id);
	if (kvm_vcpu_get_regs(v, &r) == 0) {
		fprintf(f, "RIP=%016llx RSP=%016llx RFLAGS=%016llx\n", (unsigned long long)r.rip,
			(unsigned long long)r.rsp, (unsigned long long)r.rflags);
		fprintf(f, "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n",
			(unsigned long long)r.rax, (unsigned long long)r.rbx,
			(unsigned long long)r.rcx, (unsigned long long)r.rdx);
		fprintf(f, "RSI=%016llx RDI=%016llx RBP=%016llx R8 =%016llx\n",
			(unsigned long long)r.rsi, (unsigned long long)r.rdi,
			(unsigned long long)r.rbp, (unsigned long long)r.r8);
		fprintf(f, "R9 =%016llx R10=%016llx R11=%016llx R12=%016llx\n",
			(unsigned long long)r.r9, (unsigned long long)r.r10,
			(unsigned long long)r.r11, (unsigned long long)r.r12);
		fprintf(f, "R13=%016llx R14=%016llx R15=%016llx\n", (unsigned long long)r.r13,
			(unsigned long long)r.r14, (unsigned long long)r.r15);
	}
	if (kvm_vcpu_get_sregs(v, &s) == 0) {
		dump_seg(f, "CS", &s.cs);
		dump_seg(f, "SS", &s.ss);
		dump_seg(f, "DS", &s.ds);
		dump_seg(f, "TR", &s.tr);
		fprintf(f, "GDT=%016llx/%04x IDT=%016llx/%04x\n", (unsigned long long)s.gdt.base,
			s.gdt.limit, (unsigned long long)s.idt.base, s.idt.limit);
		fprintf(f, "CR0=%016llx CR2=%016llx CR3=%016llx CR4=%016llx EFER=%016llx\n",
			(unsigned long long)s.cr0, (unsigned long long)s.cr2,
			(unsigned long long)s.cr3, (unsigned long long)s.cr4,
			(unsigned long long)s.efer);
	}
	fclose(f);
}
