#!/bin/sh
# SPDX-License-Identifier: MIT
# The host under test has a usable /dev/kvm (kvm_amd loaded in the emulated host).
# rig-timeout: 30
. "$RIG_HOME/scenario-lib.sh"

[ -c /dev/kvm ] || rig_fail "/dev/kvm is missing"
ls -l /dev/kvm
( exec 3<>/dev/kvm ) || rig_fail "/dev/kvm cannot be opened read-write"
if [ "$RIG_EMULATED" = 1 ]; then
	grep -q '^kvm_amd ' /proc/modules || rig_fail "kvm_amd is not loaded"
	grep -qw svm /proc/cpuinfo || rig_fail "the emulated CPU has no svm flag"
	echo "npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null)"
fi
rig_pass "/dev/kvm ready"
