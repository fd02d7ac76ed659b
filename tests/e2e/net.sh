#!/bin/bash
# SPDX-License-Identifier: MIT
# net.sh: end-to-end virtio-net. guests/net.elf runs under kvmm with a tap in a network
# namespace of its own (created here, always deleted on exit); netpeer.py is the host side.
# The guest ARPs, pings the host and has UDP datagrams of 1-1472 bytes echoed by the host
# (some checksummed by the device, VIRTIO_NET_HDR_F_NEEDS_CSUM); then the host pings the
# guest and sends it datagrams that must come back identical; the namespace's UDP
# checksum error counter must stay 0.
# Usage: net.sh CASE KVMM NET_ELF; exits 0 pass, 1 fail, 77 skip (no usable /dev/kvm or tun;
# for the QEMU cases also no QEMU).
# Cases:
#   tap         --net tap=NAME,mac=M (a persistent tap made here, kvmm attaches to it)
#   fd          --net fd=N: the test opens the tap and kvmm inherits the fd
#   vhost       --net tap=NAME,vhost=on (skipped without /dev/vhost-net)
#   bad-inputs  a busy tap, an interface that is not a tap, fds that are not open, not a
#               tap, or a tap without IFF_VNET_HDR, vhost=on without /dev/vhost-net: exit
#               status 1 and one line on stderr (a bad MAC: 2, a usage error)
#   qemu-tcg, qemu-kvm  the same exchange under QEMU (virtio-net-pci on the tap; the KVMM
#               argument is not used): the reference, run by qemu.sh
#   broken      the guest with break=1 (corrupted echoes) and break=2 (partial checksums
#               without NEEDS_CSUM): the checks must catch both
set -u
case_name=$1
kvmm=$2
guest=$3
peer=$(cd "$(dirname "$0")" && pwd)/netpeer.py
limit=60
MAC=52:54:00:4e:45:54
GUEST_IP=10.0.2.15
HOST_IP=10.0.2.2
PORT=7000
ECHO=7777

# fail, skip, show, cleanup (kills PIDS, deletes NETNS, removes $tmp), make_tmp, require_kvm_dev.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SHOW_FILES=(out err peer)
SHOW_LINES=30

[ "$case_name" = qemu-tcg ] || require_kvm_dev
[ -e /dev/net/tun ] || skip "/dev/net/tun does not exist"
(exec 3<>/dev/net/tun) 2>/dev/null || skip "/dev/net/tun is not accessible to $(id -un)"
qemu_accel=
case $case_name in
qemu-tcg | qemu-kvm)
	qemu_accel=${case_name#qemu-}
	limit=120 # SeaBIOS first, and TCG
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
	;;
*) [ -x "$kvmm" ] || fail "kvmm binary $kvmm missing" ;;
esac
[ -r "$guest" ] || fail "guest $guest missing"
command -v python3 >/dev/null || fail "python3 is needed for the host side (netpeer.py)"
command -v ip >/dev/null || fail "ip (iproute2) is needed"
make_tmp kvmm-net

# The namespace and its tap (a persistent tap with the host's address).
ns="kvmm-net-$$-$RANDOM"
tap="kvn$$"
if ip netns add "$ns" 2>"$tmp/err"; then
	NETNS+=("$ns")
else
	# Without CAP_NET_ADMIN no tap can be made or attached: tun is not usable.
	[ "$(id -u)" -eq 0 ] || skip "tun is not usable without CAP_NET_ADMIN (ip netns add: $(cat "$tmp/err"))"
	fail "ip netns add: $(cat "$tmp/err")"
fi
IN="ip netns exec $ns"
ip -n "$ns" link set lo up &&
	ip -n "$ns" tuntap add dev "$tap" mode tap vnet_hdr &&
	ip -n "$ns" addr add "$HOST_IP/24" dev "$tap" &&
	ip -n "$ns" link set "$tap" up || fail "cannot set up tap $tap in namespace $ns"
ip link show "$tap" >/dev/null 2>&1 && fail "tap $tap leaked into the host namespace"
tap_mac=$(ip -n "$ns" -o link show "$tap" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
[ -n "$tap_mac" ] || fail "cannot read the MAC of $tap"

# bg FILE CMD...: CMD in the background inside the namespace, output to FILE.
bg() {
	local f=$1
	shift
	$IN "$@" >"$f" 2>&1 </dev/null &
	PIDS[$!]=$!
	last=$!
}
# wait_file FILE TEXT SECS PID: until FILE holds TEXT; fails when PID exits first.
wait_file() {
	local i=0
	while ! grep -q -F -- "$2" "$1" 2>/dev/null; do
		kill -0 "$4" 2>/dev/null || return 1
		[ $i -lt $(($3 * 10)) ] || return 1
		sleep 0.1
		i=$((i + 1))
	done
}
udp_csum_errors() {
	$IN awk '/^Udp:/ { if (h) { print $(c) } else { for (i = 1; i <= NF; i++) if ($i == "InCsumErrors") c = i; h = 1 } }' /proc/net/snmp
}
check_sanitizers() {
	if sanitizer_report "$tmp/err"; then
		fail "sanitizer report from kvmm"
	fi
}

# session [--peer-fails] KVMM_PREFIX... -- NET_SPEC [GUEST_ARGS]: the whole exchange. Sets
# $krc (kvmm's exit status) and $prc (the peer's).
session() {
	local expect_peer_fail=0 net gargs i
	if [ "$1" = --peer-fails ]; then
		expect_peer_fail=1
		shift
	fi
	local prefix=()
	while [ "$1" != -- ]; do
		prefix+=("$1")
		shift
	done
	shift
	net=$1
	gargs=${2:-}
	: >"$tmp/out"
	: >"$tmp/peer"
	rm -f "$tmp/echo.log"
	bg "$tmp/echo.out" python3 "$peer" echo "$HOST_IP" "$ECHO" "$tmp/echo.log"
	echo_pid=$last
	wait_file "$tmp/echo.log" ready 10 "$echo_pid" || fail "the host's echo server did not start: $(cat "$tmp/echo.out")"
	local cmdline="ip=$GUEST_IP host=$HOST_IP port=$PORT echo=$ECHO idle=30 $gargs"
	if [ -n "$qemu_accel" ]; then
		# The same guest under QEMU (the reference): its virtio-net on the same tap.
		$IN timeout -k 5 $limit qemu-system-x86_64 -accel "$qemu_accel" -M pc -m 128 \
			-nographic -net none -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
			-device "virtio-net-pci,netdev=n0,mac=$MAC,disable-legacy=on,romfile=" \
			-kernel "$guest" -append "$cmdline" >"$tmp/out" 2>"$tmp/err" </dev/null &
	else
		$IN "${prefix[@]}" timeout -k 5 $limit "$kvmm" run --kernel "$guest" --memory 128M \
			--console stdio --net "$net" --cmdline "$cmdline" \
			>"$tmp/out" 2>"$tmp/err" </dev/null &
	fi
	kpid=$!
	PIDS[$kpid]=$kpid
	if wait_file "$tmp/out" "client: OK" $((limit - 20)) "$kpid"; then
		# The host forgets the guest's MAC: it must ARP and the guest must answer.
		ip -n "$ns" neigh flush dev "$tap"
		$IN python3 "$peer" send "$GUEST_IP" "$PORT" 40 "$tap" "$MAC" >"$tmp/peer" 2>&1
		prc=$?
		if [ $prc -ne 0 ] && [ $expect_peer_fail -eq 0 ]; then
			fail "host side: $(tail -n 1 "$tmp/peer")"
		fi
		# After a failed peer the guest waits for a KVMM:STOP that never comes.
		[ $prc -ne 0 ] && kill -TERM $kpid 2>/dev/null
	else
		prc=
	fi
	i=0
	while kill -0 $kpid 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -0 $kpid 2>/dev/null && fail "kvmm still running 30 s after the exchange"
	wait $kpid
	krc=$?
	kill -KILL "$echo_pid" 2>/dev/null
	wait "$echo_pid" 2>/dev/null
	check_sanitizers
}

expect_out() { grep -q -F -- "$1" "$tmp/out" || fail "the guest's output lacks '$1'"; }

# check_ok: everything a good session shows.
check_ok() {
	[ -n "$prc" ] || fail "the guest did not finish its own tests ('client: OK'), kvmm status $krc"
	[ "$krc" -eq 0 ] || fail "exit status $krc, expected 0"
	[ "$(grep -c 'SUCCESS$' "$tmp/out")" -eq 1 ] || fail "the guest booted more than once"
	grep -q 'FAIL: ' "$tmp/out" && fail "guest reported $(grep 'FAIL: ' "$tmp/out" | head -n 1)"
	expect_out "mac $MAC, ip $GUEST_IP, host $HOST_IP"
	expect_out "arp: $HOST_IP is at $tap_mac"
	expect_out "icmp: echo reply seq 1, 56 bytes: OK"
	expect_out "icmp: echo reply seq 2, 1000 bytes: OK"
	for n in 1 18 64 512 1000 1400 1472; do
		expect_out "udp: $n bytes echoed (checksum by the guest): OK"
		expect_out "udp: $n bytes echoed (checksum by the device, NEEDS_CSUM): OK"
	done
	expect_out "client: OK"
	grep -q -F "peer: OK" "$tmp/peer" || fail "the host side did not finish"
	n=$(sed -n 's/^peer: OK, \([0-9]*\) datagrams.*/\1/p' "$tmp/peer")
	expect_out "server: stopped after echoing $n datagrams"
	# Exactly the malformed frames the peer injected were dropped as such.
	j=$(sed -n 's/.* \([0-9]*\) malformed frames sent$/\1/p' "$tmp/peer")
	[ -n "$j" ] && [ "$j" -gt 0 ] || fail "the host side sent no malformed frames"
	grep -q "^net: .* $j malformed" "$tmp/out" || fail "expected $j malformed frames: $(grep '^net:' "$tmp/out")"
	expect_out "2 pings answered"
	grep -q "^net: .* [1-9][0-9]* ARP requests" "$tmp/out" || fail "the guest answered no ARP request"
	expect_out SUCCESS
	# The host's echo server: one line per datagram (14 at least, more after a retry).
	e=$(grep -c '^[0-9]' "$tmp/echo.log")
	[ "$e" -ge 14 ] || fail "the host echoed $e datagrams, expected 14 or more"
	c=$(udp_csum_errors)
	[ "$c" = 0 ] || fail "the namespace counted $c UDP checksum errors"
	echo "ok: guest and host exchanged $e + $n datagrams and 4 pings over $1; $j malformed frames dropped"
	grep -e "^net: dropped" -e "^net: [0-9]" "$tmp/out"
}

case $case_name in
tap)
	session -- "tap=$tap,mac=$MAC,vhost=off"
	check_ok "tap=$tap"
	;;
fd)
	# The tap opened here (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) and inherited as fd N.
	session python3 "$peer" tapexec "$tap" -- "fd={fd},mac=$MAC,vhost=off"
	check_ok "an inherited tap fd"
	;;
qemu-tcg | qemu-kvm)
	session -- "(QEMU)"
	check_ok "QEMU's virtio-net-pci (-accel $qemu_accel) on tap $tap"
	;;
vhost)
	[ -e /dev/vhost-net ] || skip "/dev/vhost-net does not exist: vhost=on cannot be tested here"
	session -- "tap=$tap,mac=$MAC,vhost=on"
	# kvmm falls back to serving the queues itself with a warning: not what this tests.
	grep -q "serving the queues in kvmm" "$tmp/err" && fail "vhost-net did not take the queues: $(grep -m1 vhost "$tmp/err")"
	check_ok "tap=$tap with vhost-net"
	;;
bad-inputs)
	# one_error STATUS WHAT TEXT NET [EXTRA...]: kvmm must exit with STATUS and print one
	# line on stderr that holds TEXT.
	one_error() {
		local want=$1 what=$2 text=$3 net=$4
		shift 4
		$IN $pre timeout -k 5 $limit "$kvmm" run --kernel "$guest" --memory 128M --console stdio \
			--net "$net" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
		rc=$?
		check_sanitizers
		[ $rc -eq "$want" ] || fail "$what: exit status $rc, expected $want"
		[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$what: expected one line on stderr"
		grep -q -F -- "$text" "$tmp/err" || fail "$what: stderr lacks '$text'"
		grep -q SUCCESS "$tmp/out" && fail "$what: the guest ran"
		echo "ok: $what: $(cat "$tmp/err")"
	}
	pre=
	bg "$tmp/hold" python3 "$peer" hold "$tap"
	wait_file "$tmp/hold" holding 10 "$last" || fail "cannot hold $tap open: $(cat "$tmp/hold")"
	one_error 1 "a busy tap" "$tap: device busy" "tap=$tap"
	kill -KILL "$last"
	wait "$last" 2>/dev/null
	one_error 1 "an interface that is not a tap" "lo: exists but is not a single-queue tap" "tap=lo"
	one_error 1 "an fd that is not open" "--net fd=57:" "fd=57"
	echo "not a tap" >"$tmp/file"
	one_error 1 "an fd that is a regular file" "--net fd=3: neither a tap nor a socket" "fd=3" 3<"$tmp/file"
	pre="python3 $peer tapexec-novnet $tap"
	one_error 1 "a tap fd without IFF_VNET_HDR" "must be opened with IFF_NO_PI and IFF_VNET_HDR" "fd={fd}"
	pre=
	one_error 2 "a bad MAC (a usage error)" "mac=01:02:03:04:05:06" "tap=$tap,mac=01:02:03:04:05:06"
	if [ ! -e /dev/vhost-net ]; then
		one_error 1 "vhost=on without /dev/vhost-net" "vhost=on" "tap=$tap,vhost=on"
	fi
	;;
broken)
	# The checks must catch a guest that corrupts what it echoes...
	session --peer-fails -- "tap=$tap,mac=$MAC,vhost=off" "break=1"
	[ -n "$prc" ] || fail "break=1: the guest's own tests did not pass: $(grep -m1 FAIL "$tmp/out")"
	[ "$prc" -ne 0 ] || fail "break=1: the host side accepted corrupted echoes"
	grep -q "peer: FAIL: .*differs" "$tmp/peer" || fail "break=1: $(tail -n 1 "$tmp/peer")"
	echo "ok: break=1 caught: $(tail -n 1 "$tmp/peer")"
	# ...and partial checksums sent without NEEDS_CSUM: the host must drop them.
	before=$(udp_csum_errors)
	session -- "tap=$tap,mac=$MAC,vhost=off" "break=2"
	[ -z "$prc" ] || fail "break=2: the guest's tests passed without NEEDS_CSUM"
	grep -q "FAIL: udp: no echo of 1 bytes (NEEDS_CSUM)" "$tmp/out" ||
		fail "break=2: the guest did not fail on its first NEEDS_CSUM datagram"
	after=$(udp_csum_errors)
	[ "$after" -gt "$before" ] || fail "break=2: the namespace counted no UDP checksum errors"
	echo "ok: break=2 caught: $(grep -m1 'FAIL: ' "$tmp/out"); $((after - before)) checksum errors on the host"
	;;
*)
	fail "unknown case"
	;;
esac
echo "PASS($case_name)"
exit 0
