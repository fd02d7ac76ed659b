#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/img/run.sh: `kvmm img convert` and block-layer IOPS against qemu-img on the same files.
# Usage: bench/img/run.sh [BUILD_DIR] [SIZE_MIB]   (BUILD_DIR: an optimised build without sanitizers;
# made at /tmp/build-bench-img when not given). Prints "name: kvmm X, qemu Y, ratio R" lines.
# Wall-clock figures on a shared, loaded host are noisy: the CPU-time lines are the steadier
# comparison of the work each tool does; /proc/loadavg is printed alongside.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-/tmp/build-bench-img}
MIB=${2:-1024}
if [ ! -x "$B/kvmm" ]; then
	meson setup "$B" "$SRC" -Dbuildtype=release >/dev/null
fi
ninja -C "$B" kvmm tests/block/blkbench >/dev/null
K=$B/kvmm BB=$B/tests/block/blkbench
command -v qemu-img >/dev/null || { echo "qemu-img missing (apt-get install qemu-utils)"; exit 1; }
W=$(mktemp -d /tmp/kvmm-bench-XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"

# Wall-clock and CPU (user+sys) seconds of one command: "WALL CPU".
secs() { /usr/bin/time -f '%e %U %S' -o "$W/time" "$@" >/dev/null 2>&1; awk '{ print $1, $2 + $3 }' "$W/time"; }
line() { # name kvmm qemu unit better(lower|higher)
	printf '%s: kvmm %.3f %s, qemu %.3f %s, ratio %.2f (kvmm/qemu, %s is better)\n' "$1" "$2" "$4" "$3" "$4" \
		"$(echo "$2 / $3" | bc -l)" "$5"
}

# A disk image that looks like one: 40% random, 30% text, 30% zeroes, in 1 MiB pieces.
python3 - "$MIB" <<'PY'
import os, random, sys
r = random.Random(1)
text = b"".join(b"line %08d of a log file that compresses well\n" % i for i in range(30000))[:1 << 20]
with open("src.raw", "wb") as f:
    for i in range(int(sys.argv[1])):
        k = r.random()
        f.write(os.urandom(1 << 20) if k < 0.4 else text if k < 0.7 else bytes(1 << 20))
PY
sync
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"

conv() { # name: the same conversion through both tools
	local name=$1; shift
	local tk tq
	rm -f out.k out.q; sync
	tk=$(secs "$K" img convert "$@" out.k); sync
	tq=$(secs qemu-img convert "$@" out.q); sync
	line "$name" "${tk% *}" "${tq% *}" s lower
	line "$name, CPU time" "${tk#* }" "${tq#* }" s lower
}
conv "convert raw->qcow2 (${MIB} MiB)" -f raw -O qcow2 src.raw
cp out.q src.qcow2
conv "convert qcow2->raw (${MIB} MiB)" -f qcow2 -O raw src.qcow2
conv "convert raw->qcow2 -c zlib (${MIB} MiB)" -f raw -O qcow2 -c src.raw
echo "  compressed sizes: kvmm $(stat -c %s out.k), qemu $(stat -c %s out.q) bytes"
conv "convert raw->qcow2 -c zstd (${MIB} MiB)" -f raw -O qcow2 -c -o compression_type=zstd src.raw

# 4 KiB I/O, qemu-img bench's pattern: offsets advance by a large odd multiple of 4 KiB
# (modulo the size), which scatters them over the whole disk; queue depth 64, page cache.
N=100000
STEP=$((4096 * 100003))
# Best of two alternating runs each (kvmm, qemu, kvmm, qemu): page-cache writeback left
# by the previous run weighs on whoever runs next.
iops() { # name fmt file write(0|1) [command run before each measurement]
	local name=$1 fmt=$2 file=$3 w=$4 wk= k=0 q=0 v t
	[ "$w" = 1 ] && wk=-w
	for round in 1 2; do
		[ -n "${5:-}" ] && $5
		sync
		v=$("$BB" $wk -f "$fmt" -c $N -d 64 -s 4096 -S $STEP "$file" | sed -n 's/.*s: \([0-9]*\) IOPS.*/\1/p')
		[ "$(echo "$v > $k" | bc)" = 1 ] && k=$v
		[ -n "${5:-}" ] && $5
		sync
		t=$(qemu-img bench $wk -f "$fmt" -t writeback -c $N -d 64 -s 4096 -S $STEP "$file" 2>/dev/null |
			sed -n 's/Run completed in \([0-9.]*\) seconds./\1/p')
		v=$(echo "$N / $t" | bc -l)
		[ "$(echo "$v > $q" | bc)" = 1 ] && q=$v
	done
	line "$name" "$k" "$q" IOPS higher
}
fresh() { rm -f alloc.qcow2; qemu-img create -q -f qcow2 alloc.qcow2 ${MIB}M; }
cp src.raw io.raw
qemu-img convert -O qcow2 src.raw io.qcow2
sync
iops "4k read qcow2 allocated" qcow2 io.qcow2 0
iops "4k write qcow2 allocated" qcow2 io.qcow2 1
iops "4k read raw" raw io.raw 0
iops "4k write raw" raw io.raw 1
iops "4k write qcow2 allocating" qcow2 alloc.qcow2 1 fresh
qemu-img check -q alloc.qcow2 && echo "  allocating image passes qemu-img check"
