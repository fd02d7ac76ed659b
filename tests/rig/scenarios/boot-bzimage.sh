#!/bin/sh
# SPDX-License-Identifier: MIT
# Linux from a bzImage with an initramfs reaches /init and powers off: kvmm exits 0.
# rig-timeout: 180
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

rig_kvmm guest 170 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.test=poweroff" --cpus 1 --memory 512M --console stdio
rig_show guest
rig_expect_boot guest 0
rig_pass "bzImage booted to /init and powered off in ${KVMM_SECS}s"
