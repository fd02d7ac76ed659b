#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/net/run.sh: virtio-net UDP round-trip latency and throughput, the same ring-3 guest
# (guests/net.elf mode=serve) under kvmm and under QEMU, both on a tap in a network
# namespace made here (deleted on exit), the host side a C helper (netbench.c) timing with
# CLOCK_MONOTONIC. The helper waits for the guest's first echo, so boot time (SeaBIOS takes
# seconds under QEMU here) is not measured.
#
# Usage: bench/net/run.sh [BUILD_DIR] [ROUNDS]
#   BUILD_DIR: a release build (made at /tmp/build-bench-net when missing): kvmm and
#              guests/net.elf from there.
#   ROUNDS: rounds of kvmm and qemu, alternating which goes first (3).
# Environment: PINGS (2000 round trips of PING_SIZE (64) bytes), N (20000 datagrams of SIZE
#   (1400) bytes per stream), QEMU (qemu-system-x86_64), BENCH_TASKSET (a prefix such as
#   "taskset -c 1" for the VMMs).
#
# Figures (medians over the rounds):
#   udp-rtt-64B median / p99 (us): host sends, guest echoes at once, host receives;
#   tx-1400B (guest->host) MiB/s and packets/s: the guest sends N datagrams as fast as its
#     transmit ring allows; timed from the first to the last arrival on the host;
#   rx-1400B (host->guest) MiB/s and packets/s: the host sends N datagrams as fast as it
#     can; what the guest counted, over the time from the first send to the guest's reply
#     to the end marker (datagrams the tap dropped do not count).
# Both VMMs serve the queues in user space: kvmm with vhost=off, QEMU's tap without vhost.
# Output: '#' lines (machine, load, commands), then one line per figure:
#   net NAME UNIT: kvmm X, qemu Y, ratio R (kvmm/qemu; ...)
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-/tmp/build-bench-net}
ROUNDS=${2:-3}
PINGS=${PINGS:-2000} PING_SIZE=${PING_SIZE:-64} N=${N:-20000} SIZE=${SIZE:-1400}
QEMU=${QEMU:-qemu-system-x86_64}
TS=${BENCH_TASKSET:-}
MAC=52:54:00:be:4e:01
GUEST_IP=10.0.2.15 HOST_IP=10.0.2.2 PORT=7000 DPORT=7100

[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "skipped: /dev/kvm is not usable"; exit 77; }
(exec 3<>/dev/net/tun) 2>/dev/null || { echo "skipped: /dev/net/tun is not usable"; exit 77; }
command -v "$QEMU" >/dev/null || { echo "skipped: $QEMU missing (apt-get install qemu-system-x86)"; exit 77; }
if [ ! -x "$B/kvmm" ]; then
	meson setup "$B" "$SRC" -Dbuildtype=release >/dev/null
fi
ninja -C "$B" kvmm guests/net.elf >/dev/null
GUEST=$B/guests/net.elf
W=$(mktemp -d /tmp/kvmm-bench-net-XXXXXX)
NS=kvmm-bench-net-$$
TAP=kbn$$
VM=
cleanup() {
	[ -n "$VM" ] && kill -KILL "$VM" 2>/dev/null
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
cc -O2 -Wall -Wextra -Werror -o "$W/netbench" "$SRC/bench/net/netbench.c"

ip netns add "$NS"
IN="ip netns exec $NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev "$TAP" mode tap vnet_hdr
ip -n "$NS" addr add "$HOST_IP/24" dev "$TAP"
ip -n "$NS" link set "$TAP" up

CMDLINE="mode=serve ip=$GUEST_IP host=$HOST_IP port=$PORT idle=120"
echo "# bench/net $(date -u +%FT%TZ) $(uname -r) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg); kvmm $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?') (+ working tree), $($QEMU --version | head -n 1)"
echo "# guest: $GUEST cmdline '$CMDLINE'; tap $TAP ($HOST_IP/24) in namespace $NS"
echo "# kvmm: $B/kvmm run --kernel GUEST --memory 128M --console stdio --net tap=$TAP,mac=$MAC,vhost=off --cmdline '...'"
echo "# qemu: $QEMU -accel kvm -M pc -m 128 -nodefaults -no-user-config -display none -serial stdio -kernel GUEST -append '...' -netdev tap,id=n0,ifname=$TAP,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=$MAC,disable-legacy=on,romfile="
echo "# host: netbench $HOST_IP $GUEST_IP $PORT $DPORT $PINGS $PING_SIZE $N $SIZE (in the namespace)"

run_vmm() { # name round: the helper's output in $W/NAME.ROUND.out
	local name=$1 round=$2 out=$W/$1.$2.out
	case $name in
	kvmm)
		$IN $TS timeout 300 "$B/kvmm" run --kernel "$GUEST" --memory 128M --console stdio \
			--net "tap=$TAP,mac=$MAC,vhost=off" --cmdline "$CMDLINE" \
			</dev/null >"$W/$name.$round.vm" 2>&1 &
		;;
	qemu)
		$IN $TS timeout 300 "$QEMU" -accel kvm -M pc -m 128 -nodefaults -no-user-config \
			-display none -serial stdio -kernel "$GUEST" -append "$CMDLINE" \
			-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no" \
			-device "virtio-net-pci,netdev=n0,mac=$MAC,disable-legacy=on,romfile=" \
			</dev/null >"$W/$name.$round.vm" 2>&1 &
		;;
	esac
	VM=$!
	if ! $IN "$W/netbench" "$HOST_IP" "$GUEST_IP" "$PORT" "$DPORT" "$PINGS" "$PING_SIZE" "$N" \
		"$SIZE" >"$out" 2>&1; then
		echo "# $name round $round failed: $(tail -n 1 "$out")"
		rm -f "$out"
	fi
	for _ in $(seq 100); do
		kill -0 "$VM" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$VM" 2>/dev/null || true
	wait "$VM" 2>/dev/null || true
	VM=
	if [ -f "$out" ] && ! grep -q '^SUCCESS' "$W/$name.$round.vm"; then
		echo "# $name round $round: the guest did not end with SUCCESS: $(grep -m1 -E 'FAIL|rror' "$W/$name.$round.vm" || tail -n 1 "$W/$name.$round.vm")"
		rm -f "$out"
	fi
	# The guest's frame counters, for the record (malformed must be 0).
	echo "# $name round $round: $(grep '^net:' "$W/$name.$round.vm" || echo 'no counters')"
}

names=(kvmm qemu)
for ((r = 0; r < ROUNDS; r++)); do
	for ((i = 0; i < 2; i++)); do
		run_vmm "${names[$(((i + r) % 2))]}" "$r"
	done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$W" <<'PY'
import glob, os, re, statistics, sys
w = sys.argv[1]
res = {}  # vmm -> figure -> [values]
for path in sorted(glob.glob(os.path.join(w, '*.out'))):
    vmm = os.path.basename(path).split('.')[0]
    for line in open(path, errors='replace'):
        kind, _, rest = line.partition(' ')
        kv = dict(x.split('=', 1) for x in rest.split() if '=' in x)
        add = lambda k, v: res.setdefault(vmm, {}).setdefault(k, []).append(float(v))
        if kind == 'rtt':
            add('rtt-median', kv['median_us']); add('rtt-p99', kv['p99_us'])
        elif kind in ('tx', 'rx'):
            add(kind + '-mibps', kv['mibps']); add(kind + '-pps', kv['pps'])
            add(kind + '-loss', 100.0 * (1 - float(kv['got']) / float(kv['n'])))
figs = [('udp-rtt-64B-median', 'us', 'rtt-median', False), ('udp-rtt-64B-p99', 'us', 'rtt-p99', False),
        ('tx-1400B-guest-to-host', 'MiB/s', 'tx-mibps', True), ('tx-1400B-guest-to-host', 'pkt/s', 'tx-pps', True),
        ('rx-1400B-host-to-guest', 'MiB/s', 'rx-mibps', True), ('rx-1400B-host-to-guest', 'pkt/s', 'rx-pps', True)]
def med(vmm, key):
    v = res.get(vmm, {}).get(key)
    return statistics.median(v) if v else None
for name, unit, key, higher in figs:
    k, q = med('kvmm', key), med('qemu', key)
    if k is None or q is None:
        print('# net %s %s: kvmm %s, qemu %s: missing' % (name, unit, k, q))
        continue
    fmt = '%.1f' if unit == 'us' else '%.0f'
    print(('net %s %s: kvmm ' + fmt + ', qemu ' + fmt + ', ratio %.2f (kvmm/qemu, %s is better; median of %d/%d rounds)')
          % (name, unit, k, q, k / q, 'higher' if higher else 'lower',
             len(res['kvmm'][key]), len(res['qemu'][key])))
for vmm in ('kvmm', 'qemu'):
    r = res.get(vmm, {})
    print('# %s rounds: %s' % (vmm, '; '.join('%s %s' % (k, '/'.join('%.1f' % x for x in v)) for k, v in sorted(r.items()))))
PY
