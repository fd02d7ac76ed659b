// SPDX-License-Identifier: MIT
/* stats.c: KVM's binary statistics (api.rst KVM_GET_STATS_FD) for the VM and each vCPU. */
#include "kvm/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm/kvm.h"

#ifdef KVM_GET_STATS_FD
int kvm_stats_foreach(int obj_fd, void (*cb)(void *arg, const char *name, uint64_t value),
		      void *arg)
{
	struct kvm_stats_header h;
	size_t dsz;
	uint8_t *descs = NULL;
	uint32_t i;
	int fd, r = 0;

	fd = ioctl(obj_fd, KVM_GET_STATS_FD, NULL);
	if (fd < 0)
		return -errno;
	if (pread(fd, &h, sizeof(h), 0) != sizeof(h) || h.num_desc > 4096 ||
	    h.name_size == 0 || h.name_size > 256) {
		r = -EIO;
		goto out;
	}
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = calloc(h.num_desc, dsz);
	if (!descs) {
		r = -ENOMEM;
		goto out;
	}
	if (pread(fd, descs, h.num_desc * dsz, h.desc_offset) != (ssize_t)(h.num_desc * dsz)) {
		r = -EIO;
		goto out;
	}
	for (i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (struct kvm_stats_desc *)(descs + i * dsz);
		uint64_t v = 0;

		/* The first value of each statistic (histograms are reported by their first bucket). */
		if (pread(fd, &v, sizeof(v), h.data_offset + d->offset) != sizeof(v))
			continue;
		d->name[h.name_size - 1] = '\0';
		cb(arg, d->name, v);
	}
out:
	free(descs);
	close(fd);
	return r;
}
#else
int kvm_stats_foreach(int obj_fd, void (*cb)(void *arg, const char *name, uint64_t value),
		      void *arg)
{
	return -ENOTSUP;
}
#endif
