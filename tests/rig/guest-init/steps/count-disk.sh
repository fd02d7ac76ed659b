#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: count while writing each count to a file on an ext4 file system on /dev/vda,
# then unmount cleanly (snapshot and migration scenarios move the guest meanwhile).
n=${1:-80}
[ -b /dev/vda ] || { echo "@@GUEST count-disk no /dev/vda"; exit 1; }
echo "@@GUEST count-disk nic=$(ls /sys/class/net | tr '\n' ' ')"
mke2fs -q -F /dev/vda >/dev/null 2>&1 || exit 2
mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d || exit 3
i=0
while [ "$i" -lt "$n" ]; do
	i=$((i + 1))
	echo "$i" >>/mnt/d/counts
	sync
	echo "@@GUEST count $i"
	sleep 0.2
done
[ "$(wc -l </mnt/d/counts)" -ge "$n" ] || exit 4
umount /mnt/d || exit 5
echo "@@GUEST count-disk unmounted"
