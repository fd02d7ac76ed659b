#!/bin/bash
# SPDX-License-Identifier: MIT
# migrate.sh: end-to-end live migration of the counter guest (guests/counter.c) between two
# kvmm processes: over loopback, between two network namespaces, under a bandwidth limit
# that forces throttling, cancelled, to a destination killed mid-way, and with corrupted
# streams in both directions. The counter must never go back and the source must keep
# running whenever a migration does not complete.
# Usage: migrate.sh CASE KVMM COUNTER_ELF; exits 0 pass, 1 fail, 77 skip.
# Cases: loopback, netns, throttle, cancel, killed-dst, bad-reply, bad-stream, flipped.
set -u
case_name=$1
kvmm=$2
guest=$3

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_kvm
command -v python3 >/dev/null || skip "python3 is not installed (fake migration peers)"
command -v ss >/dev/null || skip "ss (iproute2) is not installed"
make_tmp kvmm-mig

# bg TAG COMMAND...: any other background process (the fake peers).
bg() {
	local tag=$1
	shift
	"$@" >"$tmp/$tag.out" 2>"$tmp/$tag.err" </dev/null &
	PIDS[$tag]=$!
}
# mig_field NAME KEY: KEY of `kvmm migrate-status --json NAME`.
mig_field() {
	ctl_ok migrate-status --json "$1"
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/ctl" "$2"
}
# free_port: a TCP port nobody listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_listen PORT: until something listens on PORT (in $IN_NS's namespace).
wait_listen() {
	local i=0
	while ! $IN_NS ss -Hltn "sport = :$1" | grep -q .; do
		[ $i -lt 100 ] || fail "nothing listens on port $1 after 10 s"
		sleep 0.1
		i=$((i + 1))
	done
}
# one_line TAG WHAT: TAG's stderr is exactly one line.
one_line() {
	[ "$(wc -l <"$tmp/$1.err")" -eq 1 ] || fail "$2: expected one line on stderr, got: $(cat "$tmp/$1.err")"
}
# source_survived SRC: after a failed migration the source runs and keeps counting.
source_survived() {
	local l
	[ "$(vm_state "$1")" = running ] || fail "the source is $(vm_state "$1") after the failed migration"
	l=$(last_count "$1")
	wait_above "$1" $((l + 2 * EVERY)) 30
	check_steps "$tmp/$1.out"
	vm_check "$1"
}
# wait_mig_state SRC STATE SECS: until migrate-status says STATE.
wait_mig_state() {
	local i=0 s
	while :; do
		s=$(mig_field "$1" state)
		[ "$s" = "$2" ] && return 0
		[ $i -lt $(($3 * 10)) ] || fail "migration state '$s' after $3 s, expected '$2'"
		sleep 0.1
		i=$((i + 1))
	done
}
# slow_pair MB LINES ARGS...: source a rewriting MB MiB per pass, destination b waiting on
# $port; once a printed LINES count lines, `kvmm migrate a` with ARGS (--bandwidth ...).
slow_pair() {
	local mb=$1 lines=$2
	shift 2
	vm_start a --kernel "$guest" --memory $MEM --name a --cmdline "mb=$mb every=$EVERY" --log-level info
	vm_start b --incoming "tcp:127.0.0.1:$port" --name b
	wait_lines a "$lines" 30
	wait_listen "$port"
	ctl_ok migrate a "tcp:127.0.0.1:$port" "$@"
}
# migrate_ok SRC DST URI ARGS...: migrate SRC to the waiting DST and check the handover:
# the source exits 0, the destination counts on from where the source stopped.
migrate_ok() {
	local src=$1 dst=$2 uri=$3 l f
	shift 3
	ctl_ok migrate "$src" "$uri" "$@"
	cp "$tmp/ctl" "$tmp/migrate.stdout"
	vm_wait_exit "$src" 120
	[ "$rc" -eq 0 ] || fail "the source exited $rc after migrating, expected 0"
	vm_check "$src"
	l=$(last_count "$src")
	wait_lines "$dst" 3 30
	f=$(first_count "$dst")
	[ "$f" -ge "$l" ] || fail "the destination started at count=$f, the source had reached count=$l"
	check_steps "$tmp/$src.out" "$tmp/$dst.out"
	vm_check "$dst"
	grep -q 'migrated to' "$tmp/$src.err" || fail "the source did not log the migration"
	echo "  source's last count $l, destination's first $f;" \
		"$(sed -n 's/.*info: migrated to [^:]*:[^:]*:[^:]*: //p' "$tmp/$src.err")"
	[ "$(vm_state "$dst")" = running ] || fail "the destination is not running"
}
# check_dump NAME: pause NAME, snapshot it, and check the memory dump is what a paused
# counter guest leaves (guests/README.md), then resume.
check_dump() {
	ctl_ok pause "$1"
	ctl_ok snapshot "$1" "$tmp/dump-$1"
	ctl_ok resume "$1"
	check_memory "$tmp/dump-$1/memory.bin" "memory of $1"
	echo "  memory after migration: $(cat "$tmp/dump")"
}

# The fake peers: a destination that answers garbage, a source that sends damaged
# streams, a proxy that flips one byte. Framing as in docs/snapshot-format.md.
cat >"$tmp/peer.py" <<'EOF'
import json, os, socket, struct, sys, zlib

HDR = b"KVMMMIG\0" + struct.pack("<II", 1, 4096)

def msg(t, data, crc=None):
    return struct.pack("<IIQ", t, zlib.crc32(data) if crc is None else crc, len(data)) + data

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

def fake_dst(port, mode):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    s, _ = ls.accept()
    print("header", recvn(s, 16)[:7])
    n = 0
    while True:
        t, crc, ln = struct.unpack("<IIQ", recvn(s, 16))
        recvn(s, ln)
        n += 1
        if t == 4:  # DONE: the source is paused and waits for our verdict
            print("DONE after", n, "messages; answering", mode, flush=True)
            if mode == "garbage":
                s.sendall(os.urandom(64))
            elif mode == "badcrc":
                s.sendall(msg(5, b"x", crc=1))
            elif mode == "close":
                pass
            s.close()
            return

def fake_src(port, mode, kernel):
    cfg = json.dumps({"format": "kvmm-snapshot", "version": 1, "cpus": 1,
                      "memory": 128 << 20, "disks": [], "rng": False,
                      "kernel": kernel, "initrd": None, "cmdline": "mb=8"}).encode()
    page = struct.pack("<Q", 0x300) + bytes(range(256)) * 16
    s = socket.create_connection(("127.0.0.1", port))
    out = {
        "bad-magic": b"KVMMMIX\0" + HDR[8:] + msg(1, cfg),
        "bad-version": b"KVMMMIG\0" + struct.pack("<II", 2, 4096) + msg(1, cfg),
        "bad-config": HDR + msg(1, b"{not json"),
        "flip-config": HDR + msg(1, cfg, crc=zlib.crc32(cfg) ^ 1),
        "pages-first": HDR + msg(2, page),
        "flip-page": HDR + msg(1, cfg) + msg(2, page[:100] + b"\xff" + page[101:], crc=zlib.crc32(page)),
        "page-beyond": HDR + msg(1, cfg) + msg(2, struct.pack("<Q", 1 << 40) + page[8:]),
        "odd-batch": HDR + msg(1, cfg) + msg(2, page[:-1]),
        "huge-len": HDR + msg(1, cfg) + struct.pack("<IIQ", 2, 0, 1 << 40),
        "bad-type": HDR + msg(1, cfg) + msg(77, b"hello"),
        "done-no-state": HDR + msg(1, cfg) + msg(2, page) + msg(4, b""),
        "bad-state": HDR + msg(1, cfg) + msg(2, page) + msg(3, b"KVMMSNAP" + os.urandom(200)) + msg(4, b""),
        "truncated": HDR + msg(1, cfg) + msg(2, page)[:2000],
        "ack-from-source": HDR + msg(1, cfg) + msg(5, b""),
    }[mode]
    try:
        s.sendall(out)
        s.shutdown(socket.SHUT_WR)
        print("reply:", s.recv(4096)[16:200])
    except OSError as e:
        print("connection:", e)

def proxy(lport, dport, where):
    # where: a byte offset of the source's stream, or "state": the 50th byte of the
    # STATE message's payload (sent while the source's guest is paused).
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(1)
    a, _ = ls.accept()
    b = socket.create_connection(("127.0.0.1", dport))
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    flip_at = -1 if where == "state" else int(where)
    off, phase, need, hb = 0, "skip", 16, b""
    while True:
        for key, _ in sel.select():
            src, dst = key.fileobj, key.data
            try:
                d = src.recv(65536)
            except OSError:
                d = b""
            if not d:
                print("proxy: closed after", off, "bytes", flush=True)
                return
            if src is a:
                i = 0
                while where == "state" and i < len(d):
                    if phase == "skip":
                        take = min(need, len(d) - i)
                        i += take
                        need -= take
                        if need == 0:
                            phase, hb = "hdr", b""
                    else:
                        take = min(16 - len(hb), len(d) - i)
                        hb += d[i:i + take]
                        i += take
                        if len(hb) == 16:
                            t, _, ln = struct.unpack("<IIQ", hb)
                            if t == 3 and flip_at < 0:
                                flip_at = off + i + 50
                            phase, need, hb = ("skip", ln, b"") if ln else ("hdr", 0, b"")
                if off <= flip_at < off + len(d):
                    j = flip_at - off
                    d = d[:j] + bytes([d[j] ^ 0x01]) + d[j + 1:]
                    print("proxy: flipped byte", flip_at, flush=True)
                off += len(d)
            try:
                dst.sendall(d)
            except OSError as e:
                print("proxy:", e, "after", off, "bytes", flush=True)
                return

cmd = sys.argv[1]
if cmd == "dst":
    fake_dst(int(sys.argv[2]), sys.argv[3])
elif cmd == "src":
    fake_src(int(sys.argv[2]), sys.argv[3], sys.argv[4])
elif cmd == "proxy":
    proxy(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
EOF

port=$(free_port)
case $case_name in
loopback)
	# Twice, back and forth: A -> B, then B -> C (a migrated VM migrates again).
	vm_start a --kernel "$guest" --memory $MEM --name a --cmdline "$CMDLINE" --log-level info
	vm_start b --incoming "tcp:127.0.0.1:$port" --name b --log-level info
	wait_lines a 3 30
	wait_listen "$port"
	# Parameters out of range or of the wrong type are refused, and nothing starts.
	python3 - "$KVMM_RUNTIME_DIR/a.sock" "tcp:127.0.0.1:$port" >"$tmp/badparams" 2>&1 <<'EOF' ||
import json, socket, sys
bad = [{"max_rounds": 4294967296}, {"max_rounds": 0}, {"downtime_ms": "100"},
       {"downtime_ms": 3600001}, {"bandwidth": -1}, {"auto_converge": "no"}]
for extra in bad:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall((json.dumps(dict({"cmd": "migrate", "uri": sys.argv[2]}, **extra)) + "\n").encode())
    r = json.loads(s.makefile().readline())
    s.close()
    if r.get("ok") is not False or "error" not in r:
        sys.exit("accepted %s: %s" % (extra, r))
EOF
		fail "bad migrate parameters: $(cat "$tmp/badparams")"
	[ "$(mig_field a state)" != active ] || fail "a migration started on bad parameters"
	migrate_ok a b "tcp:127.0.0.1:$port" --wait
	grep -q "^migrated" "$tmp/migrate.stdout" || fail "kvmm migrate --wait printed: $(cat "$tmp/migrate.stdout")"
	check_dump b
	port2=$(free_port)
	vm_start c --incoming "tcp:127.0.0.1:$port2" --name c
	wait_listen "$port2"
	migrate_ok b c "tcp:127.0.0.1:$port2" --downtime 100
	check_steps "$tmp/a.out" "$tmp/b.out" "$tmp/c.out"
	ctl_ok info c
	grep -q "$CMDLINE" "$tmp/ctl" || fail "kvmm info of the destination lacks the command line"
	vm_stop c
	;;
netns)
	# Two network namespaces joined by a veth pair; the addresses exist only inside them.
	ns_a="kvmm-e2e-$$-a"
	ns_b="kvmm-e2e-$$-b"
	ip netns add "$ns_a" 2>"$tmp/netns.err" || skip "ip netns add is not permitted: $(cat "$tmp/netns.err")"
	NETNS+=("$ns_a")
	ip netns add "$ns_b" || fail "ip netns add $ns_b"
	NETNS+=("$ns_b")
	net=$((100 + $$ % 150))
	ip link add "kva$$" netns "$ns_a" type veth peer name "kvb$$" netns "$ns_b" ||
		fail "cannot create a veth pair between the namespaces"
	ip -n "$ns_a" addr add "10.$net.7.1/24" dev "kva$$" &&
		ip -n "$ns_b" addr add "10.$net.7.2/24" dev "kvb$$" &&
		ip -n "$ns_a" link set "kva$$" up && ip -n "$ns_b" link set "kvb$$" up &&
		ip -n "$ns_a" link set lo up && ip -n "$ns_b" link set lo up ||
		fail "cannot configure the veth pair"
	ip addr | grep -q "10\.$net\.7\." && fail "the test addresses leaked into the host namespace"
	IN_NS="ip netns exec $ns_a"
	vm_start a --kernel "$guest" --memory $MEM --name a --cmdline "$CMDLINE" --log-level info
	IN_NS="ip netns exec $ns_b"
	vm_start b --incoming "tcp:10.$net.7.2:$port" --name b
	wait_listen "$port"
	IN_NS=
	wait_lines a 3 30
	# The destination is reachable only from inside namespace A.
	ctl migrate a "tcp:127.0.0.1:$port"
	# Refused at once, or accepted and then failed on connecting (polled, no fixed sleep).
	if [ $crc -eq 0 ]; then
		wait_mig_state a failed 20
	fi
	migrate_ok a b "tcp:10.$net.7.2:$port" --wait
	check_dump b
	vm_stop b
	;;
throttle)
	# 16 MiB rewritten every ~10 ms, a 40 MB/s link and a 30 ms downtime limit: the guest
	# dirties far faster than the link, so the source must throttle it; it still completes.
	slow_pair 16 3 --bandwidth 40 --downtime 30
	maxpct=0
	maxround=0
	i=0
	while vm_alive a; do
		ctl migrate-status --json a
		if [ $crc -eq 0 ]; then
			read -r pct round st < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["throttle_pct"], d["rounds"], d["state"])' "$tmp/ctl")
			[ "$pct" -gt "$maxpct" ] && maxpct=$pct
			[ "$round" -gt "$maxround" ] && maxround=$round
			[ "$st" = active ] || [ "$st" = completed ] || fail "migration state $st: $(cat "$tmp/ctl")"
		fi
		[ $i -lt 900 ] || fail "the throttled migration did not complete in 3 minutes"
		sleep 0.2
		i=$((i + 1))
	done
	echo "  seen: throttle_pct up to $maxpct, $maxround rounds"
	[ "$maxpct" -gt 0 ] || fail "migrate-status never showed throttle_pct > 0"
	vm_reap a
	[ "$rc" -eq 0 ] || fail "the source exited $rc after the throttled migration"
	l=$(last_count a)
	wait_lines b 3 30
	[ "$(first_count b)" -ge "$l" ] || fail "the destination started at count=$(first_count b), the source reached $l"
	check_steps "$tmp/a.out" "$tmp/b.out"
	echo "  $(sed -n 's/.*info: migrated to [^:]*:[^:]*:[^:]*: //p' "$tmp/a.err")"
	check_dump b
	vm_stop b
	;;
cancel)
	# A slow migration (5 MB/s) cancelled half-way: the source runs on, the destination
	# gives up with one line, and a second migration afterwards completes.
	slow_pair 32 2 --bandwidth 5
	sleep 1
	[ "$(mig_field a state)" = active ] || fail "the slow migration is not active after 1 s"
	ctl pause a
	[ $crc -eq 1 ] || fail "pause during a migration exited $crc, expected 1 (refused)"
	ctl snapshot a "$tmp/snap-during"
	[ $crc -eq 1 ] || fail "snapshot during a migration exited $crc, expected 1 (refused)"
	ctl migrate a "tcp:127.0.0.1:$port"
	[ $crc -eq 1 ] || fail "a second concurrent migrate exited $crc, expected 1"
	ctl_ok migrate-cancel a
	wait_mig_state a cancelled 20
	source_survived a
	vm_wait_exit b 30
	[ "$rc" -eq 1 ] || fail "the destination exited $rc after the cancel, expected 1"
	one_line b "destination after cancel"
	[ "$(ncounts b)" -eq 0 ] || fail "the destination ran the guest"
	echo "  destination: $(cat "$tmp/b.err")"
	ctl migrate-cancel a
	[ $crc -eq 1 ] || fail "migrate-cancel with no migration exited $crc, expected 1"
	port2=$(free_port)
	vm_start c --incoming "tcp:127.0.0.1:$port2" --name c
	wait_listen "$port2"
	migrate_ok a c "tcp:127.0.0.1:$port2"
	vm_stop c
	;;
killed-dst)
	# The destination dies (SIGKILL) mid-migration: the source notices and runs on.
	slow_pair 32 2 --bandwidth 5
	sleep 1
	[ "$(mig_field a state)" = active ] || fail "the slow migration is not active after 1 s"
	kill -KILL "${PIDS[b]}"
	vm_reap b
	wait_mig_state a failed 40
	echo "  source: $(mig_field a error)"
	source_survived a
	vm_stop a
	;;
bad-reply)
	# Fake destinations that take the whole stream, then answer the source's DONE with
	# garbage, a bad checksum, or by hanging up: the source resumes its paused guest.
	n=0
	for mode in garbage badcrc close; do
		n=$((n + 1))
		vm_start a$n --kernel "$guest" --memory $MEM --name a$n --cmdline "$CMDLINE"
		bg fake$n python3 "$tmp/peer.py" dst "$port" $mode
		wait_lines a$n 2 30
		wait_listen "$port"
		ctl_ok migrate a$n "tcp:127.0.0.1:$port"
		wait_mig_state a$n failed 60
		grep -q DONE "$tmp/fake$n.out" || fail "$mode: the fake destination saw no DONE: $(cat "$tmp/fake$n.out" "$tmp/fake$n.err")"
		echo "  $mode answer: source says: $(mig_field a$n error)"
		source_survived a$n
		vm_stop a$n
		vm_wait_exit fake$n 10
		port=$(free_port)
	done
	;;
bad-stream)
	# A fake source sends damaged streams to a real destination: each is refused with
	# exit 1 and one line on stderr, before the guest runs.
	for mode in bad-magic bad-version bad-config flip-config pages-first flip-page page-beyond \
		odd-batch huge-len bad-type done-no-state bad-state truncated ack-from-source; do
		vm_start d --incoming "tcp:127.0.0.1:$port" --name d
		wait_listen "$port"
		timeout 20 python3 "$tmp/peer.py" src "$port" $mode "$guest" >"$tmp/fake.out" 2>&1 ||
			fail "$mode: the fake source failed: $(cat "$tmp/fake.out")"
		vm_wait_exit d 20
		[ "$rc" -eq 1 ] || fail "$mode: the destination exited $rc, expected 1"
		one_line d "$mode"
		[ -s "$tmp/d.out" ] && fail "$mode: the destination ran the guest: $(head -n 2 "$tmp/d.out")"
		[ -e "$KVMM_RUNTIME_DIR/d.sock" ] && fail "$mode: control socket left behind"
		echo "  $mode: $(cat "$tmp/d.err")"
		port=$(free_port)
	done
	;;
flipped)
	# One byte flipped in flight between a real source and a real destination: inside
	# the first round's pages, then inside the final state (sent while the source's guest
	# is paused): the destination refuses the stream with one line, the source runs on.
	n=0
	for at in 100000 state; do
		n=$((n + 1))
		pport=$(free_port)
		vm_start a$n --kernel "$guest" --memory $MEM --name a$n --cmdline "$CMDLINE"
		vm_start d$n --incoming "tcp:127.0.0.1:$port" --name d$n
		wait_listen "$port"
		bg proxy$n python3 "$tmp/peer.py" proxy "$pport" "$port" "$at"
		wait_lines a$n 2 30
		wait_listen "$pport"
		ctl_ok migrate a$n "tcp:127.0.0.1:$pport"
		vm_wait_exit d$n 60
		[ "$rc" -eq 1 ] || fail "byte $at flipped: the destination exited $rc, expected 1"
		one_line d$n "byte $at flipped"
		grep -q flipped "$tmp/proxy$n.out" || fail "the proxy flipped nothing: $(cat "$tmp/proxy$n.out")"
		echo "  $(grep flipped "$tmp/proxy$n.out"): $(cat "$tmp/d$n.err")"
		wait_mig_state a$n failed 60
		echo "  source: $(mig_field a$n error)"
		source_survived a$n
		vm_stop a$n
		vm_wait_exit proxy$n 10
		port=$(free_port)
	done
	;;
*)
	echo "migrate.sh: unknown case $case_name" >&2
	exit 2
	;;
esac
echo "PASS($case_name)"
exit 0
