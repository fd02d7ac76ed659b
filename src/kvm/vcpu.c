// SPDX-License-Identifier: MIT
/* vcpu.c: the KVM vCPU object: creation, KVM_RUN and state accessors. */
#include "kvm/kvm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/err.h"

int kvm_vcpu_create(struct kvm_vm *vm, uint32_t id, struct kvm_vcpu *v, struct err *e)
{
	void *run;

	memset(v, 0, sizeof(*v));
	v->id = id;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return err_set(e, errno, "KVM_CREATE_VCPU %u: %s", id, strerror(errno));
	v->run_size = (size_t)vm->kvm->run_size;
	run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED) {
		int en = errno;

		close(v->fd);
		v->fd = -1;
		return err_set(e, en, "mmap of vCPU %u run area: %s", id, strerror(en));
	}
	v->run = run;
	return 0;
}

void kvm_vcpu_destroy(struct kvm_vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

int kvm_vcpu_run(struct kvm_vcpu *v)
{
	return ioctl(v->fd, KVM_RUN, 0) < 0 ? -errno : 0;
}

#define VCPU_IOCTL(v, req, arg) (ioctl((v)->fd, (req), (arg)) < 0 ? -errno : 0)

int kvm_vcpu_get_regs(struct kvm_vcpu *v, struct kvm_regs *r)
{
	return VCPU_IOCTL(v, KVM_GET_REGS, r);
}

int kvm_vcpu_set_regs(struct kvm_vcpu *v, const struct kvm_regs *r)
{
	return VCPU_IOCTL(v, KVM_SET_REGS, r);
}

int kvm_vcpu_get_sregs(struct kvm_vcpu *v, struct kvm_sregs *s)
{
	return VCPU_IOCTL(v, KVM_GET_SREGS, s);
}

int kvm_vcpu_set_sregs(struct kvm_vcpu *v, const struct kvm_sregs *s)
{
	return VCPU_IOCTL(v, KVM_SET_SREGS, s);
}

int kvm_vcpu_set_fpu(struct kvm_vcpu *v, const struct kvm_fpu *f)
{
	return VCPU_IOCTL(v, KVM_SET_FPU, f);
}

int kvm_vcpu_set_cpuid(struct kvm_vcpu *v, const struct kvm_cpuid2 *c)
{
	return VCPU_IOCTL(v, KVM_SET_CPUID2, c);
}

int kvm_vcpu_set_msrs(struct kvm_vcpu *v, const struct kvm_msr_entry *ents, uint32_t n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(*ents));
	int r;

	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	memcpy(m->entries, ents, n * sizeof(*ents));
	/* KVM_SET_MSRS returns how many it set; fewer means one was refused. */
	r = ioctl(v->fd, KVM_SET_MSRS, m);
	free(m);
	if (r < 0)
		return -errno;
	return (uint32_t)r == n ? 0 : -EIO;
}

int kvm_vcpu_get_lapic(struct kvm_vcpu *v, struct kvm_lapic_state *l)
{
	return VCPU_IOCTL(v, KVM_GET_LAPIC, l);
}

int kvm_vcpu_set_lapic(struct kvm_vcpu *v, const struct kvm_lapic_state *l)
{
	return VCPU_IOCTL(v, KVM_SET_LAPIC, l);
}

int kvm_vcpu_get_mp_state(struct kvm_vcpu *v, uint32_t *state)
{
	struct kvm_mp_state mp;
	int r = VCPU_IOCTL(v, KVM_GET_MP_STATE, &mp);

	if (!r)
		*state = mp.mp_state;
	return r;
}
