#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: the file written on the previous boot is intact; add another, unmount cleanly.
mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d || exit 1
want=$(cat /mnt/d/data.md5)
got=$(md5sum /mnt/d/data | cut -c1-32)
echo "@@GUEST ext4 verify want=$want got=$got"
[ -n "$want" ] && [ "$want" = "$got" ] || exit 2
echo second >/mnt/d/second && sync && umount /mnt/d || exit 3
