#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: virtio-vsock (vhost-vsock in the host) carries a connection each way: the host
# connects to our port 1234, then we connect to the host (CID 2) port 5678. Needs the
# vsock-peer helper (tests/rig/vsock-peer.c, static) at /rig/vsock-peer or /rig/steps/.
peer=/rig/vsock-peer
[ -x "$peer" ] || peer=/rig/steps/vsock-peer
[ -x "$peer" ] || { echo "@@GUEST virtio-vsock: no vsock-peer helper"; exit 1; }
"$peer" listen 1234 >/tmp/vsock-listen.out 2>&1 &
lp=$!
i=0
while ! grep -q '^listening' /tmp/vsock-listen.out 2>/dev/null && [ $i -lt 20 ]; do
	sleep 0.2
	i=$((i + 1))
done
echo "@@GUEST vsock listening $(cat /tmp/vsock-listen.out)"
i=0
while kill -0 $lp 2>/dev/null && [ $i -lt 240 ]; do sleep 0.5; i=$((i + 1)); done
got=$(grep '^got ' /tmp/vsock-listen.out)
echo "@@GUEST vsock $got"
r=$("$peer" connect 2 5678 ping-from-guest)
echo "@@GUEST vsock $r"
[ "$got" = "got ping-from-host" ] && [ "$r" = "reply pong:ping-from-guest" ]
