#!/bin/sh
# SPDX-License-Identifier: MIT
# A snapshot of a running VM whose NIC is served by vhost-net: saving takes the ring
# positions back from the kernel and hands the rings over again, so the guest's transfers
# go on afterwards (skipped without /dev/vhost-net).
# rig-timeout: 240
NET_VHOST=on
NET_SNAPSHOT=1
. "$RIG_HOME/scenarios/virtio-net.sh"
