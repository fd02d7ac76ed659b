#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: a shell loop that counts forever (snapshot and migration scenarios watch it).
i=0
while :; do
	i=$((i + 1))
	echo "@@GUEST count $i"
	sleep 0.2
done
