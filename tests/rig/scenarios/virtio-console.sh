#!/bin/sh
# SPDX-License-Identifier: MIT
# --virtio-console: the stock virtio_console driver binds port 0 (hvc0); a line the guest
# writes there reaches kvmm's console output, a line written to kvmm's console input reaches
# the guest, and the guest powers off (kvmm exits 0). The serial output is dropped, so the
# guest step reports on hvc0.
# rig-timeout: 240
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

fifo="$RIG_TMP/vcon.in"
rm -f "$fifo"
mkfifo "$fifo" || rig_fail "mkfifo"
exec 3<>"$fifo" # held open so kvmm's input never sees end of file

mods=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_console
lim=230
echo "+ kvmm run --virtio-console ... (limit ${lim}s, input from a fifo)"
_t0=$(rig_now_cs) _lim=$lim
timeout -s TERM -k 10 "$lim" "$RIG_KVMM" run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=$mods kvmm.test=virtio-console,poweroff" \
	--cpus 1 --memory 256M --console stdio --virtio-console \
	<"$fifo" >"$RIG_TMP/guest.console" 2>"$RIG_TMP/guest.log" &
KVMM_PID=$!
echo "$KVMM_PID" >>"$RIG_TMP/.pids"

if rig_wait_console guest '@@VCON hello from hvc0' 1 200; then
	echo "ping-from-host" >&3
fi
rig_kvmm_wait
exec 3>&-
grep -a '@@' "$RIG_TMP/guest.console" | tr -d '\r' | sed 's/^/guest: /'
[ "$KVMM_TIMEDOUT" = 1 ] && rig_fail "kvmm still running after its time limit"
[ "$(rig_count guest '@@VCON hello from hvc0 driver=virtio_console')" -ge 1 ] ||
	rig_fail "no line from the guest's hvc0 on kvmm's output"
[ "$(rig_count guest '@@VCON got=ping-from-host')" -ge 1 ] ||
	rig_fail "the host's input line did not reach the guest's hvc0"
[ "$(rig_count guest '@@GUEST init reached')" = 0 ] ||
	rig_fail "serial output was not dropped with --virtio-console"
[ "$KVMM_RC" = 0 ] || rig_fail "kvmm exit $KVMM_RC, want 0"
rig_pass "hvc0 output and input through virtio-console in ${KVMM_SECS}s"
