#!/bin/sh
# SPDX-License-Identifier: MIT
# --balloon target=SIZE: the stock virtio_balloon driver inflates to the target, so the
# guest's MemTotal drops, and kvmm's RSS drops (guest RAM prefaulted, so it starts resident):
# inflated pages are punched out of the memfd behind guest RAM.
# rig-timeout: 300
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

# VmRSS (kB) of the kvmm started last: $KVMM_PID itself (busybox timeout execs the command)
# or its child (coreutils timeout forks it).
kvmm_rss() {
	for s in /proc/$KVMM_PID/status /proc/[0-9]*/status; do
		if grep -q '^Name:[[:space:]]*kvmm' "$s" 2>/dev/null &&
			{ [ "$s" = "/proc/$KVMM_PID/status" ] ||
				grep -q "^PPid:[[:space:]]*$KVMM_PID\$" "$s" 2>/dev/null; }; then
			awk '/^VmRSS:/ { print $2 }' "$s"
			return
		fi
	done
	echo 0
}

mods=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_balloon
# 384 MiB guest, balloon 192 MiB: MemTotal (~350 MB at boot) must fall under 200 MB.
rig_kvmm_start guest 280 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=$mods kvmm.test=virtio-balloon,poweroff kvmm.balloon_max_kb=200000" \
	--cpus 1 --memory 384M --prefault --console stdio --balloon target=192M,stats=1

before=0
n=0
while [ $n -lt 1200 ]; do
	r=$(kvmm_rss)
	[ "$r" -gt "$before" ] && before=$r
	[ "$(rig_count guest '@@GUEST balloon inflated')" -ge 1 ] && break
	kill -0 "$KVMM_PID" 2>/dev/null || break
	sleep 0.2
	n=$((n + 1))
done
# The RSS falls as kvmm discards the pages the guest gives: watch it (up to 10 s) rather
# than sleep a fixed time, and keep the lowest reading taken while kvmm still ran.
after=0
n=0
while [ $n -lt 50 ] && kill -0 "$KVMM_PID" 2>/dev/null; do
	r=$(kvmm_rss)
	[ "$r" -gt 0 ] && { [ "$after" = 0 ] || [ "$r" -lt "$after" ]; } && after=$r
	[ "$after" -gt 0 ] && [ "$after" -le $((before - 131072)) ] && break
	sleep 0.2
	n=$((n + 1))
done
rig_kvmm_wait
rig_show guest
echo "kvmm VmRSS: peak ${before} kB, after inflating ${after} kB"
rig_expect_boot guest 0
[ "$(rig_count guest '@@GUEST step virtio-balloon pass')" -ge 1 ] ||
	rig_fail "guest step virtio-balloon failed (MemTotal did not drop)"
[ "$after" -gt 0 ] || rig_fail "could not read kvmm's VmRSS"
[ "$after" -le $((before - 131072)) ] ||
	rig_fail "kvmm RSS did not drop by 128 MiB: peak ${before} kB, after ${after} kB"
rig_pass "balloon inflated: RSS ${before} -> ${after} kB in ${KVMM_SECS}s"
