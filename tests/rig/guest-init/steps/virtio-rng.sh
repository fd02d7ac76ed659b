#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: the kernel picked virtio-rng as its hardware RNG and it yields bytes.
cur=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
echo "@@GUEST virtio-rng current=$cur"
case "$cur" in virtio_rng*) ;; *) exit 1 ;; esac
n=$(dd if=/dev/hwrng bs=64 count=4 2>/dev/null | wc -c)
echo "@@GUEST virtio-rng bytes=$n"
[ "$n" = 256 ]
