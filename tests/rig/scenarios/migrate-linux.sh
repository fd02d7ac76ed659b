#!/bin/sh
# SPDX-License-Identifier: MIT
# Live-migrate a running Linux guest (virtio-blk and virtio-net attached) between two kvmm
# processes: the counter goes on at the destination, the source exits 0, and the ext4 file
# system the guest writes throughout checks clean after it unmounts it.
# rig-timeout: 300
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm
data=/tmp/rig-data-migrate-linux
rm -rf "$data" && mkdir -p "$data" || rig_fail "cannot create $data"
export KVMM_RUNTIME_DIR=$data/run
# The emulated host brings up no interfaces: migration goes over loopback.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null
disk=$data/disk.raw
dd if=/dev/zero of="$disk" bs=1M count=16 2>/dev/null
rig_kvmm_start dst 250 run --incoming tcp:127.0.0.1:4477 --net tap=kvmmmg1 --name dst --console stdio
dst_pid=$KVMM_PID
rig_kvmm_start src 250 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" --memory 512M \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_blk,failover,net_failover,virtio_net kvmm.test=count-disk,poweroff" \
	--disk path="$disk" --net tap=kvmmmg0 --name src --console stdio
src_pid=$KVMM_PID
rig_wait_console src '@@GUEST count 5' 1 150 || { rig_show src; rig_fail "the guest never counted to 5"; }
"$RIG_KVMM" migrate src tcp:127.0.0.1:4477 --wait >"$RIG_TMP/migrate.log" 2>&1
mrc=$?
cat "$RIG_TMP/migrate.log"
wait "$src_pid"; src_rc=$?
last=$(grep -a -o '@@GUEST count [0-9]*' "$RIG_TMP/src.console" | tail -n1 | awk '{print $3}')
KVMM_PID=$dst_pid
rig_wait_console dst '@@GUEST count-disk unmounted' 1 90 || { cat "$RIG_TMP/dst.log"; rig_fail "the migrated guest did not finish and unmount"; }
wait "$dst_pid"; dst_rc=$?
first=$(grep -a -o '@@GUEST count [0-9]*' "$RIG_TMP/dst.console" | head -n1 | awk '{print $3}')
echo "source exit $src_rc, last source count $last, first destination count $first, destination exit $dst_rc"
[ "$mrc" = 0 ] || rig_fail "kvmm migrate failed"
[ "$src_rc" = 0 ] || rig_fail "the source exited $src_rc"
[ "$dst_rc" = 0 ] || rig_fail "the destination exited $dst_rc"
[ -n "$first" ] && [ "$first" -gt "$last" ] ||
	rig_fail "counter did not continue (source $last, destination $first)"
if command -v e2fsck >/dev/null 2>&1; then
	e2fsck -fn "$disk" >"$RIG_TMP/fsck.log" 2>&1 || { cat "$RIG_TMP/fsck.log"; rig_fail "e2fsck found errors"; }
fi
rig_pass "migrated: source stopped at $last, destination went on at $first; file system clean"
