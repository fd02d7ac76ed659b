#!/bin/sh
# SPDX-License-Identifier: MIT
# Snapshot a running Linux guest (virtio-blk and virtio-net attached) and restore it in a new
# kvmm on its own tap: the guest's counter goes on from where it was, and the ext4 file
# system it writes meanwhile checks clean after it unmounts it.
# rig-timeout: 300
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm
data=/tmp/rig-data-snapshot-linux
rm -rf "$data" && mkdir -p "$data" || rig_fail "cannot create $data"
export KVMM_RUNTIME_DIR=$data/run
disk=$data/disk.raw
dd if=/dev/zero of="$disk" bs=1M count=16 2>/dev/null
rig_kvmm_start orig 200 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" --memory 512M \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_blk,failover,net_failover,virtio_net kvmm.test=count-disk,poweroff" \
	--disk path="$disk" --net tap=kvmmsn0 --name orig --console stdio
rig_wait_console orig '@@GUEST count 5' 1 150 || { rig_show orig; rig_fail "the guest never counted to 5"; }
"$RIG_KVMM" snapshot orig "$data/snap" --disks overlay >"$RIG_TMP/snap.log" 2>&1 ||
	{ cat "$RIG_TMP/snap.log"; rig_fail "kvmm snapshot failed"; }
last=$(grep -a -o '@@GUEST count [0-9]*' "$RIG_TMP/orig.console" | tail -n1 | awk '{print $3}')
"$RIG_KVMM" stop orig
rig_kvmm_wait
rig_kvmm restored 120 run --restore "$data/snap" --net tap=kvmmsn1 --name restored --console stdio
grep -q '@@GUEST count-disk unmounted' "$RIG_TMP/restored.console" || { cat "$RIG_TMP/restored.log"; rig_fail "the restored guest did not finish and unmount"; }
[ "$KVMM_RC" = 0 ] || rig_fail "the restored kvmm exited $KVMM_RC"
first=$(grep -a -o '@@GUEST count [0-9]*' "$RIG_TMP/restored.console" | head -n1 | awk '{print $3}')
# The restored VM wrote into its own overlay of the frozen disk: check the result.
ov=$(ls "$data"/snap/overlays/*.qcow2 | head -n1)
"$RIG_KVMM" img convert -O raw "$ov" "$data/flat.raw" || rig_fail "cannot flatten $ov"
if command -v e2fsck >/dev/null 2>&1; then
	e2fsck -fn "$data/flat.raw" >"$RIG_TMP/fsck.log" 2>&1 || { cat "$RIG_TMP/fsck.log"; rig_fail "e2fsck found errors"; }
fi
echo "last count before the snapshot: $last; first after restore: $first"
[ -n "$first" ] && [ "$first" -ge 5 ] && [ "$first" -le $((last + 1)) ] ||
	rig_fail "counter did not continue (snapshot at <= $last, restored at $first)"
rig_pass "restored guest continued counting at $first (snapshot taken at <= $last); file system clean"
