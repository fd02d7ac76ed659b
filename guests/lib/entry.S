/* SPDX-License-Identifier: MIT */
/* entry.S: PVH entry and the short ring-0 setup shared by every test guest (long mode,
 * GDT, per-vCPU TSS, IDT, PIC masking) before dropping to ring 3 where the real work runs.
 *
 * Ring-0 code is emulated instruction by instruction on paravirtual nested KVM, and some
 * instructions fail there (see /work/shared/TESTING.md), so everything below is short
 * and plain: page tables, GDT and the I/O bitmap are static data; the only loop is the
 * 256-entry IDT fill (5 instructions per entry). */

#include "layout.h"

#define PTE_P 0x1
#define PTE_W 0x2
#define PTE_U 0x4
#define PTE_PS 0x80
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define LAPIC_EOI 0xfee000b0
#define COM1 0x3f8

/* ---- PVH ELF note: XEN_ELFNOTE_PHYS32_ENTRY (18), like Linux an 8-byte value ---- */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4 /* namesz */
	.long 8 /* descsz */
	.long 18 /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.quad pvh_start32

/* ---- 32-bit entry: protected mode, paging off, EBX = struct hvm_start_info ---- */
	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
#ifdef GUEST_EARLY_READY
	/* Start-up benchmark: tell the VMM we are running before anything else. */
	movw $0x511, %dx
	movb $1, %al
	outb %al, %dx
#endif
	movl %ebx, start_info_paddr
	xorl %esi, %esi /* vCPU index 0: the BSP */
	lgdt gdt_ptr
	jmp common32

/* APs arrive here from the real-mode trampoline, on our GDT, CS = SEL_KCODE32. */
	.globl ap_entry32
ap_entry32:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl ap_boot_index, %esi

common32:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %cr4, %eax
	orl $0x620, %eax /* PAE, OSFXSR, OSXMMEXCPT (ring 3 may use SSE) */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	andl $0x9ffffffb, %eax /* clear CD, NW, EM */
	orl $0x80010023, %eax /* PG, WP, NE, MP, PE */
	movl %eax, %cr0
	ljmp $SEL_KCODE, $long64

	.code64
long64:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs

	/* Ring-0 stack: kstacks + (index + 1) * KSTACK_SIZE. */
	leal 1(%rsi), %eax
	shll $12, %eax
	addq $kstacks, %rax
	movq %rax, %rsp

	/* This vCPU's TSS: RSP0 and the offset of the shared all-zero I/O bitmap. */
	movl %esi, %edi
	shll $7, %edi
	addq $tss_array, %rdi
	movq %rsp, 4(%rdi)
	movl $io_bitmap, %eax
	subl %edi, %eax
	movw %ax, 102(%rdi)

	/* Its 16-byte descriptor: limit covers the bitmap and its 0xff terminator. */
	movl %eax, %edx
	addl $8192, %edx /* limit[15:0] */
	movl %edi, %eax
	andl $0xffffff, %eax
	shlq $16, %rax
	orq %rax, %rdx /* base[23:0] */
	movq %rdi, %rax
	shrq $24, %rax
	shlq $56, %rax
	orq %rax, %rdx /* base[31:24] */
	movq $0x89, %rax
	shlq $40, %rax
	orq %rax, %rdx /* present, 64-bit available TSS */
	movl %esi, %eax
	shll $4, %eax
	movq %rdx, gdt + SEL_TSS0(%rax)
	movq $0, gdt + SEL_TSS0 + 8(%rax)
	addl $SEL_TSS0, %eax
	ltr %ax

	testl %esi, %esi
	jnz 2f

	/* BSP only: fill the IDT. All stubs lie in one 4 KiB block, 16 bytes apart, so the
	 * low quadword of consecutive gates differs by 16 and the high quadword stays 0. */
	movq $isr_stubs, %rax
	movq %rax, %rdx
	shrq $16, %rdx
	shlq $48, %rdx
	andl $0xffff, %eax
	orq %rdx, %rax
	movabsq $((0x8e << 40) | (SEL_KCODE << 16)), %rdx /* interrupt gate, DPL 0 */
	orq %rdx, %rax
	movq $idt, %rdi
	movl $256, %ecx
1:	movq %rax, (%rdi)
	addq $16, %rax
	addq $16, %rdi
	decl %ecx
	jnz 1b

	/* Remap the 8259s to 0x20/0x28 and mask them: firmware may have left the PIT
	 * running on vector 8, and we enter ring 3 with interrupts enabled. */
	movb $0x11, %al
	outb %al, $0x20
	outb %al, $0xa0
	movb $0x20, %al
	outb %al, $0x21
	movb $0x28, %al
	outb %al, $0xa1
	movb $4, %al
	outb %al, $0x21
	movb $2, %al
	outb %al, $0xa1
	movb $1, %al
	outb %al, $0x21
	outb %al, $0xa1
	movb $0xff, %al
	outb %al, $0x21
	outb %al, $0xa1

2:	lidt idt_ptr

	/* iretq to ring 3 with IF=1 on this vCPU's user stack; RDI = vCPU index. */
	leal 1(%rsi), %eax
	shll $14, %eax
	addq $ustacks, %rax
	pushq $(SEL_UDATA | 3)
	pushq %rax
	pushq $0x202
	pushq $(SEL_UCODE | 3)
	movq $ap_start3, %rax
	testl %esi, %esi
	jnz 3f
	movq $bsp_start3, %rax
3:	pushq %rax
	movl %esi, %edi
	iretq

/* ---- exception and interrupt stubs: 16 bytes each, frame = vector, error code ---- */
	.balign 4096
isr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	.if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	pushq $vec
	jmp fault_common
	.elseif vec < 32
	pushq $0
	pushq $vec
	jmp fault_common
	.else
	pushq $vec
	jmp irq_common
	.endif
	.set vec, vec + 1
	.endr

/* Interrupt: count it, EOI the PIC (vectors 0x20-0x2f) or the local APIC, return. */
irq_common:
	pushq %rax
	pushq %rdx
	movq 16(%rsp), %rdx
	lock incl irq_count(, %rdx, 4)
	cmpl $0xff, %edx /* spurious: no EOI */
	je 2f
	subl $0x20, %edx
	cmpl $0x10, %edx
	jae 1f
	movb $0x20, %al
	cmpl $8, %edx
	jb 3f
	outb %al, $0xa0
3:	outb %al, $0x20
	jmp 2f
1:	movl $LAPIC_EOI, %eax
	movl $0, (%rax)
2:	popq %rdx
	popq %rax
	addq $8, %rsp
	iretq

/* Exception: a ring-3 ud2 with a magic RAX is a request; anything else is reported on
 * COM1 as "FAIL: exception ..." and the guest powers off. Frame: vector, error, RIP,
 * CS, RFLAGS, RSP, SS. */
fault_common:
	cmpq $6, (%rsp)
	jne report
	testb $3, 24(%rsp)
	jz report
	movq $UD2_WRMSR, %rdx
	cmpq %rdx, %rax
	je r0_wrmsr
	movq $UD2_TRIPLE_FAULT, %rdx
	cmpq %rdx, %rax
	jne report
	lidt idt_null_ptr /* limit 0: the next exception cannot be delivered */
	ud2
/* The ring-3 WRMSR request: MSR RCX = RSI; RAX and RDX are clobbered. */
r0_wrmsr:
	movq %rsi, %rax
	movq %rsi, %rdx
	shrq $32, %rdx
	wrmsr
	addq $2, 16(%rsp) /* past the ud2 */
	addq $16, %rsp
	iretq
report:
	movq (%rsp), %r8
	movq 8(%rsp), %r9
	movq 16(%rsp), %r10
	movq $msg_exc, %rsi
	call r0_puts
	movq %r8, %rax
	call r0_hex
	movq $msg_err, %rsi
	call r0_puts
	movq %r9, %rax
	call r0_hex
	movq $msg_rip, %rsi
	call r0_puts
	movq %r10, %rax
	call r0_hex
	movb $'\n', %al
	call r0_putc
	/* Power off with what the ring-3 ACPI code found, else reset through the i8042. */
	movzwl acpi_pm1a_cnt, %edx
	testl %edx, %edx
	jz 1f
	movw acpi_s5_value, %ax
	outw %ax, %dx
1:	movb $0xfe, %al
	outb %al, $0x64
2:	cli
	hlt
	jmp 2b

/* r0_putc: AL to COM1 (bounded wait for THR empty). Clobbers ECX, EDX. */
r0_putc:
	movl %eax, %ecx
	shll $8, %ecx
	movb $0xff, %cl /* up to 255 polls */
	movw $(COM1 + 5), %dx
1:	inb %dx, %al
	testb $0x20, %al
	jnz 2f
	decb %cl
	jnz 1b
2:	shrl $8, %ecx
	movb %cl, %al
	movw $COM1, %dx
	outb %al, %dx
	ret

/* r0_puts: NUL-terminated string at RSI. */
r0_puts:
	movb (%rsi), %al
	testb %al, %al
	jz 1f
	call r0_putc
	incq %rsi
	jmp r0_puts
1:	ret

/* r0_hex: RAX as 16 hex digits. */
r0_hex:
	movq %rax, %rdi
	movl $16, %esi
1:	rolq $4, %rdi
	movl %edi, %eax
	andl $15, %eax
	movb hexdigits(%rax), %al
	call r0_putc
	decl %esi
	jnz 1b
	ret

/* ---- ring-3 entry points ---- */
bsp_start3:
	/* Zero .bss here, where rep stosb runs natively (it may hold stale data after a
	 * reboot if the VMM does not reload the image). */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	call guest_start
1:	pause
	jmp 1b

ap_start3:
	call guest_ap_start
1:	pause
	jmp 1b

/* ---- real-mode AP trampoline, copied to AP_TRAMPOLINE_ADDR by the SMP guest ---- */
	.section .rodata
	.code16
	.globl ap_trampoline, ap_trampoline_end
ap_trampoline:
	cli
	movw %cs, %ax
	movw %ax, %ds
	lgdtl (ap_tramp_gdt_ptr - ap_trampoline)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $ap_entry32
ap_tramp_gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
ap_trampoline_end:
	.code64

msg_exc: .asciz "FAIL: exception 0x"
msg_err: .asciz " err 0x"
msg_rip: .asciz " rip 0x"
hexdigits: .ascii "0123456789abcdef"

/* ---- static tables: identity map of the first 4 GiB with 2 MiB user pages ---- */
	.section .data
	.balign 4096
pml4:
	.quad pdpt + PTE_P + PTE_W + PTE_U
	.fill 511, 8, 0
pdpt:
	.quad pd + PTE_P + PTE_W + PTE_U
	.quad pd + 0x1000 + PTE_P + PTE_W + PTE_U
	.quad pd + 0x2000 + PTE_P + PTE_W + PTE_U
	.quad pd + 0x3000 + PTE_P + PTE_W + PTE_U
	.fill 508, 8, 0
pd:
	.set pg, 0
	.rept 2048
	.quad (pg << 21) + PTE_P + PTE_W + PTE_U + PTE_PS
	.set pg, pg + 1
	.endr

	.balign 4096
idt:
	.fill 256 * 16, 1, 0

	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff /* 0x08 ring-0 code, 64-bit */
	.quad 0x00cf92000000ffff /* 0x10 ring-0 data */
	.quad 0x00cff2000000ffff /* 0x18 ring-3 data */
	.quad 0x00affa000000ffff /* 0x20 ring-3 code, 64-bit */
	.quad 0x00cf9a000000ffff /* 0x28 ring-0 code, 32-bit (AP start) */
	.fill MAX_CPUS * 2, 8, 0 /* 0x30 TSS descriptors, written by each vCPU */
gdt_end:

	.balign 8
	.word 0
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt
	.word 0
idt_ptr:
	.word 256 * 16 - 1
	.quad idt
	.word 0
idt_null_ptr:
	.word 0
	.quad 0

/* One TSS per vCPU, then the I/O permission bitmap they all point at: all zero (every
 * port allowed from ring 3) plus the terminating 0xff byte. */
	.balign TSS_STRIDE
tss_array:
	.fill MAX_CPUS * TSS_STRIDE, 1, 0
io_bitmap:
	.fill 8192, 1, 0
	.byte 0xff

	.balign 8
	.globl start_info_paddr, ap_boot_index, acpi_pm1a_cnt, acpi_s5_value, irq_count
start_info_paddr: .long 0
ap_boot_index: .long 0
acpi_pm1a_cnt: .word 0
acpi_s5_value: .word 0
	.balign 8
irq_count:
	.fill 256, 4, 0

	.section .stack, "aw", @nobits
	.balign 4096
kstacks:
	.skip MAX_CPUS * KSTACK_SIZE
ustacks:
	.skip MAX_CPUS * USTACK_SIZE

	.section .note.GNU-stack, "", @progbits
