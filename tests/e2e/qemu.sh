#!/bin/sh
# SPDX-License-Identifier: MIT
# qemu.sh: cross-check that every test guest boots under QEMU (-M pc; TCG, or KVM with
# QEMU_ACCEL=kvm) and ends the same way as under kvmm, so a failure under kvmm can be told
# apart from a broken guest. Usage: qemu.sh GUEST_ELF...; exits 0 pass, 1 fail, 77 skip.
set -u
accel=${QEMU_ACCEL:-tcg}
qemu=$(command -v qemu-system-x86_64) || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
if [ "$accel" = kvm ]; then
	[ -e /dev/kvm ] || { echo "SKIP: /dev/kvm does not exist"; exit 77; }
	(exec 3<>/dev/kvm) 2>/dev/null || { echo "SKIP: /dev/kvm is not accessible"; exit 77; }
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvmm-qemu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0

# boot NAME GUEST [QEMU ARGS...]: sets $rc, serial output in $tmp/out.
boot() {
	name=$1
	guest=$2
	shift 2
	timeout -k 5 60 "$qemu" -accel "$accel" -M pc -m 128 -nographic -net none "$@" \
		-kernel "$guest" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
}
bad() {
	echo "FAIL(qemu-$accel $name): $*"
	tail -n 20 "$tmp/out" "$tmp/err"
	failed=1
}
# A guest that reports SUCCESS must also power QEMU off through ACPI: no -no-reboot, so
# the i8042-reset fallback would boot it again until the timeout.
check_success() {
	if [ $rc -ne 0 ]; then
		bad "exit status $rc (124: no ACPI power-off within 60 s)"
	elif grep -q 'FAIL: ' "$tmp/out" || ! grep -q 'SUCCESS$' "$tmp/out"; then
		bad "no SUCCESS on the serial line"
	elif [ "$(grep -c 'SUCCESS$' "$tmp/out")" -ne 1 ]; then
		bad "guest booted more than once (power-off fell back to reset)"
	else
		echo "PASS(qemu-$accel $name)"
	fi
}
check_banner() {
	if [ $rc -ne 0 ]; then
		bad "exit status $rc"
	elif ! grep -q -F "$1" "$tmp/out"; then
		bad "no '$1' on the serial line"
	elif grep -q -e 'SUCCESS$' -e 'FAIL: ' "$tmp/out"; then
		bad "unexpected verdict: $(grep -e 'SUCCESS$' -e 'FAIL: ' "$tmp/out")"
	else
		echo "PASS(qemu-$accel $name)"
	fi
}

for guest in "$@"; do
	base=$(basename "$guest" .elf)
	case $base in
	hello)
		boot hello "$guest" -append "e2e-marker=42 mem=128"
		grep -q -F "cmdline: e2e-marker=42" "$tmp/out" || bad "command line not echoed"
		check_success
		;;
	smp)
		for n in 1 2 4; do
			boot "smp-$n" "$guest" -smp "$n" -append "cpus=$n"
			check_success
		done
		;;
	exits)
		boot exits "$guest" -append "n=1000"
		check_success
		;;
	timer)
		boot timer "$guest"
		check_success
		boot timer-pit "$guest" -append "pit=1"
		check_success
		;;
	ready)
		boot ready "$guest"
		check_success
		;;
	reset)
		boot reset "$guest" -no-reboot
		check_banner "reset guest booted"
		;;
	triple)
		boot triple "$guest" -no-reboot
		check_banner "triple guest: forcing a triple fault"
		;;
	*)
		echo "qemu.sh: no expectation for $guest" >&2
		failed=1
		;;
	esac
done
exit $failed
