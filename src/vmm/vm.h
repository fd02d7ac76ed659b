/* SPDX-License-Identifier: MIT */
/* vm.h: one virtual machine: memory, devices, vCPU threads and the event loop that runs them. */
#ifndef KVMM_VMM_VM_H
#define KVMM_VMM_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "arch/x86/cpu.h"
#include "virtio/devices.h"
#include "vmm/mem.h"

struct err;

enum reboot_action { REBOOT_RESTART, REBOOT_EXIT };

#define VM_MAX_DISKS 16

struct vm_config {
	const char *kvm_path;
	unsigned ncpus;
	struct mem_opts mem;
	struct boot_opts boot;
	struct cpuid_opts cpu;
	enum reboot_action reboot;
	int console_in_fd;  /* -1: no input */
	int console_out_fd; /* -1: output discarded */
	bool console_escape; /* Ctrl-a x quits (interactive terminals) */
	bool rng;            /* a virtio-rng device */
	unsigned ndisks;
	struct blk_opts disks[VM_MAX_DISKS];
};

/* Why vm_run returned; the values are kvmm's exit statuses (see ARCHITECTURE.md). */
enum vm_exit {
	VM_EXIT_POWEROFF = 0, /* guest powered off */
	VM_EXIT_STOPPED = 0,  /* stopped by SIGTERM/SIGINT or the console escape */
	VM_EXIT_ERROR = 1,    /* host-side failure */
	VM_EXIT_CRASH = 3,    /* triple fault, emulation failure, unhandled exit */
	VM_EXIT_RESET = 4,    /* guest asked for a reset */
};

struct vm;

struct vm *vm_create(const struct vm_config *cfg, struct err *e);
/*
 * Start the vCPUs and run the event loop until the guest powers off, resets,
 * crashes, or a stop signal arrives. reason gets a one-line description, and
 * crash_dump (if non-NULL) the register dump of a crashed vCPU.
 */
enum vm_exit vm_run(struct vm *vm, char *reason, size_t reason_len, char *crash_dump,
		    size_t dump_len);
void vm_destroy(struct vm *vm);

/* Signal used to kick vCPU threads out of KVM_RUN. */
#define VM_SIG_KICK SIGUSR1

#endif
