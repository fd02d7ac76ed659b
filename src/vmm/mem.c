// SPDX-License-Identifier: MIT
/* mem.c: guest RAM backed by a memfd, and the checked guest-physical accessors. */
#include "vmm/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdatomic.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <linux/memfd.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"

#define HUGE_2M (2 * MiB)

/* True when the named THP knob in sysfs selects one of the values that allow madvise. */
static bool thp_mode_allows(const char *knob)
{
	char path[128], buf[256];
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), "/sys/kernel/mm/transparent_hugepage/%s", knob);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f))
		ok = strstr(buf, "[always]") || strstr(buf, "[madvise]") || strstr(buf, "[advise]") ||
		     strstr(buf, "[within_size]") || strstr(buf, "[force]");
	fclose(f);
	return ok;
}

/* Reserve address space aligned to 2 MiB so guest-physical 2 MiB pages map host huge pages. */
static void *reserve_aligned(size_t len)
{
	size_t total = len + HUGE_2M;
	uint8_t *p = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		return NULL;
	a = ALIGN_UP((uintptr_t)p, HUGE_2M);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	if ((uintptr_t)p + total > a + len)
		munmap((void *)(a + len), (uintptr_t)p + total - (a + len));
	return (void *)a;
}

int mem_create(struct guest_mem *gm, const struct mem_opts *o, struct err *e)
{
	unsigned int mfd_flags = MFD_CLOEXEC;
	int mmap_flags = MAP_SHARED | MAP_FIXED;
	bool thp = false;
	void *p, *want;
	int ret;

	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	gm->page_size = 4096;
	if (o->huge == MEM_HUGE_HUGETLBFS) {
		mfd_flags |= MFD_HUGETLB | MFD_HUGE_2MB;
		gm->page_size = HUGE_2M;
	}
	if (o->size == 0 || o->size % gm->page_size)
		return err_set(e, EINVAL, "memory size %llu is not a multiple of %llu bytes",
			       (unsigned long long)o->size, (unsigned long long)gm->page_size);
	gm->map_len = ALIGN_UP(o->size, HUGE_2M);
	if (o->huge == MEM_HUGE_AUTO || o->huge == MEM_HUGE_THP) {
		thp = true;
		/* shmem THP is off on most hosts; anonymous THP usually is not. */
		if (!thp_mode_allows("shmem_enabled")) {
			gm->anon = thp_mode_allows("enabled");
			if (!gm->anon) {
				thp = false;
				if (o->huge == MEM_HUGE_THP)
					log_warn("transparent huge pages are disabled on this host");
			}
		}
	}

	want = reserve_aligned(gm->map_len);
	if (!want)
		return err_set(e, ENOMEM, "cannot reserve %llu MiB of address space for guest RAM",
			       (unsigned long long)(o->size / MiB));
	if (gm->anon) {
		p = mmap(want, gm->map_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE |
				 (o->prefault ? MAP_POPULATE : 0), -1, 0);
		if (p == MAP_FAILED) {
			ret = err_set(e, errno, "cannot map %llu MiB of guest RAM: %s",
				      (unsigned long long)(o->size / MiB), strerror(errno));
			munmap(want, gm->map_len);
			return ret;
		}
		goto mapped;
	}
	gm->fd = memfd_create("kvmm-guest-ram", mfd_flags);
	if (gm->fd < 0) {
		ret = err_set(e, errno, "memfd_create for guest RAM%s: %s",
			      o->huge == MEM_HUGE_HUGETLBFS ? " (hugetlbfs)" : "", strerror(errno));
		munmap(want, gm->map_len);
		return ret;
	}
	if (ftruncate(gm->fd, (off_t)gm->map_len) < 0) {
		ret = err_set(e, errno, "cannot size guest RAM to %llu MiB: %s",
			      (unsigned long long)(o->size / MiB), strerror(errno));
		goto fail;
	}
	if (o->prefault)
		mmap_flags |= MAP_POPULATE;
	/*
	 * Huge pages are reserved at mmap time so a shortage fails here with a
	 * clear error instead of a SIGBUS on the guest's first touch.
	 */
	if (o->huge != MEM_HUGE_HUGETLBFS)
		mmap_flags |= MAP_NORESERVE;
	p = mmap(want, gm->map_len, PROT_READ | PROT_WRITE, mmap_flags, gm->fd, 0);
	if (p == MAP_FAILED) {
		ret = err_set(e, errno, "cannot map %llu MiB of guest RAM%s: %s",
			      (unsigned long long)(o->size / MiB),
			      o->huge == MEM_HUGE_HUGETLBFS ? " (are enough 2 MiB huge pages reserved?)" : "",
			      strerror(errno));
		goto fail;
	}
mapped:
	gm->host = p;
	gm->size = o->size;
	gm->low_size = MIN(o->size, X86_MEM_HOLE_START);
	gm->high_size = o->size - gm->low_size;

	/* Advice failures are not fatal: the guest runs, only less well. */
	if (thp && madvise(p, gm->map_len, MADV_HUGEPAGE) < 0)
		log_warn("transparent huge pages unavailable: %s", strerror(errno));
	if (o->merge && madvise(p, gm->map_len, MADV_MERGEABLE) < 0)
		log_warn("KSM (MADV_MERGEABLE) unavailable: %s", strerror(errno));
	/* Guest RAM never belongs in a core dump of the VMM. */
	madvise(p, gm->map_len, MADV_DONTDUMP);
	return 0;
fail:
	munmap(want, gm->map_len);
	close(gm->fd);
	gm->fd = -1;
	return ret;
}

int mem_create_from_file(struct guest_mem *gm, const char *path, uint64_t size, bool eager,
			 struct err *e)
{
	struct stat st;
	void *p;

	memset(gm, 0, sizeof(*gm));
	gm->page_size = 4096;
	gm->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (gm->fd < 0)
		return err_set(e, errno, "%s: %s", path, strerror(errno));
	if (fstat(gm->fd, &st) < 0 || (uint64_t)st.st_size != size) {
		close(gm->fd);
		gm->fd = -1;
		return err_set(e, EINVAL, "%s: size does not match the snapshot's memory size", path);
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_NORESERVE | (eager ? MAP_POPULATE : 0), gm->fd, 0);
	if (p == MAP_FAILED) {
		int en = errno;

		close(gm->fd);
		gm->fd = -1;
		return err_set(e, en, "cannot map %s: %s", path, strerror(en));
	}
	gm->host = p;
	gm->size = size;
	gm->low_size = MIN(size, X86_MEM_HOLE_START);
	gm->high_size = size - gm->low_size;
	madvise(p, size, MADV_DONTDUMP);
	return 0;
}

void mem_destroy(struct guest_mem *gm)
{
	if (gm->host)
		munmap(gm->host, gm->map_len ? gm->map_len : gm->size);
	if (gm->fd >= 0)
		close(gm->fd);
	gm->host = NULL;
	gm->fd = -1;
}

int mem_regions(const struct guest_mem *gm, struct mem_region out[2])
{
	int n = 0;

	if (gm->low_size)
		out[n++] = (struct mem_region){ 0, gm->low_size, gm->host };
	if (gm->high_size)
		out[n++] = (struct mem_region){ X86_MEM_HIGH_START, gm->high_size,
						gm->host + gm->low_size };
	return n;
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	if (!gm->host || len == 0)
		return NULL;
	if (range_ok(gpa, len, gm->low_size))
		return gm->host + gpa;
	if (gpa >= X86_MEM_HIGH_START && range_ok(gpa - X86_MEM_HIGH_START, len, gm->high_size))
		return gm->host + gm->low_size + (gpa - X86_MEM_HIGH_START);
	return NULL;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	void *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

void gm_mark_dirty(const struct guest_mem *gm, const void *p, uint64_t len)
{
	uint64_t *bm = atomic_load(&((struct guest_mem *)gm)->vmm_dirty);
	uint64_t off, first, last, pg;

	if (!bm || !len || (const uint8_t *)p < gm->host)
		return;
	off = (uint64_t)((const uint8_t *)p - gm->host);
	if (!range_ok(off, len, gm->size))
		return;
	first = off / 4096;
	last = (off + len - 1) / 4096;
	for (pg = first; pg <= last; pg++)
		__atomic_fetch_or(&bm[pg / 64], 1ULL << (pg % 64), __ATOMIC_RELAXED);
}

void gm_mark_dirty_iov(const struct guest_mem *gm, const struct iovec *iov, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		gm_mark_dirty(gm, iov[i].iov_base, iov[i].iov_len);
}

uint64_t gm_end(const struct guest_mem *gm)
{
	return gm->high_size ? X86_MEM_HIGH_START + gm->high_size : gm->low_size;
}
