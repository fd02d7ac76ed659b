/* SPDX-License-Identifier: MIT */
/* kvm_floor.c: the least a VMM can do per port-I/O exit: boots a PVH test guest (exits.elf)
 * in one memslot and runs a bare KVM_RUN loop, timing the guest's port-0x510 exits. */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HVM_START_MAGIC 0x336ec578
#define XEN_ELFNOTE_PHYS32_ENTRY 18
/* Boot structures in the guests' reserved 0x6000-0xefff window (guests/lib/layout.h). */
#define START_INFO_GPA 0x7000
#define MEMMAP_GPA 0x7800
#define CMDLINE_GPA 0x8000
#define TSS_GPA 0xfffbd000UL
#define EXIT_PORT 0x510
#define COM1 0x3f8

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

struct floor {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	uint8_t *mem;
	size_t mem_size;
	uint64_t entry;
};

static volatile sig_atomic_t expired;

static void on_alarm(int sig)
{
	(void)sig;
	expired = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static int fail(const char *what)
{
	fprintf(stderr, "kvm_floor: %s: %s\n", what, strerror(errno));
	return -1;
}

/* Copies the PT_LOAD segments into guest memory and finds the PVH entry point. */
static int load_elf(struct floor *f, const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail(path);
	uint8_t *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (img == MAP_FAILED)
		return fail("mmap ELF");
	size_t len = (size_t)st.st_size;
	const Elf64_Ehdr *eh = (const void *)img;
	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff > len || (len - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum) {
		fprintf(stderr, "kvm_floor: %s: not a 64-bit ELF\n", path);
		return -1;
	}
	f->entry = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const void *)(img + eh->e_phoff + i * sizeof(Elf64_Phdr));
		if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset) {
			fprintf(stderr, "kvm_floor: segment %u outside the file\n", i);
			return -1;
		}
		if (ph->p_type == PT_LOAD) {
			if (ph->p_paddr > f->mem_size || ph->p_memsz > f->mem_size - ph->p_paddr ||
			    ph->p_filesz > ph->p_memsz) {
				fprintf(stderr, "kvm_floor: segment %u outside guest RAM\n", i);
				return -1;
			}
			memcpy(f->mem + ph->p_paddr, img + ph->p_offset, ph->p_filesz);
			memset(f->mem + ph->p_paddr + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		} else if (ph->p_type == PT_NOTE) {
			/* Walk the notes for XEN_ELFNOTE_PHYS32_ENTRY ("Xen", 4- or 8-byte value). */
			size_t off = 0;
			const uint8_t *n = img + ph->p_offset;
			while (off + sizeof(Elf64_Nhdr) <= ph->p_filesz) {
				const Elf64_Nhdr *nh = (const void *)(n + off);
				size_t name = off + sizeof(*nh);
				size_t desc = name + ((nh->n_namesz + 3) & ~3u);
				size_t next = desc + ((nh->n_descsz + 3) & ~3u);
				if (next > ph->p_filesz)
					break;
				if (nh->n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh->n_namesz == 4 &&
				    !memcmp(n + name, "Xen", 4)) {
					uint64_t v = 0;
					memcpy(&v, n + desc, nh->n_descsz >= 8 ? 8 : 4);
					f->entry = nh->n_descsz >= 8 ? v : (uint32_t)v;
				}
				off = next;
			}
		}
	}
	munmap(img, len);
	if (!f->entry) {
		fprintf(stderr, "kvm_floor: %s has no PVH entry note\n", path);
		return -1;
	}
	return 0;
}

static void write_start_info(struct floor *f, const char *cmdline)
{
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = 1,
		.cmdline_paddr = CMDLINE_GPA,
		.memmap_paddr = MEMMAP_GPA,
		.memmap_entries = 2,
	};
	struct hvm_memmap_entry mm[2] = {
		{ .addr = 0, .size = 0x9fc00, .type = 1 },
		{ .addr = 0x100000, .size = f->mem_size - 0x100000, .type = 1 },
	};
	memcpy(f->mem + START_INFO_GPA, &si, sizeof(si));
	memcpy(f->mem + MEMMAP_GPA, mm, sizeof(mm));
	snprintf((char *)f->mem + CMDLINE_GPA, 0x1000, "%s", cmdline);
}

static int setup_vm(struct floor *f)
{
	f->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (f->kvm < 0)
		return fail("/dev/kvm");
	f->vm = ioctl(f->kvm, KVM_CREATE_VM, 0);
	if (f->vm < 0)
		return fail("KVM_CREATE_VM");
	/* Needed on VMX hosts before the first KVM_RUN; harmless elsewhere. */
	ioctl(f->vm, KVM_SET_TSS_ADDR, TSS_GPA);
	/* An in-kernel PIC/IOAPIC/LAPIC, as kvmm and QEMU have, so that the guest's 8259
	 * programming is absorbed in the kernel and only our port reaches user space. */
	if (ioctl(f->vm, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail("KVM_CREATE_IRQCHIP");
	f->mem = mmap(NULL, f->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
		      MAP_NORESERVE, -1, 0);
	if (f->mem == MAP_FAILED)
		return fail("mmap guest RAM");
	struct kvm_userspace_memory_region r = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = f->mem_size,
		.userspace_addr = (uint64_t)(uintptr_t)f->mem,
	};
	if (ioctl(f->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	f->vcpu = ioctl(f->vm, KVM_CREATE_VCPU, 0);
	if (f->vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	int run_size = ioctl(f->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	f->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->vcpu, 0);
	if (f->run == MAP_FAILED)
		return fail("mmap kvm_run");
	return 0;
}

/* The host's CPUID as KVM supports it: the guest needs at least LM to enable long mode. */
static int setup_cpuid(struct floor *f)
{
	int n = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return fail("calloc");
	c->nent = (uint32_t)n;
	if (ioctl(f->kvm, KVM_GET_SUPPORTED_CPUID, c) < 0)
		return fail("KVM_GET_SUPPORTED_CPUID");
	if (ioctl(f->vcpu, KVM_SET_CPUID2, c) < 0)
		return fail("KVM_SET_CPUID2");
	free(c);
	return 0;
}

/* PVH entry state: 32-bit protected mode, flat segments, paging off, EBX = start info. */
static int setup_regs(struct floor *f)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	if (ioctl(f->vcpu, KVM_GET_SREGS, &s) < 0)
		return fail("KVM_GET_SREGS");
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x8, .type = 0xb,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	struct kvm_segment data = code;
	data.selector = 0x10;
	data.type = 0x3;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.cr0 = 0x11; /* PE, ET */
	s.cr4 = 0;
	s.efer = 0;
	if (ioctl(f->vcpu, KVM_SET_SREGS, &s) < 0)
		return fail("KVM_SET_SREGS");
	memset(&r, 0, sizeof(r));
	r.rip = f->entry;
	r.rbx = START_INFO_GPA;
	r.rflags = 0x2;
	if (ioctl(f->vcpu, KVM_SET_REGS, &r) < 0)
		return fail("KVM_SET_REGS");
	return 0;
}

struct result {
	uint64_t exits; /* port-0x510 writes seen */
	uint64_t other; /* every other exit to user space */
	uint64_t t_first, t_last; /* CLOCK_MONOTONIC_RAW at the first and last 0x510 exit */
};

/* The vCPU loop: one switch, the smallest device model the guest needs (COM1 output, a
 * line-status register that is always ready), and a stop once the guest said SUCCESS. */
static int run_loop(struct floor *f, struct result *res, double timeout_s)
{
	char line[256];
	size_t len = 0;
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART: KVM_RUN gets EINTR */
	sigaction(SIGALRM, &sa, NULL);
	struct itimerspec it = { .it_value = { .tv_sec = (time_t)timeout_s + 1 } };
	timer_t tm;
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
	if (timer_create(CLOCK_MONOTONIC, &sev, &tm) < 0 || timer_settime(tm, 0, &it, NULL) < 0)
		return fail("timer");

	for (;;) {
		if (ioctl(f->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR && !expired)
				continue;
			if (expired) {
				fprintf(stderr, "kvm_floor: timed out after %.0f s\n", timeout_s);
				return -1;
			}
			return fail("KVM_RUN");
		}
		struct kvm_run *r = f->run;
		if (r->exit_reason == KVM_EXIT_IO) {
			uint8_t *data = (uint8_t *)r + r->io.data_offset;
			if (r->io.port == EXIT_PORT && r->io.direction == KVM_EXIT_IO_OUT) {
				uint64_t t = now_ns();
				if (!res->exits++)
					res->t_first = t;
				res->t_last = t;
				continue;
			}
			res->other++;
			if (r->io.direction == KVM_EXIT_IO_IN) {
				/* LSR: transmitter empty; everything else reads as absent. */
				memset(data, r->io.port == COM1 + 5 ? 0x60 : 0xff, r->io.size * r->io.count);
			} else if (r->io.port == COM1) {
				for (uint32_t i = 0; i < r->io.count; i++) {
					char ch = (char)data[i * r->io.size];
					putchar(ch);
					if (ch != '\n') {
						if (len < sizeof(line) - 1)
							line[len++] = ch;
						continue;
					}
					line[len] = 0;
					len = 0;
					if (!strcmp(line, "SUCCESS") || !strncmp(line, "FAIL: ", 6)) {
						fflush(stdout);
						return line[0] == 'S' ? 0 : 1;
					}
				}
			} else if (r->io.port == 0x64) {
				printf("kvm_floor: guest reset through the i8042\n");
				return 1;
			}
			continue;
		}
		res->other++;
		switch (r->exit_reason) {
		case KVM_EXIT_MMIO:
			if (!r->mmio.is_write)
				memset(r->mmio.data, 0xff, sizeof(r->mmio.data));
			continue;
		case KVM_EXIT_HLT:
			printf("kvm_floor: guest halted\n");
			return 1;
		case KVM_EXIT_SHUTDOWN:
			printf("kvm_floor: guest shut down (triple fault)\n");
			return 1;
		case KVM_EXIT_INTERNAL_ERROR:
			fprintf(stderr, "kvm_floor: KVM_EXIT_INTERNAL_ERROR suberror %u\n",
				r->internal.suberror);
			return -1;
		default:
			fprintf(stderr, "kvm_floor: unexpected exit reason %u\n", r->exit_reason);
			return -1;
		}
	}
}

int main(int argc, char **argv)
{
	struct floor f = { .mem_size = 128 << 20 };
	struct result res = { 0 };
	const char *cmdline = "n=200000";
	double timeout_s = 300;
	int c;

	while ((c = getopt(argc, argv, "c:m:t:h")) != -1) {
		switch (c) {
		case 'c': cmdline = optarg; break;
		case 'm': f.mem_size = (size_t)strtoull(optarg, NULL, 0) << 20; break;
		case 't': timeout_s = atof(optarg); break;
		default:
			fprintf(stderr, "usage: kvm_floor [-c CMDLINE] [-m MiB] [-t SEC] GUEST.elf\n");
			return 2;
		}
	}
	if (optind != argc - 1 || f.mem_size < (2 << 20)) {
		fprintf(stderr, "usage: kvm_floor [-c CMDLINE] [-m MiB] [-t SEC] GUEST.elf\n");
		return 2;
	}
	if (setup_vm(&f) < 0 || load_elf(&f, argv[optind]) < 0 || setup_cpuid(&f) < 0 ||
	    setup_regs(&f) < 0)
		return 1;
	write_start_info(&f, cmdline);

	uint64_t t0 = now_ns(), tsc0 = rdtsc();
	int rc = run_loop(&f, &res, timeout_s);
	uint64_t t1 = now_ns(), tsc1 = rdtsc();
	if (rc < 0)
		return 1;
	/* The TSC rate over the whole run, to turn the guest's own rdtsc count into time. */
	double tsc_hz = (double)(tsc1 - tsc0) * 1e9 / (double)(t1 - t0);
	double per = res.exits > 1 ? (double)(res.t_last - res.t_first) / (double)(res.exits - 1) : 0;
	printf("floor: exits=%lu other_exits=%lu first_to_last_ns=%lu ns_per_exit=%.1f "
	       "total_ns=%lu tsc_hz=%.0f\n",
	       (unsigned long)res.exits, (unsigned long)res.other,
	       (unsigned long)(res.t_last - res.t_first), per, (unsigned long)(t1 - t0), tsc_hz);
	return rc;
}
