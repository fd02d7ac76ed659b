// SPDX-License-Identifier: MIT
/* kvm.c: the KVM system and VM objects (api.rst sections 4.1-4.x). */
#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"

/* Capabilities kvmm cannot work without, checked once at open. */
static const struct {
	long cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
};

int kvm_check_cap(const struct kvm *k, long cap)
{
	int r = ioctl(k->fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

static int kvm_load_msr_list(struct kvm *k, struct err *e)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *l;

	/* First call fails with E2BIG and reports the count. */
	if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return err_set(e, errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return err_set(e, ENOMEM, "out of memory");
	l->nmsrs = probe.nmsrs;
	if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return err_set(e, errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	}
	k->msrs = l;
	return 0;
}

int kvm_open(struct kvm *k, const char *path, struct err *e)
{
	int ver, ret;
	size_t i;

	memset(k, 0, sizeof(*k));
	k->fd = open(path, O_RDWR | O_CLOEXEC);
	if (k->fd < 0) {
		int en = errno;

		if (en == ENOENT)
			return err_set(e, en, "%s not found: KVM is not available on this host "
				       "(is the kvm_intel or kvm_amd module loaded?)", path);
		if (en == EACCES || en == EPERM)
			return err_set(e, en, "no permission to open %s (add this user to the "
				       "'kvm' group or run as root)", path);
		return err_set(e, en, "cannot open %s: %s", path, strerror(en));
	}
	ver = ioctl(k->fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		ret = err_set(e, EINVAL, "%s: KVM API version %d, kvmm needs %d", path, ver,
			      KVM_API_VERSION);
		goto fail;
	}
	for (i = 0; i < ARRAY_SIZE(required_caps); i++) {
		if (!kvm_check_cap(k, required_caps[i].cap)) {
			ret = err_set(e, ENOTSUP, "%s: this KVM lacks %s, which kvmm needs "
				      "(host kernel too old?)", path, required_caps[i].name);
			goto fail;
		}
	}
	k->run_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->run_size < (int)sizeof(struct kvm_run)) {
		ret = err_set(e, EINVAL, "%s: bad KVM_GET_VCPU_MMAP_SIZE %d", path, k->run_size);
		goto fail;
	}
	k->nr_vcpus = kvm_check_cap(k, KVM_CAP_NR_VCPUS);
	k->max_vcpus = kvm_check_cap(k, KVM_CAP_MAX_VCPUS);
	if (k->nr_vcpus <= 0)
		k->nr_vcpus = 4; /* api.rst: assume 4 when the capability is absent */
	if (k->max_vcpus <= 0)
		k->max_vcpus = k->nr_vcpus;
	k->has_tsc_deadline = kvm_check_cap(k, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	ret = kvm_load_msr_list(k, e);
	if (ret)
		goto fail;
	return 0;
fail:
	close(k->fd);
	k->fd = -1;
	return ret;
}

void kvm_close(struct kvm *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	free(k->msrs);
	k->msrs = NULL;
}

bool kvm_msr_supported(const struct kvm *k, uint32_t index)
{
	uint32_t i;

	for (i = 0; k->msrs && i < k->msrs->nmsrs; i++)
		if (k->msrs->indices[i] == index)
			return true;
	return false;
}

int kvm_supported_cpuid(const struct kvm *k, struct kvm_cpuid2 **out, struct err *e)
{
	uint32_t n = 64;

	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));

		if (!c)
			return err_set(e, ENOMEM, "out of memory");
		c->nent = n;
		if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG || n >= 4096)
			return err_set(e, errno, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		n *= 2;
	}
}

/* Addresses in the PCI hole that Intel VMX needs for real-mode emulation (api.rst 4.40, 4.51). */
#define KVM_TSS_ADDR 0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

int kvm_vm_create(const struct kvm *k, struct kvm_vm *vm, struct err *e)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	int ret;

	vm->kvm = k;
	do {
		vm->fd = ioctl(k->fd, KVM_CREATE_VM, 0);
	} while (vm->fd < 0 && errno == EINTR);
	if (vm->fd < 0)
		return err_set(e, errno, "KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0) {
		ret = err_set(e, errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		goto fail;
	}
	if (kvm_check_cap(k, KVM_CAP_SET_IDENTITY_MAP_ADDR) &&
	    ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
		ret = err_set(e, errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
		goto fail;
	}
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = err_set(e, errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		goto fail;
	}
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = err_set(e, errno, "KVM_CREATE_PIT2: %s", strerror(errno));
		goto fail;
	}
	/* Manual dirty-log protection when offered (migration clears what it sends). */
	vm->manual_dirty = false;
	if (kvm_check_cap(k, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) {
		struct kvm_enable_cap cap = {
			.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
			.args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE },
		};

		vm->manual_dirty = ioctl(vm->fd, KVM_ENABLE_CAP, &cap) == 0;
	}
	return 0;
fail:
	close(vm->fd);
	vm->fd = -1;
	return ret;
}

void kvm_vm_destroy(struct kvm_vm *vm)
{
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
}

int kvm_vm_set_memory(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		      uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	return ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, bool level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = level };

	return ioctl(vm->fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

int kvm_vm_set_gsi_routing(struct kvm_vm *vm, const struct kvm_irq_routing_entry *ents,
			   uint32_t n)
{
	struct kvm_irq_routing *r = calloc(1, sizeof(*r) + n * sizeof(*ents));
	int ret;

	if (!r)
		return -ENOMEM;
	r->nr = n;
	memcpy(r->entries, ents, n * sizeof(*ents));
	ret = ioctl(vm->fd, KVM_SET_GSI_ROUTING, r) < 0 ? -errno : 0;
	free(r);
	return ret;
}

int kvm_vm_irqfd(struct kvm_vm *vm, int fd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd f = {
		.fd = (uint32_t)fd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(vm->fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

int kvm_vm_ioeventfd(struct kvm_vm *vm, int fd, uint64_t addr, uint32_t len, bool is_pio,
		     bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = (is_pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(vm->fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int kvm_vm_signal_msi(struct kvm_vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi m = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	return ioctl(vm->fd, KVM_SIGNAL_MSI, &m) < 0 ? -errno : 0;
}

int kvm_vm_get_clock(struct kvm_vm *vm, uint64_t *ns)
{
	struct kvm_clock_data c;

	memset(&c, 0, sizeof(c));
	if (ioctl(vm->fd, KVM_GET_CLOCK, &c) < 0)
		return -errno;
	*ns = c.clock;
	return 0;
}

int kvm_vm_set_clock(struct kvm_vm *vm, uint64_t ns)
{
	struct kvm_clock_data c;

	memset(&c, 0, sizeof(c));
	c.clock = ns;
	return ioctl(vm->fd, KVM_SET_CLOCK, &c) < 0 ? -errno : 0;
}

int kvm_vm_get_dirty_log(struct kvm_vm *vm, uint32_t slot, uint64_t npages, uint64_t *bitmap)
{
	struct kvm_dirty_log d = { .slot = slot, .dirty_bitmap = bitmap };
	struct kvm_clear_dirty_log c = {
		.slot = slot,
		.num_pages = (uint32_t)npages,
		.first_page = 0,
		.dirty_bitmap = bitmap,
	};

	if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &d) < 0)
		return -errno;
	/*
	 * Manual protection: GET only reported; write-protect again just the
	 * pages we are about to send, so a write after this point is seen.
	 */
	if (vm->manual_dirty && ioctl(vm->fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
		return -errno;
	return 0;
}
