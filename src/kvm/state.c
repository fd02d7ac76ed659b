// SPDX-License-Identifier: MIT
/* state.c: saving and loading the KVM-held state of vCPUs and the VM (snapshots, migration). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "base/util.h"
#include "kvm/kvm.h"
#include "kvm/state.h"

/*
 * Record layout (all little-endian, host structs from <linux/kvm.h>):
 *   u32 magic 'KVCP', u32 version, then the fixed structs below, then
 *   u32 xsave_len + bytes, u32 nmsrs + kvm_msr_entry[nmsrs].
 */
#define VCPU_MAGIC 0x5043564bu /* "KVCP" */
#define VCPU_VERSION 1
#define VM_MAGIC 0x4d56564bu /* "KVVM" */
#define VM_VERSION 1
#define MAX_MSRS 1024
#define MSR_TSC_DEADLINE 0x6e0

struct vcpu_fixed {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs dregs;
	uint32_t has_xcrs;
};

static int xsave_size(const struct kvm *k)
{
	int n = kvm_check_cap(k, KVM_CAP_XSAVE2);

	return n > (int)sizeof(struct kvm_xsave) ? n : (int)sizeof(struct kvm_xsave);
}

/* Read every MSR KVM lists as saveable; ones this vCPU refuses are skipped one by one. */
static int save_msrs(const struct kvm *k, struct kvm_vcpu *v, struct sbuf *out)
{
	uint32_t n = MIN(k->msrs ? k->msrs->nmsrs : 0, MAX_MSRS), i, got = 0;
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
	struct kvm_msr_entry *all = calloc(n ? n : 1, sizeof(*all));
	int r = 0;

	if (!m || !all) {
		free(m);
		free(all);
		return -ENOMEM;
	}
	for (i = 0; i < n;) {
		uint32_t j, want = n - i;
		int done;

		m->nmsrs = want;
		for (j = 0; j < want; j++)
			m->entries[j] = (struct kvm_msr_entry){ .index = k->msrs->indices[i + j] };
		done = ioctl(v->fd, KVM_GET_MSRS, m);
		if (done < 0) {
			r = -errno;
			break;
		}
		memcpy(&all[got], m->entries, (size_t)done * sizeof(*all));
		got += (uint32_t)done;
		i += (uint32_t)done + 1; /* entry i+done failed: skip it */
	}
	if (!r)
		r = sbuf_put(out, &got, sizeof(got));
	if (!r)
		r = sbuf_put(out, all, got * sizeof(*all));
	free(m);
	free(all);
	return r;
}

int kvm_vcpu_save_state(const struct kvm *k, struct kvm_vcpu *v, struct sbuf *out)
{
	uint32_t hdr[2] = { VCPU_MAGIC, VCPU_VERSION }, xlen = (uint32_t)xsave_size(k);
	struct vcpu_fixed f;
	struct kvm_xsave *xs;
	int r;

	memset(&f, 0, sizeof(f));
	if (ioctl(v->fd, KVM_GET_REGS, &f.regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &f.sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_LAPIC, &f.lapic) < 0 ||
	    ioctl(v->fd, KVM_GET_VCPU_EVENTS, &f.events) < 0 ||
	    ioctl(v->fd, KVM_GET_MP_STATE, &f.mp) < 0 ||
	    ioctl(v->fd, KVM_GET_DEBUGREGS, &f.dregs) < 0)
		return -errno;
	if (kvm_check_cap(k, KVM_CAP_XCRS) && ioctl(v->fd, KVM_GET_XCRS, &f.xcrs) == 0)
		f.has_xcrs = 1;
	xs = calloc(1, xlen);
	if (!xs)
		return -ENOMEM;
	/* KVM_GET_XSAVE2 when the buffer may be larger than 4 KiB (AMX). */
	if (ioctl(v->fd, xlen > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xs) < 0) {
		r = -errno;
		free(xs);
		return r;
	}
	r = sbuf_put(out, hdr, sizeof(hdr));
	if (!r)
		r = sbuf_put(out, &f, sizeof(f));
	if (!r)
		r = sbuf_put(out, &xlen, sizeof(xlen));
	if (!r)
		r = sbuf_put(out, xs, xlen);
	free(xs);
	if (!r)
		r = save_msrs(k, v, out);
	return r;
}

int kvm_vcpu_load_state(const struct kvm *k, struct kvm_vcpu *v, const uint8_t *buf, size_t len)
{
	uint32_t hdr[2], xlen, nmsrs, i;
	struct kvm_msr_entry deadline = { 0 };
	bool has_deadline = false;
	struct vcpu_fixed f;
	struct kvm_msrs *m;
	struct kvm_xsave *xs;
	size_t off = 0;
	int r;

	if (len < sizeof(hdr) + sizeof(f) + 4)
		return -EINVAL;
	memcpy(hdr, buf, sizeof(hdr));
	off += sizeof(hdr);
	if (hdr[0] != VCPU_MAGIC || hdr[1] != VCPU_VERSION)
		return -EINVAL;
	memcpy(&f, buf + off, sizeof(f));
	off += sizeof(f);
	memcpy(&xlen, buf + off, 4);
	off += 4;
	if (xlen < sizeof(struct kvm_xsave) || xlen > 1024 * 1024 || !range_ok(off, xlen, len) ||
	    xlen > (uint32_t)xsave_size(k))
		return -EINVAL;
	xs = calloc(1, xsave_size(k));
	if (!xs)
		return -ENOMEM;
	memcpy(xs, buf + off, xlen);
	off += xlen;
	if (!range_ok(off, 4, len)) {
		free(xs);
		return -EINVAL;
	}
	memcpy(&nmsrs, buf + off, 4);
	off += 4;
	if (nmsrs > MAX_MSRS || len - off != nmsrs * sizeof(struct kvm_msr_entry)) {
		free(xs);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m) + nmsrs * sizeof(struct kvm_msr_entry));
	if (!m) {
		free(xs);
		return -ENOMEM;
	}
	/*
	 * The TSC deadline goes last, after the local APIC: KVM ignores a write to it
	 * while the APIC timer is not in TSC-deadline mode, and a fresh vCPU's is not,
	 * so a pending deadline loaded with the other MSRs would be lost.
	 */
	m->nmsrs = 0;
	for (i = 0; i < nmsrs; i++) {
		struct kvm_msr_entry e;

		memcpy(&e, buf + off + i * sizeof(e), sizeof(e));
		if (e.index == MSR_TSC_DEADLINE) {
			deadline = e;
			has_deadline = true;
		} else {
			m->entries[m->nmsrs++] = e;
		}
	}

	/* Order matters: sregs before MSRs/LAPIC, events and MP state last (api.rst). */
	r = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &f.sregs) < 0 || ioctl(v->fd, KVM_SET_REGS, &f.regs) < 0 ||
	    ioctl(v->fd, KVM_SET_XSAVE, xs) < 0 ||
	    (f.has_xcrs && ioctl(v->fd, KVM_SET_XCRS, &f.xcrs) < 0))
		r = -errno;
	if (!r && ioctl(v->fd, KVM_SET_MSRS, m) != (int)m->nmsrs)
		r = -EIO;
	if (!r && ioctl(v->fd, KVM_SET_LAPIC, &f.lapic) < 0)
		r = -errno;
	if (!r && has_deadline) {
		m->entries[0] = deadline;
		m->nmsrs = 1;
		if (ioctl(v->fd, KVM_SET_MSRS, m) != 1)
			r = -EIO;
	}
	if (!r && (ioctl(v->fd, KVM_SET_DEBUGREGS, &f.dregs) < 0 ||
		   ioctl(v->fd, KVM_SET_VCPU_EVENTS, &f.events) < 0 ||
		   ioctl(v->fd, KVM_SET_MP_STATE, &f.mp) < 0))
		r = -errno;
	free(m);
	free(xs);
	return r;
}

struct vm_fixed {
	struct kvm_irqchip chips[3]; /* PIC master, PIC slave, IOAPIC */
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

int kvm_vm_save_state(struct kvm_vm *vm, struct sbuf *out)
{
	uint32_t hdr[2] = { VM_MAGIC, VM_VERSION };
	struct vm_fixed f;
	int i, r;

	memset(&f, 0, sizeof(f));
	for (i = 0; i < 3; i++) {
		f.chips[i].chip_id = (uint32_t)i;
		if (ioctl(vm->fd, KVM_GET_IRQCHIP, &f.chips[i]) < 0)
			return -errno;
	}
	if (ioctl(vm->fd, KVM_GET_PIT2, &f.pit) < 0 || ioctl(vm->fd, KVM_GET_CLOCK, &f.clock) < 0)
		return -errno;
	r = sbuf_put(out, hdr, sizeof(hdr));
	return r ? r : sbuf_put(out, &f, sizeof(f));
}

int kvm_vm_load_state(struct kvm_vm *vm, const uint8_t *buf, size_t len)
{
	uint32_t hdr[2];
	struct vm_fixed f;
	int i;

	if (len != sizeof(hdr) + sizeof(f))
		return -EINVAL;
	memcpy(hdr, buf, sizeof(hdr));
	if (hdr[0] != VM_MAGIC || hdr[1] != VM_VERSION)
		return -EINVAL;
	memcpy(&f, buf + sizeof(hdr), sizeof(f));
	for (i = 0; i < 3; i++)
		if (f.chips[i].chip_id != (uint32_t)i)
			return -EINVAL;
	for (i = 0; i < 3; i++)
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &f.chips[i]) < 0)
			return -errno;
	if (ioctl(vm->fd, KVM_SET_PIT2, &f.pit) < 0)
		return -errno;
	/* Only the clock value; flags from another host are meaningless here. */
	f.clock.flags = 0;
	if (ioctl(vm->fd, KVM_SET_CLOCK, &f.clock) < 0)
		return -errno;
	return 0;
}
