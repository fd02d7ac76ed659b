#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: a virtio-net NIC faces a host tap at 10.0.2.1 (scenarios/virtio-net.sh): take
# 10.0.2.15, ping the host, download a file from its httpd and upload one through its CGI.
dev=
for d in /sys/class/net/*; do
	drv=$(readlink "$d/device/driver" 2>/dev/null)
	[ "${drv##*/}" = virtio_net ] && dev=${d##*/}
done
[ -n "$dev" ] || { echo "@@GUEST virtio-net no interface bound to virtio_net"; exit 1; }
echo "@@GUEST virtio-net dev=$dev mac=$(cat "/sys/class/net/$dev/address")" \
	"features=$(cat "/sys/class/net/$dev/device/features" 2>/dev/null | cut -c1-24)"
ip link set lo up
ip addr add 10.0.2.15/24 dev "$dev" && ip link set "$dev" up || exit 2
ping -c 3 -W 10 10.0.2.1 >/tmp/ping.out 2>&1
echo "@@GUEST virtio-net ping $(grep -o '[0-9]* packets received' /tmp/ping.out)"
grep -q '[1-9] packets received' /tmp/ping.out || exit 3
wget -q -O /tmp/blob http://10.0.2.1:8080/blob || exit 4
echo "@@GUEST virtio-net download bytes=$(wc -c </tmp/blob) md5=$(md5sum </tmp/blob | cut -c1-32)"
# busybox wget posts a file as a C string: send text.
head -c 196608 /dev/urandom | od -An -tx1 -v >/tmp/up
echo "@@GUEST virtio-net upload bytes=$(wc -c </tmp/up) md5=$(md5sum </tmp/up | cut -c1-32)"
wget -q -O /tmp/reply --post-file /tmp/up http://10.0.2.1:8080/cgi-bin/up || exit 5
echo "@@GUEST virtio-net reply $(cat /tmp/reply)"
s=/sys/class/net/$dev/statistics
echo "@@GUEST virtio-net stats rx=$(cat $s/rx_packets)/$(cat $s/rx_bytes)" \
	"tx=$(cat $s/tx_packets)/$(cat $s/tx_bytes) rx_dropped=$(cat $s/rx_dropped)"
