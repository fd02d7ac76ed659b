#!/bin/sh
# SPDX-License-Identifier: MIT
# An ext4 file system on a virtio-blk disk survives write, sync, power-off and a second boot;
# the host's e2fsck then finds it clean.
# rig-timeout: 300
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm
data=/tmp/rig-data-virtio-blk-ext4
rm -rf "$data" && mkdir -p "$data" || rig_fail "cannot create $data"
disk=$data/disk.raw
dd if=/dev/zero of="$disk" bs=1M count=64 2>/dev/null || rig_fail "cannot create the disk"
mods=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_blk
rig_kvmm boot1 140 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" --memory 512M \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=$mods kvmm.test=ext4-write,poweroff" \
	--disk path="$disk" --console stdio
rig_show boot1
rig_expect_boot boot1 0
grep -q '@@GUEST step ext4-write pass' "$RIG_TMP/boot1.console" || rig_fail "first boot: ext4 write failed"
rig_kvmm boot2 140 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" --memory 512M \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=$mods kvmm.test=ext4-verify,poweroff" \
	--disk path="$disk" --console stdio
rig_show boot2
rig_expect_boot boot2 0
grep -q '@@GUEST step ext4-verify pass' "$RIG_TMP/boot2.console" || rig_fail "second boot: data lost"
if command -v e2fsck >/dev/null 2>&1; then
	e2fsck -fn "$disk" >"$RIG_TMP/fsck.log" 2>&1 || { cat "$RIG_TMP/fsck.log"; rig_fail "e2fsck found errors"; }
	rig_pass "ext4 survived two boots; e2fsck clean"
fi
rig_pass "ext4 survived two boots (no e2fsck in this host to check it)"
