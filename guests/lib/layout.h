/* SPDX-License-Identifier: MIT */
/* layout.h: constants shared by the guests' assembly entry code and their ring-3 C code. */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

#define MAX_CPUS 32
#define KSTACK_SIZE 4096 /* ring-0 stack per vCPU (interrupt and fault handlers only) */
#define USTACK_SIZE 16384 /* ring-3 stack per vCPU */

/* GDT selectors. The TSS descriptors (16 bytes each) follow, one per vCPU. */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x18
#define SEL_UCODE 0x20
#define SEL_KCODE32 0x28
#define SEL_TSS0 0x30
#define TSS_STRIDE 128

/* Where the SMP guest copies its real-mode AP trampoline (SIPI vector 0x01). Below the
 * VMM's boot structures at 0x6000-0xefff. */
#define AP_TRAMPOLINE_ADDR 0x1000

/* RAX values that turn a ring-3 `ud2` into a request to ring 0 (see entry.S). */
#define UD2_TRIPLE_FAULT 0x7472697031ULL
/* ud2 from ring 3 with this RAX: ring 0 writes MSR RCX with RSI and returns past the ud2. */
#define UD2_WRMSR 0x77726d7372ULL

#endif
