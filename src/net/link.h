/* SPDX-License-Identifier: MIT */
/* link.h: a network interface's traffic counters, read over rtnetlink (libnl-route). */
#ifndef KVMM_NET_LINK_H
#define KVMM_NET_LINK_H

#include <stdbool.h>
#include <stdint.h>

/* Counted by the interface: rx is what it received from its user (a tap: from the guest). */
struct link_counters {
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
};

struct link_watch;

/* A route netlink socket for interface ifindex of the caller's namespace; NULL on failure. */
struct link_watch *link_watch_open(int ifindex);
/* The counters now; false when the kernel does not give them. */
bool link_watch_read(struct link_watch *w, struct link_counters *c);
void link_watch_close(struct link_watch *w);

#endif
