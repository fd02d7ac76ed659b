#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step (after virtio-net): download the host's file every 2 s, 8 times, so that the
# host can act on the VM (snapshot, pause) while the NIC is busy.
for i in 1 2 3 4 5 6 7 8; do
	if wget -q -O /tmp/blob http://10.0.2.1:8080/blob; then
		echo "@@GUEST virtio-net-loop $i md5=$(md5sum </tmp/blob | cut -c1-32)"
	else
		echo "@@GUEST virtio-net-loop $i failed"
	fi
	sleep 2
done
