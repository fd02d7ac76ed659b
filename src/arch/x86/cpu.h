/* SPDX-License-Identifier: MIT */
/* cpu.h: x86 vCPU setup: the CPUID policy, MSRs, FPU and the boot register state. */
#ifndef KVMM_ARCH_X86_CPU_H
#define KVMM_ARCH_X86_CPU_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/boot.h"

struct err;
struct kvm;
struct kvm_vcpu;

/* Highest vCPU count: xAPIC IDs are 8 bits and 0xff is the broadcast ID. */
#define X86_MAX_VCPUS 254

/* A user's change to the CPUID features: "+name" to require, "-name" to hide. */
struct cpu_feature_change {
	uint32_t leaf, subleaf;
	int reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t bit;
	bool set;
	const char *name;
};

#define CPU_MAX_CHANGES 32
struct cpuid_opts {
	unsigned ncpus;
	unsigned nchanges;
	struct cpu_feature_change changes[CPU_MAX_CHANGES];
};

/* Parse "-avx512f,+x2apic,-hypervisor" into opts->changes. */
int cpuid_parse_features(const char *spec, struct cpuid_opts *opts, struct err *e);
/* List the feature names the user may use, space separated. */
const char *cpuid_feature_names(void);
/*
 * Build the CPUID table of vCPU index from KVM's supported table: topology
 * (APIC ID = index, one package of ncpus cores), hypervisor leaves, the
 * user's feature changes. "+feature" the host lacks is refused. Caller frees.
 */
int cpuid_policy(const struct kvm_cpuid2 *supported, const struct cpuid_opts *o, unsigned index,
		 struct kvm_cpuid2 **out, struct err *e);
/* Find an entry (for tests and callers that check the policy). */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf);

/* Identity page tables and GDT for a 64-bit boot, written into guest memory. */
struct guest_mem;
int x86_setup_boot_tables(struct guest_mem *gm);
/* Per-vCPU state common to every vCPU: CPUID, MSRs, FPU, LAPIC LINT pins. */
int x86_vcpu_init(struct kvm *k, struct kvm_vcpu *v, const struct kvm_cpuid2 *cpuid,
		  struct err *e);
/* Boot vCPU registers for the chosen entry (64-bit Linux or PVH 32-bit). */
int x86_vcpu_set_boot_regs(struct kvm_vcpu *v, const struct boot_info *bi, struct err *e);
/* Registers, segments and control registers as text (crash reports). */
void x86_vcpu_dump(struct kvm_vcpu *v, char *buf, size_t len);

#endif
