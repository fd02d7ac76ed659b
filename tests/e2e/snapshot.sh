#!/bin/bash
# SPDX-License-Identifier: MIT
# snapshot.sh: end-to-end snapshot and restore of the counter guest (guests/counter.c) under
# kvmm: the guest keeps counting across `kvmm snapshot` and `kvmm run --restore`, memory
# dumps are consistent, clones are independent, damaged snapshots are refused.
# Usage: snapshot.sh CASE KVMM COUNTER_ELF; exits 0 pass, 1 fail, 77 skip.
# Cases: restore, paused, clones, damaged, refused, disk (COUNTER_ELF), deadline (timer.elf).
set -u
case_name=$1
kvmm=$2
guest=$3

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COUNTER_OFF=$((0x200008)) # guests/README.md: u64 counter at guest-physical 0x200008

require_kvm
command -v python3 >/dev/null || skip "python3 is not installed (memory dump checks)"
make_tmp kvmm-snap

# ctl_refused MSG VERB ARGS...: must exit 1 with one line on stderr.
ctl_refused() {
	local what=$1
	shift
	ctl "$@"
	[ $crc -eq 1 ] || fail "$what: kvmm $* exited $crc, expected 1"
	[ "$(wc -l <"$tmp/ctl.err")" -eq 1 ] ||
		fail "$what: expected one line on stderr, got: $(cat "$tmp/ctl.err")"
}
# saved_count DIR: the counter in DIR/memory.bin.
saved_count() {
	od -An -t u8 -j $COUNTER_OFF -N 8 "$1/memory.bin" | tr -d ' '
}
# check_dump DIR: DIR/memory.bin is what a paused counter guest leaves (lib.sh, check_memory).
check_dump() {
	check_memory "$1/memory.bin" "memory dump $1"
}
# restore_refused WHAT DIR: kvmm run --restore DIR must exit 1 with one line on stderr.
restore_refused() {
	timeout -k 2 30 "$kvmm" run --restore "$2" --name refused --console stdio \
		>"$tmp/refused.out" 2>"$tmp/refused.err" </dev/null
	rc=$?
	[ $rc -eq 1 ] || fail "$1: kvmm run --restore exited $rc, expected 1: $(head -n 3 "$tmp/refused.err")"
	[ "$(wc -l <"$tmp/refused.err")" -eq 1 ] ||
		fail "$1: expected one line on stderr, got: $(cat "$tmp/refused.err")"
	[ -s "$tmp/refused.out" ] && fail "$1: the refused restore ran the guest: $(head -n 2 "$tmp/refused.out")"
	[ -e "$KVMM_RUNTIME_DIR/refused.sock" ] && fail "$1: control socket left behind"
	echo "  $1: $(cat "$tmp/refused.err")"
}
# flip FILE OFFSET: invert one byte.
flip() {
	python3 -c '
import sys
p, o = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2" || fail "cannot flip byte $2 of $1"
}

case $case_name in
deadline)
	# The timer guest (timer.elf deadline=1, GUEST) keeps a TSC deadline armed; the
	# restored guest must get its interrupt. KVM drops a TSC_DEADLINE write while the
	# local APIC is not in TSC-deadline mode, so a restore that loads the MSRs before
	# the APIC loses the pending timer and the guest waits forever.
	for round in 1 2 3; do
		vm_start orig --kernel "$guest" --memory $MEM --name orig --cmdline "deadline=1 ticks=100000"
		wait_lines orig 3 30
		ctl_ok snapshot orig "$tmp/snap$round"
		vm_stop orig
		vm_start rest --restore "$tmp/snap$round" --name rest
		wait_lines rest 5 30
		vm_stop rest
		grep -a 'FAIL' "$tmp/rest.out" && fail "round $round: the restored guest failed"
		echo "  round $round: the restored guest got $(ncounts rest) deadline interrupts, first count=$(first_count rest)"
	done
	;;
restore)
	# The original keeps counting after the snapshot; the restored guest continues from
	# the saved count (not from 0, not from the original's later counts).
	vm_start orig --kernel "$guest" --memory $MEM --name orig --cmdline "$CMDLINE"
	wait_lines orig 3 30
	before=$(last_count orig)
	ctl_ok snapshot orig "$tmp/snap"
	[ -f "$tmp/snap/state.bin" ] && [ -f "$tmp/snap/memory.bin" ] && [ -f "$tmp/snap/vm.json" ] ||
		fail "snapshot directory incomplete: $(ls "$tmp/snap")"
	ls -d "$tmp"/snap.tmp* >/dev/null 2>&1 && fail "temporary snapshot directory left behind"
	[ "$(vm_state orig)" = running ] || fail "the original is not running after the snapshot"
	saved=$(saved_count "$tmp/snap")
	[ "$saved" -ge "$before" ] || fail "saved counter $saved is below the last printed count $before"
	check_dump "$tmp/snap"
	echo "  snapshot: last count before $before, saved counter $saved ($(cat "$tmp/dump"))"
	# The original goes on past the saved count, then stops cleanly.
	wait_above orig $((saved + 4 * EVERY)) 30
	vm_stop orig
	check_steps "$tmp/orig.out"
	orig_last=$(last_count orig)

	vm_start rest --restore "$tmp/snap" --name rest
	wait_lines rest 3 30
	first=$(first_count rest)
	echo "  restored: first count $first (the original reached $orig_last)"
	[ "$first" -ge "$saved" ] || fail "restored guest started at count=$first, below the saved $saved"
	[ "$first" -ge "$before" ] || fail "restored guest started at count=$first, below $before"
	[ "$first" -le $((saved + EVERY)) ] ||
		fail "restored guest's first count=$first is past the saved $saved + $EVERY"
	[ "$first" -lt "$orig_last" ] ||
		fail "restored guest's first count=$first is not below the original's later $orig_last"
	check_steps "$tmp/rest.out"
	ctl_ok info rest
	grep -q "$CMDLINE" "$tmp/ctl" || fail "kvmm info of the restored VM lacks the command line: $(cat "$tmp/ctl")"
	vm_stop rest
	# Eager loading restores the same state.
	vm_start eager --restore "$tmp/snap" --restore-eager --name eager
	wait_lines eager 3 30
	[ "$(first_count eager)" = "$first" ] ||
		fail "--restore-eager started at count=$(first_count eager), lazy at count=$first"
	check_steps "$tmp/eager.out"
	vm_stop eager
	;;
paused)
	# Two snapshots of a paused VM: the same memory, consistent with the counter; the VM
	# stays paused, makes no progress, then resumes where it was.
	vm_start p --kernel "$guest" --memory $MEM --name p --cmdline "$CMDLINE"
	wait_lines p 3 30
	ctl_ok pause p
	ctl_ok snapshot p "$tmp/a"
	ctl_ok snapshot p "$tmp/b"
	[ "$(vm_state p)" = paused ] || fail "a snapshot of a paused VM left it $(vm_state p)"
	cmp -s "$tmp/a/memory.bin" "$tmp/b/memory.bin" ||
		fail "two snapshots of the paused VM differ: $(cmp "$tmp/a/memory.bin" "$tmp/b/memory.bin" 2>&1 | head -n 1)"
	sa=$(sha256sum <"$tmp/a/memory.bin" | cut -c1-16)
	check_dump "$tmp/a"
	echo "  paused: memory.bin identical (sha256 $sa...), $(cat "$tmp/dump")"
	saved=$(saved_count "$tmp/a")
	n=$(ncounts p)
	sleep 1
	[ "$(ncounts p)" -eq "$n" ] || fail "the paused VM printed count lines"
	ctl_ok resume p
	wait_above p $((saved + 2 * EVERY)) 30
	check_steps "$tmp/p.out"
	vm_stop p
	# Both snapshots restore to the same count.
	vm_start ra --restore "$tmp/a" --name ra
	vm_start rb --restore "$tmp/b" --name rb
	wait_lines ra 2 30
	wait_lines rb 2 30
	[ "$(first_count ra)" = "$(first_count rb)" ] ||
		fail "the two snapshots restore to count=$(first_count ra) and count=$(first_count rb)"
	vm_stop ra
	vm_stop rb
	;;
clones)
	# Several restores of one snapshot at once: each runs on its own, stopping one leaves
	# the others running, and none writes into memory.bin (a private mapping).
	vm_start orig --kernel "$guest" --memory $MEM --name orig --cmdline "$CMDLINE"
	wait_lines orig 2 30
	ctl_ok snapshot orig "$tmp/snap"
	vm_stop orig
	sum=$(sha256sum <"$tmp/snap/memory.bin")
	saved=$(saved_count "$tmp/snap")
	for c in c1 c2 c3; do
		vm_start $c --restore "$tmp/snap" --name $c
	done
	for c in c1 c2 c3; do
		wait_lines $c 3 60
	done
	ctl_ok list
	for c in c1 c2 c3; do
		grep -q "^$c  *running " "$tmp/ctl" || fail "kvmm list does not show $c running: $(cat "$tmp/ctl")"
	done
	ctl_ok pause c2
	n2=$(ncounts c2)
	l1=$(last_count c1)
	l3=$(last_count c3)
	wait_above c1 $((l1 + 2 * EVERY)) 30
	wait_above c3 $((l3 + 2 * EVERY)) 30
	sleep 0.3
	[ "$(ncounts c2)" -eq "$n2" ] || fail "pausing clone c2 did not stop it (or it shares state)"
	vm_stop c1
	l3=$(last_count c3)
	wait_above c3 $((l3 + 2 * EVERY)) 30
	ctl_ok resume c2
	wait_above c2 "$(last_count c2)" 30
	for c in c2 c3; do
		vm_stop $c
	done
	for c in c1 c2 c3; do
		check_steps "$tmp/$c.out"
		f=$(first_count $c)
		[ "$f" -ge "$saved" ] && [ "$f" -le $((saved + EVERY)) ] ||
			fail "clone $c started at count=$f, the snapshot holds $saved"
	done
	[ "$(sha256sum <"$tmp/snap/memory.bin")" = "$sum" ] || fail "memory.bin changed while clones ran"
	echo "  3 clones from count $saved ran independently; memory.bin unchanged"
	;;
damaged)
	# Damaged, truncated and incomplete snapshots are refused with exit 1 and one line,
	# before any guest code runs; the intact copy still restores afterwards.
	vm_start orig --kernel "$guest" --memory $MEM --name orig --cmdline "$CMDLINE"
	wait_lines orig 2 30
	ctl_ok snapshot orig "$tmp/snap"
	vm_stop orig
	len=$(stat -c %s "$tmp/snap/state.bin")
	mk() { rm -rf "$tmp/bad" && cp -r --sparse=always "$tmp/snap" "$tmp/bad"; }
	for off in 0 8 12 16 40 44 $((len / 2)) $((len - 9)) $((len - 1)); do
		mk
		flip "$tmp/bad/state.bin" $off
		restore_refused "state.bin byte $off of $len flipped" "$tmp/bad"
	done
	for cut in 0 10 $((len / 2)) $((len - 1)); do
		mk
		truncate -s $cut "$tmp/bad/state.bin"
		restore_refused "state.bin truncated to $cut of $len bytes" "$tmp/bad"
	done
	mk
	printf 'x' >>"$tmp/bad/state.bin"
	restore_refused "state.bin with a trailing byte" "$tmp/bad"
	mk
	rm "$tmp/bad/state.bin"
	restore_refused "state.bin missing (incomplete snapshot)" "$tmp/bad"
	grep -q -i -e missing -e incomplete "$tmp/refused.err" ||
		fail "the missing state.bin is not named: $(cat "$tmp/refused.err")"
	mk
	rm "$tmp/bad/vm.json"
	restore_refused "vm.json missing" "$tmp/bad"
	mk
	sed -i 's/"version": *1/"version": 99/' "$tmp/bad/vm.json"
	restore_refused "vm.json of another version" "$tmp/bad"
	mk
	truncate -s $(($(stat -c %s "$tmp/snap/memory.bin") / 2)) "$tmp/bad/memory.bin"
	restore_refused "memory.bin truncated to half" "$tmp/bad"
	restore_refused "not a snapshot directory" "$tmp/no-such-snapshot"
	# The intact snapshot still restores.
	vm_start good --restore "$tmp/snap" --name good
	wait_lines good 2 30
	vm_stop good
	;;
refused)
	# A snapshot into an existing directory (or an impossible path) is refused; the VM
	# keeps running and counting, and no partial directory is left.
	vm_start v --kernel "$guest" --memory $MEM --name v --cmdline "$CMDLINE"
	wait_lines v 2 30
	mkdir "$tmp/exists"
	echo keep >"$tmp/exists/file"
	ctl_refused "snapshot into an existing directory" snapshot v "$tmp/exists"
	echo "  existing directory: $(cat "$tmp/ctl.err")"
	[ "$(cat "$tmp/exists/file")" = keep ] && [ "$(ls "$tmp/exists")" = file ] ||
		fail "the existing directory was changed: $(ls "$tmp/exists")"
	ctl_refused "snapshot under a missing parent" snapshot v "$tmp/no/such/dir"
	echo "  missing parent: $(cat "$tmp/ctl.err")"
	: >"$tmp/plainfile"
	ctl_refused "snapshot onto a file" snapshot v "$tmp/plainfile"
	ls -d "$tmp"/*.tmp-* >/dev/null 2>&1 && fail "temporary directory left: $(ls -d "$tmp"/*.tmp-*)"
	# A full disk: a 1 MiB tmpfs cannot hold the guest's memory. Refused, nothing that
	# looks like a snapshot is left, the VM goes on. (Needs permission to mount.)
	mkdir "$tmp/small"
	if mount -t tmpfs -o size=1m tmpfs "$tmp/small" 2>/dev/null; then
		ctl_refused "snapshot onto a full file system" snapshot v "$tmp/small/snap"
		echo "  full disk: $(cat "$tmp/ctl.err")"
		left=$(ls -A "$tmp/small")
		umount "$tmp/small"
		[ -z "$left" ] || fail "a full-disk snapshot left files behind: $left"
	else
		echo "  full disk: not tested (cannot mount a tmpfs here)"
	fi
	[ "$(vm_state v)" = running ] || fail "the VM is $(vm_state v) after the refused snapshots"
	l=$(last_count v)
	wait_above v $((l + 2 * EVERY)) 30
	# A paused VM: still refused, still paused.
	ctl_ok pause v
	ctl_refused "snapshot of a paused VM into an existing directory" snapshot v "$tmp/exists"
	[ "$(vm_state v)" = paused ] || fail "a refused snapshot resumed the paused VM"
	ctl_ok resume v
	ctl_refused "resume of a running VM" resume v
	l=$(last_count v)
	wait_above v $((l + EVERY)) 30
	check_steps "$tmp/v.out"
	vm_stop v
	;;
disk)
	# A VM with a virtio-blk disk: the snapshot records it, the restore reopens it.
	disk="$tmp/disk.raw"
	head -c 1048576 /dev/urandom >"$disk"
	cp "$disk" "$tmp/disk.orig"
	vm_start d --kernel "$guest" --memory $MEM --name d --cmdline "$CMDLINE" \
		--disk "path=$disk,serial=snap-disk"
	wait_lines d 2 30
	ctl_ok snapshot d "$tmp/snap"
	grep -q -F "\"path\": \"$disk\"" "$tmp/snap/vm.json" ||
		fail "vm.json does not record the disk: $(cat "$tmp/snap/vm.json")"
	grep -q '"serial": "snap-disk"' "$tmp/snap/vm.json" || fail "vm.json lost the disk serial"
	saved=$(saved_count "$tmp/snap")
	vm_stop d
	vm_start r --restore "$tmp/snap" --name r
	wait_lines r 3 30
	f=$(first_count r)
	[ "$f" -ge "$saved" ] && [ "$f" -le $((saved + EVERY)) ] ||
		fail "restored guest started at count=$f, the snapshot holds $saved"
	ctl_ok info --json r
	grep -q -F "$disk" "$tmp/ctl" || fail "the restored VM has no disk: $(cat "$tmp/ctl")"
	grep -q virtio-blk "$tmp/ctl" || echo "  note: kvmm info lists no virtio-blk device: $(tr -d '\n' <"$tmp/ctl")"
	check_steps "$tmp/r.out"
	vm_stop r
	cmp -s "$disk" "$tmp/disk.orig" || fail "the disk changed (the guest never writes it)"
	# The disk is gone: the restore is refused, not started without it.
	mv "$disk" "$disk.moved"
	restore_refused "restore whose disk is missing" "$tmp/snap"

	# qcow2, captured with the VM state (docs/snapshot-format.md, "Disks"): an internal
	# snapshot (the default for qcow2), then an overlay whose restores are independent.
	q="$tmp/disk.qcow2"
	"$kvmm" img create -f qcow2 "$q" 4M >"$tmp/img.out" 2>&1 || fail "kvmm img create: $(cat "$tmp/img.out")"
	vm_start q --kernel "$guest" --memory $MEM --name q --cmdline "$CMDLINE" --disk "path=$q"
	wait_lines q 2 30
	ctl_ok snapshot q "$tmp/qint"
	"$kvmm" img snapshot -l "$q" >"$tmp/img.out" 2>&1 || fail "kvmm img snapshot -l: $(cat "$tmp/img.out")"
	grep -q "kvmm-qint" "$tmp/img.out" || fail "no internal snapshot kvmm-qint in the disk: $(cat "$tmp/img.out")"
	grep -q '"snapshot": "internal"' "$tmp/qint/vm.json" || fail "vm.json does not record the internal disk snapshot"
	ctl_ok snapshot q "$tmp/qovl" --disks overlay
	[ -f "$q.after-qovl.qcow2" ] || fail "no overlay $q.after-qovl.qcow2 after --disks overlay: $(ls "$tmp")"
	[ "$(vm_state q)" = running ] || fail "the VM is not running after the overlay snapshot"
	l=$(last_count q)
	wait_above q $((l + EVERY)) 30
	vm_stop q
	for c in o1 o2; do
		vm_start $c --restore "$tmp/qovl" --name $c
	done
	for c in o1 o2; do
		wait_lines $c 2 30
	done
	[ "$(find "$tmp/qovl/overlays" -type f 2>/dev/null | wc -l)" -ge 2 ] ||
		fail "two restores of the overlay snapshot: overlays $(ls -R "$tmp/qovl" 2>&1 | tr '\n' ' ')"
	for c in o1 o2; do
		vm_stop $c
	done
	vm_start qi --restore "$tmp/qint" --name qi
	wait_lines qi 2 30
	vm_stop qi
	for f in "$q" "$q.after-qovl.qcow2"; do
		"$kvmm" img check "$f" >"$tmp/img.out" 2>&1 || fail "kvmm img check $f: $(cat "$tmp/img.out")"
	done
	echo "  qcow2: internal snapshot and overlay snapshot restored; images check clean"
	;;
*)
	echo "snapshot.sh: unknown case $case_name" >&2
	exit 2
	;;
esac
echo "PASS($case_name)"
exit 0
