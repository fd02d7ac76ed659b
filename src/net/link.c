// SPDX-License-Identifier: MIT
/* link.c: a network interface's traffic counters, read over rtnetlink with libnl-route. */
#include "net/link.h"

#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <stdlib.h>

struct link_watch {
	struct nl_sock *sk;
	int ifindex;
};

struct link_watch *link_watch_open(int ifindex)
{
	struct link_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->ifindex = ifindex;
	w->sk = nl_socket_alloc();
	if (!w->sk || nl_connect(w->sk, NETLINK_ROUTE) < 0) {
		link_watch_close(w);
		return NULL;
	}
	return w;
}

bool link_watch_read(struct link_watch *w, struct link_counters *c)
{
	struct rtnl_link *l = NULL;

	if (!w || rtnl_link_get_kernel(w->sk, w->ifindex, NULL, &l) < 0 || !l)
		return false;
	*c = (struct link_counters){
		.rx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS),
		.rx_bytes = rtnl_link_get_stat(l, RTNL_LINK_RX_BYTES),
		.tx_packets = rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS),
		.tx_bytes = rtnl_link_get_stat(l, RTNL_LINK_TX_BYTES),
	};
	rtnl_link_put(l);
	return true;
}

void link_watch_close(struct link_watch *w)
{
	if (!w)
		return;
	if (w->sk)
		nl_socket_free(w->sk);
	free(w);
}
