#!/bin/sh
# SPDX-License-Identifier: MIT
# virtio-net.sh with vhost=on: the same guest-visible behaviour with the kernel's vhost-net
# serving the rings (skipped without /dev/vhost-net).
# rig-timeout: 240
NET_VHOST=on
. "$RIG_HOME/scenarios/virtio-net.sh"
