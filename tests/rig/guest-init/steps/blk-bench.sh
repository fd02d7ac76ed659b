#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: throughput of the virtio-blk disk /dev/vda with busybox dd, timed by the
# guest's own clock (/proc/uptime, 10 ms), for bench/linux-blk. OVERWRITES the disk.
#   seq-write  1 MiB blocks from /dev/zero, conv=fsync (page cache, then flushed: the time
#              includes the writeback and the flush)
#   seq-read   1 MiB blocks, iflag=direct, after drop_caches
#   4k-read    4 KiB blocks, iflag=direct: one request at a time (QD1), sequential offsets
#   4k-write   4 KiB blocks, oflag=direct: likewise
# Sizes from the kernel command line: kvmm.blk_mib=N (MiB per sequential pass, default 32),
# kvmm.blk_4k=N (requests per 4 KiB pass, default 1024), kvmm.blk_reps=N (timed passes of
# each, default 1), kvmm.blk_warmup=0|1 (default 1: first a pass of each numbered rep=0, to
# be left out: the first pass after boot is often the slowest, its writes faulting in the
# guest's page-cache memory for the first time). Prints
# "@@GUEST blk-bench TEST rep=I bytes=B ops=N secs=S" per pass.
mib=32 n4k=1024 reps=1 warmup=1
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	kvmm.blk_mib=*) mib=${arg#kvmm.blk_mib=} ;;
	kvmm.blk_4k=*) n4k=${arg#kvmm.blk_4k=} ;;
	kvmm.blk_reps=*) reps=${arg#kvmm.blk_reps=} ;;
	kvmm.blk_warmup=*) warmup=${arg#kvmm.blk_warmup=} ;;
	esac
done
[ -b /dev/vda ] || { echo "@@GUEST blk-bench no /dev/vda"; exit 1; }
sectors=$(cat /sys/block/vda/size)
q=/sys/block/vda/queue
echo "@@GUEST blk-bench disk sectors=$sectors mq=$(ls /sys/block/vda/mq 2>/dev/null | wc -l)" \
	"max_sectors_kb=$(cat $q/max_sectors_kb) write_cache=$(tr ' ' _ <$q/write_cache)" \
	"scheduler=$(cat $q/scheduler 2>/dev/null | tr ' ' _)"
need=$((mib * 2048))
[ $((n4k * 8)) -gt "$need" ] && need=$((n4k * 8))
[ "$sectors" -ge "$need" ] || { echo "@@GUEST blk-bench disk too small: $sectors sectors, need $need"; exit 1; }

now() { cut -d' ' -f1 /proc/uptime; }

# pass TEST BYTES OPS DD-ARGS...: one timed dd; fails the step when dd fails.
pass() {
	_t=$1 _b=$2 _o=$3
	shift 3
	sync
	echo 3 >/proc/sys/vm/drop_caches
	_t0=$(now)
	if ! dd "$@" 2>/tmp/blk-bench.err; then
		echo "@@GUEST blk-bench $_t rep=$r failed: $(tail -n 1 /tmp/blk-bench.err)"
		exit 2
	fi
	_t1=$(now)
	echo "@@GUEST blk-bench $_t rep=$r bytes=$_b ops=$_o" \
		"secs=$(awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.2f", b - a }')"
}

r=1
[ "$warmup" = 1 ] && r=0
while [ "$r" -le "$reps" ]; do
	pass seq-write $((mib * 1048576)) "$mib" if=/dev/zero of=/dev/vda bs=1M count="$mib" conv=fsync
	pass seq-read $((mib * 1048576)) "$mib" if=/dev/vda of=/dev/null bs=1M count="$mib" iflag=direct
	pass 4k-read $((n4k * 4096)) "$n4k" if=/dev/vda of=/dev/null bs=4k count="$n4k" iflag=direct
	pass 4k-write $((n4k * 4096)) "$n4k" if=/dev/zero of=/dev/vda bs=4k count="$n4k" oflag=direct
	r=$((r + 1))
done
