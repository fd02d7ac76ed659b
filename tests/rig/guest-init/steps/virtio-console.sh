#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: virtio_console bound port 0 as hvc0; a line goes out through it, and a line
# typed on the host side (kvmm's console input) comes back in. With --virtio-console the
# serial port's output is dropped, so this step reports on hvc0 itself.
i=0
while [ ! -c /dev/hvc0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
[ -c /dev/hvc0 ] || { echo "@@GUEST virtio-console no /dev/hvc0"; exit 1; }
drv=$(basename "$(readlink /sys/bus/virtio/devices/virtio*/driver 2>/dev/null | grep console | head -1)")
exec 3<>/dev/hvc0
stty -F /dev/hvc0 -echo 2>/dev/null
echo "@@VCON hello from hvc0 driver=$drv" >&3
line=
read -t 60 line <&3
echo "@@VCON got=$line" >&3
exec 3>&-
[ "$line" = "ping-from-host" ]
