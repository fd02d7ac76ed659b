#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: make a file system on /dev/vda, write a file, sync, unmount (first boot).
[ -b /dev/vda ] || { echo "@@GUEST ext4 no /dev/vda"; exit 1; }
mke2fs -q -F /dev/vda >/dev/null 2>&1 || mke2fs -F /dev/vda || exit 2
mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d || exit 3
dd if=/dev/urandom of=/mnt/d/data bs=4096 count=512 2>/dev/null || exit 4
sum=$(md5sum /mnt/d/data | cut -c1-32)
echo "$sum" >/mnt/d/data.md5
sync
umount /mnt/d || exit 5
echo "@@GUEST ext4 wrote md5=$sum"
