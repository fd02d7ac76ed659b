#!/bin/sh
# SPDX-License-Identifier: MIT
# --net tap=...: the stock virtio_net driver binds; the guest (10.0.2.15) pings a host tap
# (10.0.2.1, in the host's own namespace), downloads a 1 MiB file from the host's httpd and
# uploads one through a CGI; the host checks both checksums; then the guest reloads its
# driver (a device reset) and does it all again; with NET_SNAPSHOT, a snapshot is taken during
# a download loop and restored afterwards. NET_VHOST picks vhost=off
# (this file) or on (virtio-net-vhost.sh, which sources this one).
# rig-timeout: 240
. "$RIG_HOME/scenario-lib.sh"
rig_need_kvmm
vhost=${NET_VHOST:-off}
# On a real host, keep the tap and its addresses out of the host's own network.
if [ "${RIG_EMULATED:-0}" != 1 ] && [ -z "${RIG_NET_NS:-}" ]; then
	command -v unshare >/dev/null 2>&1 || rig_skip "no unshare for a private network namespace"
	RIG_NET_NS=1 exec unshare -n sh "$0"
fi
# /dev/net/tun may exist before tun.ko is loaded (a devname alias): ask sysfs.
[ -e /sys/class/misc/tun ] || rig_skip "no tun driver here (the host needs tun.ko)"
if [ "$vhost" = on ] && ! [ -e /sys/class/misc/vhost-net ]; then
	rig_skip "no /dev/vhost-net here (the host needs vhost_net.ko and its dependencies)"
fi

tap=kvmmtap$$
www="$RIG_TMP/www"
mkdir -p "$www/cgi-bin"
cleanup() {
	[ -n "${HTTPD_PID:-}" ] && kill "$HTTPD_PID" 2>/dev/null
	ip link del "$tap" 2>/dev/null || tunctl -d "$tap" >/dev/null 2>&1
}
trap cleanup EXIT
# A persistent tap that kvmm attaches to, configured before the guest boots.
if command -v tunctl >/dev/null 2>&1; then
	tunctl -t "$tap" >/dev/null || rig_fail "tunctl -t $tap failed"
else
	ip tuntap add dev "$tap" mode tap || rig_fail "ip tuntap add $tap failed"
fi
ip addr add 10.0.2.1/24 dev "$tap" && ip link set "$tap" up || rig_fail "cannot configure $tap"

head -c 1048576 /dev/urandom >"$www/blob"
cat >"$www/cgi-bin/up" <<CGI
#!/bin/sh
head -c "\$CONTENT_LENGTH" >"$RIG_TMP/uploaded"
echo "Content-Type: text/plain"
echo
echo "stored \$(wc -c <"$RIG_TMP/uploaded")"
CGI
chmod 755 "$www/cgi-bin/up"
httpd -f -p 10.0.2.1:8080 -h "$www" &
HTTPD_PID=$!
echo "$HTTPD_PID" >>"$RIG_TMP/.pids"

mods=virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,failover,net_failover,virtio_net
steps=virtio-net,virtio-net-reload
[ -n "${NET_SNAPSHOT:-}" ] && steps=virtio-net,virtio-net-loop
export KVMM_RUNTIME_DIR="$RIG_TMP/run"
mkdir -p "$KVMM_RUNTIME_DIR"
rig_kvmm_start guest 220 run --kernel "$RIG_BZIMAGE" --initrd "$RIG_INITRD" \
	--cmdline "$RIG_GUEST_CMDLINE kvmm.modules=$mods kvmm.test=$steps,poweroff" \
	--cpus 1 --memory 256M --console stdio --log-level info --name rignet \
	--net "tap=$tap,mac=52:54:00:12:34:56,vhost=$vhost"
if [ -n "${NET_SNAPSHOT:-}" ]; then
	rig_wait_console guest '@@GUEST virtio-net-loop 2 ' 1 200 ||
		rig_fail "the guest's download loop did not start"
	# Two 1 MiB downloads went in: the device's counters saw them (with vhost=on, from the
	# tap's own counters).
	"$RIG_KVMM" stats rignet >"$RIG_TMP/stats.txt" 2>&1 || rig_fail "kvmm stats failed"
	sed 's/^/stats: /' "$RIG_TMP/stats.txt"
	bytes_in=$(awk '$1 == "virtio-net" { print $3 }' "$RIG_TMP/stats.txt")
	[ "${bytes_in:-0}" -ge 2097152 ] ||
		rig_fail "virtio-net counted ${bytes_in:-no} bytes in after two 1 MiB downloads"
	"$RIG_KVMM" snapshot rignet "$RIG_TMP/snap" || rig_fail "kvmm snapshot failed"
	echo "snapshot taken after download $(rig_count guest '@@GUEST virtio-net-loop')"
fi
rig_kvmm_wait
rig_show guest
grep -a 'virtio-net' "$RIG_TMP/guest.log" | sed 's/^/kvmm: /'
rig_expect_boot guest 0
[ "$(rig_count guest '@@GUEST step virtio-net pass')" -ge 1 ] || rig_fail "the guest's network step failed"
if [ -n "${NET_SNAPSHOT:-}" ]; then
	[ "$(rig_count guest '@@GUEST virtio-net-loop 8 md5=')" -ge 1 ] &&
		[ "$(rig_count guest 'failed')" = 0 ] ||
		rig_fail "transfers failed after the snapshot"
else
	[ "$(rig_count guest '@@GUEST step virtio-net-reload pass')" -ge 1 ] ||
		rig_fail "the network failed after the guest reloaded its driver"
fi
rig_count guest 'mac=52:54:00:12:34:56' | grep -q '^[1-9]' || rig_fail "the guest saw another MAC"
want=$(md5sum <"$www/blob" | cut -c1-32)
# Two downloads around the reload, or one and eight around the snapshot.
ndl=2
[ -n "${NET_SNAPSHOT:-}" ] && ndl=9
[ "$(rig_count guest "download bytes=1048576 md5=$want")" -ge 1 ] &&
	[ "$(rig_count guest "md5=$want")" -ge "$ndl" ] ||
	rig_fail "the downloaded file differs (host md5 $want)"
up=$(md5sum <"$RIG_TMP/uploaded" 2>/dev/null | cut -c1-32)
rig_count guest "upload bytes=$(wc -c <"$RIG_TMP/uploaded") md5=$up" | grep -q '^[1-9]' ||
	rig_fail "the uploaded file differs (host got md5 $up)"
if [ "$vhost" = on ]; then
	# Started at DRIVER_OK, and again after the reset (or after saving the snapshot).
	[ "$(grep -c 'served by vhost-net' "$RIG_TMP/guest.log")" -ge 2 ] ||
		rig_fail "vhost-net was not used (or not again after the reset or snapshot)"
fi
what="twice around a driver reload"
[ -n "${NET_SNAPSHOT:-}" ] && what="then 8 downloads around a snapshot"
if [ -n "${NET_SNAPSHOT:-}" ]; then
	# The snapshot again, in a new process on the same tap: the guest's download loop goes
	# on from where the snapshot caught it (with vhost=on, served by vhost-net at once,
	# from the record's ring positions).
	rig_kvmm restored 200 run --restore "$RIG_TMP/snap" --name rignet2 --console stdio \
		--log-level info
	rig_show restored
	grep -a 'virtio-net' "$RIG_TMP/restored.log" | sed 's/^/kvmm (restored): /'
	[ "$KVMM_RC" = 0 ] && [ "$KVMM_TIMEDOUT" = 0 ] || rig_fail "the restored kvmm exited $KVMM_RC"
	# A download cut by the snapshot is over for the host, so that one may fail; the
	# snapshot is taken just after a download, so it rarely is.
	[ "$(rig_count restored "@@GUEST virtio-net-loop 8 md5=$want")" -ge 1 ] &&
		[ "$(rig_count restored 'failed')" -le 1 ] ||
		rig_fail "the restored guest's downloads failed"
	if [ "$vhost" = on ]; then
		grep -q 'served by vhost-net' "$RIG_TMP/restored.log" ||
			rig_fail "the restored VM did not hand its queues to vhost-net"
	fi
	what="$what, and again after a restore"
fi
rig_pass "ping, 1 MiB download and upload verified, $what (vhost=$vhost) in ${KVMM_SECS}s"
