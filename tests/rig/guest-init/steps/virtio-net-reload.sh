#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: unload and reload virtio_net (the device is reset and set up again, with
# vhost-net stopped and restarted), then run the virtio-net step once more.
rmmod virtio_net || exit 1
insmod /lib/modules/virtio_net.ko || exit 2
echo "@@GUEST virtio-net-reload reloaded"
sh /rig/steps/virtio-net.sh
