/* SPDX-License-Identifier: MIT */
/* state.h: KVM-held state of a vCPU and of the VM as versioned byte records. */
#ifndef KVMM_KVM_STATE_H
#define KVMM_KVM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

struct kvm;
struct kvm_vm;
struct kvm_vcpu;

/* Registers, special registers, XSAVE, XCRs, MSRs, LAPIC, events, MP state, debug registers. */
int kvm_vcpu_save_state(const struct kvm *k, struct kvm_vcpu *v, struct sbuf *out);
/* -EINVAL for a record of another version or a damaged one; KVM errors as -errno. */
int kvm_vcpu_load_state(const struct kvm *k, struct kvm_vcpu *v, const uint8_t *buf, size_t len);
/* PIC master/slave, IOAPIC, PIT, kvmclock. */
int kvm_vm_save_state(struct kvm_vm *vm, struct sbuf *out);
int kvm_vm_load_state(struct kvm_vm *vm, const uint8_t *buf, size_t len);

#endif
