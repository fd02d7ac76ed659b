#!/bin/sh
# SPDX-License-Identifier: MIT
# linux-blk.sh: a rig scenario (runs inside the emulated KVM host, busybox sh) that measures
# a virtio-blk disk from inside a stock Debian Linux guest under kvmm and under QEMU
# (-accel kvm, virtio-blk-pci, aio=io_uring, cache=writeback), alternating, with the same
# raw image on the host's tmpfs. The guest runs the blk-bench step
# (tests/rig/guest-init/steps/blk-bench.sh: busybox dd, timed by the guest's clock).
#
# Why busybox dd and not fio: Debian's /usr/bin/fio links ~60 shared libraries (ceph,
# gluster, rdma, ICU...), ~80 MiB that would have to go into the guest's initramfs and be
# unpacked at emulator speed on every boot, and no static fio is packaged. dd in the
# initramfs already does what is needed for sequential 1 MiB passes and 4 KiB O_DIRECT
# requests at queue depth 1 (one process per pass, so no random offsets: on a tmpfs-backed
# image the offsets do not matter, the per-request cost does).
#
# Settings (the rig passes RIG_BENCH_* into the host): RIG_BENCH_BLK_RUNS (boots of each
# VMM, default 1), RIG_BENCH_BLK_DISK_MIB (image size, 128), RIG_BENCH_BLK_MIB (MiB per
# sequential pass, 128), RIG_BENCH_BLK_4K (4 KiB requests per pass, 1024),
# RIG_BENCH_BLK_REPS (timed passes of each test per boot, 2, after a warm-up pass rep=0).
# Prints per pass "@@BENCH linux-blk vmm=kvmm|qemu run=N test=T rep=I bytes=B ops=N secs=S".
# rig-timeout: 1500
# shellcheck disable=SC2086 # $qaio is a word
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm
rig_need_qemu

runs=${RIG_BENCH_BLK_RUNS:-1}
disk_mib=${RIG_BENCH_BLK_DISK_MIB:-128}
mib=${RIG_BENCH_BLK_MIB:-128}
n4k=${RIG_BENCH_BLK_4K:-1024}
reps=${RIG_BENCH_BLK_REPS:-2}
mods=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_blk
cmdline="$RIG_GUEST_CMDLINE kvmm.modules=$mods kvmm.test=blk-bench,poweroff"
cmdline="$cmdline kvmm.blk_mib=$mib kvmm.blk_4k=$n4k kvmm.blk_reps=$reps"
# The image lives on the host's tmpfs (RAM), so what is measured is the VMMs' virtio-blk
# paths, not a disk; tmpfs has no O_DIRECT on this kernel, hence cache=writeback for QEMU,
# which is also what kvmm does (buffered I/O).
data=/tmp/rig-data-linux-blk
rm -rf "$data" && mkdir -p "$data" || rig_fail "cannot create $data"
disk=$data/disk.raw
# Allocated in full (not sparse), once: both VMMs see the same file of the same size.
dd if=/dev/zero of="$disk" bs=1M count="$disk_mib" 2>/dev/null || rig_fail "cannot create the disk"
echo "disk $disk: $disk_mib MiB on $(df -h /tmp | awk 'NR == 2 { print $1 }'); passes of $mib MiB and $n4k x 4 KiB, $reps per boot"
qaio=io_uring

# report VMM RUN TAG: the guest's pass lines as @@BENCH lines; fails the scenario when the
# step did not pass.
report() {
	grep -a '@@GUEST blk-bench' "$RIG_TMP/$3.console" | tr -d '\r' | sed "s/^/guest $1: /"
	grep -a '@@GUEST blk-bench [0-9a-z-]* rep=[0-9]* bytes=' "$RIG_TMP/$3.console" | tr -d '\r' |
		sed "s/.*@@GUEST blk-bench \([^ ]*\) /@@BENCH linux-blk vmm=$1 run=$2 test=\1 /"
	grep -q '@@GUEST step blk-bench pass' "$RIG_TMP/$3.console" ||
		rig_fail "$3: the blk-bench step did not pass (see $3.console, $3.log)"
	[ "$KVMM_TIMEDOUT" = 0 ] && [ "$KVMM_RC" = 0 ] || rig_fail "$3: exit $KVMM_RC"
}

one() { # one VMM RUN
	tag=$1-$2
	case $1 in
	kvmm)
		rig_kvmm_start "$tag" 400 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
			--cpus 1 --memory 512M --console stdio --cmdline "$cmdline" \
			--disk path="$disk",format=raw
		;;
	qemu)
		rig_qemu_start "$tag" 400 -accel kvm -M pc -cpu host -smp 1 -m 512 -nodefaults \
			-no-user-config -display none -serial stdio -no-reboot \
			-kernel "$RIG_BZIMAGE" -initrd "$RIG_INITRD" -append "$cmdline" \
			-drive file="$disk",if=none,id=d,format=raw,aio=$qaio,cache=writeback \
			-device virtio-blk-pci,drive=d,disable-legacy=on
		;;
	esac
	rig_kvmm_wait
	report "$1" "$2" "$tag"
}

# QEMU built without io_uring (or a host that refuses it) falls back to its thread pool;
# the @@BENCH lines say which. QEMU opens the drive at start-up, then quits from its monitor.
if ! echo quit | timeout 120 "$RIG_QEMU_BIN" -accel kvm -M none -nodefaults -display none \
	-drive file="$disk",if=none,id=d,format=raw,aio=io_uring,cache=writeback \
	-monitor stdio -serial none >"$RIG_TMP/qemu-probe.log" 2>&1; then
	echo "qemu refuses aio=io_uring: $(grep -v QEMU "$RIG_TMP/qemu-probe.log" | head -n 2); using aio=threads"
	qaio=threads
fi
echo "kvmm: kvmm run --kernel bzImage --initrd initrd.cpio --cpus 1 --memory 512M --console stdio --disk path=$disk,format=raw"
echo "qemu: qemu-system-x86_64 -accel kvm -M pc -cpu host -smp 1 -m 512 -nodefaults -no-user-config -display none -serial stdio -no-reboot -kernel bzImage -initrd initrd.cpio -drive file=$disk,if=none,id=d,format=raw,aio=$qaio,cache=writeback -device virtio-blk-pci,drive=d,disable-legacy=on"
echo "both: --cmdline/-append '$cmdline'"
echo "@@BENCH linux-blk qemu_aio=$qaio disk_mib=$disk_mib mib=$mib n4k=$n4k reps=$reps runs=$runs"

# Alternate: run 1 kvmm then qemu, run 2 qemu then kvmm, ...
i=1
while [ "$i" -le "$runs" ]; do
	if [ $((i % 2)) = 1 ]; then
		one kvmm "$i"
		one qemu "$i"
	else
		one qemu "$i"
		one kvmm "$i"
	fi
	i=$((i + 1))
done
rm -rf "$data"
rig_pass "linux-blk timings above"
