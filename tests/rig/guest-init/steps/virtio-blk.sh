#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: /dev/vda is a virtio-blk disk; write a pattern through it and read it back.
[ -b /dev/vda ] || { echo "@@GUEST virtio-blk no /dev/vda"; exit 1; }
echo "@@GUEST virtio-blk size=$(cat /sys/block/vda/size) ro=$(cat /sys/block/vda/ro)"
dd if=/dev/urandom of=/tmp/pat bs=4096 count=256 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=4096 seek=100 conv=fsync 2>/dev/null || exit 2
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/back bs=4096 skip=100 count=256 iflag=direct 2>/dev/null || exit 3
cmp /tmp/pat /tmp/back || exit 4
echo "@@GUEST virtio-blk md5=$(md5sum </tmp/pat | cut -c1-32)"
