/* SPDX-License-Identifier: MIT */
/* kvm.h: the KVM system, VM and vCPU objects; the only API that issues KVM ioctls. */
#ifndef KVMM_KVM_KVM_H
#define KVMM_KVM_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/* The system object: /dev/kvm, with the API version and capabilities checked. */
struct kvm {
	int fd;
	int run_size;      /* mmap size of struct kvm_run */
	int max_vcpus;
	int nr_vcpus;      /* recommended */
	struct kvm_msr_list *msrs; /* MSRs KVM can save/restore */
	bool has_tsc_deadline;
};

int kvm_open(struct kvm *k, const char *path, struct err *e);
void kvm_close(struct kvm *k);
int kvm_check_cap(const struct kvm *k, long cap);
/* Caller frees *out. */
int kvm_supported_cpuid(const struct kvm *k, struct kvm_cpuid2 **out, struct err *e);
bool kvm_msr_supported(const struct kvm *k, uint32_t index);

/* The VM object. */
struct kvm_vm {
	int fd;
	const struct kvm *kvm;
	bool manual_dirty; /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled */
};

/* Creates the VM with in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT. */
int kvm_vm_create(const struct kvm *k, struct kvm_vm *vm, struct err *e);
void kvm_vm_destroy(struct kvm_vm *vm);
int kvm_vm_set_memory(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		      uint32_t flags);
int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, bool level);
/* Replace the whole GSI routing table (api.rst KVM_SET_GSI_ROUTING). */
int kvm_vm_set_gsi_routing(struct kvm_vm *vm, const struct kvm_irq_routing_entry *ents,
			   uint32_t n);
/* Attach (assign) or detach an eventfd that injects gsi when written (KVM_IRQFD). */
int kvm_vm_irqfd(struct kvm_vm *vm, int fd, uint32_t gsi, bool assign);
/* An MMIO (or port, is_pio) write of len bytes at addr signals fd in the kernel (KVM_IOEVENTFD). */
int kvm_vm_ioeventfd(struct kvm_vm *vm, int fd, uint64_t addr, uint32_t len, bool is_pio,
		     bool assign);
/* Inject one MSI directly (KVM_SIGNAL_MSI); 0 when delivered or blocked. */
int kvm_vm_signal_msi(struct kvm_vm *vm, uint64_t addr, uint32_t data);

/*
 * Dirty page log of one memslot of npages: fetch, and re-protect the pages
 * found dirty (KVM_GET_DIRTY_LOG; with manual protection, KVM_CLEAR_DIRTY_LOG
 * on exactly those pages).
 */
int kvm_vm_get_dirty_log(struct kvm_vm *vm, uint32_t slot, uint64_t npages, uint64_t *bitmap);

/* kvmclock: read and set the VM's clock (pause/resume, snapshots). */
int kvm_vm_get_clock(struct kvm_vm *vm, uint64_t *ns);
int kvm_vm_set_clock(struct kvm_vm *vm, uint64_t ns);

/* The vCPU object. */
struct kvm_vcpu {
	int fd;
	uint32_t id;
	struct kvm_run *run;
	size_t run_size;
};

int kvm_vcpu_create(struct kvm_vm *vm, uint32_t id, struct kvm_vcpu *v, struct err *e);
void kvm_vcpu_destroy(struct kvm_vcpu *v);
/* 0 on an exit to handle, -EINTR when interrupted (kick), other -errno on failure. */
int kvm_vcpu_run(struct kvm_vcpu *v);
int kvm_vcpu_get_regs(struct kvm_vcpu *v, struct kvm_regs *r);
int kvm_vcpu_set_regs(struct kvm_vcpu *v, const struct kvm_regs *r);
int kvm_vcpu_get_sregs(struct kvm_vcpu *v, struct kvm_sregs *s);
int kvm_vcpu_set_sregs(struct kvm_vcpu *v, const struct kvm_sregs *s);
int kvm_vcpu_set_fpu(struct kvm_vcpu *v, const struct kvm_fpu *f);
int kvm_vcpu_set_cpuid(struct kvm_vcpu *v, const struct kvm_cpuid2 *c);
/* Sets all entries or fails with -EIO naming nothing: callers pass only supported MSRs. */
int kvm_vcpu_set_msrs(struct kvm_vcpu *v, const struct kvm_msr_entry *ents, uint32_t n);
int kvm_vcpu_get_lapic(struct kvm_vcpu *v, struct kvm_lapic_state *l);
int kvm_vcpu_set_lapic(struct kvm_vcpu *v, const struct kvm_lapic_state *l);
int kvm_vcpu_get_mp_state(struct kvm_vcpu *v, uint32_t *state);

#endif
