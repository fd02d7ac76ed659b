#!/bin/sh
# SPDX-License-Identifier: MIT
# A guest reboot with --reboot exit ends kvmm with exit status 4.
# rig-timeout: 180
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

rig_kvmm guest 170 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.test=reboot" --cpus 1 --memory 512M --console stdio \
	--reboot exit
rig_show guest
rig_expect_boot guest 4
n=$(rig_count guest '@@GUEST init reached')
[ "$n" = 1 ] || rig_fail "guest booted $n times, want 1"
rig_pass "guest reboot ended kvmm with exit 4"
