// SPDX-License-Identifier: MIT
/* vm.c: building a VM (memory, irqchip, devices, tables, kernel, vCPUs) and running its vCPU threads. */
#include "vmm/vm.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "dev/acpi_pm.h"
#include "dev/legacy.h"
#include "kvm/kvm.h"
#include "vmm/bus.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"
#include "vmm/console.h"
#include "vmm/control.h"
#include "vmm/snapshot.h"
#include "block/block.h"
#include "block/qcow2.h"
#include "kvm/state.h"
#include "kvm/stats.h"

/* The devices of every VM, created in this order and destroyed in reverse. */
static const struct dev_desc *const vm_devices[] = {
	&serial_desc,
	&i8042_desc,
	&rtc_desc,
	&acpi_pm_desc,
	&pci_host_desc,
};
#define NDEV ARRAY_SIZE(vm_devices)

struct vcpu {
	struct vm *vm;
	struct kvm_vcpu kvm;
	pthread_t thread;
	bool started;
	struct vcpu_stats st;
	struct ratelimit unhandled_rl;
	uint64_t throttle_mark; /* start of the running stretch the throttle owes a sleep for */
};

/* An fd the event loop watches; cb runs on the main thread when it is readable. */
struct vm_watch {
	int fd;
	void (*cb)(void *arg);
	void *arg;
	struct vm_watch *next;
};

/* GSIs 0-23 belong to the PIC/IOAPIC; MSI routes are allocated above. */
#define VM_GSI_IRQCHIP 24
#define VM_MAX_GSI 1024
#define VM_MAX_VIRTIO 31

struct vm {
	struct vm_config cfg;
	struct kvm kvm;
	struct kvm_vm kvm_vm;
	struct guest_mem mem;
	struct bus *pio;
	struct bus *mmio;
	void *dev[NDEV];
	struct dev_ctx dev_ctx;
	struct virtio_dev *virtio[VM_MAX_VIRTIO];
	unsigned nvirtio;
	struct virtio_dev *vcon;    /* --virtio-console: gets the console input */
	struct virtio_dev *balloon; /* --balloon: for the control socket */
	struct vcpu *vcpus;
	unsigned nvcpus;
	struct boot_info boot;
	int wake_fd; /* eventfd: a vCPU or device asks the main loop to stop */
	int ep;      /* the event loop's epoll */
	pthread_mutex_t watch_lock;
	struct vm_watch *watches;

	pthread_mutex_t route_lock;
	struct kvm_irq_routing_entry *routes;
	uint32_t nroutes;
	uint32_t next_gsi;

	/* Pause: vCPU threads park on pause_cond; the loop waits on parked_cond. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond, parked_cond;
	atomic_bool pause_req;
	unsigned parked;
	bool paused;
	uint64_t paused_clock;
	uint64_t start_ns;

	/* Live migration: dirty tracking and vCPU throttling (auto-converge). */
	uint64_t *vmm_dirty_bits;
	uint64_t *kvm_dirty_tmp;
	atomic_int throttle_pct;
	atomic_bool migrating;

	pthread_mutex_t stop_lock;
	atomic_bool stopping;
	enum vm_exit exit;
	char reason[256];
	char dump[4096];
};

static void vm_request_stop(struct vm *vm, enum vm_exit why, const char *reason, struct vcpu *c)
{
	uint64_t one = 1;

	pthread_mutex_lock(&vm->stop_lock);
	if (!atomic_load(&vm->stopping)) {
		vm->exit = why;
		snprintf(vm->reason, sizeof(vm->reason), "%s", reason);
		if (c)
			x86_vcpu_dump(&c->kvm, vm->dump, sizeof(vm->dump));
		atomic_store(&vm->stopping, true);
		if (write(vm->wake_fd, &one, sizeof(one)) < 0)
			log_error("cannot wake the main loop: %s", strerror(errno));
	}
	pthread_mutex_unlock(&vm->stop_lock);
	/* Parked vCPUs must see the stop too. */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

static void vm_dev_request(void *opaque, enum vm_request req)
{
	struct vm *vm = opaque;

	if (req == VM_REQ_POWEROFF)
		vm_request_stop(vm, VM_EXIT_POWEROFF, "guest powered off", NULL);
	else if (req == VM_REQ_RESET)
		vm_request_stop(vm, VM_EXIT_RESET, "guest requested a reset", NULL);
}

static int vm_irq_set(void *opaque, uint32_t gsi, bool level)
{
	struct vm *vm = opaque;

	return kvm_vm_irq_line(&vm->kvm_vm, gsi, level);
}

static int vm_watch_fd(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	struct vm *vm = opaque;
	struct vm_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = EPOLLIN };

	if (!w)
		return -ENOMEM;
	*w = (struct vm_watch){ .fd = fd, .cb = cb, .arg = arg };
	ev.data.ptr = w;
	pthread_mutex_lock(&vm->watch_lock);
	if (epoll_ctl(vm->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int en = errno;

		pthread_mutex_unlock(&vm->watch_lock);
		free(w);
		return -en;
	}
	w->next = vm->watches;
	vm->watches = w;
	pthread_mutex_unlock(&vm->watch_lock);
	return 0;
}

/*
 * Watches are freed only when the VM is destroyed: the event loop may hold a
 * pointer to one from an epoll_wait batch, so unwatching just disarms it.
 */
static void vm_unwatch_fd(void *opaque, int fd)
{
	struct vm *vm = opaque;
	struct vm_watch *w;

	pthread_mutex_lock(&vm->watch_lock);
	for (w = vm->watches; w; w = w->next) {
		if (w->fd == fd && w->cb) {
			epoll_ctl(vm->ep, EPOLL_CTL_DEL, fd, NULL);
			w->cb = NULL;
			w->fd = -1;
			break;
		}
	}
	pthread_mutex_unlock(&vm->watch_lock);
}

/*
 * The GSI routing kvmm installs at creation (KVM_SET_GSI_ROUTING replaces
 * KVM's default). GSI 0-15 reach the PIC; GSI 1-23 reach the IOAPIC pin of
 * the same number, except that the PIT, which the in-kernel PIT raises on
 * GSI 0, is wired to IOAPIC pin 2 as the MADT's IRQ0 -> GSI 2 override says
 * (the usual PC wiring).
 */
static int vm_routes_init(struct vm *vm)
{
	uint32_t gsi, n = 0;

	vm->routes = calloc(VM_MAX_GSI * 2, sizeof(*vm->routes));
	if (!vm->routes)
		return -ENOMEM;
	for (gsi = 0; gsi < VM_GSI_IRQCHIP; gsi++) {
		if (gsi < 16) {
			vm->routes[n].gsi = gsi;
			vm->routes[n].type = KVM_IRQ_ROUTING_IRQCHIP;
			vm->routes[n].u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER :
								    KVM_IRQCHIP_PIC_SLAVE;
			vm->routes[n].u.irqchip.pin = gsi % 8;
			n++;
		}
		if (gsi == 2)
			continue; /* IOAPIC pin 2 belongs to GSI 0 */
		vm->routes[n].gsi = gsi;
		vm->routes[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		vm->routes[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		vm->routes[n].u.irqchip.pin = gsi == 0 ? 2 : gsi;
		n++;
	}
	vm->nroutes = n;
	vm->next_gsi = VM_GSI_IRQCHIP;
	return 0;
}

static int vm_msi_route(void *opaque, int gsi, uint64_t addr, uint32_t data)
{
	struct vm *vm = opaque;
	struct kvm_irq_routing_entry *e = NULL;
	uint32_t i;
	int r;

	pthread_mutex_lock(&vm->route_lock);
	if (gsi < 0) {
		if (vm->next_gsi >= VM_MAX_GSI) {
			pthread_mutex_unlock(&vm->route_lock);
			return -ENOSPC;
		}
		gsi = (int)vm->next_gsi++;
		e = &vm->routes[vm->nroutes++];
		memset(e, 0, sizeof(*e));
		e->gsi = (uint32_t)gsi;
		e->type = KVM_IRQ_ROUTING_MSI;
	} else {
		for (i = 0; i < vm->nroutes; i++)
			if (vm->routes[i].gsi == (uint32_t)gsi &&
			    vm->routes[i].type == KVM_IRQ_ROUTING_MSI)
				e = &vm->routes[i];
		if (!e) {
			pthread_mutex_unlock(&vm->route_lock);
			return -ENOENT;
		}
	}
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	r = kvm_vm_set_gsi_routing(&vm->kvm_vm, vm->routes, vm->nroutes);
	pthread_mutex_unlock(&vm->route_lock);
	return r ? r : gsi;
}

static int vm_irqfd(void *opaque, int fd, uint32_t gsi, bool assign)
{
	struct vm *vm = opaque;

	return kvm_vm_irqfd(&vm->kvm_vm, fd, gsi, assign);
}

static int vm_ioeventfd(void *opaque, int fd, uint64_t addr, uint32_t len, bool assign)
{
	struct vm *vm = opaque;

	return kvm_vm_ioeventfd(&vm->kvm_vm, fd, addr, len, false, assign);
}

/* --- vCPU threads --- */

static void vcpu_handle_io(struct vcpu *c)
{
	struct kvm_run *run = c->kvm.run;
	uint64_t size = run->io.size, count = run->io.count, off = run->io.data_offset;
	uint8_t *data = (uint8_t *)run + off;
	bool wr = run->io.direction == KVM_EXIT_IO_OUT;
	uint64_t i;

	/* The data area is inside the shared run page; check it anyway. */
	if ((size != 1 && size != 2 && size != 4) || count == 0 ||
	    !range_ok(off, size * count, c->kvm.run_size)) {
		vm_request_stop(c->vm, VM_EXIT_CRASH, "malformed port I/O exit", c);
		return;
	}
	for (i = 0; i < count; i++, data += size) {
		if (!bus_access(c->vm->pio, run->io.port, data, (uint32_t)size, wr) &&
		    log_get_level() >= LOG_DEBUG && ratelimit_ok(&c->unhandled_rl))
			log_debug("vCPU %u: unhandled port %s 0x%x size %u", c->kvm.id,
				  wr ? "write" : "read", run->io.port, (unsigned)size);
	}
}

static void vcpu_handle_mmio(struct vcpu *c)
{
	struct kvm_run *run = c->kvm.run;
	uint32_t len = run->mmio.len;

	if (len == 0 || len > 8) {
		vm_request_stop(c->vm, VM_EXIT_CRASH, "malformed MMIO exit", c);
		return;
	}
	if (!bus_access(c->vm->mmio, run->mmio.phys_addr, run->mmio.data, len,
			run->mmio.is_write) &&
	    log_get_level() >= LOG_DEBUG && ratelimit_ok(&c->unhandled_rl))
		log_debug("vCPU %u: unhandled MMIO %s 0x%llx len %u", c->kvm.id,
			  run->mmio.is_write ? "write" : "read",
			  (unsigned long long)run->mmio.phys_addr, len);
}

/* Handle one exit; false when the vCPU must stop. */
static bool vcpu_handle_exit(struct vcpu *c)
{
	struct kvm_run *run = c->kvm.run;
	char why[160];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		c->st.io++;
		vcpu_handle_io(c);
		return true;
	case KVM_EXIT_MMIO:
		c->st.mmio++;
		vcpu_handle_mmio(c);
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR:
		c->st.other++;
		return true;
	case KVM_EXIT_SHUTDOWN:
		snprintf(why, sizeof(why), "vCPU %u: triple fault (shutdown)", c->kvm.id);
		vm_request_stop(c->vm, VM_EXIT_CRASH, why, c);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(why, sizeof(why), "vCPU %u: VM entry failed (hardware reason 0x%llx)",
			 c->kvm.id,
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vm_request_stop(c->vm, VM_EXIT_CRASH, why, c);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(why, sizeof(why), "vCPU %u: KVM internal error (suberror %u)", c->kvm.id,
			 run->internal.suberror);
		vm_request_stop(c->vm, VM_EXIT_CRASH, why, c);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
			vm_request_stop(c->vm, VM_EXIT_POWEROFF, "guest powered off", NULL);
		} else if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
			vm_request_stop(c->vm, VM_EXIT_RESET, "guest requested a reset", NULL);
		} else {
			snprintf(why, sizeof(why), "vCPU %u: system event %u", c->kvm.id,
				 run->system_event.type);
			vm_request_stop(c->vm, VM_EXIT_CRASH, why, c);
		}
		return false;
	default:
		snprintf(why, sizeof(why), "vCPU %u: unhandled exit reason %u", c->kvm.id,
			 run->exit_reason);
		vm_request_stop(c->vm, VM_EXIT_CRASH, why, c);
		return false;
	}
}

/*
 * Auto-converge: for each 10 ms slice the vCPU runs, it sleeps so that it
 * runs only (100 - pct)% of the time: 10 ms * pct / (100 - pct). The
 * migration thread kicks the vCPUs every slice so even a guest that never
 * exits passes through here.
 */
/* The throttle (auto-converge) sleeps once per this much running, not once per exit. */
#define THROTTLE_RUN_NS (10 * 1000000ULL)

/*
 * Keep a throttled vCPU off the CPU for pct% of the time: after each stretch of
 * THROTTLE_RUN_NS or more, sleep for stretch * pct / (100 - pct). Sleeping per exit
 * instead would throttle an exit-heavy guest far more than asked. The sleep goes
 * on across the kick signals, and ends early for a pause or a stop.
 */
static void vcpu_throttle(struct vcpu *c)
{
	struct vm *vm = c->vm;
	int pct = atomic_load(&vm->throttle_pct);
	uint64_t now = time_ns(), until;

	if (pct <= 0 || !c->throttle_mark) {
		c->throttle_mark = pct > 0 ? now : 0;
		return;
	}
	if (now - c->throttle_mark < THROTTLE_RUN_NS)
		return;
	/*
	 * The stretch counts as at most two slices: the migration thread kicks every
	 * slice, so a longer one was spent halted or parked, not running, and must
	 * not be paid for with a sleep as long.
	 */
	until = now + MIN(now - c->throttle_mark, 2 * THROTTLE_RUN_NS) * (uint64_t)pct /
			      (uint64_t)(100 - pct);
	while (now < until && !atomic_load(&vm->stopping) && !atomic_load(&vm->pause_req)) {
		uint64_t left = MIN(until - now, THROTTLE_RUN_NS);
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)left };

		nanosleep(&ts, NULL); /* a kick cuts it short: loop */
		now = time_ns();
	}
	c->throttle_mark = now;
}

/* Wait here while the VM is paused; the loop thread counts parked vCPUs. */
static void vcpu_park(struct vcpu *c)
{
	struct vm *vm = c->vm;

	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->parked_cond);
	while (atomic_load(&vm->pause_req) && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	struct vm *vm = c->vm;
	char name[16];
	sigset_t set;

	snprintf(name, sizeof(name), "vcpu%u", c->kvm.id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, VM_SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	while (!atomic_load(&vm->stopping)) {
		uint64_t t0;
		int r;

		if (atomic_load(&vm->pause_req)) {
			vcpu_park(c);
			c->throttle_mark = 0; /* a pause is not running time */
			continue;
		}
		t0 = time_ns();
		r = kvm_vcpu_run(&c->kvm);
		c->st.run_ns += time_ns() - t0;
		if (r == -EINTR || r == -EAGAIN) {
			c->kvm.run->immediate_exit = 0;
			vcpu_throttle(c);
			continue;
		}
		if (r) {
			char why[128];

			snprintf(why, sizeof(why), "vCPU %u: KVM_RUN failed: %s", c->kvm.id,
				 strerror(-r));
			vm_request_stop(vm, VM_EXIT_CRASH, why, c);
			break;
		}
		c->st.exits++;
		if (!vcpu_handle_exit(c))
			break;
		vcpu_throttle(c);
	}
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

static void vcpu_kick(struct vcpu *c)
{
	/* immediate_exit covers a signal that lands just before KVM_RUN (api.rst). */
	c->kvm.run->immediate_exit = 1;
	pthread_kill(c->thread, VM_SIG_KICK);
}

/* --- creation --- */

static int vm_setup_devices(struct vm *vm, struct err *e)
{
	size_t i;
	int r;

	vm->dev_ctx = (struct dev_ctx){
		.pio = vm->pio,
		.mmio = vm->mmio,
		.gm = &vm->mem,
		.irq_set = vm_irq_set,
		.irq_opaque = vm,
		.request = vm_dev_request,
		.request_opaque = vm,
		.console_in_fd = vm->cfg.console_in_fd,
		/* With --virtio-console the 8250 output goes nowhere; the virtio port has it. */
		.console_out_fd = vm->cfg.virtio_console ? -1 : vm->cfg.console_out_fd,
		.watch_fd = vm_watch_fd,
		.unwatch_fd = vm_unwatch_fd,
		.msi_route = vm_msi_route,
		.irqfd = vm_irqfd,
		.ioeventfd = vm_ioeventfd,
	};
	for (i = 0; i < NDEV; i++) {
		r = vm_devices[i]->create(&vm->dev_ctx, &vm->dev[i], e);
		if (r)
			return err_prefix(e, r, "device %s", vm_devices[i]->name);
		if (vm_devices[i] == &pci_host_desc)
			vm->dev_ctx.pci = vm->dev[i];
	}
	/* virtio-pci devices, in slot order: disks, then the rest. */
	for (i = 0; i < vm->cfg.ndisks; i++) {
		r = virtio_blk_create(&vm->dev_ctx, &vm->cfg.disks[i], &vm->virtio[vm->nvirtio], e);
		if (r)
			return r;
		vm->nvirtio++;
	}
	for (i = 0; i < vm->cfg.nnets; i++) {
		r = virtio_net_create(&vm->dev_ctx, &vm->cfg.nets[i], &vm->virtio[vm->nvirtio], e);
		if (r)
			return r;
		vm->nvirtio++;
	}
	if (vm->cfg.rng) {
		r = virtio_rng_create(&vm->dev_ctx, &vm->virtio[vm->nvirtio], e);
		if (r)
			return r;
		vm->nvirtio++;
	}
	if (vm->cfg.virtio_console) {
		struct dev_ctx cc = vm->dev_ctx;

		cc.console_out_fd = vm->cfg.console_out_fd;
		r = virtio_console_create(&cc, &vm->virtio[vm->nvirtio], e);
		if (r)
			return r;
		vm->vcon = vm->virtio[vm->nvirtio++];
	}
	if (vm->cfg.balloon) {
		r = virtio_balloon_create(&vm->dev_ctx, &vm->cfg.balloon_opts,
					  &vm->virtio[vm->nvirtio], e);
		if (r)
			return r;
		vm->balloon = vm->virtio[vm->nvirtio++];
	}
	if (vm->cfg.vsock_cid) {
		struct vsock_opts vo = { .cid = vm->cfg.vsock_cid };

		r = virtio_vsock_create(&vm->dev_ctx, &vo, &vm->virtio[vm->nvirtio], e);
		if (r)
			return r;
		vm->nvirtio++;
	}
	return 0;
}

static int vm_setup_tables(struct vm *vm, struct err *e)
{
	uint32_t apic_ids[X86_MAX_VCPUS];
	struct acpi_config ac = {
		.ncpus = vm->nvcpus,
		.apic_ids = apic_ids,
		.ioapic_id = vm->nvcpus, /* after the LAPIC IDs */
		.ioapic_addr = X86_IOAPIC_BASE,
		.lapic_addr = X86_LAPIC_BASE,
	};
	size_t used;
	void *p;
	unsigned i;
	int r;

	for (i = 0; i < vm->nvcpus; i++)
		apic_ids[i] = i;
	p = gm_ptr(&vm->mem, X86_BIOS_START, X86_BIOS_END - X86_BIOS_START);
	if (!p)
		return err_set(e, EINVAL, "guest RAM too small for the ACPI tables");
	r = acpi_build(p, X86_BIOS_END - X86_BIOS_START, X86_BIOS_START, &ac, &used, e);
	if (r)
		return err_prefix(e, r, "ACPI tables");
	p = gm_ptr(&vm->mem, X86_MPTABLE_START, X86_BIOS_START - X86_MPTABLE_START);
	/* The MP table only fits for small guests; Linux uses ACPI anyway. */
	if (p && mptable_build(p, 1024, X86_MPTABLE_START, &ac, &used, NULL) &&
	    vm->nvcpus <= 16)
		log_warn("MP table not written");
	r = x86_setup_boot_tables(&vm->mem);
	if (r)
		return err_set(e, -r, "cannot write the boot page tables");
	return 0;
}

static int vm_setup_vcpus(struct vm *vm, struct err *e)
{
	struct kvm_cpuid2 *sup = NULL, *pol = NULL;
	unsigned i;
	int r;

	r = kvm_supported_cpuid(&vm->kvm, &sup, e);
	if (r)
		return r;
	vm->vcpus = calloc(vm->nvcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		free(sup);
		return err_set(e, ENOMEM, "out of memory");
	}
	vm->cfg.cpu.ncpus = vm->nvcpus;
	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *c = &vm->vcpus[i];

		c->vm = vm;
		c->kvm.fd = -1;
		c->unhandled_rl = (struct ratelimit)RATELIMIT_INIT(1000, 10);
		r = kvm_vcpu_create(&vm->kvm_vm, i, &c->kvm, e);
		if (r)
			break;
		r = cpuid_policy(sup, &vm->cfg.cpu, i, &pol, e);
		if (r)
			break;
		r = x86_vcpu_init(&vm->kvm, &c->kvm, pol, e);
		free(pol);
		if (r)
			break;
		/* The BSP starts at the kernel entry; APs wait for INIT/SIPI in the LAPIC. */
		if (i == 0 && !vm->cfg.restore_dir && !vm->cfg.incoming) {
			r = x86_vcpu_set_boot_regs(&c->kvm, &vm->boot, e);
			if (r)
				break;
		}
	}
	free(sup);
	return r;
}


/*
 * A restored VM's disks, as the snapshot captured them: an internal snapshot is
 * applied to its qcow2 disk; a frozen disk gets a fresh overlay for this VM in
 * DIR/overlays, so every restore of one snapshot writes its own file.
 */
static int vm_restore_disks(struct vm *vm, struct err *e)
{
	unsigned i;
	int r;

	for (i = 0; i < vm->cfg.ndisks; i++) {
		struct blk_opts *d = &vm->cfg.disks[i];

		if (!d->snap_mode || !strcmp(d->snap_mode, "none"))
			continue;
		if (!strcmp(d->snap_mode, "internal")) {
			struct image_open_opts io = { .format = IMAGE_FMT_QCOW2 };
			struct image *img;

			r = image_open(d->path, &io, &img, e);
			if (!r) {
				r = qcow2_snapshot_apply(img, d->snap_name ? d->snap_name : "", e);
				image_close(img);
			}
			if (r)
				return err_prefix(e, r, "restore: disk %s", d->path);
			continue;
		}
		{
			struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .backing = d->path };
			char dir[4096], path[4200];

			image_format_parse(d->format ? d->format : "raw", &co.backing_format);
			snprintf(dir, sizeof(dir), "%s/overlays", vm->cfg.restore_dir);
			if (mkdir(dir, 0700) < 0 && errno != EEXIST)
				return err_set(e, errno, "%s: %s", dir, strerror(errno));
			snprintf(path, sizeof(path), "%s/disk%u-%d-%llu.qcow2", dir, i, (int)getpid(),
				 (unsigned long long)time_ns());
			r = image_create(path, &co, e);
			if (r)
				return err_prefix(e, r, "restore: overlay for disk %s", d->path);
			d->path = strpool_dup(vm->cfg.strings, path);
			d->format = "qcow2";
			d->snap_mode = NULL;
		}
	}
	return 0;
}

struct vm *vm_create(const struct vm_config *cfg, struct err *e)
{
	struct snap_state snap = { 0 };
	struct mem_region regs[2];
	struct boot_opts bo;
	struct vm *vm;
	unsigned max;
	int i, n, r;

	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	vm->cfg = *cfg;
	vm->wake_fd = -1;
	vm->ep = -1;
	vm->kvm.fd = -1;
	vm->kvm_vm.fd = -1;
	vm->mem.fd = -1;
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_mutex_init(&vm->watch_lock, NULL);
	pthread_mutex_init(&vm->route_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	pthread_cond_init(&vm->parked_cond, NULL);
	vm->start_ns = time_ns();

	r = kvm_open(&vm->kvm, cfg->kvm_path ? cfg->kvm_path : "/dev/kvm", e);
	if (r)
		goto fail;
	max = (unsigned)MIN(vm->kvm.max_vcpus, X86_MAX_VCPUS);
	if (cfg->ncpus < 1 || cfg->ncpus > max) {
		err_set(e, EINVAL, "--cpus %u: this host allows 1 to %u vCPUs", cfg->ncpus, max);
		goto fail;
	}
	vm->nvcpus = cfg->ncpus;
	vm->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->ep = epoll_create1(EPOLL_CLOEXEC);
	vm->pio = bus_create("pio");
	vm->mmio = bus_create("mmio");
	if (vm->wake_fd < 0 || vm->ep < 0 || !vm->pio || !vm->mmio || vm_routes_init(vm)) {
		err_set(e, ENOMEM, "out of resources creating the VM");
		goto fail;
	}
	if (cfg->restore_dir) {
		char path[4096];

		r = snap_read_state(cfg->restore_dir, &snap, e);
		if (r)
			goto fail;
		if (snap.mem_size != cfg->mem.size) {
			err_set(e, EINVAL, "snapshot %s: memory size differs from vm.json",
				cfg->restore_dir);
			goto fail;
		}
		snprintf(path, sizeof(path), "%s/memory.bin", cfg->restore_dir);
		if (mem_create_from_file(&vm->mem, path, cfg->mem.size, cfg->restore_eager, e))
			goto fail;
	} else if (mem_create(&vm->mem, &cfg->mem, e)) {
		goto fail;
	}
	if (kvm_vm_create(&vm->kvm, &vm->kvm_vm, e))
		goto fail;
	r = kvm_vm_set_gsi_routing(&vm->kvm_vm, vm->routes, vm->nroutes);
	if (r) {
		err_set(e, -r, "KVM_SET_GSI_ROUTING: %s", strerror(-r));
		goto fail;
	}
	n = mem_regions(&vm->mem, regs);
	for (i = 0; i < n; i++) {
		r = kvm_vm_set_memory(&vm->kvm_vm, (uint32_t)i, regs[i].gpa, regs[i].size,
				      regs[i].host, 0);
		if (r) {
			err_set(e, -r, "KVM_SET_USER_MEMORY_REGION: %s", strerror(-r));
			goto fail;
		}
	}
	if (cfg->restore_dir && vm_restore_disks(vm, e))
		goto fail;
	if (vm_setup_devices(vm, e))
		goto fail;
	if (cfg->incoming) {
		/* Memory and state arrive from the migration stream (migrate_incoming_receive). */
		if (vm_setup_vcpus(vm, e))
			goto fail;
		return vm;
	}
	if (cfg->restore_dir) {
		/* Memory already holds the tables and the kernel; state comes from the snapshot. */
		if (vm_setup_vcpus(vm, e) || vm_load_sections(vm, &snap, e))
			goto fail;
		snap_state_free(&snap);
		log_info("restored from %s", cfg->restore_dir);
		return vm;
	}
	if (vm_setup_tables(vm, e))
		goto fail;
	bo = cfg->boot;
	bo.rsdp_gpa = X86_BIOS_START;
	if (x86_boot_load(&vm->mem, &bo, &vm->boot, e))
		goto fail;
	log_info("kernel %s loaded as %s, entry 0x%llx", bo.kernel, vm->boot.format,
		 (unsigned long long)vm->boot.entry);
	if (vm_setup_vcpus(vm, e))
		goto fail;
	return vm;
fail:
	snap_state_free(&snap);
	vm_destroy(vm);
	return NULL;
}

void vm_destroy(struct vm *vm)
{
	size_t i;

	if (!vm)
		return;
	for (i = 0; vm->vcpus && i < vm->nvcpus; i++)
		if (vm->vcpus[i].kvm.run || vm->vcpus[i].kvm.fd >= 0)
			kvm_vcpu_destroy(&vm->vcpus[i].kvm);
	free(vm->vcpus);
	for (i = vm->nvirtio; i-- > 0;)
		virtio_pci_destroy(vm->virtio[i]);
	for (i = NDEV; i-- > 0;)
		if (vm->dev[i])
			vm_devices[i]->destroy(vm->dev[i]);
	kvm_vm_destroy(&vm->kvm_vm);
	mem_destroy(&vm->mem);
	bus_destroy(vm->pio);
	bus_destroy(vm->mmio);
	if (vm->wake_fd >= 0)
		close(vm->wake_fd);
	if (vm->ep >= 0)
		close(vm->ep);
	while (vm->watches) {
		struct vm_watch *w = vm->watches;

		vm->watches = w->next;
		free(w);
	}
	free(vm->routes);
	free(vm->vmm_dirty_bits);
	free(vm->kvm_dirty_tmp);
	kvm_close(&vm->kvm);
	pthread_mutex_destroy(&vm->stop_lock);
	pthread_mutex_destroy(&vm->watch_lock);
	pthread_mutex_destroy(&vm->route_lock);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_cond_destroy(&vm->parked_cond);
	free(vm);
}

/* --- running --- */

struct vm_loop {
	struct vm *vm;
	struct console con;
	int sfd;
};

static void vm_on_wake(void *arg)
{
	struct vm_loop *l = arg;
	uint64_t v;

	/* The loop condition checks vm->stopping; just drain the counter. */
	if (read(l->vm->wake_fd, &v, sizeof(v)) < 0)
		return;
}

static void vm_on_signal(void *arg)
{
	struct vm_loop *l = arg;
	struct signalfd_siginfo si;
	char why[64];

	if (read(l->sfd, &si, sizeof(si)) != sizeof(si))
		return;
	snprintf(why, sizeof(why), "stopped by signal %s", sigabbrev_np((int)si.ssi_signo));
	vm_request_stop(l->vm, VM_EXIT_STOPPED, why, NULL);
}

static void vm_on_console(void *arg)
{
	struct vm_loop *l = arg;
	uint8_t buf[256];
	bool quit = false, eof = false;
	size_t n;

	n = console_read(&l->con, buf, sizeof(buf), &quit, &eof);
	if (quit) {
		vm_request_stop(l->vm, VM_EXIT_STOPPED, "stopped from the console (Ctrl-a x)", NULL);
		return;
	}
	console_queue(&l->con, buf, n);
	if (eof) {
		/* Input closed: the guest keeps running without it. */
		vm_unwatch_fd(l->vm, l->con.in_fd);
		l->con.in_fd = -1;
	}
}

enum vm_exit vm_run(struct vm *vm, char *reason, size_t reason_len, char *crash_dump,
		    size_t dump_len)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	struct vm_loop loop = { .vm = vm, .sfd = -1 };
	struct epoll_event evs[16];
	sigset_t stopsigs;
	unsigned i;

	console_init(&loop.con, vm->cfg.console_in_fd, vm->cfg.console_escape);
	sigemptyset(&sa.sa_mask);
	sigaction(VM_SIG_KICK, &sa, NULL);
	/* Stop signals are read from a signalfd; callers block them in every thread. */
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGINT);
	sigaddset(&stopsigs, SIGHUP);
	loop.sfd = signalfd(-1, &stopsigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (loop.sfd < 0 || vm_watch_fd(vm, vm->wake_fd, vm_on_wake, &loop) ||
	    vm_watch_fd(vm, loop.sfd, vm_on_signal, &loop)) {
		snprintf(reason, reason_len, "cannot set up the event loop: %s", strerror(errno));
		if (loop.sfd >= 0)
			close(loop.sfd);
		return VM_EXIT_ERROR;
	}
	/* A regular file or /dev/null cannot be polled: then there is no input. */
	if (loop.con.in_fd >= 0 && vm_watch_fd(vm, loop.con.in_fd, vm_on_console, &loop))
		loop.con.in_fd = -1;

	if (vm->cfg.control && control_attach(vm->cfg.control, vm))
		log_warn("control socket not served for this run");

	for (i = 0; i < vm->nvcpus; i++) {
		if (pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i])) {
			vm_request_stop(vm, VM_EXIT_ERROR, "cannot create a vCPU thread", NULL);
			break;
		}
		vm->vcpus[i].started = true;
	}

	while (!atomic_load(&vm->stopping)) {
		int n = epoll_wait(vm->ep, evs, ARRAY_SIZE(evs), console_pending(&loop.con) ? 10 : -1);
		int k;

		if (n < 0 && errno != EINTR)
			break;
		for (k = 0; k < n && !atomic_load(&vm->stopping); k++) {
			struct vm_watch *w = evs[k].data.ptr;

			if (w->cb)
				w->cb(w->arg);
		}
		/* Feed queued input as the UART's receive FIFO drains. */
		if (vm->vcon)
			console_flush(&loop.con, virtio_console_receive, vm->vcon);
		else
			console_flush(&loop.con, serial_receive, vm->dev[0]);
	}

	for (i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].started)
			vcpu_kick(&vm->vcpus[i]);
	for (i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
	}
	if (vm->cfg.control)
		control_detach(vm->cfg.control, vm);
	vm_unwatch_fd(vm, vm->wake_fd);
	vm_unwatch_fd(vm, loop.sfd);
	if (loop.con.in_fd >= 0)
		vm_unwatch_fd(vm, loop.con.in_fd);
	close(loop.sfd);
	snprintf(reason, reason_len, "%s", vm->reason);
	if (crash_dump && dump_len)
		snprintf(crash_dump, dump_len, "%s", vm->dump);
	return vm->exit;
}

/* --- control API --- */

int vm_watch(struct vm *vm, int fd, void (*cb)(void *arg), void *arg)
{
	return vm_watch_fd(vm, fd, cb, arg);
}

void vm_unwatch(struct vm *vm, int fd)
{
	vm_unwatch_fd(vm, fd);
}

bool vm_paused(const struct vm *vm)
{
	return vm->paused;
}

int vm_pause(struct vm *vm)
{
	unsigned i, started = 0;
	int r;

	if (vm->paused)
		return -EALREADY;
	atomic_store(&vm->pause_req, true);
	for (i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i].started) {
			vcpu_kick(&vm->vcpus[i]);
			started++;
		}
	}
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < started && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->parked_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	/* The guest must not see the time it spent paused (kvmclock stands still). */
	r = kvm_vm_get_clock(&vm->kvm_vm, &vm->paused_clock);
	if (r)
		log_warn("KVM_GET_CLOCK: %s; the guest clock will jump on resume", strerror(-r));
	vm->paused = true;
	return 0;
}

int vm_resume(struct vm *vm)
{
	int r;

	if (!vm->paused)
		return -EINVAL;
	r = kvm_vm_set_clock(&vm->kvm_vm, vm->paused_clock);
	if (r)
		log_warn("KVM_SET_CLOCK: %s", strerror(-r));
	vm->paused = false;
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

void vm_power_button(struct vm *vm)
{
	size_t i;

	for (i = 0; i < NDEV; i++)
		if (vm_devices[i] == &acpi_pm_desc && vm->dev[i])
			acpi_pm_power_button(vm->dev[i]);
}

void vm_stop(struct vm *vm, const char *reason)
{
	vm_request_stop(vm, VM_EXIT_STOPPED, reason, NULL);
}

void vm_reset(struct vm *vm)
{
	vm_request_stop(vm, VM_EXIT_RESTART, "reset requested by the operator", NULL);
}

const struct vm_config *vm_get_config(const struct vm *vm)
{
	return &vm->cfg;
}

unsigned vm_nvcpus(const struct vm *vm)
{
	return vm->nvcpus;
}

void vm_vcpu_stats(const struct vm *vm, unsigned i, struct vcpu_stats *st)
{
	/* Counters are written by their vCPU thread; a torn read only skews a statistic. */
	memset(st, 0, sizeof(*st));
	if (i < vm->nvcpus)
		*st = vm->vcpus[i].st;
}

int vm_kvm_stats(struct vm *vm, int vcpu, void (*cb)(void *arg, const char *name, uint64_t v),
		 void *arg)
{
	if (vcpu < 0)
		return kvm_stats_foreach(vm->kvm_vm.fd, cb, arg);
	if ((unsigned)vcpu >= vm->nvcpus)
		return -ENOENT;
	return kvm_stats_foreach(vm->vcpus[vcpu].kvm.fd, cb, arg);
}

unsigned vm_ndevices(const struct vm *vm)
{
	return vm->nvirtio;
}

const char *vm_device_name(const struct vm *vm, unsigned i)
{
	return i < vm->nvirtio ? vm->virtio[i]->ops->name : NULL;
}

int vm_device_stats(struct vm *vm, unsigned i, uint64_t out[6])
{
	struct virtio_dev *vd;

	if (i >= vm->nvirtio)
		return -ENOENT;
	vd = vm->virtio[i];
	pthread_mutex_lock(&vd->lock);
	out[0] = vd->stats.requests;
	out[1] = vd->stats.bytes_in;
	out[2] = vd->stats.bytes_out;
	out[3] = vd->stats.errors;
	out[4] = vd->stats.kicks;
	out[5] = vd->stats.interrupts;
	if (vd->ops->backend_stats) {
		struct virtio_stats b = { 0 };

		vd->ops->backend_stats(vd->priv, &b);
		out[0] += b.requests;
		out[1] += b.bytes_in;
		out[2] += b.bytes_out;
		out[3] += b.errors;
		out[4] += b.kicks;
		out[5] += b.interrupts;
	}
	pthread_mutex_unlock(&vd->lock);
	return 0;
}

uint64_t vm_uptime_ms(const struct vm *vm)
{
	return (time_ns() - vm->start_ns) / 1000000;
}

/* --- snapshots --- */

void vm_drain_devices(struct vm *vm)
{
	unsigned i;

	for (i = 0; i < vm->nvirtio; i++)
		if (vm->virtio[i]->ops->drain)
			vm->virtio[i]->ops->drain(vm->virtio[i]->priv);
}

int vm_save_sections(struct vm *vm, struct sbuf *secs, struct err *e)
{
	struct sbuf rec = { 0 };
	unsigned i;
	int r = 0;

	if (!vm->paused)
		return err_set(e, EBUSY, "the VM must be paused");
	/* Devices finish what is in flight so no request is half done in the state. */
	vm_drain_devices(vm);

	r = kvm_vm_save_state(&vm->kvm_vm, &rec);
	if (!r)
		r = snap_add(secs, SNAP_SEC_VM, 0, rec.data, rec.len);
	for (i = 0; !r && i < vm->nvcpus; i++) {
		rec.len = 0;
		r = kvm_vcpu_save_state(&vm->kvm, &vm->vcpus[i].kvm, &rec);
		if (!r)
			r = snap_add(secs, SNAP_SEC_VCPU, i, rec.data, rec.len);
	}
	if (r) {
		err_set(e, -r, "cannot read the vCPU/VM state from KVM: %s", strerror(-r));
		goto out;
	}
	for (i = 0; !r && i < NDEV; i++) {
		rec.len = 0;
		r = vm_devices[i]->save(vm->dev[i], &rec);
		if (!r)
			r = snap_add(secs, SNAP_SEC_DEVICE, i, rec.data, rec.len);
		if (r)
			err_set(e, -r, "device %s: cannot save its state", vm_devices[i]->name);
	}
	for (i = 0; !r && i < vm->nvirtio; i++) {
		rec.len = 0;
		r = virtio_save(vm->virtio[i], &rec);
		if (!r)
			r = snap_add(secs, SNAP_SEC_VIRTIO, i, rec.data, rec.len);
		if (r)
			err_set(e, -r, "%s: cannot save its state", vm->virtio[i]->ops->name);
	}
out:
	sbuf_free(&rec);
	return r;
}

/* Capture disk i at this instant per mode; fills the snapshot's copy of its options. */
static int vm_snapshot_disk(struct vm *vm, unsigned i, const char *dir, const char *mode,
			    struct blk_opts *rec, struct err *e)
{
	struct virtio_dev *vd = vm->virtio[i]; /* disks come first in vm->virtio */
	struct image *img = virtio_blk_image(vd);
	const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	char name[128], path[4096];
	int r;

	*rec = vm->cfg.disks[i];
	rec->snap_mode = "none";
	rec->snap_name = NULL;
	if (vm->cfg.disks[i].read_only)
		return 0; /* a read-only disk does not change: nothing to capture */
	if (!mode)
		mode = img->format == IMAGE_FMT_QCOW2 ? "internal" : "none";
	if (!strcmp(mode, "none")) {
		log_warn("snapshot: disk %s is not captured (shared storage assumed)", rec->path);
		return 0;
	}
	if (!strcmp(mode, "internal")) {
		if (img->format != IMAGE_FMT_QCOW2)
			return err_set(e, EINVAL, "disk %s is raw: internal snapshots need qcow2 "
				       "(use --disks overlay)", rec->path);
		snprintf(name, sizeof(name), "kvmm-%.100s", base);
		r = qcow2_snapshot_create(img, name, e);
		if (r)
			return err_prefix(e, r, "disk %s", rec->path);
		rec->snap_mode = "internal";
		rec->snap_name = strpool_dup(vm->cfg.strings, name);
		return 0;
	}
	/* overlay: the current file is frozen for the snapshot; the VM writes on in a new file. */
	{
		struct image_create_opts co = {
			.format = IMAGE_FMT_QCOW2,
			.backing = rec->path,
			.backing_format = img->format,
		};
		char *abs = strpool_own(vm->cfg.strings, realpath(rec->path, NULL));
		/* The switch closes img: keep what is needed from it. */
		enum image_format old_format = img->format;

		if (!abs)
			return err_set(e, errno, "disk %s: %s", rec->path, strerror(errno));
		co.backing = abs;
		snprintf(path, sizeof(path), "%s.after-%.100s.qcow2", abs, base);
		r = image_create(path, &co, e);
		if (!r)
			r = virtio_blk_switch_image(vd, path, e);
		if (r) {
			unlink(path);
			return err_prefix(e, r, "disk %s: overlay", rec->path);
		}
		log_info("snapshot: disk %s frozen; the VM now writes to %s", abs, path);
		rec->path = abs;
		rec->format = old_format == IMAGE_FMT_QCOW2 ? "qcow2" : "raw";
		rec->snap_mode = "overlay";
		vm->cfg.disks[i].path = strpool_dup(vm->cfg.strings, path);
		vm->cfg.disks[i].format = "qcow2";
		return 0;
	}
}

int vm_snapshot(struct vm *vm, const char *dir, const char *disk_mode, struct err *e)
{
	struct vm_config rec_cfg;
	struct sbuf secs = { 0 };
	char *json = NULL;
	unsigned i;
	int r;

	if (disk_mode && strcmp(disk_mode, "internal") && strcmp(disk_mode, "overlay") &&
	    strcmp(disk_mode, "none"))
		return err_set(e, EINVAL, "disk mode '%s': use internal, overlay or none", disk_mode);
	if (access(dir, F_OK) == 0)
		return err_set(e, EEXIST, "snapshot %s already exists", dir);
	r = vm_save_sections(vm, &secs, e);
	if (r)
		goto out;
	/* Disks at the same instant as the state (paused, drained). */
	rec_cfg = vm->cfg;
	for (i = 0; i < vm->cfg.ndisks; i++) {
		r = vm_snapshot_disk(vm, i, dir, disk_mode, &rec_cfg.disks[i], e);
		if (r)
			goto out;
	}
	json = snap_config_json(&rec_cfg);
	if (!json) {
		r = err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	r = snap_write_dir(dir, json, &secs, vm->mem.host, vm->mem.size, e);
out:
	free(json);
	sbuf_free(&secs);
	return r;
}

/* vhost-net writes guest RAM outside the dirty tracking: kvmm serves those queues meanwhile. */
static void vm_hold_vhost(struct vm *vm, bool hold)
{
	unsigned i;

	for (i = 0; i < vm->nvirtio; i++)
		if (vm->virtio[i]->ops->device_id == 1)
			virtio_net_allow_vhost(vm->virtio[i], !hold);
}

int vm_load_sections(struct vm *vm, const struct snap_state *snap, struct err *e)
{
	const struct snap_section_view *s;
	unsigned i;
	int r;

	/* Every section must be there before anything is applied. */
	if (!snap_find(snap, SNAP_SEC_VM, 0))
		return err_set(e, EINVAL, "snapshot: the VM state section is missing");
	for (i = 0; i < vm->nvcpus; i++)
		if (!snap_find(snap, SNAP_SEC_VCPU, i))
			return err_set(e, EINVAL, "snapshot: vCPU %u state is missing", i);
	for (i = 0; i < NDEV; i++)
		if (!snap_find(snap, SNAP_SEC_DEVICE, i))
			return err_set(e, EINVAL, "snapshot: device %s state is missing",
				       vm_devices[i]->name);
	for (i = 0; i < vm->nvirtio; i++)
		if (!snap_find(snap, SNAP_SEC_VIRTIO, i))
			return err_set(e, EINVAL, "snapshot: %s state is missing",
				       vm->virtio[i]->ops->name);

	/* The irqchip before the LAPICs that reference it; the clock with it. */
	s = snap_find(snap, SNAP_SEC_VM, 0);
	r = kvm_vm_load_state(&vm->kvm_vm, s->data, s->len);
	if (r)
		return err_set(e, -r, "snapshot: cannot restore the irqchip/PIT/clock: %s",
			       strerror(-r));
	for (i = 0; i < vm->nvcpus; i++) {
		s = snap_find(snap, SNAP_SEC_VCPU, i);
		r = kvm_vcpu_load_state(&vm->kvm, &vm->vcpus[i].kvm, s->data, s->len);
		if (r)
			return err_set(e, -r, "snapshot: cannot restore vCPU %u: %s", i,
				       r == -EINVAL ? "damaged or incompatible record" : strerror(-r));
	}
	for (i = 0; i < NDEV; i++) {
		s = snap_find(snap, SNAP_SEC_DEVICE, i);
		r = vm_devices[i]->load(vm->dev[i], s->data, s->len);
		if (r)
			return err_set(e, -r, "snapshot: device %s: bad state record",
				       vm_devices[i]->name);
	}
	for (i = 0; i < vm->nvirtio; i++) {
		s = snap_find(snap, SNAP_SEC_VIRTIO, i);
		r = virtio_load(vm->virtio[i], s->data, s->len);
		if (r)
			return err_set(e, -r, "snapshot: %s: bad state record",
				       vm->virtio[i]->ops->name);
	}
	/* NICs loaded running go back to vhost-net, from the record's ring positions. */
	vm_hold_vhost(vm, false);
	return 0;
}

/* --- live migration support --- */

struct guest_mem *vm_memory(struct vm *vm)
{
	return &vm->mem;
}

static int vm_set_dirty_logging(struct vm *vm, bool on)
{
	struct mem_region regs[2];
	int i, n = mem_regions(&vm->mem, regs), r;

	for (i = 0; i < n; i++) {
		r = kvm_vm_set_memory(&vm->kvm_vm, (uint32_t)i, regs[i].gpa, regs[i].size,
				      regs[i].host, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
		if (r)
			return r;
	}
	return 0;
}

int vm_dirty_start(struct vm *vm, struct err *e)
{
	size_t words = (size_t)((vm->mem.size / 4096 + 63) / 64);
	int r;

	if (!vm->vmm_dirty_bits)
		vm->vmm_dirty_bits = calloc(words, sizeof(uint64_t));
	if (!vm->kvm_dirty_tmp)
		vm->kvm_dirty_tmp = calloc(words, sizeof(uint64_t));
	if (!vm->vmm_dirty_bits || !vm->kvm_dirty_tmp)
		return err_set(e, ENOMEM, "out of memory for the dirty bitmaps");
	memset(vm->vmm_dirty_bits, 0, words * sizeof(uint64_t));
	atomic_store(&vm->mem.vmm_dirty, vm->vmm_dirty_bits);
	vm_hold_vhost(vm, true);
	r = vm_set_dirty_logging(vm, true);
	if (r) {
		atomic_store(&vm->mem.vmm_dirty, NULL);
		vm_hold_vhost(vm, false);
		return err_set(e, -r, "cannot enable KVM dirty page logging: %s", strerror(-r));
	}
	return 0;
}

/* OR the pages dirtied since the last call into bitmap (bit = 4 KiB of host RAM offset). */
int vm_dirty_collect(struct vm *vm, uint64_t *bitmap)
{
	struct mem_region regs[2];
	int i, n = mem_regions(&vm->mem, regs), r;
	size_t words = (size_t)((vm->mem.size / 4096 + 63) / 64), w;

	for (i = 0; i < n; i++) {
		uint64_t base = (uint64_t)(regs[i].host - vm->mem.host) / 4096, pages = regs[i].size / 4096, p;

		/* KVM writes the slot's whole bitmap (rounded up to 64 pages): no memset needed. */
		r = kvm_vm_get_dirty_log(&vm->kvm_vm, (uint32_t)i, pages, vm->kvm_dirty_tmp);
		if (r)
			return r;
		/* Slot-relative bits, shifted to the slot's place in host RAM. */
		if (base % 64 == 0) {
			/* Slots start on 256 KiB boundaries (layout.h): whole words at a time. */
			for (w = 0; w < (pages + 63) / 64; w++)
				bitmap[base / 64 + w] |= vm->kvm_dirty_tmp[w];
			continue;
		}
		for (p = 0; p < pages; p++)
			if (vm->kvm_dirty_tmp[p / 64] & (1ULL << (p % 64)))
				bitmap[(base + p) / 64] |= 1ULL << ((base + p) % 64);
	}
	for (w = 0; w < words; w++)
		bitmap[w] |= __atomic_exchange_n(&vm->vmm_dirty_bits[w], 0, __ATOMIC_RELAXED);
	return 0;
}

void vm_dirty_stop(struct vm *vm)
{
	/* The bitmap stays allocated: a device may still hold the pointer. */
	atomic_store(&vm->mem.vmm_dirty, NULL);
	vm_set_dirty_logging(vm, false);
	vm_hold_vhost(vm, false);
}

void vm_set_throttle(struct vm *vm, int pct)
{
	atomic_store(&vm->throttle_pct, pct < 0 ? 0 : pct > 99 ? 99 : pct);
}

void vm_kick_vcpus(struct vm *vm)
{
	unsigned i;

	for (i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].started)
			vcpu_kick(&vm->vcpus[i]);
}

void vm_set_migrating(struct vm *vm, bool on)
{
	atomic_store(&vm->migrating, on);
}

bool vm_migrating(const struct vm *vm)
{
	return atomic_load(&((struct vm *)vm)->migrating);
}

void vm_migrated(struct vm *vm, const char *reason)
{
	vm_request_stop(vm, VM_EXIT_STOPPED, reason, NULL);
}
