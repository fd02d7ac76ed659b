#!/bin/sh
# SPDX-License-Identifier: MIT
# Two vCPUs: the guest brings up its second CPU and reports cpus=2.
# rig-timeout: 180
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

rig_kvmm guest 170 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.test=poweroff" --cpus 2 --memory 512M --console stdio
rig_show guest
rig_expect_boot guest 0
cpus=$(grep -o '@@GUEST cpus=[0-9]*' "$RIG_TMP/guest.console" | head -n 1 | cut -d= -f2)
[ "$cpus" = 2 ] || rig_fail "guest sees cpus=${cpus:-?}, want 2"
rig_pass "guest sees 2 CPUs"
