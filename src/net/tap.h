/* SPDX-License-Identifier: MIT */
/* tap.h: the host end of a virtual NIC: a tap interface carrying virtio-net headers, or a datagram socket. */
#ifndef KVMM_NET_TAP_H
#define KVMM_NET_TAP_H

#include <net/if.h>
#include <stdbool.h>

struct err;

/* Every frame read or written carries this header in front (struct virtio_net_hdr_v1). */
#define TAP_VNET_HDR_LEN 12

/* Offloads the host may hand to the guest (the TUN_F_* bits of linux/if_tun.h). */
#define TAP_OFFLOAD_CSUM 0x01
#define TAP_OFFLOAD_TSO4 0x02
#define TAP_OFFLOAD_TSO6 0x04
#define TAP_OFFLOAD_TSO_ECN 0x08
#define TAP_OFFLOAD_UFO 0x10

struct tap {
	int fd;                 /* non-blocking, close-on-exec */
	char ifname[IFNAMSIZ];  /* "" for a socket */
	/*
	 * False when fd is a datagram or seqpacket socket: each message is one
	 * frame with its header, and the peer handles offloads (used by tests and
	 * by user-space switches).
	 */
	bool is_tap;
};

/*
 * Attach to the tap interface ifname, creating it (it then vanishes when
 * closed) unless a persistent one by that name exists.
 */
int tap_open(const char *ifname, struct tap *t, struct err *e);
/* Adopt an open fd: a tap opened with IFF_VNET_HDR, or a datagram socket. The messages
 * do not name fd (it may be a copy): the caller says which fd it was. */
int tap_open_fd(int fd, struct tap *t, struct err *e);
/* Which TAP_OFFLOAD_* the tap may use in frames it gives us; 0 for sockets. */
int tap_set_offload(struct tap *t, unsigned offloads);
void tap_close(struct tap *t);

#endif
