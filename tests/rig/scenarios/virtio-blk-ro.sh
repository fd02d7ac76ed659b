#!/bin/sh
# SPDX-License-Identifier: MIT
# A read-only virtio-blk disk: the guest sees it read-only, writes fail, the file is unchanged.
# rig-timeout: 180
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm
data=/tmp/rig-data-virtio-blk-ro
rm -rf "$data" && mkdir -p "$data" || rig_fail "cannot create $data"
disk=$data/disk.raw
dd if=/dev/urandom of="$disk" bs=1M count=8 2>/dev/null || rig_fail "cannot create the disk"
before=$(md5sum "$disk" | cut -c1-32)
rig_kvmm guest 170 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" --memory 512M \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_blk kvmm.test=ro-disk,poweroff" \
	--disk path="$disk",readonly=on --console stdio
rig_show guest
rig_expect_boot guest 0
grep -q '@@GUEST step ro-disk pass' "$RIG_TMP/guest.console" || rig_fail "the guest could write"
[ "$(md5sum "$disk" | cut -c1-32)" = "$before" ] || rig_fail "the read-only disk file changed"
rig_pass "read-only disk refused writes and is unchanged"
