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
	counter)
		boot counter "$guest" -append "mb=8 every=32 max=128"
		grep -q '^count=128' "$tmp/out" || bad "no count=128"
		check_success
		;;
	virtio)
		# The same modern-only devices kvmm offers; QEMU places the virtio BAR elsewhere.
		# One boot for the malformed chains and the pattern (QEMU lets descriptors point
		# at unassigned addresses: skip=0x46 leaves those three cases out), one read-only.
		dev="disable-legacy=on,disable-modern=off"
		truncate -s 1M "$tmp/disk.raw"
		boot virtio "$guest" -append "hostile=1 skip=0x46 seed=4242 lba=8 count=40 chunk=16" \
			-drive "file=$tmp/disk.raw,format=raw,if=none,id=d0" \
			-device "virtio-blk-pci,drive=d0,$dev,serial=qemu-serial" -device "virtio-rng-pci,$dev"
		grep -q "virtio-blk: serial 'qemu-serial'" "$tmp/out" || bad "no serial"
		grep -q "virtio-blk: hostile: 4 malformed chains" "$tmp/out" || bad "virtio-blk: hostile cases"
		grep -q "virtio-rng: hostile: 3 malformed chains" "$tmp/out" || bad "virtio-rng: hostile cases"
		grep -q "virtio-rng: OK" "$tmp/out" || bad "no virtio-rng: OK"
		check_success
		if command -v python3 >/dev/null; then
			python3 "$(dirname "$0")/disk.py" "$tmp/disk.raw" 4242 8 40 >"$tmp/check" 2>&1 ||
				bad "$(cat "$tmp/check")"
		fi
		cp "$tmp/disk.raw" "$tmp/disk.orig"
		boot virtio-ro "$guest" -append "ro=1 seed=99 lba=8 count=40" \
			-drive "file=$tmp/disk.raw,format=raw,if=none,id=d0,readonly=on" \
			-device "virtio-blk-pci,drive=d0,$dev"
		grep -q "virtio-blk: writes fail with status 1" "$tmp/out" || bad "read-only writes"
		check_success
		cmp -s "$tmp/disk.raw" "$tmp/disk.orig" || bad "the read-only disk changed"
		;;
	powerbtn)
		# Press the button through QMP once the guest is armed.
		if ! command -v python3 >/dev/null; then
			echo "SKIP(qemu-$accel powerbtn): python3 is not installed"
			continue
		fi
		for mode in "" poll=1; do
			name="powerbtn${mode:+-poll}"
			timeout -k 5 60 "$qemu" -accel "$accel" -M pc -m 128 -nographic -net none \
				-qmp "unix:$tmp/qmp,server=on,wait=off" -append "$mode" \
				-kernel "$guest" >"$tmp/out" 2>"$tmp/err" </dev/null &
			qpid=$!
			i=0
			while ! grep -q "powerbtn: armed" "$tmp/out" && [ $i -lt 300 ] &&
				kill -0 $qpid 2>/dev/null; do
				sleep 0.2
				i=$((i + 1))
			done
			# Press until the guest reports it (a loaded TCG host can miss a first press).
			python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
f.write("{\"execute\": \"qmp_capabilities\"}\n")
f.flush()
f.readline()
for _ in range(20):
    f.write("{\"execute\": \"system_powerdown\"}\n")
    f.flush()
    time.sleep(2)
    if "powerbtn: pressed" in open(sys.argv[2], errors="replace").read():
        break
' "$tmp/qmp" "$tmp/out" 2>>"$tmp/err"
			wait $qpid
			rc=$?
			grep -q "powerbtn: pressed" "$tmp/out" || bad "no 'powerbtn: pressed'"
			check_success
			rm -f "$tmp/qmp"
		done
		;;
	net)
		# QEMU's virtio-net-pci on a tap in a network namespace, with the host-side peer:
		# net.sh runs the same exchange as for kvmm.
		name=net
		"$(dirname "$0")/net.sh" "qemu-$accel" none "$guest" >"$tmp/out" 2>"$tmp/err"
		rc=$?
		if [ $rc -eq 77 ]; then
			echo "SKIP(qemu-$accel net): $(tail -n 1 "$tmp/out")"
		elif [ $rc -ne 0 ]; then
			bad "net.sh qemu-$accel: $(grep -m 1 'FAIL' "$tmp/out")"
		else
			echo "PASS(qemu-$accel net)"
		fi
		;;
	*)
		echo "qemu.sh: no expectation for $guest" >&2
		failed=1
		;;
	esac
done
exit $failed
