#!/bin/sh
# SPDX-License-Identifier: MIT
# kvmm decompresses the bzImage itself (--decompress) and boots the vmlinux inside.
# rig-timeout: 180
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

rig_kvmm guest 170 run --kernel "$RIG_BZIMAGE" --decompress --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.test=poweroff" --cpus 1 --memory 512M --console stdio
rig_show guest
rig_expect_boot guest 0
rig_pass "decompressed bzImage booted to /init and powered off in ${KVMM_SECS}s"
