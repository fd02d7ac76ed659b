#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: /dev/vda is read-only: the kernel says so and a write fails.
ro=$(cat /sys/block/vda/ro 2>/dev/null)
echo "@@GUEST ro-disk ro=$ro"
[ "$ro" = 1 ] || exit 1
if dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; then
	echo "@@GUEST ro-disk write succeeded"
	exit 2
fi
echo "@@GUEST ro-disk write refused"
