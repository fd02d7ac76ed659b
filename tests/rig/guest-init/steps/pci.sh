#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: list PCI devices (vendor:device class driver), for device scenarios.
for d in /sys/bus/pci/devices/*; do
	[ -e "$d" ] || continue
	drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
	echo "@@GUEST pci ${d##*/} $(cat "$d/vendor"):$(cat "$d/device") $(cat "$d/class") ${drv:--}"
done
