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
trap 'rm -rf "$tmp"' EXIT
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
		fail "kvmm still running 10 s after SIGTERM"
	fi
	wait $pid
	rc=$?
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
*)
	echo "e2e.sh: unknown case $case_name" >&2
	exit 2
	;;
esac
echo "PASS($case_name)"
exit 0
