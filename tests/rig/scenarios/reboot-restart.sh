#!/bin/sh
# SPDX-License-Identifier: MIT
# A guest reboot with --reboot restart boots the guest again; SIGTERM then ends kvmm with 0.
# rig-timeout: 300
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

rig_kvmm_start guest 290 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.test=reboot" --cpus 1 --memory 512M --console stdio \
	--reboot restart
if rig_wait_console guest '@@GUEST init reached' 2 270; then
	echo "second boot seen; sending SIGTERM to kvmm"
	kill -TERM "$KVMM_PID"
	booted=2
else
	booted=$(rig_count guest '@@GUEST init reached')
fi
rig_kvmm_wait
rig_show guest
[ "$booted" = 2 ] || rig_fail "guest reached /init $booted times, want 2 (kvmm exit $KVMM_RC)"
[ "$KVMM_RC" = 0 ] || rig_fail "kvmm exit $KVMM_RC after SIGTERM, want 0"
rig_pass "guest rebooted and reached /init again"
