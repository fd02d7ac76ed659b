#!/bin/sh
# SPDX-License-Identifier: MIT
# linux-boot.sh: a rig scenario (runs inside the emulated KVM host, busybox sh) that times a
# stock Debian kernel with the rig's initramfs to /init and to power-off under kvmm and
# under QEMU (and kvmm variants), alternating. Prints "@@BENCH vmm=... init_s=... exit_s=... guest_init_s=...".
# rig-timeout: 1800
# shellcheck disable=SC2086 # $qemu, $base and $variants are word lists
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

here=$RIG_HOME/scenarios
runs=1
variants="kvmm qemu-pc"
[ -f "$here/bench.conf" ] && . "$here/bench.conf"
cmdline="$RIG_GUEST_CMDLINE kvmm.test=poweroff"
q=$here/qemu
if [ -x "$q/qemu-system-x86_64" ]; then
	# QEMU travels with its own libraries and firmware (bench/linux-boot put them here).
	qemu="$q/ld.so --library-path $q/lib $q/qemu-system-x86_64 -L $q/share"
else
	qemu=""
	echo "no QEMU in $q: kvmm only"
fi

# timed TAG LIMIT CMD...: run CMD in the background with its console in $RIG_TMP/TAG.console,
# poll for the guest's /init marker, and print one @@BENCH line. Host uptime in 1/100 s.
timed() {
	name=$1 tag=$1.$i lim=$2
	shift 2
	# Emptied here, not by the background job's redirection, which may come after the
	# first poll.
	: >"$RIG_TMP/$tag.console"
	t0=$(rig_now_cs)
	timeout -s KILL "$lim" "$@" </dev/null >>"$RIG_TMP/$tag.console" 2>"$RIG_TMP/$tag.log" &
	pid=$!
	echo "$pid" >>"$RIG_TMP/.pids"
	t_init=""
	while kill -0 "$pid" 2>/dev/null; do
		if [ -z "$t_init" ] && grep -q '@@GUEST init reached' "$RIG_TMP/$tag.console"; then
			t_init=$(rig_now_cs)
		fi
		sleep 0.1
	done
	wait "$pid"
	rc=$?
	t1=$(rig_now_cs)
	[ -z "$t_init" ] && grep -q '@@GUEST init reached' "$RIG_TMP/$tag.console" && t_init=$t1
	g=$(sed -n 's/.*@@GUEST init reached uptime=\([0-9.]*\).*/\1/p' "$RIG_TMP/$tag.console" | head -n 1)
	echo "@@BENCH vmm=$name rc=$rc init_s=$(awk -v a="$t0" -v b="${t_init:-}" 'BEGIN { if (b == "") print "nan"; else printf "%.2f", (b - a) / 100 }')" \
		"exit_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 100 }') guest_init_s=${g:-nan}"
}

# variant NAME: one timed boot. kvmm-thp asks for THP on kvmm's memfd guest RAM, which the
# kernel honours only with shmem_enabled=advise (default never), so it sets that meanwhile.
variant() {
	base="--kernel $RIG_BZIMAGE --initrd $RIG_INITRD --cpus 1 --memory 512M --console stdio"
	case $1 in
	kvmm)
		timed "$1" 240 "$RIG_KVMM" run $base --cmdline "$cmdline" ;;
	kvmm-prefault)
		timed "$1" 240 "$RIG_KVMM" run $base --cmdline "$cmdline" --prefault ;;
	kvmm-decompress)
		timed "$1" 240 "$RIG_KVMM" run $base --cmdline "$cmdline" --decompress ;;
	kvmm-thp)
		shm=/sys/kernel/mm/transparent_hugepage/shmem_enabled
		old=$(sed 's/.*\[\(.*\)\].*/\1/' "$shm" 2>/dev/null)
		echo advise >"$shm" 2>/dev/null
		timed "$1" 240 "$RIG_KVMM" run $base --cmdline "$cmdline" --hugepages thp
		[ -n "$old" ] && echo "$old" >"$shm" 2>/dev/null ;;
	qemu-pc)
		[ -n "$qemu" ] || return 0
		timed "$1" 300 $qemu -accel kvm -M pc -nodefaults -no-user-config -display none \
			-no-reboot -m 512 -smp 1 -serial stdio -kernel "$RIG_BZIMAGE" \
			-initrd "$RIG_INITRD" -append "$cmdline" ;;
	*)
		echo "unknown variant $1" ;;
	esac
}

echo "THP: enabled $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)," \
	"shmem_enabled $(cat /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null)"
# Each run rotates the order, so that no variant always goes first after the host's boot.
i=0
while [ $i -lt "$runs" ]; do
	set -- $variants
	j=0
	while [ $j -lt $((i % $#)) ]; do
		v=$1
		shift
		set -- "$@" "$v"
		j=$((j + 1))
	done
	for v in "$@"; do
		variant "$v"
	done
	i=$((i + 1))
done
grep -h '@@GUEST init reached' "$RIG_TMP"/*.console | head -n 2
rig_pass "linux-boot timings above"
