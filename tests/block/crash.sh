#!/bin/bash
# SPDX-License-Identifier: MIT
# crash.sh: SIGKILL a writer doing allocating writes + flushes at random points; qemu-img check
# must find no corruption (leaks allowed) and every acknowledged write must be there (TAP).
# Usage: crash.sh KVMM CRASH_WRITER [ROUNDS]
set -u
KVMM=$1 W=$2 ROUNDS=${3:-6}
command -v qemu-img >/dev/null || { echo "1..0 # SKIP qemu-img not installed"; exit 0; }
T=$(mktemp -d /tmp/kvmm-crash-XXXXXX)
trap 'rm -rf "$T"' EXIT
n=0; failed=0
for cs in 512 4k 64k; do
	for r in $(seq 1 "$ROUNDS"); do
		n=$((n+1)); img=$T/c.qcow2; log=$T/log; seed=$((r * 7919 + ${#cs}))
		rm -f "$img" "$log"
		"$KVMM" img create -f qcow2 -o cluster_size=$cs "$img" 64M || exit 1
		"$W" write "$img" "$log" $seed & pid=$!
		sleep "0.$(( (RANDOM % 9) + 1 ))$((RANDOM % 10))"
		kill -9 $pid; wait $pid 2>/dev/null
		qemu-img check -q "$img" >"$T/q" 2>&1; qrc=$?
		"$KVMM" img check "$img" >"$T/k" 2>&1; krc=$?
		out=$("$W" verify "$img" "$log" $seed 2>&1); vrc=$?
		# qemu-img check: 0 clean, 3 leaks only (a crash may leak); anything else fails.
		if { [ $qrc = 0 ] || [ $qrc = 3 ]; } && [ $krc != 2 ] && [ $vrc = 0 ]; then
			echo "ok $n - cluster $cs round $r: qemu-img check $qrc, kvmm check $krc, $out"
		else
			failed=$((failed+1))
			echo "not ok $n - cluster $cs round $r: qemu-img check $qrc, kvmm check $krc, verify $vrc"
			sed 's/^/# /' "$T/q" "$T/k" | head -20; echo "$out" | sed 's/^/# /' | head
		fi
	done
done
echo "1..$n"
[ $failed = 0 ]
