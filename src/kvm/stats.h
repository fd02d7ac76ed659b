/* SPDX-License-Identifier: MIT */
/* stats.h: reading KVM's binary statistics of a VM or vCPU fd. */
#ifndef KVMM_KVM_STATS_H
#define KVMM_KVM_STATS_H

#include <stdint.h>

/* Call cb for each statistic KVM exposes on obj_fd; -ENOTSUP/-EINVAL on old kernels. */
int kvm_stats_foreach(int obj_fd, void (*cb)(void *arg, const char *name, uint64_t value),
		      void *arg);

#endif
