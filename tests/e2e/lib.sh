# SPDX-License-Identifier: MIT
# lib.sh: shell helpers of the counter-guest tests (snapshot.sh, migrate.sh), sourced by them:
# VMs in the background, their count lines, control verbs, the cleanup trap. net.sh sources it
# for fail/skip/show, the cleanup trap (PIDS, NETNS), make_tmp and the /dev/kvm check.
# The sourcing script sets case_name, kvmm and guest first; status lands in $rc (a VM) and
# $crc (a control verb); every VM's console is $tmp/TAG.out, its stderr $tmp/TAG.err.
# shellcheck shell=bash disable=SC2034,SC2154 # variables the sourcing script uses or sets

# The counter guest (guests/counter.c): 8 MiB rewritten per pass, a line every 16 passes.
EVERY=16
CMDLINE="mb=8 every=$EVERY"
MEM=128M

tmp=
IN_NS=    # a prefix for vm_start and wait_listen, e.g. "ip netns exec NS"
NETNS=()  # network namespaces that cleanup deletes
declare -A PIDS=()
SHOW_FILES=() # what show prints, names in $tmp; empty: every *.out, *.err and ctl.err
SHOW_LINES=15 # the last lines show prints of each

show() {
	local f files=()
	[ -n "$tmp" ] || return 0
	for f in "${SHOW_FILES[@]}"; do
		files+=("$tmp/$f")
	done
	[ ${#files[@]} -gt 0 ] || files=("$tmp"/*.out "$tmp"/*.err "$tmp"/ctl.err)
	for f in "${files[@]}"; do
		[ -s "$f" ] && { echo "--- $(basename "$f"):"; tail -n "$SHOW_LINES" "$f"; }
	done
	return 0
}
fail() { echo "FAIL($case_name): $*"; show; exit 1; }
skip() { echo "SKIP($case_name): $*"; exit 77; }
cleanup() {
	local t
	for t in "${!PIDS[@]}"; do
		kill -KILL "${PIDS[$t]}" 2>/dev/null
	done
	wait 2>/dev/null
	for t in "${NETNS[@]}"; do
		ip netns del "$t" 2>/dev/null
	done
	[ -n "$tmp" ] && rm -rf "$tmp"
}

# require_kvm_dev: skip without a usable /dev/kvm.
require_kvm_dev() {
	[ -e /dev/kvm ] || skip "/dev/kvm does not exist"
	if ! (exec 3<>/dev/kvm) 2>/dev/null; then
		skip "/dev/kvm is not accessible to $(id -un)"
	fi
}
# require_kvm: skip without a usable /dev/kvm; fail without the kvmm binary or the guest.
require_kvm() {
	require_kvm_dev
	[ -x "$kvmm" ] || fail "kvmm binary $kvmm missing"
	[ -r "$guest" ] || fail "guest $guest missing"
}

# make_tmp NAME: a temporary directory (removed on exit) with the VMs' runtime directory.
make_tmp() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	trap cleanup EXIT
	ulimit -c 0
	KVMM_RUNTIME_DIR="$tmp/run"
	export KVMM_RUNTIME_DIR
	mkdir -p "$KVMM_RUNTIME_DIR"
}

# vm_start TAG ARGS...: kvmm run ARGS in the background (prefixed by $IN_NS when set),
# console on $tmp/TAG.out.
vm_start() {
	local tag=$1
	shift
	: >"$tmp/$tag.out"
	$IN_NS "$kvmm" run "$@" --console stdio >"$tmp/$tag.out" 2>"$tmp/$tag.err" </dev/null &
	PIDS[$tag]=$!
}
vm_alive() { kill -0 "${PIDS[$1]}" 2>/dev/null; }
# vm_reap TAG: wait for an exited VM; status in $rc.
vm_reap() {
	wait "${PIDS[$1]}" 2>/dev/null
	rc=$?
	unset "PIDS[$1]"
}

# whole_lines FILE...: the files joined (a line split across a handover reads whole), without
# a last line still being written: the guest may be in the middle of it.
whole_lines() {
	cat "$@" >"$tmp/joined"
	if [ -s "$tmp/joined" ] && [ -n "$(tail -c 1 "$tmp/joined" | tr -d '\n')" ]; then
		sed '$d' "$tmp/joined"
	else
		cat "$tmp/joined"
	fi
}
# counts_of FILE...: the N of every complete "count=N" line; counts TAG: of TAG's console.
counts_of() { whole_lines "$@" | sed -n 's/^count=\([0-9][0-9]*\)\r*$/\1/p'; }
counts() { counts_of "$tmp/$1.out"; }
ncounts() { counts "$1" | wc -l; }
last_count() { counts "$1" | tail -n 1; }
first_count() { counts "$1" | head -n 1; }

# wait_lines TAG N SECS: until TAG printed N count lines; fails if it exits first.
wait_lines() {
	local i=0
	while [ "$(ncounts "$1")" -lt "$2" ]; do
		vm_alive "$1" || { vm_reap "$1"; fail "$1 exited (status $rc) before $2 count lines"; }
		[ $i -lt $(($3 * 10)) ] || fail "$1: $2 count lines did not appear in $3 s"
		sleep 0.1
		i=$((i + 1))
	done
}
# wait_above TAG VALUE SECS: until TAG printed a count above VALUE.
wait_above() {
	local i=0 c
	while :; do
		c=$(last_count "$1")
		[ -n "$c" ] && [ "$c" -gt "$2" ] && return 0
		vm_alive "$1" || { vm_reap "$1"; fail "$1 exited (status $rc) before counting past $2"; }
		[ $i -lt $(($3 * 10)) ] || fail "$1 did not count past $2 in $3 s (last: ${c:-none})"
		sleep 0.1
		i=$((i + 1))
	done
}
# vm_wait_exit TAG SECS: wait for TAG to exit, status in $rc; fails after SECS.
vm_wait_exit() {
	local i=0
	while vm_alive "$1"; do
		[ $i -lt $(($2 * 10)) ] || fail "$1 still running after $2 s"
		sleep 0.1
		i=$((i + 1))
	done
	vm_reap "$1"
}
# sanitizer_report FILE: true when FILE (a kvmm's stderr) holds an ASan/UBSan/LSan report.
sanitizer_report() { grep -q -e AddressSanitizer -e 'runtime error:' -e LeakSanitizer "$1"; }
# vm_check TAG: no guest FAIL line, no sanitizer report.
vm_check() {
	grep -q 'FAIL' "$tmp/$1.out" && fail "$1: guest reported: $(grep FAIL "$tmp/$1.out" | head -n 1)"
	sanitizer_report "$tmp/$1.err" && fail "$1: sanitizer report on stderr"
	return 0
}
# vm_stop TAG: kvmm stop, exit status 0 within 10 s.
vm_stop() {
	ctl_ok stop "$1"
	vm_wait_exit "$1" 10
	[ "$rc" -eq 0 ] || fail "$1 exited $rc after kvmm stop, expected 0"
	vm_check "$1"
}

# ctl VERB ARGS...: a control verb under a timeout; stdout in $tmp/ctl, status in $crc.
ctl() {
	timeout -k 2 60 "$kvmm" "$@" >"$tmp/ctl" 2>"$tmp/ctl.err" </dev/null
	crc=$?
	[ $crc -ne 124 ] && [ $crc -ne 137 ] || fail "kvmm $* hung"
	return 0
}
ctl_ok() {
	ctl "$@"
	[ $crc -eq 0 ] || fail "kvmm $* exited $crc: $(cat "$tmp/ctl.err")"
}
vm_state() {
	ctl_ok status "$1"
	sed -n 's/^state  *//p' "$tmp/ctl"
}

# check_steps FILE...: the count lines of the files, concatenated, go up by exactly EVERY
# each time (a source's console may end inside a line its destination finishes).
check_steps() {
	counts_of "$@" | awk -v step=$EVERY '
		NR > 1 && $1 != prev + step { print "count=" $1 " after count=" prev; bad = 1 }
		{ prev = $1 }
		END { exit bad }' >"$tmp/steps" ||
		fail "${*##*/}: counter not in steps of $EVERY: $(head -n 3 "$tmp/steps")"
}

# check_memory FILE WHAT: FILE (a memory.bin) holds what guests/README.md says a paused
# counter guest leaves: the magic, pattern counter+1 below some boundary and pattern counter
# from it. The verdict is in $tmp/dump; fails with "WHAT: verdict".
check_memory() {
	python3 - "$1" >"$tmp/dump" 2>&1 <<'EOF' || fail "$2: $(cat "$tmp/dump")"
import array, sys
K = 0x9e3779b97f4a7c15
M = (1 << 64) - 1
with open(sys.argv[1], "rb") as f:
    f.seek(0x200000)
    hdr = array.array("Q", f.read(40))
    magic, counter, start, length, passing = hdr
    if magic != 0x31544e434d4d564b:
        sys.exit("no counter magic at 0x200000: 0x%x" % magic)
    if start != 0x400000 or length == 0 or length % 8:
        sys.exit("region 0x%x+0x%x" % (start, length))
    f.seek(start)
    words = array.array("Q", f.read(length))
if counter == 0:
    print("counter 0: nothing to check")
    sys.exit(0)
new = ((counter + 1) * K) & M
old = (counter * K) & M
# Below the boundary: pattern counter+1; from it: pattern counter.
i, n = 0, len(words)
while i < n and words[i] == new ^ (start + 8 * i):
    i += 1
b = i
while i < n and words[i] == old ^ (start + 8 * i):
    i += 1
if i != n:
    sys.exit("counter %d: word at 0x%x is 0x%x, boundary at 0x%x" % (counter, start + 8 * i, words[i], start + 8 * b))
if b and passing != counter + 1:
    sys.exit("pass field %d with a boundary at 0x%x (counter %d)" % (passing, start + 8 * b, counter))
print("counter %d, boundary at 0x%x: consistent" % (counter, start + 8 * b))
EOF
}
