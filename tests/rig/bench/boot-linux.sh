#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark: a stock Linux (busybox initramfs, 1 vCPU, 512M) to /init and to power-off,
# under kvmm and under QEMU (-accel kvm, SeaBIOS) in the same host, alternating; once from
# the bzImage and once from the vmlinux (PVH entry; QEMU boots it with its pvh.bin ROM).
# Run with: tests/rig/rig --kvmm K --scenarios tests/rig/bench --with-qemu
# rig-timeout: 900
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm
rig_need_qemu
rounds=${RIG_BENCH_ROUNDS:-2}
# RIG_BENCH_KVMM_ARGS: extra kvmm options (e.g. "--hugepages thp"), set in the rig's env.
cmdline="$RIG_GUEST_CMDLINE kvmm.test=poweroff"

# measure TAG: after a *_start, wait for /init and the exit; sets INIT, TOTAL (seconds of
# wall time) and GUEST (the guest's own uptime at /init).
measure() {
	rig_wait_console "$1" '@@GUEST init reached' 1 130 ||
		rig_fail "$1: guest did not reach /init (see $1.console, $1.log)"
	INIT=$(awk -v a="$_t0" -v b="$(rig_now_cs)" 'BEGIN { printf "%.1f", (b - a) / 100 }')
	rig_kvmm_wait
	[ "$KVMM_TIMEDOUT" = 0 ] && [ "$KVMM_RC" = 0 ] || rig_fail "$1: exit $KVMM_RC"
	TOTAL=$KVMM_SECS
	GUEST=$(grep -a -o '@@GUEST init reached uptime=[0-9.]*' "$RIG_TMP/$1.console" | cut -d= -f2)
}

best() { # best CURRENT NEW: the smaller
	awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'
}

# pair NAME KERNEL: rounds of kvmm then QEMU; prints the @@BENCH lines.
pair() {
	k_init= k_total= q_init= q_total=
	i=1
	while [ "$i" -le "$rounds" ]; do
		rig_kvmm_start "$1-kvmm$i" 150 run --kernel "$2" --initrd "$RIG_INITRD" \
			--cmdline "$cmdline" --cpus 1 --memory 512M --console stdio ${RIG_BENCH_KVMM_ARGS:-}
		measure "$1-kvmm$i"
		echo "$1 round $i kvmm: init ${INIT}s (guest uptime ${GUEST}s), exit ${TOTAL}s"
		k_init=$(best "$k_init" "$INIT") k_total=$(best "$k_total" "$TOTAL")
		rig_qemu_start "$1-qemu$i" 150 -accel kvm -M pc -cpu host -smp 1 -m 512 -nodefaults \
			-no-user-config -display none -serial stdio -no-reboot \
			-kernel "$2" -initrd "$RIG_INITRD" -append "$cmdline"
		measure "$1-qemu$i"
		echo "$1 round $i qemu: init ${INIT}s (guest uptime ${GUEST}s), exit ${TOTAL}s"
		q_init=$(best "$q_init" "$INIT") q_total=$(best "$q_total" "$TOTAL")
		i=$((i + 1))
	done
	r_init=$(awk -v k="$k_init" -v q="$q_init" 'BEGIN { printf "%.2f", k / q }')
	r_total=$(awk -v k="$k_total" -v q="$q_total" 'BEGIN { printf "%.2f", k / q }')
	echo "@@BENCH boot-linux-$1-to-init kvmm=${k_init}s qemu=${q_init}s ratio=${r_init} (best of $rounds)"
	echo "@@BENCH boot-linux-$1-to-poweroff kvmm=${k_total}s qemu=${q_total}s ratio=${r_total} (best of $rounds)"
	SUMMARY="${SUMMARY:+$SUMMARY; }$1 kvmm/qemu to /init $r_init"
}

pair bzimage "$RIG_BZIMAGE"
[ -f "$RIG_VMLINUX" ] && pair vmlinux "$RIG_VMLINUX"
rig_pass "$SUMMARY"
