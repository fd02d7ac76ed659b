/* SPDX-License-Identifier: MIT */
/* mem.h: guest RAM (memfd backed) and the only checked way to reach it. */
#ifndef KVMM_VMM_MEM_H
#define KVMM_VMM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/*
 * AUTO (default): transparent huge pages when the host offers them: the memfd
 * when shmem THP is enabled, else anonymous memory (THP for anonymous memory is
 * on by default on most hosts). NONE: memfd, small pages. THP: like AUTO, and a
 * warning when the host has THP off. HUGETLBFS: reserved 2 MiB pages.
 */
enum mem_hugepages { MEM_HUGE_AUTO, MEM_HUGE_NONE, MEM_HUGE_THP, MEM_HUGE_HUGETLBFS };

/*
 * Guest RAM sizes accepted from the command line, a snapshot or a migration
 * stream: the boot structures need 2 MiB; 1 TiB is a sane cap.
 */
#define MEM_SIZE_MIN (16ULL << 20)
#define MEM_SIZE_MAX (1ULL << 40)

struct mem_opts {
	uint64_t size; /* bytes of RAM, multiple of 4 KiB (2 MiB with hugetlbfs) */
	enum mem_hugepages huge;
	bool merge; /* KSM: MADV_MERGEABLE */
	bool prefault; /* MAP_POPULATE */
};

/*
 * Guest RAM is one memfd mapped once in the host. Two guest-physical regions
 * alias it: [0, low_size) and, for guests larger than the PCI hole start,
 * [4 GiB, 4 GiB + high_size), backed by host[low_size ...].
 */
struct guest_mem {
	int fd;
	uint8_t *host;
	uint64_t size;
	uint64_t low_size;
	uint64_t high_size;
	uint64_t page_size;
	bool anon;       /* anonymous private memory (fd is -1): no shared backing file */
	size_t map_len;  /* length of the host mapping (RAM rounded up to 2 MiB) */
	/*
	 * While a migration runs: one bit per 4 KiB of host RAM offset, set by
	 * devices that write guest memory (KVM logs only the vCPUs' writes).
	 */
	uint64_t *_Atomic vmm_dirty;
};

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

int mem_create(struct guest_mem *gm, const struct mem_opts *opts, struct err *e);
/*
 * Guest RAM from a snapshot's memory file: a private mapping, so pages are
 * read on first touch (lazy restore) and the guest's writes never reach the
 * file; eager populates it all up front.
 */
int mem_create_from_file(struct guest_mem *gm, const char *path, uint64_t size, bool eager,
			 struct err *e);
void mem_destroy(struct guest_mem *gm);
/* Up to 2 regions; returns the count. */
int mem_regions(const struct guest_mem *gm, struct mem_region out[2]);
/*
 * Host pointer for [gpa, gpa+len) when the whole range is RAM in a single
 * region (no wrap, no crossing the hole); NULL otherwise. len 0 is refused.
 */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);
/* Record a VMM write to guest RAM at host pointer p (no-op unless tracking). */
void gm_mark_dirty(const struct guest_mem *gm, const void *p, uint64_t len);
/* Record VMM writes for every writable iovec of a request. */
struct iovec;
void gm_mark_dirty_iov(const struct guest_mem *gm, const struct iovec *iov, unsigned n);

/* Highest guest-physical address + 1 that is RAM. */
uint64_t gm_end(const struct guest_mem *gm);

#endif
