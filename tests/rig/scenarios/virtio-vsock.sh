#!/bin/sh
# SPDX-License-Identifier: MIT
# --vsock cid=3: the guest's virtio-vsock driver and the host's vhost-vsock carry a stream
# each way (host -> guest port 1234, guest -> host port 5678), using the vsock-peer helper
# (tests/rig/vsock-peer.c). Skipped when the host has no /dev/vhost-vsock or no helper.
# rig-timeout: 300
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

[ -e /dev/vhost-vsock ] || modprobe vhost_vsock 2>/dev/null
[ -e /dev/vhost-vsock ] || rig_skip "no /dev/vhost-vsock in the host (vhost_vsock not loaded)"
peer=$RIG_HOME/vsock-peer
[ -x "$peer" ] || peer=$RIG_HOME/scenarios/vsock-peer
[ -x "$peer" ] || rig_skip "no vsock-peer helper in $RIG_HOME"

# Without vhost-vsock access the error must say what to do.
"$RIG_KVMM" run --kernel "$RIG_BZIMAGE" --vsock cid=2 >/dev/null 2>"$RIG_TMP/badcid.log"
grep -q "cid=N with N from 3" "$RIG_TMP/badcid.log" || rig_fail "--vsock cid=2 was not refused"

"$peer" listen 5678 >"$RIG_TMP/host-listen.out" 2>&1 &
hl=$!
echo "$hl" >>"$RIG_TMP/.pids"

mods=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci
mods=$mods,vsock,vmw_vsock_virtio_transport_common,vmw_vsock_virtio_transport
rig_kvmm_start guest 280 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=$mods kvmm.test=virtio-vsock,poweroff" \
	--cpus 1 --memory 256M --console stdio --vsock cid=3

reply=
if rig_wait_console guest '@@GUEST vsock listening' 1 240; then
	reply=$("$peer" connect 3 1234 ping-from-host)
	echo "host: $reply"
fi
rig_kvmm_wait
kill "$hl" 2>/dev/null
rig_show guest
echo "host listener: $(cat "$RIG_TMP/host-listen.out")"
rig_expect_boot guest 0
[ "$reply" = "reply pong:ping-from-host" ] || rig_fail "host -> guest: got '$reply'"
grep -q '^got ping-from-guest' "$RIG_TMP/host-listen.out" || rig_fail "guest -> host: nothing"
[ "$(rig_count guest '@@GUEST step virtio-vsock pass')" -ge 1 ] || rig_fail "guest step failed"
rig_pass "vsock streams both ways through vhost-vsock in ${KVMM_SECS}s"
