# shellcheck shell=bash disable=SC2034,SC2054
# SPDX-License-Identifier: MIT
# Shared helpers for the emulated-KVM-host rig and tools/demo: tools, kernel cache, initramfs.
#
# Sourced by tests/rig/rig, tests/rig/run-tap and tools/demo (bash). Functions are prefixed
# rig_; they report errors on stderr and return non-zero instead of exiting.

RIG_DIR=${RIG_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
RIG_CACHE=${KVMM_CACHE:-${HOME:-/root}/.cache/kvmm}

rig_say() { printf 'rig: %s\n' "$*" >&2; }

# Modules the emulated host loads, in dependency order (paths under lib/modules/<ver>/kernel).
RIG_HOST_MODULES="virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko"
# Modules the emulated host loads when present, for device scenarios (tap and vhost
# backends, vsock, bridges); a failure is reported but is not fatal. Dependency order.
RIG_HOST_OPTIONAL_MODULES="drivers/net/tun.ko drivers/net/tap.ko drivers/vhost/vhost_iotlb.ko
 drivers/vhost/vhost.ko drivers/vhost/vhost_net.ko net/vmw_vsock/vsock.ko
 net/vmw_vsock/vmw_vsock_virtio_transport_common.ko drivers/vhost/vhost_vsock.ko
 net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko drivers/net/veth.ko"
# Modules copied into the guest initramfs (flat, as /lib/modules/<name>.ko); a guest loads
# them on request with kvmm.modules=a,b,c (in that order). Dependency order for virtio:
# virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci, then drivers.
RIG_GUEST_MODULES="drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko
 drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
 drivers/virtio/virtio_pci.ko drivers/virtio/virtio_mmio.ko drivers/virtio/virtio_balloon.ko
 drivers/block/virtio_blk.ko drivers/net/net_failover.ko net/core/failover.ko
 drivers/net/virtio_net.ko drivers/char/hw_random/rng-core.ko
 drivers/char/hw_random/virtio-rng.ko drivers/char/virtio_console.ko
 drivers/scsi/virtio_scsi.ko fs/fuse/fuse.ko fs/fuse/virtiofs.ko net/vmw_vsock/vsock.ko
 net/vmw_vsock/vmw_vsock_virtio_transport_common.ko net/vmw_vsock/vmw_vsock_virtio_transport.ko"

# rig_need_tools: make sure qemu, a static busybox, cpio and lz4 are present; install the
# missing ones with apt-get when running as root.
rig_need_tools() {
	local missing="" t
	command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
	if ! [ -x /bin/busybox ] || ! file_is_static /bin/busybox; then
		missing="$missing busybox-static"
	fi
	command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
	command -v lz4 >/dev/null 2>&1 || missing="$missing lz4"
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		rig_say "missing packages:$missing (run as root or install them)"
		return 1
	fi
	rig_say "installing:$missing"
	for t in 1 2; do
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2 && return 0
		apt-get update -q >&2
	done
	rig_say "apt-get install$missing failed"
	return 1
}

# file_is_static FILE: true when FILE is an ELF without a program interpreter.
file_is_static() {
	# ldd says "not a dynamic executable" (static) or "statically linked" (static-pie).
	LC_ALL=C ldd "$1" 2>&1 | grep -qE 'not a dynamic executable|statically linked'
}

# rig_fetch_kernel: download Debian's linux-image-cloud-amd64 (and the versioned image it
# depends on) into $RIG_CACHE/deb, unpack into $RIG_CACHE/k; reuse what is there.
# Sets RIG_KVER, RIG_BZIMAGE, RIG_MODDIR.
rig_fetch_kernel() {
	local k="$RIG_CACHE/k" deb="$RIG_CACHE/deb" meta dep f
	if ! ls "$k"/boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1; then
		mkdir -p "$deb" || return 1
		if ! ls "$deb"/linux-image-*-cloud-amd64_*.deb >/dev/null 2>&1 ||
		   ! ls "$deb"/linux-image-cloud-amd64_*.deb >/dev/null 2>&1; then
			rig_say "downloading linux-image-cloud-amd64 into $deb"
			(cd "$deb" && { apt-get download -q linux-image-cloud-amd64 >&2 ||
				{ apt-get update -q >&2 && apt-get download -q linux-image-cloud-amd64 >&2; }; }) || {
				rig_say "apt-get download linux-image-cloud-amd64 failed"; return 1; }
			meta=$(ls -t "$deb"/linux-image-cloud-amd64_*.deb | head -n1)
			# Depends: linux-image-6.1.0-NN-cloud-amd64 (= 6.1.x-y)
			dep=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' |
				sed -n 's/^ *\(linux-image-[0-9][^ ]*-cloud-amd64\).*/\1/p' | head -n1)
			[ -n "$dep" ] || { rig_say "cannot read the kernel dependency of $meta"; return 1; }
			(cd "$deb" && apt-get download -q "$dep" >&2) || {
				rig_say "apt-get download $dep failed"; return 1; }
		fi
		# Unpack beside, then rename: a concurrent run never sees half a tree.
		rm -rf "$k.tmp.$$" && mkdir -p "$k.tmp.$$" || return 1
		for f in "$deb"/linux-image-*-cloud-amd64_*.deb; do
			case "$f" in */linux-image-cloud-amd64_*) continue ;; esac
			dpkg -x "$f" "$k.tmp.$$" || { rig_say "dpkg -x $f failed"; return 1; }
		done
		if ls "$k"/boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1; then
			rm -rf "$k.tmp.$$" # another run got there first
		else
			rm -rf "$k" && mv "$k.tmp.$$" "$k" || return 1
		fi
	fi
	RIG_BZIMAGE=$(ls "$k"/boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n1)
	RIG_KVER=${RIG_BZIMAGE##*/vmlinuz-}
	RIG_MODDIR="$k/lib/modules/$RIG_KVER/kernel"
	[ -d "$RIG_MODDIR" ] || { rig_say "no modules in $RIG_MODDIR"; return 1; }
}

# rig_module SRC DST: copy one module, decompressing .ko.xz/.ko.zst when a package ships so.
rig_module() {
	local src="$1" dst="$2"
	if [ -f "$src" ]; then cp "$src" "$dst"
	elif [ -f "$src.xz" ]; then xz -dc "$src.xz" >"$dst"
	elif [ -f "$src.zst" ]; then zstd -qdc "$src.zst" >"$dst"
	else rig_say "module $src missing"; return 1
	fi
}

# rig_extract_vmlinux BZIMAGE OUT: the ELF vmlinux inside a bzImage (boot protocol 2.08+:
# payload_offset/payload_length at 0x248/0x24c, relative to the protected-mode code at
# (setup_sects+1)*512). Debian compresses it with LZ4 (legacy frames) and the build appends
# the decompressed size as 4 bytes, which lz4 must not see.
rig_extract_vmlinux() {
	local bz="$1" out="$2" ss off len start magic
	[ -s "$out" ] && [ "$out" -nt "$bz" ] && return 0
	ss=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
	[ "$ss" = 0 ] && ss=4
	off=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
	len=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
	start=$(( (ss + 1) * 512 + off ))
	magic=$(tail -c +$((start + 1)) "$bz" | head -c 4 | od -An -tx1 | tr -d ' ')
	case "$magic" in
	02214c18) tail -c +$((start + 1)) "$bz" | head -c $((len - 4)) | lz4 -dc >"$out.tmp.$$" ;;
	1f8b*) tail -c +$((start + 1)) "$bz" | head -c "$len" | gzip -dc >"$out.tmp.$$" 2>/dev/null ;;
	fd377a58) tail -c +$((start + 1)) "$bz" | head -c "$len" | xz -dc >"$out.tmp.$$" 2>/dev/null ;;
	28b52ffd) tail -c +$((start + 1)) "$bz" | head -c "$len" | zstd -qdc >"$out.tmp.$$" 2>/dev/null ;;
	*) rig_say "$bz: unknown payload compression (magic $magic)"; return 1 ;;
	esac
	if [ "$(head -c 4 "$out.tmp.$$" | od -An -tx1 | tr -d ' ')" != 7f454c46 ]; then
		rig_say "$bz: extracted payload is not an ELF file"; rm -f "$out.tmp.$$"; return 1
	fi
	mv "$out.tmp.$$" "$out"
}

# rig_busybox_tree DIR: a root with busybox, its applet links and the usual mount points.
rig_busybox_tree() {
	local d="$1" a
	mkdir -p "$d"/bin "$d"/sbin "$d"/usr/bin "$d"/usr/sbin "$d"/proc "$d"/sys "$d"/dev \
		"$d"/tmp "$d"/run "$d"/mnt "$d"/etc "$d"/root "$d"/lib/modules || return 1
	cp /bin/busybox "$d"/bin/busybox || return 1
	for a in $(/bin/busybox --list-full); do
		[ -e "$d/$a" ] || ln -s /bin/busybox "$d/$a"
	done
	# The kernel needs a console node before devtmpfs is mounted to give init its stdio.
	mknod -m 600 "$d"/dev/console c 5 1 2>/dev/null || true
	mknod -m 666 "$d"/dev/null c 1 3 2>/dev/null || true
}

# rig_cpio DIR OUT: an uncompressed newc archive. Uncompressed on purpose: inside the
# emulated host (and under a VMM in it) decompression runs at emulator speed.
rig_cpio() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --quiet) >"$2.tmp" && mv "$2.tmp" "$2"
}

# rig_guest_initramfs OUT [HELPERS_DIR]: the guest's busybox initramfs, built in a
# temporary tree: tests/rig/guest-init/init as /init, steps under /rig/steps, modules,
# and the static helper programs (rig_helpers) in /rig/bin and /rig.
rig_guest_initramfs() {
	local out="$1" helpers="${2:-}" t m
	t=$(mktemp -d "${TMPDIR:-/tmp}/rig-guest.XXXXXX") || return 1
	rig_busybox_tree "$t" || return 1
	cp "$RIG_DIR/guest-init/init" "$t/init" && chmod 755 "$t/init" || return 1
	mkdir -p "$t/rig/steps" && cp "$RIG_DIR"/guest-init/steps/*.sh "$t/rig/steps/" 2>/dev/null
	if [ -n "$helpers" ] && [ -d "$helpers" ]; then
		cp -r "$helpers" "$t/rig/bin" && cp "$helpers"/* "$t/rig/" 2>/dev/null
	fi
	for m in $RIG_GUEST_MODULES; do
		[ -e "$RIG_MODDIR/$m" ] || [ -e "$RIG_MODDIR/$m.xz" ] || continue
		rig_module "$RIG_MODDIR/$m" "$t/lib/modules/${m##*/}" || return 1
	done
	rig_cpio "$t" "$out"
	local rc=$?
	rm -rf "$t"
	return $rc
}

# rig_copy_binary BIN ROOT DEST: copy an executable into ROOT at DEST, with its shared
# libraries (found by ldd) when it is not static.
rig_copy_binary() {
	local bin="$1" root="$2" dest="$3" lib
	mkdir -p "$root/$(dirname "$dest")" && cp "$bin" "$root/$dest" || return 1
	file_is_static "$bin" && return 0
	for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*'); do
		mkdir -p "$root/$(dirname "$lib")" && cp -L "$lib" "$root/$lib" || return 1
	done
}

# rig_direct_ok: true when this machine's /dev/kvm can run unmodified guests (hardware
# virtualization visible to us), false on nested paravirtual KVM such as kvm_pvm.
rig_direct_ok() {
	[ "${RIG_FORCE_DIRECT:-0}" = 1 ] && return 0 # to test the rig's direct path itself
	grep -qwE 'vmx|svm' /proc/cpuinfo && [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]
}

# The emulated host's kernel command line. no_timer_check: Linux's IO-APIC timer check
# measures ticks against a busy loop, and under TCG on a loaded machine it fails and
# panics ("IO-APIC + timer doesn't work!"), seen here with a load average of 20.
# unknown_nmi_panic and panic_print=0x40 are for a hung host: an NMI from QEMU's monitor
# (rig_qemu_state) makes it panic with a backtrace of every CPU on its console.
RIG_HOST_APPEND="console=ttyS0 panic=-1 quiet no_timer_check unknown_nmi_panic panic_print=0x40"

# rig_qemu_args: the emulated host's QEMU command line (without -kernel/-initrd/-append).
# TCG emulates AMD SVM with nested paging, so kvm_amd loads in the host.
rig_qemu_args() {
	# EPYC's features that TCG lacks are turned off, which keeps QEMU's warnings out of
	# the console log; what is left is what the guest really gets.
	local cpu=EPYC,+svm,-rdseed,-sha-ni,-fxsr-opt,-misalignsse,-3dnowprefetch,-osvw
	cpu=$cpu,-topoext,-nrip-save,-xsavec
	RIG_QEMU=(qemu-system-x86_64 -accel tcg,thread=multi -smp 2 -cpu "${RIG_HOST_CPU:-$cpu}"
		-m "${RIG_HOST_MEM:-2048}" -no-reboot -nodefaults -no-user-config -display none
		-machine pc)
}

# rig_qemu_state SOCKET: what a stuck emulated host's CPUs were doing, from QEMU's QMP socket:
# the registers, each CPU's next instructions and top of stack, then an NMI to every CPU,
# which the host (unknown_nmi_panic) turns into a panic with every CPU's backtrace.
rig_qemu_state() {
	command -v python3 >/dev/null 2>&1 || { echo "(no python3 to query the monitor)"; return 0; }
	python3 - "$1" <<'PY'
import json, re, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
buf = b""

def reply():
    global buf
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg
        b = s.recv(65536)
        if not b:
            raise OSError("QMP socket closed")
        buf += b

def hmp(c, cpu=None):
    args = {"command-line": c}
    if cpu is not None:
        args["cpu-index"] = cpu
    s.sendall(json.dumps({"execute": "human-monitor-command", "arguments": args}).encode() + b"\n")
    r = reply()
    return r.get("return", "error: %s" % r.get("error")).replace("\r", "").rstrip("\n")

try:
    s.connect(sys.argv[1])
    s.sendall(b'{"execute": "qmp_capabilities"}\n')
    reply()
    print(hmp("info status"))
    print(hmp("info registers -a"))
    for line in hmp("info cpus").split("\n"):
        m = re.search(r"CPU #(\d+)", line)
        if m:
            n = int(m.group(1))
            print("@@STACK %d" % n)
            print(hmp("x/4i $pc", n))
            print(hmp("x/160gx $sp", n))
    hmp("nmi")
    print("(NMI sent to every CPU)")
except (OSError, ValueError) as e:
    print("monitor: %s" % e)
PY
}

# rig_host_modules ROOT: the emulated host's modules into ROOT/lib/modules/rig, listed in
# modules.list (required) and modules-optional.list, in load order.
rig_host_modules() {
	local d="$1/lib/modules/rig" m
	mkdir -p "$d" && : >"$d/modules.list" && : >"$d/modules-optional.list" || return 1
	for m in $RIG_HOST_MODULES; do
		rig_module "$RIG_MODDIR/$m" "$d/${m##*/}" || return 1
		echo "${m##*/}" >>"$d/modules.list"
	done
	for m in $RIG_HOST_OPTIONAL_MODULES; do
		[ -e "$RIG_MODDIR/$m" ] || [ -e "$RIG_MODDIR/$m.xz" ] || continue
		rig_module "$RIG_MODDIR/$m" "$d/${m##*/}" || return 1
		echo "${m##*/}" >>"$d/modules-optional.list"
	done
}

# rig_helpers OUTDIR: static builds of the rig's helper programs (tests/rig/*.c, one
# program per file) for scenarios, which find them on PATH. A helper that does not build
# is left out with a warning; the scenario that needs it skips.
rig_helpers() {
	local out="$1" c n
	mkdir -p "$out" || return 1
	for c in "$RIG_DIR"/*.c; do
		[ -f "$c" ] || continue
		n=$(basename "$c" .c)
		if [ -x "$out/$n" ] && [ "$out/$n" -nt "$c" ]; then continue; fi
		if ! ${CC:-cc} -static -O2 -Wall -o "$out/$n" "$c" 2>"$out/$n.err"; then
			rig_say "helper $n does not build (left out): $(head -n 3 "$out/$n.err")"
			rm -f "$out/$n"
		fi
		rm -f "$out/$n.err"
	done
}

# rig_add_qemu ROOT: QEMU (with its libraries and the x86 firmware it loads) into ROOT, for
# side-by-side runs inside the emulated host (--with-qemu).
rig_add_qemu() {
	local root="$1" q f
	q=$(command -v qemu-system-x86_64) || { rig_say "no qemu-system-x86_64"; return 1; }
	rig_copy_binary "$q" "$root" /usr/bin/qemu-system-x86_64 || return 1
	mkdir -p "$root/usr/share/qemu" "$root/usr/share/seabios" || return 1
	cp -L /usr/share/seabios/* "$root/usr/share/seabios/" 2>/dev/null
	for f in kvmvapic.bin linuxboot.bin linuxboot_dma.bin multiboot.bin multiboot_dma.bin \
		pvh.bin qboot.rom bios-microvm.bin; do
		[ -e "/usr/share/qemu/$f" ] && cp -L "/usr/share/qemu/$f" "$root/usr/share/qemu/"
	done
	return 0
}
