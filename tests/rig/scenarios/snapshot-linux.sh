#!/bin/sh
# SPDX-License-Identifier: MIT
# Snapshot a running Linux guest (virtio-blk attached) and restore it in a new kvmm: the
# guest's shell counter goes on from where it was.
# rig-timeout: 300
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm
data=/tmp/rig-data-snapshot-linux
rm -rf "$data" && mkdir -p "$data" || rig_fail "cannot create $data"
export KVMM_RUNTIME_DIR=$data/run
disk=$data/disk.raw
dd if=/dev/zero of="$disk" bs=1M count=16 2>/dev/null
rig_kvmm_start orig 200 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" --memory 512M \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_blk kvmm.test=count" \
	--disk path="$disk" --name orig --console stdio
rig_wait_console orig '@@GUEST count 5' 1 150 || { rig_show orig; rig_fail "the guest never counted to 5"; }
"$RIG_KVMM" snapshot orig "$data/snap" --disks overlay >"$RIG_TMP/snap.log" 2>&1 ||
	{ cat "$RIG_TMP/snap.log"; rig_fail "kvmm snapshot failed"; }
last=$(grep -a -o '@@GUEST count [0-9]*' "$RIG_TMP/orig.console" | tail -n1 | awk '{print $3}')
"$RIG_KVMM" stop orig
rig_kvmm_wait
rig_kvmm_start restored 60 run --restore "$data/snap" --name restored --console stdio
rig_wait_console restored '@@GUEST count' 3 40 || { cat "$RIG_TMP/restored.log"; rig_fail "the restored guest does not count"; }
first=$(grep -a -o '@@GUEST count [0-9]*' "$RIG_TMP/restored.console" | head -n1 | awk '{print $3}')
"$RIG_KVMM" stop restored
rig_kvmm_wait
echo "last count before the snapshot: $last; first after restore: $first"
[ -n "$first" ] && [ "$first" -ge 5 ] && [ "$first" -le $((last + 1)) ] ||
	rig_fail "counter did not continue (snapshot at <= $last, restored at $first)"
rig_pass "restored guest continued counting at $first (snapshot taken at <= $last)"
