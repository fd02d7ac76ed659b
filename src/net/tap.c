// SPDX-License-Identifier: MIT
/* tap.c: opening tap interfaces with virtio-net headers (linux/if_tun.h), or adopting a socket instead. */
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"

_Static_assert(TAP_OFFLOAD_CSUM == TUN_F_CSUM && TAP_OFFLOAD_TSO4 == TUN_F_TSO4 &&
		       TAP_OFFLOAD_TSO6 == TUN_F_TSO6 && TAP_OFFLOAD_TSO_ECN == TUN_F_TSO_ECN &&
		       TAP_OFFLOAD_UFO == TUN_F_UFO,
	       "TAP_OFFLOAD_* are the TUN_F_* bits");

/* Header size and no offloads until the guest negotiates some (the tap then checksums for us). */
static int tap_configure(struct tap *t, struct err *e)
{
	int hdr = TAP_VNET_HDR_LEN;

	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) < 0)
		return err_set(e, errno, "tap %s: cannot set the vnet header size: %s", t->ifname,
			       strerror(errno));
	if (ioctl(t->fd, TUNSETOFFLOAD, 0UL) < 0)
		return err_set(e, errno, "tap %s: cannot clear offloads: %s", t->ifname,
			       strerror(errno));
	return 0;
}

int tap_open(const char *ifname, struct tap *t, struct err *e)
{
	struct ifreq ifr;
	int r;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ)
		return err_set(e, EINVAL, "tap name '%s': give 1 to %d characters", ifname ? ifname : "",
			       IFNAMSIZ - 1);
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		r = errno;
		return err_set(e, r, "/dev/net/tun: %s%s", strerror(r),
			       r == ENOENT || r == ENODEV ? " (is the tun module loaded?)" : "");
	}
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		r = errno;
		close(t->fd);
		t->fd = -1;
		switch (r) {
		case EBUSY:
			return err_set(e, r, "%s: device busy (another process has it open)", ifname);
		case EPERM:
		case EACCES:
			return err_set(e, r, "%s: no permission: CAP_NET_ADMIN needed (or a persistent "
				       "tap owned by this user: ip tuntap add %s mode tap user USER)",
				       ifname, ifname);
		case EINVAL:
			return err_set(e, r, "%s: exists but is not a single-queue tap interface",
				       ifname);
		default:
			return err_set(e, r, "%s: TUNSETIFF: %s", ifname, strerror(r));
		}
	}
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifr.ifr_name);
	t->is_tap = true;
	r = tap_configure(t, e);
	if (r)
		tap_close(t);
	return r;
}

int tap_open_fd(int fd, struct tap *t, struct err *e)
{
	struct ifreq ifr;
	int fl, type;
	socklen_t sl = sizeof(type);

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	fl = fcntl(fd, F_GETFL);
	if (fd < 0 || fl < 0)
		return err_set(e, EBADF, "not an open file descriptor");
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) == 0) {
		if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN)) != IFF_TAP)
			return err_set(e, EINVAL, "%.*s is a tun, not a tap", IFNAMSIZ,
				       ifr.ifr_name);
		/* The header flag can only be chosen when the fd is attached (TUNSETIFF). */
		if (!(ifr.ifr_flags & IFF_VNET_HDR) || (ifr.ifr_flags & IFF_NO_PI) != IFF_NO_PI)
			return err_set(e, EINVAL, "tap %.*s must be opened with IFF_NO_PI and "
				       "IFF_VNET_HDR", IFNAMSIZ, ifr.ifr_name);
		snprintf(t->ifname, sizeof(t->ifname), "%.*s", IFNAMSIZ - 1, ifr.ifr_name);
		t->is_tap = true;
	} else if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) == 0) {
		if (type != SOCK_DGRAM && type != SOCK_SEQPACKET)
			return err_set(e, EINVAL, "a socket must be datagram or seqpacket "
				       "(one frame per message)");
	} else {
		return err_set(e, EINVAL, "neither a tap nor a socket");
	}
	if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return err_set(e, errno, "%s", strerror(errno));
	t->fd = fd;
	if (t->is_tap) {
		int r = tap_configure(t, e);

		if (r) {
			t->fd = -1; /* the caller still owns fd */
			return r;
		}
	}
	return 0;
}

int tap_set_offload(struct tap *t, unsigned offloads)
{
	if (!t->is_tap)
		return 0;
	return ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)offloads) < 0 ? -errno : 0;
}

void tap_close(struct tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
