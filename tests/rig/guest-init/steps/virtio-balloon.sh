#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: virtio_balloon inflates to the host's target, so MemTotal drops below
# kvmm.balloon_max_kb (from the kernel command line); then hold still a few seconds so the
# host can measure kvmm's RSS.
max=
for arg in $(cat /proc/cmdline); do
	case "$arg" in kvmm.balloon_max_kb=*) max=${arg#kvmm.balloon_max_kb=} ;; esac
done
[ -n "$max" ] || { echo "@@GUEST virtio-balloon: kvmm.balloon_max_kb not given"; exit 1; }
[ -d /sys/bus/virtio/drivers/virtio_balloon ] || { echo "@@GUEST virtio-balloon: no driver"; exit 1; }
memtotal() { awk '/^MemTotal:/ { print $2 }' /proc/meminfo; }
first=$(memtotal)
i=0
while [ "$(memtotal)" -gt "$max" ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i + 1)); done
now=$(memtotal)
echo "@@GUEST virtio-balloon memtotal_kb first=$first now=$now max=$max"
[ "$now" -le "$max" ] || exit 1
echo "@@GUEST balloon inflated"
sleep 5
