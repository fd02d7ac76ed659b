#!/bin/sh
# SPDX-License-Identifier: MIT
# e2e.sh: boots a test guest under kvmm on /dev/kvm and checks its serial output and exit
# status. Usage: e2e.sh CASE KVMM GUEST_ELF [ARG]; exits 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
kvmm=$2
guest=$3
arg=${4:-}
limit=60

fail() { echo "FAIL($case_name): $*"; show; exit 1; }
skip() { echo "SKIP($case_name): $*"; exit 77; }
show() {
	[ -n "${tmp:-}" ] || return 0
	for f in "$tmp/out" "$tmp/err"; do
		[ -s "$f" ] && { echo "--- $(basename "$f"):"; tail -n 40 "$f"; }
	done
	return 0
}

[ -e /dev/kvm ] || skip "/dev/kvm does not exist"
if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	skip "/dev/kvm is not accessible to $(id -un)"
fi
[ -x "$kvmm" ] || fail "kvmm binary $kvmm missing"
[ -r "$guest" ] || fail "guest $guest missing"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmm-e2e.XXXXXX")
pid=
# A failed check must not leave a background kvmm behind.
trap '[ -n "$pid" ] && kill -KILL $pid 2>/dev/null; rm -rf "$tmp"' EXIT
# shellcheck disable=SC3045 # dash and bash both have ulimit -c
ulimit -c 0

# run ARGS...: kvmm run under a 60 s timeout; sets $rc, output in $tmp/out and $tmp/err.
run() {
	timeout -k 5 $limit "$kvmm" run "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		fail "timed out after ${limit}s: kvmm run $*"
	fi
	[ $rc -lt 128 ] || fail "kvmm died from signal $((rc - 128)): kvmm run $*"
	if grep -q -e AddressSanitizer -e 'runtime error:' -e LeakSanitizer "$tmp/err"; then
		fail "sanitizer report: kvmm run $*"
	fi
}
# start_bg ARGS...: kvmm run in the background (pid in $pid), usual memory and console.
start_bg() {
	: >"$tmp/out" # exists before the first look, even if kvmm has not opened it yet
	"$kvmm" run "$@" --memory 128M --console stdio >"$tmp/out" 2>"$tmp/err" </dev/null &
	pid=$!
}
# stop_bg_after TEXT N: wait up to 40 s until TEXT appeared N times on stdout, then stop
# kvmm with SIGTERM and expect exit status 0 within 10 s.
stop_bg_after() {
	n=0
	i=0
	while [ $i -lt 400 ]; do
		n=$(grep -c -F -- "$1" "$tmp/out")
		[ "$n" -ge "$2" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if ! kill -0 $pid 2>/dev/null; then
		wait $pid
		rc=$?
		pid=
		fail "kvmm exited (status $rc) after '$1' appeared $n time(s), expected $2 and a running VM"
	fi
	kill -TERM $pid
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 $pid 2>/dev/null; then
		kill -KILL $pid
		wait $pid
		pid=
		fail "kvmm still running 10 s after SIGTERM"
	fi
	wait $pid
	rc=$?
	pid=
	[ "$n" -ge "$2" ] || fail "'$1' appeared $n time(s) in 40 s, expected at least $2"
	expect_rc 0 "stopped by SIGTERM"
}
expect_rc() { [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1 ($2)"; }
expect_out() { grep -q -F -- "$1" "$tmp/out" || fail "stdout lacks '$1'"; }
expect_success() {
	grep -q 'FAIL: ' "$tmp/out" && fail "guest reported $(grep 'FAIL: ' "$tmp/out" | head -n 1)"
	expect_out SUCCESS
}

# runc ARGS...: run with the usual memory size and the console on stdout.
runc() { run "$@" --memory 128M --console stdio; }

# Helpers for a VM in the background (start_bg) that the control verbs reach by name.
# The control sockets go to a private directory.
use_runtime_dir() {
	KVMM_RUNTIME_DIR="$tmp/run"
	export KVMM_RUNTIME_DIR
	mkdir -p "$KVMM_RUNTIME_DIR"
}
# n_out TEXT: how many lines of stdout hold TEXT (0 when there is no stdout yet).
n_out() {
	n=$(grep -c -F -- "$1" "$tmp/out" 2>/dev/null)
	echo "${n:-0}"
}
# wait_out TEXT N SECS: until TEXT appeared N times on stdout; fails when kvmm exits first.
wait_out() {
	i=0
	while [ "$(n_out "$1")" -lt "$2" ]; do
		if ! kill -0 $pid 2>/dev/null; then
			wait $pid
			rc=$?
			pid=
			fail "kvmm exited (status $rc) before '$1' appeared $2 time(s)"
		fi
		[ $i -lt $(($3 * 10)) ] || fail "'$1' did not appear $2 time(s) in $3 s"
		sleep 0.1
		i=$((i + 1))
	done
}
# wait_exit SECS: wait for the background kvmm to exit; its status in $rc.
wait_exit() {
	i=0
	while kill -0 $pid 2>/dev/null; do
		[ $i -lt $(($1 * 10)) ] || fail "kvmm still running after $1 s"
		sleep 0.1
		i=$((i + 1))
	done
	wait $pid
	rc=$?
	pid=
}
# ctl VERB ARGS...: a control verb under a 10 s timeout; output in $tmp/ctl, status in $crc.
ctl() {
	timeout -k 2 10 "$kvmm" "$@" >"$tmp/ctl" 2>"$tmp/ctl.err" </dev/null
	crc=$?
	if [ $crc -eq 124 ] || [ $crc -eq 137 ]; then
		fail "kvmm $* hung"
	fi
	return 0
}
# ctl_ok VERB ARGS...: a control verb that must succeed.
ctl_ok() {
	ctl "$@"
	[ $crc -eq 0 ] || fail "kvmm $* exited $crc: $(cat "$tmp/ctl.err")"
}
# counts: the N of every "count=N" line on stdout, one per line.
counts() { sed -n 's/^count=\([0-9][0-9]*\)\r*$/\1/p' "$tmp/out"; }
# check_counts STEP: every count line is the previous one + STEP (never back, none lost).
check_counts() {
	counts | awk -v step="$1" '
		NR > 1 && $1 != prev + step { print "count=" $1 " after count=" prev; bad = 1 }
		{ prev = $1 }
		END { exit bad }' >"$tmp/counts.bad" ||
		fail "counter not monotonic in steps of $1: $(head -n 3 "$tmp/counts.bad")"
}
need_python() { command -v python3 >/dev/null || skip "python3 is not installed"; }
disk_py="$(dirname "$0")/disk.py"
case $case_name in
hello)
	runc --kernel "$guest" --cmdline "e2e-marker=42 hello mem=128"
	expect_rc 0 "guest powered off"
	expect_out "Hello from kvmm test guest"
	expect_out "cmdline: e2e-marker=42 hello mem=128"
	expect_success
	;;
smp)
	runc --kernel "$guest" --cpus "$arg" --cmdline "cpus=$arg"
	expect_rc 0 "guest powered off"
	expect_out "smp: $arg CPUs in the MADT"
	expect_out "smp: $arg vCPUs in ring 3"
	expect_success
	;;
timer|ready)
	runc --kernel "$guest"
	expect_rc 0 "guest powered off"
	expect_success
	;;
timer-pit)
	# PIT channel 0 through the IOAPIC pin the MADT's IRQ0 override names.
	runc --kernel "$guest" --cmdline "pit=1"
	expect_rc 0 "guest powered off"
	expect_success
	;;
exits)
	runc --kernel "$guest" --cmdline "n=1000"
	expect_rc 0 "guest powered off"
	expect_out "exits: n=1000 "
	expect_success
	;;
console)
	run --kernel "$guest" --memory 128M --console "file:$tmp/serial.log"
	expect_rc 0 "guest powered off"
	[ -s "$tmp/out" ] && fail "--console file: wrote to stdout"
	grep -q SUCCESS "$tmp/serial.log" || fail "no SUCCESS in the --console file"
	run --kernel "$guest" --memory 128M --console none
	expect_rc 0 "guest powered off with --console none"
	grep -q SUCCESS "$tmp/out" && fail "--console none still wrote the guest's output to stdout"
	;;
memory)
	# Smallest size, one that ends inside the 32-bit PCI hole, and one above 4 GiB.
	# hello.elf checks that its memory map's RAM is within 16 MiB below mem= (MiB).
	for m in 16 3584 5120; do
		run --kernel "$guest" --memory ${m}M --cmdline "mem=$m" --console stdio
		expect_rc 0 "--memory ${m}M"
		expect_success
	done
	;;
sigterm)
	# The guest spins in ring 3 without exits: kvmm must still stop on SIGTERM.
	start_bg --kernel "$guest" --cpus 2 --cmdline "spin=1"
	stop_bg_after spinning 1
	;;
reset-exit)
	runc --kernel "$guest" --reboot exit
	expect_rc 4 "guest reset with --reboot=exit"
	expect_out "reset guest booted"
	;;
reset-restart)
	start_bg --kernel "$guest" --reboot restart
	stop_bg_after "reset guest booted" 2
	;;
reset-smp)
	# Every reset must bring all vCPUs back: the APs wait for INIT/SIPI again.
	start_bg --kernel "$guest" --cpus "$arg" --reboot restart --cmdline "cpus=$arg reset=1"
	stop_bg_after "smp: $arg vCPUs in ring 3" 3
	grep -q 'FAIL: ' "$tmp/out" && fail "guest reported $(grep 'FAIL: ' "$tmp/out" | head -n 1)"
	;;
triple)
	runc --kernel "$guest"
	expect_rc 3 "guest crashed"
	expect_out "triple guest: forcing a triple fault"
	grep -q RIP "$tmp/err" || fail "no register dump (RIP) on stderr"
	;;
bad-inputs)
	missing="$tmp/no-such-kernel.elf"
	runc --kernel "$missing"
	expect_rc 1 "missing kernel file"
	[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "expected one line on stderr for a missing kernel"
	grep -q -F "$missing" "$tmp/err" || fail "stderr does not name $missing"

	runc --kernel "$guest" --cpus 0
	expect_rc 2 "--cpus 0"
	run --kernel "$guest" --memory 1K --console stdio
	expect_rc 2 "--memory 1K"
	runc --kernel "$guest" --cpus 1 --bogus-option
	expect_rc 2 "unknown option"

	head -c 300 "$guest" >"$tmp/truncated.elf"
	runc --kernel "$tmp/truncated.elf"
	expect_rc 1 "truncated ELF"
	head -c 40000 "$guest" >"$tmp/truncated2.elf"
	runc --kernel "$tmp/truncated2.elf"
	expect_rc 1 "ELF truncated inside its segment"
	printf 'this is not an ELF file\n' >"$tmp/text.elf"
	runc --kernel "$tmp/text.elf"
	expect_rc 1 "not an ELF file"
	runc --kernel "$tmp"
	expect_rc 1 "kernel path is a directory"
	;;
virtio-blk)
	# The guest writes a seeded pattern to sectors 8-47 (requests of 16 sectors, data in
	# two descriptors), flushes, reads back and compares; the host file must then hold
	# exactly that pattern there and zeros everywhere else.
	need_python
	disk="$tmp/disk.raw"
	truncate -s 1M "$disk"
	runc --kernel "$guest" --disk "path=$disk,serial=e2e-serial-42" \
		--cmdline "seed=4242 lba=8 count=40 chunk=16"
	expect_rc 0 "guest powered off"
	expect_out "virtio-blk: capacity 2048 sectors"
	expect_out "virtio-blk: read back 40 sectors: match"
	expect_out "virtio-blk: serial 'e2e-serial-42'"
	expect_out "virtio-blk: OK"
	expect_success
	[ "$(wc -c <"$disk")" -eq 1048576 ] || fail "disk size changed to $(wc -c <"$disk")"
	python3 "$disk_py" "$disk" 4242 8 40 >"$tmp/check" 2>&1 || fail "$(cat "$tmp/check")"
	;;
virtio-blk-qcow2)
	# A qcow2 overlay over a raw backing file: the guest's writes land in the overlay only;
	# the backing file keeps every byte, and qemu-img agrees the overlay is clean and holds
	# the pattern on top of the backing's zeros.
	need_python
	command -v qemu-img >/dev/null || skip "qemu-img is not installed"
	base="$tmp/base.raw"
	truncate -s 1M "$base"
	"$kvmm" img create -f qcow2 -b "$base" -F raw "$tmp/overlay.qcow2" >/dev/null ||
		fail "kvmm img create failed"
	runc --kernel "$guest" --disk "path=$tmp/overlay.qcow2" \
		--cmdline "seed=777 lba=100 count=24 chunk=8"
	expect_rc 0 "guest powered off"
	expect_out "virtio-blk: read back 24 sectors: match"
	expect_success
	[ "$(tr -d '\0' <"$base" | wc -c)" -eq 0 ] || fail "the backing file was written"
	qemu-img check "$tmp/overlay.qcow2" >"$tmp/check" 2>&1 || fail "qemu-img check: $(cat "$tmp/check")"
	qemu-img convert -O raw "$tmp/overlay.qcow2" "$tmp/flat.raw" || fail "qemu-img convert failed"
	python3 "$disk_py" "$tmp/flat.raw" 777 100 24 >"$tmp/check" 2>&1 || fail "$(cat "$tmp/check")"
	;;
virtio-blk-ro)
	# readonly=on: every write must complete with VIRTIO_BLK_S_IOERR, reads still work,
	# and the file keeps every byte.
	disk="$tmp/disk.raw"
	head -c 1048576 /dev/urandom >"$disk"
	cp "$disk" "$tmp/disk.orig"
	chmod a-w "$disk"
	runc --kernel "$guest" --disk "path=$disk,readonly=on" --cmdline "ro=1 seed=4242 lba=8 count=40"
	expect_rc 0 "guest powered off"
	expect_out "virtio-blk: writes fail with status 1 (IOERR) on a read-only disk"
	expect_out "virtio-blk: read back 40 sectors: unchanged"
	expect_success
	cmp -s "$disk" "$tmp/disk.orig" || fail "the read-only disk file changed"
	;;
virtio-rng)
	runc --kernel "$guest" --rng
	expect_rc 0 "guest powered off"
	expect_out "virtio-rng: OK"
	expect_success
	;;
virtio-hostile)
	# Malformed chains (a loop, descriptors outside RAM, in the PCI hole, wrapping past
	# 2^64 or straddling the end of RAM, readable after writable, a head beyond the ring,
	# a request without a header), 4 rounds on each device: each must
	# end in DEVICE_NEEDS_RESET, the device must work after a reset, and kvmm must go on
	# running and log a rate-limited warning (at most 5 per device per 5 s).
	disk="$tmp/disk.raw"
	truncate -s 1M "$disk"
	runc --kernel "$guest" --disk "path=$disk" --rng --cmdline "hostile=1 rounds=4"
	expect_rc 0 "guest powered off after the hostile chains"
	expect_out "virtio-blk: hostile: 28 malformed chains, each answered with DEVICE_NEEDS_RESET"
	expect_out "virtio-rng: hostile: 24 malformed chains, each answered with DEVICE_NEEDS_RESET"
	expect_out "virtio-blk: OK"
	expect_out "virtio-rng: OK"
	expect_success
	for dev in virtio-blk virtio-rng; do
		n=$(grep -c "$dev: .*needs reset" "$tmp/err")
		[ "$n" -ge 1 ] || fail "no '$dev: ... needs reset' warning on stderr"
		[ "$n" -le 5 ] || fail "$n '$dev: ... needs reset' warnings: not rate-limited"
	done
	[ "$(wc -l <"$tmp/err")" -le 12 ] || fail "$(wc -l <"$tmp/err") lines on stderr"
	# With RAM up to the 32-bit PCI hole, the straddling descriptor runs into the hole.
	run --kernel "$guest" --memory 3584M --console stdio --disk "path=$disk" --cmdline "hostile=1"
	expect_rc 0 "guest powered off after the hostile chains (--memory 3584M)"
	expect_out "virtio-blk: hostile: 7 malformed chains, each answered with DEVICE_NEEDS_RESET"
	expect_success
	;;
counter)
	# The counter guest alone: counts in steps of every= up to max=, then powers off.
	runc --kernel "$guest" --cmdline "mb=8 every=32 max=256"
	expect_rc 0 "guest powered off at max="
	expect_out "count=256"
	[ "$(counts | wc -l)" -eq 8 ] || fail "expected 8 count lines, got $(counts | wc -l)"
	check_counts 32
	expect_success
	;;
pause-resume)
	use_runtime_dir
	name=e2e-counter
	start_bg --kernel "$guest" --name $name --cmdline "mb=4 every=16"
	wait_out "count=" 3 30
	ctl_ok list
	grep -q "^$name  *running " "$tmp/ctl" ||
		fail "kvmm list does not show $name running: $(cat "$tmp/ctl")"

	# A second VM with the same name is refused, and must leave the first one alone.
	timeout -k 2 20 "$kvmm" run --kernel "$guest" --memory 32M --console none --name $name \
		>"$tmp/dup.out" 2>"$tmp/dup.err" </dev/null
	drc=$?
	[ $drc -eq 1 ] || fail "second kvmm run --name $name exited $drc, expected 1"
	grep -q "already running" "$tmp/dup.err" ||
		fail "no 'already running' message: $(cat "$tmp/dup.err")"
	[ -S "$KVMM_RUNTIME_DIR/$name.sock" ] || fail "the refused run removed the live VM's socket"

	ctl_ok pause $name
	ctl_ok status $name
	grep -q "^state  *paused" "$tmp/ctl" || fail "status after pause: $(cat "$tmp/ctl")"
	ctl_ok status --json $name
	grep -q '"state": *"paused"' "$tmp/ctl" || fail "status --json after pause: $(cat "$tmp/ctl")"
	ctl pause $name
	[ $crc -eq 1 ] || fail "pausing a paused VM exited $crc, expected 1"
	ctl powerbutton $name
	[ $crc -eq 1 ] || fail "powerbutton on a paused VM exited $crc, expected 1"
	sleep 0.3 # output already on its way
	before=$(counts | wc -l)
	sleep 1
	after=$(counts | wc -l)
	[ "$after" -eq "$before" ] || fail "$((after - before)) count lines while paused"
	last=$(counts | tail -n 1)

	ctl_ok resume $name
	ctl_ok status $name
	grep -q "^state  *running" "$tmp/ctl" || fail "status after resume: $(cat "$tmp/ctl")"
	wait_out "count=" $((after + 3)) 30
	check_counts 16
	[ "$(counts | tail -n 1)" -gt "$last" ] || fail "the counter did not move on after resume"

	ctl_ok stats $name
	grep -q "^vCPU " "$tmp/ctl" || fail "kvmm stats has no vCPU table: $(cat "$tmp/ctl")"
	grep -q "^0  *[1-9]" "$tmp/ctl" || fail "kvmm stats has no exits for vCPU 0: $(cat "$tmp/ctl")"
	ctl_ok stats --json $name
	grep -q '"vcpus"' "$tmp/ctl" || fail "kvmm stats --json has no vcpus"

	ctl_ok stop $name
	wait_exit 10
	expect_rc 0 "stopped through the control socket"
	grep -q 'FAIL: ' "$tmp/out" && fail "guest reported $(grep 'FAIL: ' "$tmp/out" | head -n 1)"
	ctl_ok list
	grep -q "^$name " "$tmp/ctl" && fail "kvmm list still shows $name after it stopped"
	[ -e "$KVMM_RUNTIME_DIR/$name.sock" ] && fail "$name.sock left behind"
	ctl status $name
	[ $crc -eq 1 ] || fail "kvmm status of a stopped VM exited $crc, expected 1"

	# A socket file nobody listens on (a VM that died): kvmm list removes it.
	need_python
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
		"$KVMM_RUNTIME_DIR/stale.sock" || fail "cannot create a stale socket"
	[ -S "$KVMM_RUNTIME_DIR/stale.sock" ] || fail "no stale socket file"
	ctl_ok list
	grep -q "^stale " "$tmp/ctl" && fail "kvmm list shows the stale socket as a VM"
	[ -e "$KVMM_RUNTIME_DIR/stale.sock" ] && fail "kvmm list left the stale socket"
	;;
powerbutton)
	# The guest arms PWRBTN_EN and waits for the SCI (arg poll=1: polls PM1_STS).
	use_runtime_dir
	start_bg --kernel "$guest" --name e2e-pwrbtn --cmdline "$arg"
	wait_out "powerbtn: armed" 1 30
	ctl_ok powerbutton e2e-pwrbtn
	wait_exit 20
	expect_rc 0 "guest powered off after the power button"
	expect_out "powerbtn: pressed"
	expect_success
	;;
*)
	echo "e2e.sh: unknown case $case_name" >&2
	exit 2
	;;
esac
echo "PASS($case_name)"
exit 0
