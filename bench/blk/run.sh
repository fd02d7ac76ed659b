#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/blk/run.sh: virtio-blk IOPS and MiB/s measured by the ring-3 benchmark guest (blkbench.elf)
# under kvmm and under QEMU (same guest, same file, virtio-blk-pci with aio=io_uring), with the
# host's own fio on the same file as the ceiling.
#
# Usage: bench/blk/run.sh [BUILD_DIR] [ROUNDS]
#   BUILD_DIR: a release build (made at /tmp/build-bench-blk when missing); kvmm from there,
#              blkbench.elf from BUILD_DIR/bench/blk when the top-level meson.build builds it,
#              else compiled here with the guests' flags.
#   ROUNDS: rounds of kvmm, qemu cache=writeback, qemu cache=none, in rotating order (2).
# Environment: DISK_MIB (512), QD1 (1000 requests), QD32 (8000), SEQ_MIB (128), SPAN_MIB (256),
#   FIO_SECONDS (5), QEMU (qemu-system-x86_64), BENCH_TASKSET (a prefix such as "taskset -c 1").
#
# kvmm's virtio-blk does buffered I/O (the page cache, like QEMU's cache=writeback); QEMU's
# cache=none is O_DIRECT. So each figure is compared with both QEMU modes and with fio at
# direct=0 and direct=1; the like-for-like pair is kvmm / qemu cache=writeback / fio direct=0.
# Output: '#' lines (machine, load, commands), then one line per figure:
#   blk NAME UNIT: kvmm X, PEER Y, ratio R (kvmm/PEER; higher is better)
# Values are medians over the rounds; timing is the guest's rdtsc around each workload,
# converted with the host's TSC rate (the guests run with the host's TSC). A '# cpu' line per
# VMM gives the median user and system CPU seconds of its whole run (boot included; the
# polling vCPU counts as user time), from /usr/bin/time when installed.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-/tmp/build-bench-blk}
ROUNDS=${2:-2}
DISK_MIB=${DISK_MIB:-512}
QD1=${QD1:-1000} QD32=${QD32:-8000} SEQ_MIB=${SEQ_MIB:-128} SPAN_MIB=${SPAN_MIB:-256}
FIO_SECONDS=${FIO_SECONDS:-5}
QEMU=${QEMU:-qemu-system-x86_64}
TS=${BENCH_TASKSET:-}

[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "skipped: /dev/kvm is not usable"; exit 77; }
command -v "$QEMU" >/dev/null || { echo "skipped: $QEMU missing (apt-get install qemu-system-x86)"; exit 77; }
command -v fio >/dev/null || { echo "skipped: fio missing (apt-get install fio)"; exit 77; }
if [ ! -x "$B/kvmm" ]; then
	meson setup "$B" "$SRC" -Dbuildtype=release >/dev/null
fi
ninja -C "$B" kvmm >/dev/null
W=$(mktemp -d /tmp/kvmm-bench-blk-XXXXXX)
trap 'rm -rf "$W"' EXIT
GUEST=$B/bench/blk/blkbench.elf
if ninja -C "$B" bench/blk/blkbench.elf >/dev/null 2>&1; then
	:
else
	# Not wired into the top-level build yet: the guests' flags from guests/meson.build.
	GUEST=$W/blkbench.elf
	gcc -m64 -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie -no-pie \
		-fno-stack-protector -mno-red-zone -mgeneral-regs-only -fcf-protection=none \
		-fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns -nostdlib -static \
		-Wl,--build-id=none -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments \
		-T "$SRC/guests/guest.ld" -I "$SRC/src" -I "$SRC/guests" -o "$GUEST" "$SRC/bench/blk/blkbench.c" \
		"$SRC/guests/lib/entry.S" "$SRC/guests/lib/lib.c" "$SRC/guests/lib/acpi.c" \
		"$SRC/guests/lib/vpci.c"
fi

# The host's TSC rate, against CLOCK_MONOTONIC_RAW over 0.5 s.
cat >"$W/tschz.c" <<'EOF'
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC_RAW, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}
int main(void)
{
	double t0 = now(), t1;
	uint64_t c0 = __rdtsc(), c1;
	do
		t1 = now();
	while (t1 - t0 < 0.5);
	c1 = __rdtsc();
	printf("%.0f\n", (c1 - c0) / (t1 - t0));
	return 0;
}
EOF
cc -O2 -o "$W/tschz" "$W/tschz.c"
HZ=$("$W/tschz")

# The disk: allocated and filled (reads hit real blocks, not holes).
DISK=$W/disk.raw
dd if=/dev/urandom of="$DISK" bs=1M count="$DISK_MIB" status=none
sync
CMDLINE="qd1=$QD1 qd32=$QD32 seq=$SEQ_MIB span=$SPAN_MIB"

echo "# bench/blk $(date -u +%FT%TZ) $(uname -r) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg); TSC $((HZ / 1000000)) MHz; disk $DISK_MIB MiB on $(df -T "$W" | awk 'NR==2 {print $2}')"
echo "# guest: $GUEST cmdline '$CMDLINE'"
echo "# kvmm: $B/kvmm run --kernel GUEST --memory 256M --disk path=DISK --cmdline '...'"
echo "# qemu: $QEMU -accel kvm -M pc -m 256 -nodefaults -display none -serial stdio -kernel GUEST -append '...' -drive file=DISK,if=none,id=d,format=raw,aio=io_uring,cache=MODE -device virtio-blk-pci,drive=d,disable-legacy=on"

timed() { # FILE COMMAND...: user and system seconds of COMMAND into FILE
	local f=$1
	shift
	if [ -x /usr/bin/time ]; then /usr/bin/time -o "$f" -f '%U %S' "$@"; else "$@"; fi
}
run_vmm() { # name: writes $W/NAME.ROUND.out (and NAME.ROUND.cpu)
	local name=$1 round=$2 out=$W/$1.$2.out cpu=$W/$1.$2.cpu
	case $name in
	kvmm)
		cat "$DISK" >/dev/null
		timed "$cpu" $TS timeout 600 "$B/kvmm" run --kernel "$GUEST" --memory 256M --disk "path=$DISK" \
			--cmdline "$CMDLINE" </dev/null >"$out" 2>&1 || true ;;
	qemu-wb | qemu-none)
		local mode=writeback
		[ "$name" = qemu-none ] && mode=none
		cat "$DISK" >/dev/null
		timed "$cpu" $TS timeout 900 "$QEMU" -accel kvm -M pc -m 256 -nodefaults -no-user-config -display none \
			-serial stdio -kernel "$GUEST" -append "$CMDLINE" \
			-drive "file=$DISK,if=none,id=d,format=raw,aio=io_uring,cache=$mode" \
			-device virtio-blk-pci,drive=d,disable-legacy=on </dev/null >"$out" 2>&1 || true ;;
	esac
	sync
	if ! grep -q '^SUCCESS' "$out"; then
		echo "# $name round $round failed: $(grep -m1 -E 'FAIL|error' "$out" || tail -1 "$out")"
		rm -f "$out"
	fi
}

names=(kvmm qemu-wb qemu-none)
for ((r = 0; r < ROUNDS; r++)); do
	for ((i = 0; i < 3; i++)); do
		run_vmm "${names[$(((i + r) % 3))]}" "$r"
	done
done

# fio on the same file, the same patterns (4 KiB random over SPAN, 128 KiB sequential at QD 8).
run_fio() { # tag direct rw bs qd
	local size=${SPAN_MIB}M
	case $3 in read | write) size=${DISK_MIB}M ;; esac
	$TS fio --name=b --filename="$DISK" --ioengine=io_uring --direct="$2" --rw="$3" --bs="$4" \
		--iodepth="$5" --size="$size" --runtime="$FIO_SECONDS" --time_based --randrepeat=0 \
		--norandommap --output-format=json >"$W/fio.$1.json" 2>/dev/null || echo "# fio $1 failed"
}
for d in 0 1; do
	[ $d = 0 ] && cat "$DISK" >/dev/null
	run_fio "randread-4k-qd1.$d" $d randread 4k 1
	run_fio "randwrite-4k-qd1.$d" $d randwrite 4k 1
	run_fio "randread-4k-qd32.$d" $d randread 4k 32
	run_fio "randwrite-4k-qd32.$d" $d randwrite 4k 32
	run_fio "seqread-128k-qd8.$d" $d read 128k 8
	run_fio "seqwrite-128k-qd8.$d" $d write 128k 8
done
echo "# fio: fio --ioengine=io_uring --direct=0|1 --rw=randread|randwrite|read|write --bs=4k|128k --iodepth=1|32|8 --size=${SPAN_MIB}M|${DISK_MIB}M --runtime=$FIO_SECONDS --time_based"

python3 - "$W" "$HZ" <<'PY'
import glob, json, os, re, statistics, sys
w, hz = sys.argv[1], float(sys.argv[2])
res = {}  # vmm -> workload -> [values]
for path in glob.glob(os.path.join(w, '*.out')):
    vmm = os.path.basename(path).split('.')[0]
    for m in re.finditer(r'blkbench: (\S+) ops=(\d+) bytes=(\d+) tsc=(\d+)', open(path, errors='replace').read()):
        name, ops, nbytes, tsc = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        secs = tsc / hz
        val = nbytes / secs / 2**20 if name.startswith('seq') else ops / secs
        res.setdefault(vmm, {}).setdefault(name, []).append(val)
def fio(name, d):
    try:
        j = json.load(open(os.path.join(w, 'fio.%s.%d.json' % (name, d))))['jobs'][0]
    except Exception:
        return None
    side = j['write'] if 'write' in name else j['read']
    return side['bw_bytes'] / 2**20 if name.startswith('seq') else side['iops']
order = ['randread-4k-qd1', 'randwrite-4k-qd1', 'randread-4k-qd32', 'randwrite-4k-qd32',
         'seqread-128k-qd8', 'seqwrite-128k-qd8']
def med(vmm, name):
    v = res.get(vmm, {}).get(name)
    return statistics.median(v) if v else None
for name in order:
    unit = 'MiB/s' if name.startswith('seq') else 'IOPS'
    k = med('kvmm', name)
    peers = [('qemu', med('qemu-wb', name), 'qemu cache=writeback,aio=io_uring, like kvmm'),
             ('qemu', med('qemu-none', name), 'qemu cache=none,aio=io_uring (O_DIRECT)'),
             ('fio', fio(name, 0), 'host fio direct=0: the ceiling for kvmm'),
             ('fio', fio(name, 1), 'host fio direct=1: the ceiling for cache=none')]
    for peer, p, what in peers:
        if k is None or p is None:
            print('# blk %s %s: kvmm %s, %s %s (%s): missing' % (name, unit, k, peer, p, what))
            continue
        print('blk %s %s: kvmm %.0f, %s %.0f, ratio %.2f (kvmm/%s, higher is better; %s)'
              % (name, unit, k, peer, p, k / p, peer, what))
for vmm in ('kvmm', 'qemu-wb', 'qemu-none'):
    cpu = []
    for path in glob.glob(os.path.join(w, vmm + '.*.cpu')):
        try:
            u, s = open(path).read().split()[-2:]
            if os.path.exists(path[:-4] + '.out'):
                cpu.append((float(u), float(s)))
        except ValueError:
            pass
    if cpu:
        print('# cpu %s: user %.2f s, system %.2f s (medians of %d runs)'
              % (vmm, statistics.median(c[0] for c in cpu), statistics.median(c[1] for c in cpu), len(cpu)))
for vmm in ('kvmm', 'qemu-wb', 'qemu-none'):
    runs = res.get(vmm, {})
    print('# %s rounds: %s' % (vmm, ', '.join('%s %s' % (n, '/'.join('%.0f' % x for x in runs.get(n, []))) for n in order)))
PY
