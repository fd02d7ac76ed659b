# shellcheck shell=sh disable=SC2034
# SPDX-License-Identifier: MIT
# Helpers sourced by the rig's scenarios (POSIX sh: runs in busybox sh and on a real host).
#
# A scenario exits 0 (pass), 1 (fail) or 77 (skip); its reason is its last line and also
# goes to $RIG_TMP/.reason for the runner. Files a scenario leaves in $RIG_TMP (guest
# console, kvmm log) are shown when it fails.

# The guest kernel's command line: serial console, no waiting on panic, keyboard-controller
# reset, and quiet because every byte on the emulated UART is a VM exit.
RIG_GUEST_CMDLINE="console=ttyS0 panic=-1 reboot=k quiet"

rig_now_cs() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }

rig_result() {
	echo "$2" >"$RIG_TMP/.reason"
	echo "$2"
	exit "$1"
}
rig_pass() { rig_result 0 "${1:-ok}"; }
rig_fail() { rig_result 1 "$1"; }
rig_skip() { rig_result 77 "$1"; }

# rig_need_kvmm: skip when no kvmm binary was given to the rig.
rig_need_kvmm() {
	[ -x "$RIG_KVMM" ] || rig_skip "no kvmm binary (pass --kvmm to the rig)"
}

# rig_need_qemu: skip unless QEMU was put into the host (rig --with-qemu).
rig_need_qemu() {
	[ -n "${RIG_QEMU_BIN:-}" ] && [ -x "$RIG_QEMU_BIN" ] ||
		rig_skip "no QEMU in this host (pass --with-qemu to the rig)"
}

# _rig_start WHAT BIN TAG LIMIT ARGS...: start "BIN ARGS" in the background under a time
# limit; its stdout goes to $RIG_TMP/TAG.console, its stderr to $RIG_TMP/TAG.log. Sets
# KVMM_PID, so rig_wait_console and rig_kvmm_wait apply.
_rig_start() {
	_what=$1 _bin=$2 _tag=$3 _lim=$4
	shift 4
	echo "+ $_what $* (limit ${_lim}s)"
	_t0=$(rig_now_cs)
	timeout -s TERM -k 10 "$_lim" "$_bin" "$@" </dev/null \
		>"$RIG_TMP/$_tag.console" 2>"$RIG_TMP/$_tag.log" &
	KVMM_PID=$!
	echo "$KVMM_PID" >>"$RIG_TMP/.pids"
}

# rig_qemu_start TAG LIMIT ARGS...: like rig_kvmm_start, for QEMU (-accel kvm) as the peer
# of a side-by-side run.
rig_qemu_start() { _rig_start qemu "$RIG_QEMU_BIN" "$@"; }

# rig_kvmm_start TAG LIMIT ARGS...: start "kvmm ARGS" in the background under a time limit
# (console in $RIG_TMP/TAG.console, kvmm's log in $RIG_TMP/TAG.log). Sets KVMM_PID.
rig_kvmm_start() { _rig_start kvmm "$RIG_KVMM" "$@"; }

# rig_kvmm_wait: wait for the kvmm started last. Sets KVMM_RC, KVMM_SECS and
# KVMM_TIMEDOUT (1 when the time limit killed it: kvmm exits 0 on SIGTERM, so the exit
# status alone cannot tell).
rig_kvmm_wait() {
	wait "$KVMM_PID"
	KVMM_RC=$?
	_t1=$(rig_now_cs)
	KVMM_SECS=$(awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.1f", (b - a) / 100 }')
	KVMM_TIMEDOUT=0
	[ $(( (_t1 - _t0) / 100 )) -ge "$_lim" ] && KVMM_TIMEDOUT=1
	echo "${_what:-kvmm} exit $KVMM_RC after ${KVMM_SECS}s$([ $KVMM_TIMEDOUT = 1 ] && echo ' (time limit)')"
	return 0
}

# rig_kvmm TAG LIMIT ARGS...: run kvmm to completion (start + wait).
rig_kvmm() {
	rig_kvmm_start "$@"
	rig_kvmm_wait
}

# rig_count TAG PATTERN: how many console lines of the last kvmm run contain PATTERN.
rig_count() {
	grep -a -c -F -- "$2" "$RIG_TMP/$1.console" 2>/dev/null || true
}

# rig_wait_console TAG PATTERN COUNT SECS: wait until PATTERN appeared COUNT times on the
# console of the running kvmm, or it exited, or SECS passed. Returns 0 when seen.
rig_wait_console() {
	_n=0
	while [ "$_n" -lt "$(( $4 * 5 ))" ]; do
		[ "$(rig_count "$1" "$2")" -ge "$3" ] && return 0
		kill -0 "$KVMM_PID" 2>/dev/null || break
		sleep 0.2
		_n=$((_n + 1))
	done
	[ "$(rig_count "$1" "$2")" -ge "$3" ]
}

# rig_expect_boot TAG [EXIT]: the guest reached /init, and kvmm exited with EXIT (default
# 0) by itself. Fails with a reason naming what was missing.
rig_expect_boot() {
	_want=${2:-0}
	[ "$KVMM_TIMEDOUT" = 1 ] &&
		rig_fail "kvmm still running after its time limit ($(rig_count "$1" '@@GUEST init reached') boots seen)"
	[ "$(rig_count "$1" '@@GUEST init reached')" -ge 1 ] ||
		rig_fail "guest did not reach /init (kvmm exit $KVMM_RC)"
	[ "$KVMM_RC" = "$_want" ] || rig_fail "kvmm exit $KVMM_RC, want $_want"
}

# rig_show TAG: the guest's markers, for the scenario's output.
rig_show() {
	grep -a -F '@@GUEST' "$RIG_TMP/$1.console" 2>/dev/null | tr -d '\r' | sed 's/^/guest: /'
}
