/* SPDX-License-Identifier: MIT */
/* config.h: freeing a struct vm_config that snap_parse_config filled, for the fuzz harnesses. */
#ifndef KVMM_TESTS_FUZZ_CONFIG_H
#define KVMM_TESTS_FUZZ_CONFIG_H

#include <stdlib.h>
#include <string.h>

#include "vmm/vm.h"

/* snap_parse_config's strings are kept for the process's life; free them per input. */
static inline void free_config(struct vm_config *cfg)
{
	unsigned i;

	free((void *)cfg->boot.cmdline);
	free((void *)cfg->boot.kernel);
	free((void *)cfg->boot.initrd);
	for (i = 0; i < VM_MAX_DISKS; i++) {
		free((void *)cfg->disks[i].path);
		free((void *)cfg->disks[i].format);
		free((void *)cfg->disks[i].serial);
		free((void *)cfg->disks[i].snap_mode);
		free((void *)cfg->disks[i].snap_name);
	}
	memset(cfg, 0, sizeof(*cfg));
}

#endif
