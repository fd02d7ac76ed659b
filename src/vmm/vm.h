/* SPDX-License-Identifier: MIT */
/* vm.h: one virtual machine: memory, devices, vCPU threads and the event loop that runs them. */
#ifndef KVMM_VMM_VM_H
#define KVMM_VMM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"
#include "arch/x86/cpu.h"
#include "base/strpool.h"
#include "virtio/devices.h"
#include "vmm/mem.h"

struct err;
struct control;

enum reboot_action { REBOOT_RESTART, REBOOT_EXIT };

#define VM_MAX_DISKS 16
#define VM_MAX_NETS 8

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
	bool virtio_console; /* the console is a virtio-console port (hvc0); 8250 output is dropped */
	bool balloon;        /* a virtio-balloon device */
	struct balloon_opts balloon_opts;
	uint32_t vsock_cid;  /* a virtio-vsock device (vhost-vsock) with this guest CID; 0: none */
	unsigned nnets;
	struct net_opts nets[VM_MAX_NETS];
	const char *name;          /* the VM's name (control socket, kvmm list) */
	struct strpool *strings;   /* owns strings the configuration gains at run time */
	const char *restore_dir;   /* build the VM from this snapshot instead of booting */
	bool restore_eager;        /* read all of the snapshot's memory up front */
	bool incoming;             /* state arrives by migration: do not boot */
	struct control *control;   /* served by vm_run when set */
};

/* Why vm_run returned; the values are kvmm's exit statuses (see ARCHITECTURE.md). */
enum vm_exit {
	VM_EXIT_POWEROFF = 0, /* guest powered off */
	VM_EXIT_STOPPED = 0,  /* stopped by SIGTERM/SIGINT or the console escape */
	VM_EXIT_ERROR = 1,    /* host-side failure */
	VM_EXIT_CRASH = 3,    /* triple fault, emulation failure, unhandled exit */
	VM_EXIT_RESET = 4,    /* guest asked for a reset */
	VM_EXIT_RESTART = 5,  /* an operator asked for a reset: always restarts */
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

/* --- For the control socket; all run on the event-loop thread. --- */

/* Watch fd in the VM's event loop (cb on the loop thread); unwatch before closing fd. */
int vm_watch(struct vm *vm, int fd, void (*cb)(void *arg), void *arg);
void vm_unwatch(struct vm *vm, int fd);
/* Stop every vCPU at an instruction boundary and freeze the guest clock. -EALREADY if paused. */
int vm_pause(struct vm *vm);
/* -EINVAL when not paused. */
int vm_resume(struct vm *vm);
bool vm_paused(const struct vm *vm);
/* ACPI power button press (the guest decides to shut down). */
void vm_power_button(struct vm *vm);
/* Ask the VM to stop (exit status 0) or to reset (always restarts). */
void vm_stop(struct vm *vm, const char *reason);
void vm_reset(struct vm *vm);

struct vcpu_stats {
	uint64_t exits, io, mmio, other;
	uint64_t run_ns; /* time spent inside KVM_RUN */
};
const struct vm_config *vm_get_config(const struct vm *vm);
unsigned vm_nvcpus(const struct vm *vm);
void vm_vcpu_stats(const struct vm *vm, unsigned i, struct vcpu_stats *st);
/* KVM's own statistics of the VM (vcpu < 0) or of one vCPU. */
int vm_kvm_stats(struct vm *vm, int vcpu, void (*cb)(void *arg, const char *name, uint64_t v),
		 void *arg);
unsigned vm_ndevices(const struct vm *vm);
/* Name and counters of virtio device i (0 when it has none). */
const char *vm_device_name(const struct vm *vm, unsigned i);
int vm_device_stats(struct vm *vm, unsigned i, uint64_t out[6]);
uint64_t vm_uptime_ms(const struct vm *vm);
/*
 * Write a full snapshot of a paused VM into dir (must not exist). Disks:
 * "internal" (qcow2 internal snapshot; the default for qcow2 disks), "overlay"
 * (the disk is frozen and the VM goes on in a new qcow2 overlay), "none"
 * (shared storage: disk contents not captured; the default for raw disks).
 */
int vm_snapshot(struct vm *vm, const char *dir, const char *disk_mode, struct err *e);

/* --- State sections and live migration (src/migrate) --- */
struct sbuf;
struct snap_state;
/* Every vCPU, the irqchip/PIT/clock and each device, as snapshot sections (VM paused). */
int vm_save_sections(struct vm *vm, struct sbuf *secs, struct err *e);
/* Apply sections to a freshly created VM (restore, incoming migration). */
int vm_load_sections(struct vm *vm, const struct snap_state *snap, struct err *e);
struct guest_mem *vm_memory(struct vm *vm);
/* Complete the I/O devices have in flight (their writes to RAM are dirty-tracked). */
void vm_drain_devices(struct vm *vm);
int vm_dirty_start(struct vm *vm, struct err *e);
int vm_dirty_collect(struct vm *vm, uint64_t *bitmap);
void vm_dirty_stop(struct vm *vm);
void vm_set_throttle(struct vm *vm, int pct);
void vm_kick_vcpus(struct vm *vm);
void vm_set_migrating(struct vm *vm, bool on);
bool vm_migrating(const struct vm *vm);
/* The destination took over: stop this VM (exit status 0). */
void vm_migrated(struct vm *vm, const char *reason);

/* Signal used to kick vCPU threads out of KVM_RUN. */
#define VM_SIG_KICK SIGUSR1

#endif
