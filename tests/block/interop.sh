#!/bin/bash
# SPDX-License-Identifier: MIT
# interop.sh: `kvmm img` against Debian's qemu-img, both ways (TAP). Usage: interop.sh KVMM
set -u
KVMM=$1
command -v qemu-img >/dev/null || { echo "1..0 # SKIP qemu-img not installed"; exit 0; }
T=$(mktemp -d /tmp/kvmm-interop-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
n=0; failed=0
ok() { n=$((n+1)); echo "ok $n - $1"; }
no() { n=$((n+1)); failed=$((failed+1)); echo "not ok $n - $1"; }
t() { local d=$1; shift; if "$@" >"$T/log" 2>&1; then ok "$d"; else no "$d"; sed 's/^/# /' "$T/log"; fi; }

# Test data: random, text and zero areas, 20 MiB + an odd tail.
python3 - <<'PY'
import random
r = random.Random(7)
with open("data.raw", "wb") as f:
    for i in range(330):
        k = i % 5
        if k == 0:   f.write(bytes(65536))
        elif k == 1: f.write(r.randbytes(65536))
        elif k == 2: f.write((b"kvmm qcow2 %d " % i) * (65536 // 16) + bytes(65536 - 16 * (65536 // 16)))
        elif k == 3: f.write(r.randbytes(4096) + bytes(61440))
        else:        f.write(bytes([i & 255]) * 65536)
    f.write(r.randbytes(12345))
PY
truncate -s 24M data.raw

roundtrip() { # kvmm writes, qemu-img checks and reads back
	local name=$1; shift
	"$KVMM" img convert -f raw -O qcow2 "$@" data.raw "$name.qcow2" &&
	qemu-img check -q "$name.qcow2" &&
	qemu-img convert -O raw "$name.qcow2" "$name.back" && cmp data.raw "$name.back"
}
t "kvmm convert default -> qemu check + read" roundtrip def
t "kvmm convert compat=0.10" roundtrip v2 -o compat=0.10
t "kvmm convert cluster_size=512" roundtrip c512 -o cluster_size=512
t "kvmm convert cluster_size=4k refcount_bits=8" roundtrip c4k -o cluster_size=4k,refcount_bits=8
t "kvmm convert cluster_size=2M refcount_bits=64" roundtrip c2m -o cluster_size=2M,refcount_bits=64
t "kvmm convert refcount_bits=1" roundtrip rc1 -o refcount_bits=1
t "kvmm convert -c zlib" roundtrip cz -c
t "kvmm convert -c zstd" roundtrip czstd -c -o compression_type=zstd
t "kvmm convert -c cluster_size=4k" roundtrip cz4k -c -o cluster_size=4k
# A hole shorter than a cluster at the start: compressed clusters must stay cluster aligned.
truncate -s 4M hole.raw
dd if=data.raw of=hole.raw bs=4k skip=16 seek=1 count=200 conv=notrunc status=none
t "kvmm convert -c, sub-cluster hole -> qemu check + read" bash -c "
	'$KVMM' img convert -f raw -O qcow2 -c hole.raw hole.qcow2 && qemu-img check -q hole.qcow2 &&
	qemu-img convert -O raw hole.qcow2 hole.back && cmp hole.raw hole.back"
t "kvmm convert qcow2 -> raw is sparse and equal" bash -c "
	'$KVMM' img convert -O raw def.qcow2 def.raw && cmp data.raw def.raw &&
	[ \$(stat -c %b def.raw) -lt \$(stat -c %b data.raw) ]"

# Images made by qemu-img, read by kvmm.
readback() { # image: kvmm and qemu-img produce the same raw bytes
	local img=$1
	qemu-img convert -O raw "$img" "$img.q" && "$KVMM" img convert -O raw "$img" "$img.k" && cmp "$img.q" "$img.k"
}
qemu-img convert -O qcow2 data.raw q-plain.qcow2
t "qemu plain -> kvmm read" readback q-plain.qcow2
qemu-img convert -c -O qcow2 data.raw q-zlib.qcow2
t "qemu compressed zlib -> kvmm read" readback q-zlib.qcow2
qemu-img convert -c -O qcow2 -o compression_type=zstd data.raw q-zstd.qcow2
t "qemu compressed zstd -> kvmm read" readback q-zstd.qcow2
qemu-img convert -O qcow2 -o compat=0.10,cluster_size=4096 data.raw q-v2.qcow2
t "qemu compat=0.10 4k clusters -> kvmm read" readback q-v2.qcow2
# A chain: raw base <- qcow2 mid <- qcow2 top (relative names), writes at every level.
qemu-img create -q -f qcow2 -b data.raw -F raw mid.qcow2
qemu-io -c 'write -P 0x11 1M 3M' -c 'write -z 8M 1M' -c 'discard 12M 1M' mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
qemu-io -c 'write -P 0x22 2M 100k' -c 'write -P 0x33 9M 64k' -c 'write -z 20M 64k' top.qcow2 >/dev/null
t "qemu backing chain raw<-qcow2<-qcow2 -> kvmm read" readback top.qcow2
mkdir -p sub && qemu-img create -q -f qcow2 -b ../mid.qcow2 -F qcow2 sub/top2.qcow2
t "relative backing path resolved against the image's directory" readback sub/top2.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k -b data.raw -F raw ext.qcow2
qemu-io -c 'write -P 0x44 5000 7000' -c 'write -z 300k 8k' -c 'write -P 0x45 1M 200k' ext.qcow2 >/dev/null
t "qemu extended_l2=on -> kvmm read" readback ext.qcow2
qemu-img convert -O qcow2 data.raw snap.qcow2
qemu-img snapshot -c one snap.qcow2
qemu-io -c 'write -P 0x55 0 2M' -c 'discard 4M 1M' snap.qcow2 >/dev/null
qemu-img snapshot -c two snap.qcow2
qemu-io -c 'write -P 0x66 1M 2M' snap.qcow2 >/dev/null
t "qemu internal snapshots -> kvmm read (active layer)" readback snap.qcow2
t "kvmm check on qemu's snapshot image is clean" "$KVMM" img check snap.qcow2
t "kvmm snapshot -l lists qemu's snapshots" bash -c "'$KVMM' img snapshot -l snap.qcow2 | grep -q two"

cp snap.qcow2 snapw.qcow2
t "kvmm resize of an image with snapshots is refused" bash -c "! '$KVMM' img resize snapw.qcow2 +1M"

# info --output json agrees with qemu-img on the shared fields.
infocmp() {
	local img=$1
	qemu-img info --output json "$img" > q.json && "$KVMM" img info --output json "$img" > k.json &&
	python3 - q.json k.json <<'PY'
import json, sys
q = json.load(open(sys.argv[1])); k = json.load(open(sys.argv[2]))
def cmp(a, b, path):
    bad = []
    for key in set(a) & set(b):
        if isinstance(a[key], dict) and isinstance(b[key], dict):
            bad += cmp(a[key], b[key], path + key + ".")
        elif key == "snapshots":
            if [s["name"] for s in a[key]] != [s["name"] for s in b[key]] or \
               [s["id"] for s in a[key]] != [s["id"] for s in b[key]] or \
               [s["date-sec"] for s in a[key]] != [s["date-sec"] for s in b[key]]:
                bad.append(path + key)
        elif a[key] != b[key]:
            bad.append("%s%s: qemu %r kvmm %r" % (path, key, a[key], b[key]))
    return bad
need = {"virtual-size", "filename", "format", "actual-size"}
missing = need - set(k)
bad = cmp(q, k, "")
if missing or bad:
    print("missing", missing, "differ", bad); sys.exit(1)
PY
}
for img in def.qcow2 v2.qcow2 c2m.qcow2 czstd.qcow2 q-zlib.qcow2 top.qcow2 ext.qcow2 snap.qcow2 data.raw; do
	t "info json agrees with qemu-img: $img" infocmp $img
done

# map --output json agrees with qemu-img's on qcow2-only chains.
mapcmp() {
	qemu-img map --output json "$1" > q.map && "$KVMM" img map --output json "$1" > k.map &&
	python3 -c "import json,sys; a=json.load(open('q.map')); b=json.load(open('k.map')); sys.exit(0 if a==b else 1)"
}
qemu-img create -q -f qcow2 mapbase.qcow2 16M
qemu-io -c 'write -P 1 0 1M' -c 'write -z 2M 1M' mapbase.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b mapbase.qcow2 -F qcow2 maptop.qcow2
qemu-io -c 'write -P 2 512k 1M' -c 'write -z 6M 64k' maptop.qcow2 >/dev/null
t "map json agrees with qemu-img (two-level qcow2 chain)" mapcmp maptop.qcow2
t "map json agrees with qemu-img (kvmm-written image)" mapcmp def.qcow2

# check: exit codes and repair, against qemu-img's verdicts.
refpatch() { # image cluster value: set a 16-bit refcount directly
	python3 - "$@" <<'PY'
import struct, sys
p, cl, val = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
f = open(p, "r+b"); h = f.read(104)
cbits = struct.unpack(">I", h[20:24])[0]; rt = struct.unpack(">Q", h[48:56])[0]
per = (1 << cbits) // 2
f.seek(rt + 8 * (cl // per)); rb = struct.unpack(">Q", f.read(8))[0]
f.seek(rb + 2 * (cl % per)); f.write(struct.pack(">H", val))
PY
}
cp def.qcow2 leak.qcow2; refpatch leak.qcow2 0 3
size=$(stat -c %s def.qcow2); last=$(( (size - 1) / 65536 ))
cp def.qcow2 bad.qcow2; refpatch bad.qcow2 $last 0
t "leaked refcount: qemu-img check exits 3" bash -c "qemu-img check -q leak.qcow2; [ \$? = 3 ]"
t "leaked refcount: kvmm check exits 3" bash -c "'$KVMM' img check leak.qcow2 >/dev/null 2>&1; [ \$? = 3 ]"
t "kvmm check -r leaks repairs, qemu-img agrees" bash -c "'$KVMM' img check -r leaks leak.qcow2 >/dev/null 2>&1 && qemu-img check -q leak.qcow2"
t "refcount too low: qemu-img check exits 2" bash -c "qemu-img check -q bad.qcow2 >/dev/null 2>&1; [ \$? = 2 ]"
t "refcount too low: kvmm check exits 2" bash -c "'$KVMM' img check bad.qcow2 >/dev/null 2>&1; [ \$? = 2 ]"
t "check json counts agree with qemu-img" bash -c "
	qemu-img check --output json leak.qcow2 > q.j; '$KVMM' img check --output json bad.qcow2 > k.j;
	qemu-img check --output json bad.qcow2 > q.j;
	python3 -c \"import json; a=json.load(open('q.j')); b=json.load(open('k.j')); assert a.get('corruptions')==b.get('corruptions'), (a,b)\""
t "kvmm check -r all repairs corruption, qemu-img agrees" bash -c "'$KVMM' img check -r all bad.qcow2 >/dev/null 2>&1 && qemu-img check -q bad.qcow2"

# create options and resize.
t "create with backing: qemu-img sees the chain" bash -c "
	'$KVMM' img create -f qcow2 -b data.raw -F raw ov.qcow2 && qemu-img check -q ov.qcow2 &&
	qemu-img info --output json ov.qcow2 | grep -q '\"backing-filename\": \"data.raw\"' &&
	qemu-img convert -O raw ov.qcow2 ov.raw && cmp ov.raw data.raw"
t "create size suffixes and lazy_refcounts" bash -c "
	'$KVMM' img create -f qcow2 -o lazy_refcounts=on,cluster_size=16k lz.qcow2 1536M &&
	qemu-img info lz.qcow2 | grep -q 'lazy refcounts: true' && qemu-img info lz.qcow2 | grep -q '1.5 GiB'"
t "resize grow (L1 grows), qemu-img agrees" bash -c "
	cp c4k.qcow2 rs.qcow2 && '$KVMM' img resize rs.qcow2 +3G >/dev/null && qemu-img check -q rs.qcow2 &&
	[ \$(qemu-img info --output json rs.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"virtual-size\"])') = \$((24*1024*1024 + 3*1024*1024*1024)) ] &&
	qemu-img convert -O raw rs.qcow2 rs.raw && cmp -n 25165824 rs.raw data.raw"
t "resize shrink qcow2 needs --shrink" bash -c "! '$KVMM' img resize def.qcow2 1M 2>/dev/null"
t "resize --shrink qcow2" bash -c "cp def.qcow2 sh.qcow2 && '$KVMM' img resize --shrink sh.qcow2 4M >/dev/null && qemu-img check -q sh.qcow2 && qemu-img convert -O raw sh.qcow2 sh.raw && cmp sh.raw <(head -c 4M data.raw)"
t "resize: shrink to an odd size then grow reads zeroes past the old end" bash -c "
	cp def.qcow2 odd.qcow2 && '$KVMM' img resize --shrink odd.qcow2 100005 >/dev/null &&
	'$KVMM' img resize odd.qcow2 300000 >/dev/null && qemu-img check -q odd.qcow2 &&
	qemu-img convert -O raw odd.qcow2 odd.raw && cmp -n 100005 odd.raw data.raw &&
	cmp <(tail -c +100006 odd.raw) <(head -c \$((\$(stat -c %s odd.raw) - 100005)) /dev/zero)"
t "resize raw shrink and grow" bash -c "cp data.raw r.raw && '$KVMM' img resize r.raw 1M >/dev/null && [ \$(stat -c %s r.raw) = 1048576 ] && '$KVMM' img resize r.raw +1M >/dev/null && [ \$(stat -c %s r.raw) = 2097152 ]"

# commit and rebase, checked by qemu-img.
qemu-img convert -O qcow2 data.raw cb.qcow2
qemu-img create -q -f qcow2 -b cb.qcow2 -F qcow2 ct.qcow2
qemu-io -c 'write -P 3 100k 1M' -c 'write -z 3M 200k' -c 'write -P 4 20M 4M' ct.qcow2 >/dev/null
qemu-img convert -O raw ct.qcow2 ct.want
cp ct.qcow2 r1.qcow2; cp ct.qcow2 r2.qcow2; cp ct.qcow2 r3.qcow2
t "commit: base gets the overlay's data, overlay emptied, qemu-img agrees" bash -c "
	'$KVMM' img commit ct.qcow2 >/dev/null && qemu-img check -q cb.qcow2 && qemu-img check -q ct.qcow2 &&
	qemu-img convert -O raw cb.qcow2 cb.r && cmp cb.r ct.want && qemu-img convert -O raw ct.qcow2 ct.r && cmp ct.r ct.want &&
	! qemu-img map --output json ct.qcow2 | grep -q '\"depth\": 0'"
t "rebase -b '' keeps the contents" bash -c "
	'$KVMM' img rebase -b '' r1.qcow2 && qemu-img check -q r1.qcow2 && ! qemu-img info r1.qcow2 | grep -q backing &&
	qemu-img convert -O raw r1.qcow2 r1.r && cmp r1.r ct.want"
t "rebase onto a different raw file keeps the contents" bash -c "
	cp data.raw nb.raw && dd if=/dev/urandom of=nb.raw bs=1M seek=5 count=2 conv=notrunc 2>/dev/null &&
	'$KVMM' img rebase -b nb.raw -F raw r2.qcow2 && qemu-img check -q r2.qcow2 &&
	qemu-img info --output json r2.qcow2 | grep -q '\"backing-filename\": \"nb.raw\"' &&
	qemu-img convert -O raw r2.qcow2 r2.r && cmp r2.r ct.want"
t "rebase -u only rewrites the header" bash -c "
	'$KVMM' img rebase -u -b other.qcow2 -F qcow2 r3.qcow2 && qemu-img info -U --output json r3.qcow2 | grep -q '\"backing-filename\": \"other.qcow2\"'"

# Internal snapshots made by kvmm, used by qemu-img.
t "kvmm snapshot -c / -d: qemu-img lists, applies and checks them" bash -c "
	'$KVMM' img convert -O qcow2 data.raw ks.qcow2 && '$KVMM' img snapshot -c base ks.qcow2 &&
	qemu-io -c 'write -P 9 0 3M' ks.qcow2 >/dev/null && '$KVMM' img snapshot -c later ks.qcow2 &&
	qemu-img check -q ks.qcow2 && qemu-img snapshot -l ks.qcow2 | grep -q later &&
	qemu-img snapshot -a base ks.qcow2 && qemu-img convert -O raw ks.qcow2 ks.r && cmp ks.r data.raw &&
	'$KVMM' img snapshot -d base ks.qcow2 && qemu-img check -q ks.qcow2 && ! qemu-img snapshot -l ks.qcow2 | grep -q ' base '"
t "kvmm snapshot -a restores, qemu-img checks" bash -c "
	'$KVMM' img snapshot -a later ks.qcow2 && qemu-img check -q ks.qcow2 && qemu-img convert -O raw ks.qcow2 ks2.r &&
	cmp -n 3145728 ks2.r <(python3 -c 'import sys; sys.stdout.buffer.write(bytes([9])*3145728)')"

# Errors: one line, non-zero exit.
t "bad image: one-line error" bash -c "printf 'QFI\\373\\0\\0\\0\\3' > junk.qcow2; truncate -s 200 junk.qcow2; out=\$('$KVMM' img info junk.qcow2 2>&1); [ \$? != 0 ] && [ \$(echo \"\$out\" | wc -l) = 1 ]"
t "unknown option: non-zero exit" bash -c "! '$KVMM' img create -f qcow2 -o nosuch=1 x.qcow2 1M 2>/dev/null"

echo "1..$n"
[ $failed = 0 ]
