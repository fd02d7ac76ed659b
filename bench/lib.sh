# SPDX-License-Identifier: MIT
# lib.sh: shared setup of the bench/ scripts: paths, the QEMU peers' command lines, the C
# helpers' build, and small statistics. Sourced, not run.
# shellcheck disable=SC2034 # the variables set here are used by the scripts that source it

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${BUILD:-/tmp/build-bench}
KVMM=${KVMM:-$BUILD/kvmm}
GUESTS=${GUESTS:-$BUILD/guests}
QEMU=${QEMU:-qemu-system-x86_64}
BENCH_OUT=${BENCH_OUT:-/tmp/kvmm-bench}
# Prefix for every measured command, e.g. BENCH_TASKSET="taskset -c 1". Empty by default:
# on a shared 2-core machine, pinning to one core makes a run wait for whatever else is
# queued there; set it on a quiet machine to keep runs from migrating.
BENCH_TASKSET=${BENCH_TASKSET:-}

# The peers. Both boot the very same PVH ELF with -kernel and have 128 MiB, one vCPU and
# a COM1 on stdout, like the kvmm runs.
# - qemu-microvm: QEMU's smallest x86 machine (qboot, no PCI, no firmware output): the
#   fastest QEMU peer. Its ACPI is hardware-reduced (no PM1a_CNT) and it has no i8042, so
#   the test guests cannot power it off: runs end when the guest prints its last line.
# - qemu-pc: the classic PC with SeaBIOS, which the test guests can power off (FADT
#   PM1a_CNT): the peer for a whole exec-to-exit cycle. SeaBIOS's ring-0 code is emulated
#   instruction by instruction on nested paravirtual KVM (TESTING.md), so it is slow here.
QEMU_COMMON="-accel kvm -nodefaults -no-user-config -display none -no-reboot -m 128 -smp 1 -serial stdio"
QEMU_MICROVM_M=${QEMU_MICROVM_M:-microvm}
QEMU_PC_M=${QEMU_PC_M:-pc}
qemu_microvm_desc="$QEMU -M $QEMU_MICROVM_M $QEMU_COMMON"
qemu_pc_desc="$QEMU -M $QEMU_PC_M $QEMU_COMMON"

die() {
	echo "bench: $*" >&2
	exit 1
}

# bench_setup: checks the inputs and builds the C helpers into $BENCH_OUT.
bench_setup() {
	[ -x "$KVMM" ] || die "no kvmm at $KVMM (build: meson setup $BUILD -Dbuildtype=release && ninja -C $BUILD)"
	[ -f "$GUESTS/hello.elf" ] || die "no test guests in $GUESTS"
	if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		die "/dev/kvm is not usable"
	fi
	command -v "$QEMU" >/dev/null || die "$QEMU not found"
	mkdir -p "$BENCH_OUT" || die "cannot create $BENCH_OUT"
	CC=${CC:-cc}
	# Always rebuilt (a second or so): no stale helper from another checkout.
	for prog in spawn kvm_floor; do
		if ! $CC -O2 -Wall -Wextra -o "$BENCH_OUT/$prog.tmp.$$" "$BENCH_DIR/$prog.c" ||
			! mv "$BENCH_OUT/$prog.tmp.$$" "$BENCH_OUT/$prog"; then
			die "cannot build $prog"
		fi
	done
	SPAWN="$BENCH_OUT/spawn"
	FLOOR="$BENCH_OUT/kvm_floor"
}

# bench_header NAME: what, where and when, so numbers can be compared later.
bench_header() {
	rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "none")
	echo "# $1: $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), $(nproc) CPUs," \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(uname -r)"
	echo "# $($KVMM version 2>/dev/null | head -n 1) ($KVMM, built $(date -u -r "$KVMM" '+%H:%M UTC'));" \
		"repository HEAD $rev; $($QEMU --version | head -n 1)"
	echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" \
		"(timings are wall clock; other jobs on this machine inflate them, CPU times less)"
}

# field KEY LINE: the value of KEY=value in a spawn result line.
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# median FILE / min FILE: of the numbers in FILE, one per line.
median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
min() {
	sort -g "$1" | head -n 1
}

# ratio A B: A / B with 3 significant digits.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.3g\n", a / b }'
}

# fmt X: a number with 1 decimal, or 3 significant digits when small.
fmt() {
	awk -v x="$1" 'BEGIN { if (x + 0 < 10 && x + 0 > -10) printf "%.3g\n", x; else printf "%.1f\n", x }'
}
