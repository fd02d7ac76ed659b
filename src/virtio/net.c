// SPDX-License-Identifier: MIT
/* net.c: virtio-net (virtio 1.2, 5.1) on a tap device, served by kvmm or by the kernel's vhost-net. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "net/link.h"
#include "net/tap.h"
#include "net/vhost.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"
#include "vmm/mem.h"

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

#define VIRTIO_NET_S_LINK_UP 1

/* Header flags and GSO types (5.1.6). */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80

#define RXQ 0
#define TXQ 1
#define NET_QUEUE_SIZE 256
/* Largest frame: a 64 KiB GSO packet plus Ethernet and VLAN headers, after our header. */
#define NET_FRAME_MAX (65535 + 14 + 4)
#define NET_BUF_MAX (TAP_VNET_HDR_LEN + NET_FRAME_MAX)
/* Frames taken from the tap per wakeup: the loop's other users get their turn. */
#define RX_BATCH 64
/* Frames sent per transmit notification, for the same reason. */
#define TX_BUDGET 64

#define NET_STATE_V1 1

struct virtio_net_hdr_v1 {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
_Static_assert(sizeof(struct virtio_net_hdr_v1) == TAP_VNET_HDR_LEN, "vnet header size");

struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
	uint16_t mtu;
} __attribute__((packed));

struct net_counters {
	uint64_t rx_packets, rx_dropped, tx_packets, tx_dropped;
};

struct virtio_net {
	struct virtio_dev *vd;
	struct virtio_dev_ops ops;
	struct virtio_net_config cfg;
	struct tap tap;
	/*
	 * The loop watches ep, which holds the tap fd: arming and disarming the
	 * tap inside ep is how receive pauses while the driver has no buffers.
	 */
	int ep;
	bool rx_armed;
	bool rx_dead; /* the tap failed for good (or the socket's peer left): never watched again */
	bool watched;
	enum net_vhost vhost_mode;
	struct vhost vhost;
	bool vhost_running;
	bool vhost_held; /* virtio_net_allow_vhost(false): kvmm serves the queues meanwhile */
	bool vring_started[2];
	/*
	 * While vhost-net serves the queues, the traffic is counted from the tap's
	 * own counters (net/link.c): lw is NULL when they cannot be read.
	 */
	struct link_watch *lw;
	bool vbase_ok;
	struct link_counters vbase; /* the tap's counters when vhost-net took the queues */
	struct net_counters c;
	/* A frame read from the tap and not yet delivered (rx_len 0: none). */
	uint8_t *rxbuf;
	size_t rx_len;
	uint16_t rx_heads[VIRTQ_MAX_SIZE];
	uint32_t rx_lens[VIRTQ_MAX_SIZE];
	struct virtq_elem rx_first, rx_cur, tx_elem;
};

static void net_config_read(void *priv, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = priv;

	memcpy(data, (uint8_t *)&n->cfg + off, len);
}

static void rx_arm(struct virtio_net *n, bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN : 0 };

	if (n->rx_armed == on || n->rx_dead)
		return;
	if (epoll_ctl(n->ep, EPOLL_CTL_MOD, n->tap.fd, &ev) == 0)
		n->rx_armed = on;
}

/*
 * The backend cannot be read any more: stop watching it for good, or its
 * error or hang-up state (reported whatever we ask epoll for) would spin the loop.
 */
static void rx_kill(struct virtio_net *n, const char *why)
{
	if (n->rx_dead)
		return;
	epoll_ctl(n->ep, EPOLL_CTL_DEL, n->tap.fd, NULL);
	n->rx_dead = true;
	n->rx_armed = false;
	log_warn("virtio-net: %s: %s; nothing more will be received",
		 n->tap.is_tap ? n->tap.ifname : "socket", why);
}

/* Offloads the header asks the driver to accept must be ones it negotiated (5.1.6.4). */
static bool rx_hdr_ok(const struct virtio_dev *vd, const struct virtio_net_hdr_v1 *h)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;

	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    !virtio_has_feature(vd, VIRTIO_NET_F_GUEST_CSUM))
		return false;
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) &&
	    !virtio_has_feature(vd, VIRTIO_NET_F_GUEST_ECN))
		return false;
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE: return true;
	case VIRTIO_NET_HDR_GSO_TCPV4: return virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6: return virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO6);
	default: return false;
	}
}

enum rx_result { RX_DONE, RX_DROP, RX_NOBUF, RX_BAD };

/* Copy the staged frame into the driver's receive buffers (5.1.6.4). */
static enum rx_result rx_deliver(struct virtio_net *n, struct virtio_dev *vd)
{
	struct virtq *q = &vd->vq[RXQ];
	bool mrg = virtio_has_feature(vd, VIRTIO_NET_F_MRG_RXBUF);
	struct virtio_net_hdr_v1 *h = (struct virtio_net_hdr_v1 *)n->rxbuf;
	size_t len = n->rx_len, off = 0;
	unsigned nbufs = 0, i;
	uint16_t nb;

	if (!rx_hdr_ok(vd, h))
		return RX_DROP;
	h->num_buffers = 1;
	while (off < len) {
		struct virtq_elem *e = nbufs ? &n->rx_cur : &n->rx_first;
		size_t chunk;
		int got;

		/*
		 * A driver that refills the ring while we take 1-byte buffers must not
		 * push us past rx_heads: a frame never spans more than one ring's worth.
		 */
		if (nbufs >= q->size) {
			virtq_unpop(q, nbufs);
			return RX_DROP;
		}
		got = virtq_pop(q, e);
		if (got == 0) {
			/* Ask for a notification, then look again: the driver may have raced us. */
			virtq_set_notify(q, true);
			got = virtq_pop(q, e);
		}
		if (got < 0)
			return RX_BAD;
		if (got == 0) {
			virtq_unpop(q, nbufs);
			/* The whole ring cannot hold it: waiting would wait forever. */
			return nbufs >= q->size ? RX_DROP : RX_NOBUF;
		}
		/* Receive buffers are device-writable only and hold at least the header. */
		if (e->out_num || e->in_len == 0 || (nbufs == 0 && e->in_len < TAP_VNET_HDR_LEN)) {
			virtq_unpop(q, nbufs + 1);
			return RX_BAD;
		}
		chunk = (size_t)MIN((uint64_t)(len - off), e->in_len);
		if (!mrg && chunk < len) {
			virtq_unpop(q, 1);
			return RX_DROP;
		}
		iov_from_buf(e->iov + e->out_num, e->in_num, 0, n->rxbuf + off, chunk);
		/* A live migration must resend what we wrote (KVM logs only the vCPUs' writes). */
		gm_mark_dirty_iov(vd->ctx.gm, e->iov + e->out_num, e->in_num);
		n->rx_heads[nbufs] = e->head;
		n->rx_lens[nbufs] = (uint32_t)chunk;
		nbufs++;
		off += chunk;
	}
	if (mrg) {
		nb = (uint16_t)nbufs;
		iov_from_buf(n->rx_first.iov + n->rx_first.out_num, n->rx_first.in_num,
			     offsetof(struct virtio_net_hdr_v1, num_buffers), &nb, sizeof(nb));
	}
	for (i = 0; i < nbufs; i++)
		if (virtq_push(q, n->rx_heads[i], n->rx_lens[i]))
			return RX_BAD;
	n->c.rx_packets++;
	vd->stats.requests++;
	vd->stats.bytes_in += len - TAP_VNET_HDR_LEN;
	return RX_DONE;
}

/* Move frames from the tap to the driver until either runs dry (vd->lock held). */
static void rx_process(struct virtio_net *n, struct virtio_dev *vd)
{
	unsigned budget = RX_BATCH;
	bool pushed = false;

	for (;;) {
		enum rx_result r;

		if (!vd->vq[RXQ].ready || !(vd->status & VIRTIO_STATUS_DRIVER_OK) ||
		    n->vhost_running) {
			rx_arm(n, false);
			break;
		}
		if (!n->rx_len) {
			ssize_t got;

			if (budget-- == 0)
				break; /* still armed: the loop calls us again */
			got = read(n->tap.fd, n->rxbuf, NET_BUF_MAX);
			if (got < 0) {
				if (errno != EAGAIN && errno != EINTR) {
					vd->stats.errors++;
					rx_kill(n, strerror(errno));
				}
				break;
			}
			if (got == 0) {
				struct pollfd p = { .fd = n->tap.fd, .events = POLLIN };

				if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
					rx_kill(n, "the peer hung up");
					break;
				}
			}
			if (got < TAP_VNET_HDR_LEN) {
				n->c.rx_dropped++;
				vd->stats.errors++;
				continue;
			}
			n->rx_len = (size_t)got;
		}
		r = rx_deliver(n, vd);
		if (r == RX_NOBUF) {
			/* Keep the frame; the driver's next receive kick resumes us. */
			rx_arm(n, false);
			break;
		}
		n->rx_len = 0;
		if (r == RX_DONE) {
			pushed = true;
		} else if (r == RX_DROP) {
			n->c.rx_dropped++;
			vd->stats.errors++;
		} else {
			virtio_needs_reset(vd, "malformed receive buffer");
			break;
		}
	}
	if (pushed)
		virtio_queue_interrupt(vd, RXQ);
}

static void net_rx_ready(void *arg)
{
	struct virtio_net *n = arg;
	struct virtio_dev *vd = n->vd;

	pthread_mutex_lock(&vd->lock);
	rx_process(n, vd);
	pthread_mutex_unlock(&vd->lock);
}

/* One transmit buffer: header and frame, written to the tap as one message (5.1.6.2). */
static bool tx_one(struct virtio_net *n, struct virtio_dev *vd, struct virtq_elem *e)
{
	ssize_t w;

	if (e->in_num)
		return false; /* transmit buffers are device-readable only */
	if (e->out_len < TAP_VNET_HDR_LEN || e->out_len > NET_BUF_MAX) {
		n->c.tx_dropped++;
		vd->stats.errors++;
		return true;
	}
	do {
		w = writev(n->tap.fd, e->iov, (int)e->out_num);
	} while (w < 0 && errno == EINTR);
	if (w < 0) {
		/* A full queue or a tap that is down drops the frame, as a wire would. */
		n->c.tx_dropped++;
		vd->stats.errors++;
		return true;
	}
	n->c.tx_packets++;
	vd->stats.requests++;
	vd->stats.bytes_out += e->out_len - TAP_VNET_HDR_LEN;
	return true;
}

static void tx_process(struct virtio_net *n, struct virtio_dev *vd)
{
	struct virtq *q = &vd->vq[TXQ];
	unsigned budget = TX_BUDGET;
	bool pushed = false, requeued = false;
	int got;

	for (;;) {
		virtq_set_notify(q, false);
		while ((got = virtq_pop(q, &n->tx_elem)) == 1) {
			if (!tx_one(n, vd, &n->tx_elem)) {
				virtio_needs_reset(vd, "transmit buffer with device-writable parts");
				return;
			}
			if (virtq_push(q, n->tx_elem.head, 0))
				return;
			pushed = true;
			/* A driver that keeps the ring full must not keep the loop to itself. */
			if (--budget == 0 && virtio_queue_requeue(vd, TXQ)) {
				requeued = true;
				break;
			}
		}
		if (requeued)
			break; /* notifications stay off: the loop calls us again */
		if (got < 0) {
			virtio_needs_reset(vd, "malformed descriptor chain on the transmit queue");
			return;
		}
		virtq_set_notify(q, true);
		if (!virtq_has_work(q))
			break;
	}
	if (pushed)
		virtio_queue_interrupt(vd, TXQ);
}

static void net_notify(void *priv, struct virtio_dev *vd, unsigned q)
{
	struct virtio_net *n = priv;

	if (n->vhost_running)
		return;
	if (q == TXQ) {
		tx_process(n, vd);
	} else if (q == RXQ) {
		/*
		 * New receive buffers: deliver a waiting frame and listen to the tap again.
		 * No more receive kicks until the buffers run out (rx_deliver asks again).
		 */
		virtq_set_notify(&vd->vq[RXQ], false);
		rx_arm(n, true);
		rx_process(n, vd);
	}
}

static unsigned guest_offloads(const struct virtio_dev *vd)
{
	unsigned o = 0;

	if (virtio_has_feature(vd, VIRTIO_NET_F_GUEST_CSUM)) {
		o |= TAP_OFFLOAD_CSUM;
		/* TSO needs checksum offload (5.1.3.1). */
		if (virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO4))
			o |= TAP_OFFLOAD_TSO4;
		if (virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO6))
			o |= TAP_OFFLOAD_TSO6;
		if (virtio_has_feature(vd, VIRTIO_NET_F_GUEST_ECN))
			o |= TAP_OFFLOAD_TSO_ECN;
	}
	return o;
}

/* --- traffic counters while vhost-net runs --- */

/*
 * Read the tap's counters through rtnetlink when the tap lives in kvmm's own
 * network namespace (its index means nothing elsewhere).
 */
static void tap_traffic_open(struct virtio_net *n)
{
	struct stat a, b;
	bool same;
	int ns, ifindex;

	if (!n->tap.is_tap || !n->tap.ifname[0])
		return;
	ns = ioctl(n->tap.fd, TUNGETDEVNETNS);
	if (ns < 0)
		return;
	same = !fstat(ns, &a) && !stat("/proc/self/ns/net", &b) && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
	close(ns);
	ifindex = (int)if_nametoindex(n->tap.ifname);
	if (same && ifindex > 0)
		n->lw = link_watch_open(ifindex);
}

/* What the tap moved since vhost-net took the queues, added to s. */
static void vhost_traffic_add(struct virtio_net *n, struct virtio_stats *s)
{
	struct link_counters now;

	if (!n->vbase_ok || !link_watch_read(n->lw, &now))
		return;
	/* The tap transmits what the guest receives, and receives what it sends. */
	s->requests += (now.tx_packets - n->vbase.tx_packets) +
		       (now.rx_packets - n->vbase.rx_packets);
	s->bytes_in += now.tx_bytes - n->vbase.tx_bytes;
	s->bytes_out += now.rx_bytes - n->vbase.rx_bytes;
}

static void net_backend_stats(void *priv, struct virtio_stats *s)
{
	struct virtio_net *n = priv;

	if (n->vhost_running)
		vhost_traffic_add(n, s);
}

/* --- vhost-net --- */

/* Give the rings back to kvmm; with sync, adopt the kernel's ring positions. */
static void vhost_stop(struct virtio_net *n, struct virtio_dev *vd, bool sync)
{
	bool was_running = n->vhost_running && sync;
	unsigned q;

	if (n->vhost_running) {
		log_info("virtio-net: %s: queues back in kvmm", n->tap.ifname);
		vhost_traffic_add(n, &vd->stats);
	}
	n->vhost_running = false;
	n->vbase_ok = false;
	for (q = 0; q < 2; q++) {
		uint16_t base;

		virtio_queue_kick_release(vd, q);
		if (!n->vring_started[q])
			continue;
		n->vring_started[q] = false;
		vhost_net_backend(&n->vhost, q, -1);
		if (vhost_vring_stop(&n->vhost, q, &base) == 0 && was_running && vd->vq[q].ready) {
			uint16_t *used = gm_ptr(vd->ctx.gm, vd->vq[q].used_gpa + 2, 2);

			vd->vq[q].last_avail = base;
			if (used)
				vd->vq[q].used_idx = __atomic_load_n(used, __ATOMIC_ACQUIRE);
		}
	}
}

/* Hand both rings to the kernel; false (and nothing changed) when it cannot take them. */
static bool vhost_start(struct virtio_net *n, struct virtio_dev *vd)
{
	/* Only bits that change the rings or the header layout matter to the kernel. */
	const uint64_t ring_bits = VIRTIO_BIT(VIRTIO_F_VERSION_1) |
				   VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
				   VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
	struct mem_region regs[2];
	uint64_t want = vd->driver_features & ring_bits;
	unsigned q;
	int nr, r = 0;

	/* vhost's writes to guest RAM escape the VMM's dirty tracking (live migration). */
	if (n->vhost.fd < 0 || n->vhost_held || atomic_load(&vd->ctx.gm->vmm_dirty))
		return false;
	if (want & ~n->vhost.features) {
		log_warn("virtio-net: vhost-net lacks features 0x%llx; serving the queues in kvmm",
			 (unsigned long long)(want & ~n->vhost.features));
		return false;
	}
	for (q = 0; q < 2; q++) {
		if (!vd->vq[q].ready || virtio_queue_call_fd(vd, q) < 0)
			return false; /* no MSI-X (INTx needs the ISR, which kvmm keeps) */
	}
	nr = mem_regions(vd->ctx.gm, regs);
	r = vhost_setup(&n->vhost, want, regs, (unsigned)nr);
	for (q = 0; q < 2 && !r; q++) {
		struct vhost_vring vr;

		r = virtio_queue_vhost_vring(vd, q, &vr);
		if (r)
			break;
		n->vring_started[q] = true; /* from here on vhost_stop undoes it */
		r = vhost_vring_start(&n->vhost, &vr);
		if (!r)
			r = vhost_net_backend(&n->vhost, q, n->tap.fd);
	}
	if (r) {
		log_warn("virtio-net: vhost-net setup failed (%s); serving the queues in kvmm",
			 strerror(-r));
		vhost_stop(n, vd, false);
		return false;
	}
	n->vhost_running = true;
	n->vbase_ok = link_watch_read(n->lw, &n->vbase);
	log_info("virtio-net: %s: queues served by vhost-net", n->tap.ifname);
	/* Buffers the driver posted before the hand-off: let the kernel look at the rings. */
	for (q = 0; q < 2; q++) {
		uint64_t one = 1;
		int fd = virtio_queue_kick_fd(vd, q);

		if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
			break;
	}
	return true;
}

void virtio_net_allow_vhost(struct virtio_dev *vd, bool allow)
{
	struct virtio_net *n = vd->priv;

	pthread_mutex_lock(&vd->lock);
	n->vhost_held = !allow;
	if (!allow && n->vhost_running) {
		vhost_stop(n, vd, true);
		rx_arm(n, true);
		rx_process(n, vd);
		tx_process(n, vd);
	} else if (allow && !n->vhost_running && n->vhost_mode != NET_VHOST_OFF &&
		   (vd->status & VIRTIO_STATUS_DRIVER_OK) &&
		   !(vd->status & VIRTIO_STATUS_NEEDS_RESET)) {
		rx_arm(n, false);
		if (vhost_start(n, vd)) {
			n->rx_len = 0; /* a frame read but not delivered is lost, as on a wire */
		} else {
			rx_arm(n, true);
			rx_process(n, vd);
		}
	}
	pthread_mutex_unlock(&vd->lock);
}

static void net_activate(void *priv, struct virtio_dev *vd)
{
	struct virtio_net *n = priv;

	if (tap_set_offload(&n->tap, guest_offloads(vd)))
		log_warn("virtio-net: %s: cannot set offloads; the guest may see bad checksums",
			 n->tap.ifname);
	rx_arm(n, false);
	if (n->vhost_mode != NET_VHOST_OFF && vhost_start(n, vd))
		return;
	rx_arm(n, true);
	rx_process(n, vd);
	tx_process(n, vd);
}

static void net_reset(void *priv, struct virtio_dev *vd)
{
	struct virtio_net *n = priv;

	vhost_stop(n, vd, false);
	rx_arm(n, false);
	n->rx_len = 0;
	tap_set_offload(&n->tap, 0);
}

/* The MAC and link status; queue positions are the core's (virtio_save). */
static int net_save(void *priv, struct sbuf *out)
{
	struct virtio_net *n = priv;
	uint8_t rec[1 + 6 + 2];

	/*
	 * The kernel holds the ring positions while vhost runs: take them back
	 * (virtio_save reads them after us), then hand the rings over again.
	 */
	if (n->vhost_running) {
		vhost_stop(n, n->vd, true);
		if (!vhost_start(n, n->vd)) {
			rx_arm(n, true);
			rx_process(n, n->vd);
		}
	}
	rec[0] = NET_STATE_V1;
	memcpy(rec + 1, n->cfg.mac, 6);
	memcpy(rec + 7, &n->cfg.status, 2);
	return sbuf_put(out, rec, sizeof(rec));
}

static int net_load(void *priv, const uint8_t *buf, size_t len)
{
	struct virtio_net *n = priv;

	if (len != 9 || buf[0] != NET_STATE_V1)
		return -EINVAL;
	/* The queues were just replaced by the record's: the kernel's positions are stale. */
	if (n->vd)
		vhost_stop(n, n->vd, false);
	memcpy(n->cfg.mac, buf + 1, 6);
	memcpy(&n->cfg.status, buf + 7, 2);
	n->cfg.status &= VIRTIO_NET_S_LINK_UP;
	/* A device loaded running resumes receiving (activate is not called again). */
	if (n->vd && (n->vd->status & VIRTIO_STATUS_DRIVER_OK)) {
		tap_set_offload(&n->tap, guest_offloads(n->vd));
		rx_arm(n, true);
	}
	return 0;
}

static void net_free(struct virtio_net *n)
{
	if (n->ep >= 0)
		close(n->ep);
	link_watch_close(n->lw);
	tap_close(&n->tap);
	vhost_close(&n->vhost);
	free(n->rxbuf);
	free(n);
}

static void net_destroy(void *priv)
{
	struct virtio_net *n = priv;

	if (n->vd) {
		vhost_stop(n, n->vd, false);
		if (n->watched && n->vd->ctx.unwatch_fd)
			n->vd->ctx.unwatch_fd(n->vd->ctx.irq_opaque, n->ep);
	}
	net_free(n);
}

static int net_open_backend(struct virtio_net *n, const struct net_opts *o, struct err *e)
{
	struct epoll_event ev = { .events = 0 };
	int fd, r;

	if (o->has_fd) {
		/* Our own copy: the caller's fd survives a VM restart. */
		fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return err_set(e, EBADF, "--net fd=%d: %s", o->fd, strerror(errno));
		r = tap_open_fd(fd, &n->tap, e);
		if (r) {
			close(fd);
			/* The caller's number, not our copy's. */
			return err_prefix(e, r, "--net fd=%d", o->fd);
		}
	} else {
		r = tap_open(o->tap, &n->tap, e);
		if (r)
			return err_prefix(e, r, "--net");
	}
	n->ep = epoll_create1(EPOLL_CLOEXEC);
	if (n->ep < 0 || epoll_ctl(n->ep, EPOLL_CTL_ADD, n->tap.fd, &ev) < 0)
		return err_set(e, errno, "--net: epoll: %s", strerror(errno));
	if (o->vhost == NET_VHOST_OFF || !n->tap.is_tap)
		return 0;
	r = vhost_open("/dev/vhost-net", &n->vhost, e);
	if (r && o->vhost == NET_VHOST_ON)
		return err_prefix(e, r, "--net vhost=on");
	if (r)
		log_info("virtio-net: no vhost-net (%s); queues served by kvmm", e->msg);
	return 0;
}

int virtio_net_create(const struct dev_ctx *ctx, const struct net_opts *o,
		      struct virtio_dev **out, struct err *e)
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	int r;

	if (!n)
		return err_set(e, ENOMEM, "out of memory");
	n->ep = -1;
	n->tap.fd = -1;
	n->vhost.fd = -1;
	n->vhost_mode = o->vhost;
	n->rxbuf = malloc(NET_BUF_MAX);
	if (!n->rxbuf) {
		net_free(n);
		return err_set(e, ENOMEM, "out of memory");
	}
	r = net_open_backend(n, o, e);
	if (r) {
		net_free(n);
		return r;
	}
	if (o->vhost == NET_VHOST_ON && !n->tap.is_tap) {
		net_free(n);
		return err_set(e, EINVAL, "--net fd=%d: vhost=on needs a tap, not a socket", o->fd);
	}
	if (n->vhost.fd >= 0)
		tap_traffic_open(n);
	if (o->has_mac) {
		memcpy(n->cfg.mac, o->mac, 6);
	} else {
		virtio_net_default_mac(o->index, n->cfg.mac);
	}
	n->cfg.status = VIRTIO_NET_S_LINK_UP;
	n->cfg.max_virtqueue_pairs = 1;
	n->cfg.mtu = 1500;
	n->ops = (struct virtio_dev_ops){
		.name = "virtio-net",
		.device_id = 1,
		.pci_class = 0x020000,
		.nqueues = 2,
		.queue_size = NET_QUEUE_SIZE,
		.features = VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |
			    VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
			    VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN) |
			    VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |
			    VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) |
			    VIRTIO_BIT(VIRTIO_NET_F_STATUS),
		.config_size = sizeof(n->cfg),
		.config_read = net_config_read,
		.queue_notify = net_notify,
		.activate = net_activate,
		.reset = net_reset,
		.save = net_save,
		.load = net_load,
		.destroy = net_destroy,
		.backend_stats = net_backend_stats,
	};
	if (ctx->watch_fd) {
		r = ctx->watch_fd(ctx->irq_opaque, n->ep, net_rx_ready, n);
		if (r) {
			net_free(n);
			return err_set(e, -r, "--net: cannot watch the tap");
		}
		n->watched = true;
	}
	r = virtio_pci_create(ctx, &n->ops, n, &n->vd, e);
	if (r) {
		if (n->watched && ctx->unwatch_fd)
			ctx->unwatch_fd(ctx->irq_opaque, n->ep);
		net_free(n);
		return r;
	}
	*out = n->vd;
	return 0;
}

void virtio_net_default_mac(unsigned index, uint8_t mac[6])
{
	unsigned pid = (unsigned)getpid();

	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(pid >> 12);
	mac[4] = (uint8_t)(pid >> 4);
	mac[5] = (uint8_t)((pid << 4) | (index & 0xf));
}
