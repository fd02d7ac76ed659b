#!/bin/sh
# SPDX-License-Identifier: MIT
# Broken kernel images give exit status 1 and one clear line on stderr, never a crash.
# rig-timeout: 60
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm

# A truncated bzImage (header intact, payload cut), random bytes, an empty file, and a
# truncated ELF vmlinux.
head -c 65536 "$RIG_BZIMAGE" >"$RIG_TMP/truncated-bzimage"
head -c 300000 /dev/urandom >"$RIG_TMP/garbage"
: >"$RIG_TMP/empty"
if [ -f "$RIG_VMLINUX" ]; then
	head -c 4096 "$RIG_VMLINUX" >"$RIG_TMP/truncated-vmlinux"
fi
for k in truncated-bzimage garbage empty truncated-vmlinux missing-file; do
	[ "$k" = truncated-vmlinux ] && ! [ -f "$RIG_TMP/$k" ] && continue
	rig_kvmm "$k" 20 run --kernel "$RIG_TMP/$k" --cmdline "$RIG_GUEST_CMDLINE" \
		--memory 128M --console stdio
	lines=$(wc -l <"$RIG_TMP/$k.log")
	echo "$k: stderr: $(head -n 3 "$RIG_TMP/$k.log")"
	[ "$KVMM_TIMEDOUT" = 1 ] && rig_fail "$k: kvmm still running after 20s"
	[ "$KVMM_RC" = 1 ] || rig_fail "$k: kvmm exit $KVMM_RC, want 1"
	[ "$lines" -ge 1 ] || rig_fail "$k: nothing on stderr"
	[ "$lines" -le 2 ] || rig_fail "$k: $lines lines on stderr, want one clear line"
done
rig_pass "broken kernel images rejected with exit 1"
