/* SPDX-License-Identifier: MIT */
/* net.c: a minimal polling virtio-net driver (virtio 1.2 sections 4.1 and 5.1) in ring 3
 * with just enough Ethernet, ARP, IPv4, ICMP and UDP to test and benchmark a VMM's NIC.
 *
 * The device: the first virtio-net (0x1041) on PCI bus 0, found and set up through
 * lib/vpci.c like virtio.c's devices (vendor capabilities to the BARs the VMM assigned,
 * INTx off, no MSI-X); features VERSION_1, MAC and CSUM only, so frames are at most 1514 bytes and
 * arrive fully checksummed; receive queue 0 with 128 posted 2 KiB buffers, transmit
 * queue 1 (a packet is one descriptor, or header and frame in two); used rings polled,
 * the device asked not to interrupt (VIRTQ_AVAIL_F_NO_INTERRUPT).
 *
 * Command line: ip=A.B.C.D host=A.B.C.D (defaults 10.0.2.15, 10.0.2.2), port= (the
 * guest's UDP server, 7000), echo= (the host's UDP echo port, 7777), idle= (seconds
 * the server waits for a datagram before it fails, 60), mode=test|serve, break=1|2 (the
 * server corrupts the last byte of each echo | partial checksums are sent without
 * NEEDS_CSUM: for showing that the test catches either).
 *   mode=test (default): ARP for the host; ICMP echo to the host (pattern payloads of 56
 *     and 1000 bytes, replies compared); UDP datagrams of several sizes (1 to 1472
 *     bytes, some with VIRTIO_NET_HDR_F_NEEDS_CSUM and only the pseudo-header sum in
 *     the checksum field, so the host accepts them only if the header reached the
 *     tap) to host:echo, each echo compared; then the server (below) until KVMM:STOP.
 *   mode=serve: only the server, for the benchmark (bench/net).
 * The server, on UDP port `port`: echoes every datagram to its sender, except commands:
 *   "KVMM:STOP"            reply "KVMM:STOPPED <echoed>", then SUCCESS
 *   "KVMM:TX n size dport" send n datagrams of size bytes (a 32-bit sequence number,
 *                          then a pattern) to host:dport as fast as the transmit ring
 *                          allows; reply "KVMM:TXDONE n tsc" (TSC cycles spent)
 *   "KVMM:RX"              count datagrams arriving on port+1 from now on
 *   "KVMM:RXEND"           reply "KVMM:RXDONE count bytes tsc" (TSC cycles from the
 *                          first datagram on port+1 to the last)
 * ARP requests for ip= and ICMP echo requests to it are answered throughout. Every
 * received frame is checked (lengths, ethertype, IP version and header length, header
 * and ICMP/UDP checksums) and dropped, counted, when it is not well-formed. */
#include "lib/vpci.h"

#define PCI_DEVICE_NET 0x1041

#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1

/* virtio-net (5.1.3, 5.1.6). */
#define NET_F_CSUM 0
#define NET_F_GUEST_CSUM 1
#define NET_F_MAC 5
#define HDR_F_NEEDS_CSUM 1
#define HDR_LEN 12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define RXQ 0
#define TXQ 1

#define QSIZE_MAX 128
#define BUF_SIZE 2048
#define TX_SLOTS (QSIZE_MAX / 2) /* a packet takes descriptors 2s and 2s+1 */
#define FRAME_OFF 16 /* frame at buf + 16, its header in the 12 bytes before */
#define ETH_HLEN 14
#define ETH_MAX 1514
#define UDP_MAX (1500 - 20 - 8)

#define ETH_IP 0x0800
#define ETH_ARP 0x0806
#define IP_ICMP 1
#define IP_UDP 17
#define ICMP_ID 0x4b56

/* Waits assume a TSC of at most 4 GHz (so they are never shorter than stated). */
#define TSC_PER_MS 4000000ULL

/* Descriptors, then the driver area; the device area at 4 KiB. */
struct ring VQ_SPLIT_RING(QSIZE_MAX, 4096);
_Static_assert(__builtin_offsetof(struct ring, used_flags) == 4096, "ring layout");

struct queue {
	struct ring *r;
	uint16_t size, avail, used;
	uintptr_t notify;
};

static struct {
	struct vpci p; /* the transport (lib/vpci.c) */
	struct queue q[2];
} dev;

static struct ring rings[2];
static uint8_t rxbuf[QSIZE_MAX][BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t txbuf[TX_SLOTS][BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t tx_busy[TX_SLOTS];
static unsigned tx_free_hint, tx_inflight;

static uint8_t my_mac[6], host_mac[6];
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static uint32_t my_ip, host_ip;
static int host_mac_known;
static uint16_t ip_id = 1, serve_port, echo_port, client_port = 40000;
/* break=1: the server corrupts its echoes; break=2: partial checksums go out without
 * NEEDS_CSUM. Both exist to show that the end-to-end test catches them. */
static uint64_t brk;

static struct {
	uint64_t frames, bad, ignored, arp_answered, pings_answered;
	uint64_t kicks[2], kicks_saved[2]; /* notifications written, left out (NO_NOTIFY) */
} stats;

/* --- byte order and checksums (RFC 1071) --- */
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (; n > 1; n -= 2, p += 2)
		s += get16(p);
	if (n)
		s += (uint32_t)p[0] << 8;
	return s;
}
static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}
/* The UDP pseudo-header (RFC 768) of a datagram of len bytes. */
static uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint16_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + IP_UDP + len;
}

static void ip_str(uint32_t ip, char *s)
{
	for (int i = 3; i >= 0; i--) {
		unsigned b = (ip >> (8 * i)) & 0xff, n = 0;
		char t[3];
		do {
			t[n++] = (char)('0' + b % 10);
			b /= 10;
		} while (b);
		while (n)
			*s++ = t[--n];
		*s++ = i ? '.' : 0;
	}
}

/* "key=a.b.c.d" on the command line, else def. */
static uint32_t cmdline_ip(const char *key, uint32_t def)
{
	size_t klen = strlen(key);
	for (const char *p = cmdline; *p;) {
		while (*p == ' ')
			p++;
		if (!memcmp(p, key, klen) && p[klen] == '=') {
			const char *v = p + klen + 1;
			uint32_t ip = 0;
			for (int i = 0; i < 4; i++) {
				unsigned b = 0, digits = 0;
				while (*v >= '0' && *v <= '9' && digits < 4) {
					b = b * 10 + (unsigned)(*v++ - '0');
					digits++;
				}
				if (!digits || b > 255 || (i < 3 && *v++ != '.'))
					fail("%s=: give an IPv4 address like 10.0.2.15", key);
				ip = ip << 8 | b;
			}
			if (*v && *v != ' ')
				fail("%s=: give an IPv4 address like 10.0.2.15", key);
			return ip;
		}
		while (*p && *p != ' ')
			p++;
	}
	return def;
}

/* "mode=word" on the command line: does it equal want (def when absent)? */
static int cmdline_is(const char *key, const char *want, int def)
{
	size_t klen = strlen(key), wlen = strlen(want);
	for (const char *p = cmdline; *p;) {
		while (*p == ' ')
			p++;
		if (!memcmp(p, key, klen) && p[klen] == '=')
			return !memcmp(p + klen + 1, want, wlen) &&
			       (p[klen + 1 + wlen] == ' ' || p[klen + 1 + wlen] == 0);
		while (*p && *p != ' ')
			p++;
	}
	return def;
}

/* --- the device --- */

static void check_status(void)
{
	uint8_t s = vpci_status(&dev.p);
	if (s & (VIRTIO_ST_NEEDS_RESET | VIRTIO_ST_FAILED))
		fail("virtio-net: device status 0x%x (needs reset)", s);
}

static int find_device(void)
{
	unsigned pos = 0;
	while (vpci_next(&dev.p, &pos))
		if (dev.p.id == PCI_DEVICE_NET) {
			dev.p.name = "virtio-net";
			return 1;
		}
	return 0;
}

static void setup_queue(unsigned qi)
{
	struct queue *q = &dev.q[qi];

	q->r = &rings[qi];
	memset(q->r, 0, sizeof(*q->r));
	q->r->avail_flags = AVAIL_F_NO_INTERRUPT; /* we poll */
	q->avail = q->used = 0;
	q->size = vpci_queue_setup(&dev.p, qi, QSIZE_MAX, (uintptr_t)q->r->desc,
				   (uintptr_t)&q->r->avail_flags, (uintptr_t)&q->r->used_flags);
	if (q->size < 2)
		fail("virtio-net: queue %u has %u entries", qi, q->size);
	q->notify = vpci_queue_notify(&dev.p, qi);
}

/* Driver initialization (3.1.1) with VERSION_1, MAC and CSUM. */
static void dev_init(void)
{
	uint64_t f = vpci_negotiate(&dev.p, 1u << NET_F_MAC | 1u << NET_F_CSUM, 0);
	printf("virtio-net: device features 0x%016lx\n", f);
	for (int i = 0; i < 6; i++)
		my_mac[i] = rd8(dev.p.device + (uintptr_t)i);
	setup_queue(RXQ);
	setup_queue(TXQ);
	vpci_driver_ok(&dev.p);
}

static void kick(struct queue *q, unsigned qi)
{
	mb();
	if (!(q->r->used_flags & USED_F_NO_NOTIFY)) {
		wr16(q->notify, (uint16_t)qi);
		stats.kicks[qi]++;
	} else {
		stats.kicks_saved[qi]++;
	}
}

static void publish(struct queue *q, uint16_t head)
{
	q->r->avail_ring[q->avail & (q->size - 1)] = head;
	mb();
	q->r->avail_idx = ++q->avail;
}

/* Every receive buffer is one device-writable descriptor of BUF_SIZE bytes. */
static void rx_post_all(void)
{
	struct queue *q = &dev.q[RXQ];
	for (uint16_t i = 0; i < q->size; i++) {
		q->r->desc[i] = (struct vq_desc){ (uintptr_t)rxbuf[i], BUF_SIZE, VQ_DESC_WRITE, 0 };
		publish(q, i);
	}
	kick(q, RXQ);
}

/* --- transmit --- */

/* Take back what the device has sent. */
static void tx_reclaim(void)
{
	struct queue *q = &dev.q[TXQ];
	while (q->r->used_idx != q->used) {
		mb();
		uint32_t id = q->r->used_ring[q->used & (q->size - 1)].id;
		q->used++;
		if (id >= q->size || (id & 1) || !tx_busy[id / 2])
			fail("virtio-net: transmit used ring returned head %u, not one in flight", id);
		tx_busy[id / 2] = 0;
		tx_inflight--;
	}
}

/* A free transmit slot (waiting for the device to send, up to 5 s). */
static unsigned tx_alloc(void)
{
	unsigned slots = dev.q[TXQ].size / 2;
	uint64_t end = rdtsc() + 5000 * TSC_PER_MS;

	for (uint32_t i = 0;; i++) {
		if (tx_inflight < slots) {
			for (unsigned k = 0; k < slots; k++) {
				unsigned s = (tx_free_hint + k) % slots;
				if (!tx_busy[s]) {
					tx_free_hint = s + 1;
					return s;
				}
			}
		}
		tx_reclaim();
		if ((i & 0xfff) == 0) {
			check_status();
			if ((int64_t)(rdtsc() - end) > 0)
				fail("virtio-net: transmit ring full for 5 s (%u in flight)", tx_inflight);
		}
		cpu_relax();
	}
}

static uint8_t *tx_frame(unsigned slot) { return txbuf[slot] + FRAME_OFF; }

/* Queue the frame built in slot; csum_start/csum_offset != 0 asks the device to
 * checksum (NEEDS_CSUM); split puts header and frame in two descriptors. */
static void tx_submit(unsigned slot, uint32_t len, uint16_t csum_start, uint16_t csum_off,
		      int split, int notify)
{
	struct queue *q = &dev.q[TXQ];
	uint8_t *h = txbuf[slot] + FRAME_OFF - HDR_LEN;
	uint16_t d = (uint16_t)(2 * slot);

	memset(h, 0, HDR_LEN);
	if (csum_start) {
		h[0] = HDR_F_NEEDS_CSUM;
		/* Little-endian fields: csum_start at 6, csum_offset at 8. */
		h[6] = (uint8_t)csum_start;
		h[7] = (uint8_t)(csum_start >> 8);
		h[8] = (uint8_t)csum_off;
		h[9] = (uint8_t)(csum_off >> 8);
	}
	if (split) {
		q->r->desc[d] = (struct vq_desc){ (uintptr_t)h, HDR_LEN, VQ_DESC_NEXT, (uint16_t)(d + 1) };
		q->r->desc[d + 1] = (struct vq_desc){ (uintptr_t)tx_frame(slot), len, 0, 0 };
	} else {
		q->r->desc[d] = (struct vq_desc){ (uintptr_t)h, HDR_LEN + len, 0, 0 };
	}
	tx_busy[slot] = 1;
	tx_inflight++;
	publish(q, d);
	if (notify)
		kick(q, TXQ);
}

static uint8_t *eth_build(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, my_mac, 6);
	put16(f + 12, type);
	return f + ETH_HLEN;
}

static uint8_t *ip_build(uint8_t *p, uint8_t proto, uint32_t dst, uint16_t payload)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	put16(p + 2, (uint16_t)(20 + payload));
	put16(p + 4, ip_id++);
	put16(p + 6, 0x4000); /* DF */
	p[8] = 64;
	p[9] = proto;
	put32(p + 12, my_ip);
	put32(p + 16, dst);
	put16(p + 10, (uint16_t)~fold(sum16(p, 20, 0)));
	return p + 20;
}

static void arp_send(uint16_t op, const uint8_t *tha, uint32_t tpa, const uint8_t *eth_dst)
{
	unsigned s = tx_alloc();
	uint8_t *f = tx_frame(s), *a = eth_build(f, eth_dst, ETH_ARP);

	put16(a, 1);
	put16(a + 2, ETH_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, my_mac, 6);
	put32(a + 14, my_ip);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	tx_submit(s, ETH_HLEN + 28, 0, 0, 0, 1);
}

/* A UDP datagram to the host; partial: leave the checksum to the device. */
static void udp_send(uint16_t sport, uint32_t dst, uint16_t dport, const void *data,
		     uint16_t len, int partial, int notify)
{
	unsigned s = tx_alloc();
	uint8_t *f = tx_frame(s), *u = ip_build(eth_build(f, host_mac, ETH_IP), IP_UDP, dst,
					      (uint16_t)(8 + len));
	uint16_t ulen = (uint16_t)(8 + len);

	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, ulen);
	put16(u + 6, 0);
	memcpy(u + 8, data, len);
	if (partial) {
		/* Only the pseudo-header sum, not complemented (5.1.6.2). */
		put16(u + 6, fold(pseudo_sum(my_ip, dst, ulen)));
		tx_submit(s, ETH_HLEN + 20 + ulen, brk == 2 ? 0 : ETH_HLEN + 20, 6, s & 1, notify);
	} else {
		uint16_t c = (uint16_t)~fold(sum16(u, ulen, pseudo_sum(my_ip, dst, ulen)));
		put16(u + 6, c ? c : 0xffff);
		tx_submit(s, ETH_HLEN + 20 + ulen, 0, 0, s & 1, notify);
	}
}

static void icmp_send(uint8_t type, uint16_t id, uint16_t seq, const uint8_t *data, uint16_t len,
		      uint32_t dst, const uint8_t *eth_dst)
{
	unsigned s = tx_alloc();
	uint8_t *f = tx_frame(s), *c = ip_build(eth_build(f, eth_dst, ETH_IP), IP_ICMP, dst,
					      (uint16_t)(8 + len));

	c[0] = type;
	c[1] = 0;
	put16(c + 2, 0);
	put16(c + 4, id);
	put16(c + 6, seq);
	memcpy(c + 8, data, len);
	put16(c + 2, (uint16_t)~fold(sum16(c, 8u + len, 0)));
	tx_submit(s, ETH_HLEN + 20 + 8 + len, 0, 0, 0, 1);
}

/* --- receive --- */

/* What the test's client steps wait for. */
static struct {
	int got;
	uint16_t seq, len;
	uint8_t data[UDP_MAX];
} icmp_reply, udp_reply;

static struct {
	int rx_counting;
	uint64_t rx_count, rx_bytes, rx_first, rx_last, echoed;
	int stop;
} srv;

static void bad(const char *why, uint64_t v)
{
	stats.bad++;
	if (stats.bad <= 5)
		printf("net: dropped a malformed frame: %s (%lu)\n", why, v);
}

static void server_input(uint32_t src, const uint8_t *eth_src, uint16_t sport, uint16_t dport,
			 const uint8_t *d, uint16_t len);

static void arp_input(const uint8_t *f, uint32_t len)
{
	const uint8_t *a = f + ETH_HLEN;

	if (len < ETH_HLEN + 28)
		return bad("short ARP", len);
	if (get16(a) != 1 || get16(a + 2) != ETH_IP || a[4] != 6 || a[5] != 4)
		return bad("ARP not Ethernet/IPv4", get16(a));
	uint16_t op = get16(a + 6);
	uint32_t spa = get32(a + 14), tpa = get32(a + 24);
	if (spa == host_ip && (op == 1 || op == 2) && !(a[8] & 1)) {
		if (!host_mac_known || memcmp(host_mac, a + 8, 6))
			printf("arp: %u.%u.%u.%u is at %02x:%02x:%02x:%02x:%02x:%02x\n",
			       host_ip >> 24, host_ip >> 16 & 0xff, host_ip >> 8 & 0xff,
			       host_ip & 0xff, a[8], a[9], a[10], a[11], a[12], a[13]);
		memcpy(host_mac, a + 8, 6);
		host_mac_known = 1;
	}
	if (op == 1 && tpa == my_ip && !(a[8] & 1)) {
		arp_send(2, a + 8, spa, a + 8);
		stats.arp_answered++;
	}
}

static void icmp_input(const uint8_t *ip, const uint8_t *c, uint16_t len, const uint8_t *eth_src)
{
	if (len < 8)
		return bad("short ICMP", len);
	if (fold(sum16(c, len, 0)) != 0xffff)
		return bad("ICMP checksum", get16(c + 2));
	if (c[0] == 0 && get16(c + 4) == ICMP_ID && len - 8 <= UDP_MAX) {
		icmp_reply.seq = get16(c + 6);
		icmp_reply.len = (uint16_t)(len - 8);
		memcpy(icmp_reply.data, c + 8, len - 8u);
		icmp_reply.got = 1;
	} else if (c[0] == 8 && len - 8 <= UDP_MAX) {
		/* The host pings us: answer to where it came from. */
		icmp_send(0, get16(c + 4), get16(c + 6), c + 8, (uint16_t)(len - 8), get32(ip + 12),
			  eth_src);
		stats.pings_answered++;
	} else {
		stats.ignored++;
	}
}

static void udp_input(const uint8_t *ip, const uint8_t *u, uint16_t len, const uint8_t *eth_src)
{
	uint32_t src = get32(ip + 12);

	if (len < 8)
		return bad("short UDP", len);
	uint16_t ulen = get16(u + 4);
	if (ulen < 8 || ulen > len)
		return bad("UDP length", ulen);
	if (get16(u + 6) && fold(sum16(u, ulen, pseudo_sum(src, my_ip, ulen))) != 0xffff)
		return bad("UDP checksum", get16(u + 6));
	uint16_t sport = get16(u), dport = get16(u + 2), n = (uint16_t)(ulen - 8);
	if (dport == client_port && src == host_ip && sport == echo_port) {
		udp_reply.len = n;
		memcpy(udp_reply.data, u + 8, n);
		udp_reply.got = 1;
	} else if (dport == serve_port || dport == serve_port + 1) {
		server_input(src, eth_src, sport, dport, u + 8, n);
	} else {
		stats.ignored++;
	}
}

static void frame_input(const uint8_t *buf, uint32_t len)
{
	const uint8_t *f = buf + HDR_LEN;

	stats.frames++;
	if (len < HDR_LEN + ETH_HLEN || len > HDR_LEN + ETH_MAX + 4)
		return bad("frame length", len);
	/* Neither checksum offload nor GSO was negotiated for receive. */
	if (buf[0] & HDR_F_NEEDS_CSUM || buf[1] != 0)
		return bad("vnet header asks for an offload we did not negotiate", buf[0] | buf[1] << 8);
	len -= HDR_LEN;
	if (memcmp(f, my_mac, 6) && memcmp(f, bcast, 6)) {
		stats.ignored++; /* multicast (IPv6 neighbour discovery and the like) */
		return;
	}
	uint16_t type = get16(f + 12);
	if (type == ETH_ARP)
		return arp_input(f, len);
	if (type != ETH_IP) {
		stats.ignored++;
		return;
	}
	const uint8_t *ip = f + ETH_HLEN;
	if (len < ETH_HLEN + 20)
		return bad("short IPv4", len);
	unsigned ihl = (ip[0] & 0xf) * 4u;
	uint16_t tot = get16(ip + 2);
	if (ip[0] >> 4 != 4 || ihl < 20 || tot < ihl || tot > len - ETH_HLEN)
		return bad("IPv4 version, header length or total length", ip[0] << 16 | tot);
	if (fold(sum16(ip, ihl, 0)) != 0xffff)
		return bad("IPv4 header checksum", get16(ip + 10));
	if (get32(ip + 16) != my_ip || (get16(ip + 6) & 0x3fff)) {
		stats.ignored++; /* not ours, or a fragment: we never reassemble */
		return;
	}
	if (ip[9] == IP_ICMP)
		icmp_input(ip, ip + ihl, (uint16_t)(tot - ihl), f + 6);
	else if (ip[9] == IP_UDP)
		udp_input(ip, ip + ihl, (uint16_t)(tot - ihl), f + 6);
	else
		stats.ignored++;
}

/* Handle every frame the device has delivered, give the buffers back; frames handled. */
static unsigned rx_poll(void)
{
	struct queue *q = &dev.q[RXQ];
	unsigned n = 0;

	while (q->r->used_idx != q->used) {
		mb();
		uint32_t slot = q->used & (q->size - 1);
		uint32_t id = q->r->used_ring[slot].id, len = q->r->used_ring[slot].len;
		q->used++;
		if (id >= q->size)
			fail("virtio-net: receive used ring returned head %u (queue size %u)", id,
			     q->size);
		if (len > BUF_SIZE)
			bad("used length beyond the buffer", len);
		else
			frame_input(rxbuf[id], len);
		publish(q, (uint16_t)id);
		n++;
	}
	if (n)
		kick(q, RXQ);
	return n;
}

/* Poll until *flag is set or ms milliseconds passed: 1 if set. */
static int wait_for(volatile int *flag, uint64_t ms)
{
	uint64_t end = rdtsc() + ms * TSC_PER_MS;
	for (uint32_t i = 0; !*flag; i++) {
		if (!rx_poll())
			cpu_relax();
		tx_reclaim();
		if ((i & 0xfff) == 0) {
			check_status();
			if ((int64_t)(rdtsc() - end) > 0)
				return 0;
		}
	}
	return 1;
}

/* --- the server --- */

static int parse_uint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *s;
	while (*p < end && **p == ' ')
		(*p)++;
	s = *p;
	*v = 0;
	while (*p < end && **p >= '0' && **p <= '9' && *p - s < 18)
		*v = *v * 10 + (uint64_t)(*(*p)++ - '0');
	return *p > s;
}

static char *put_uint(char *s, uint64_t v)
{
	char t[24];
	int n = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*s++ = t[--n];
	return s;
}

static void reply(uint32_t dst, uint16_t dport, const char *prefix, const uint64_t *v, int nv)
{
	char msg[128], *s = msg;
	size_t pl = strlen(prefix);
	memcpy(s, prefix, pl);
	s += pl;
	for (int i = 0; i < nv; i++) {
		*s++ = ' ';
		s = put_uint(s, v[i]);
	}
	udp_send(serve_port, dst, dport, msg, (uint16_t)(s - msg), 1, 1);
}

static int is_cmd(const uint8_t *d, uint16_t len, const char *cmd)
{
	size_t n = strlen(cmd);
	return len >= n && !memcmp(d, cmd, n) && (len == n || d[n] == ' ');
}

/* "KVMM:TX n size dport": n datagrams of size bytes to host:dport, notifying the device
 * once per 16 (or when the ring is full). */
static void server_tx(uint32_t dst, const uint8_t *d, uint16_t len, uint16_t sport)
{
	const uint8_t *p = d + 7, *end = d + len;
	uint64_t n, size, dport;
	static uint8_t payload[UDP_MAX];

	if (!parse_uint(&p, end, &n) || !parse_uint(&p, end, &size) || !parse_uint(&p, end, &dport) ||
	    size < 4 || size > UDP_MAX || dport == 0 || dport > 0xffff) {
		printf("net: bad command '%s' ignored\n", "KVMM:TX");
		return;
	}
	for (uint64_t i = 4; i < size; i++)
		payload[i] = (uint8_t)(i * 13);
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++) {
		put32(payload, (uint32_t)i);
		udp_send(serve_port, dst, (uint16_t)dport, payload, (uint16_t)size, 1,
			 (i & 15) == 15 || i + 1 == n || tx_inflight + 1 >= dev.q[TXQ].size / 2);
	}
	uint64_t v[2] = { n, rdtsc() - t0 };
	reply(dst, sport, "KVMM:TXDONE", v, 2);
}

static void server_input(uint32_t src, const uint8_t *eth_src, uint16_t sport, uint16_t dport,
			 const uint8_t *d, uint16_t len)
{
	(void)eth_src;
	if (src != host_ip || !host_mac_known) {
		stats.ignored++;
		return;
	}
	if (dport == serve_port + 1) {
		if (srv.rx_counting) {
			uint64_t t = rdtsc();
			if (!srv.rx_count)
				srv.rx_first = t;
			srv.rx_last = t;
			srv.rx_count++;
			srv.rx_bytes += len;
		}
		return;
	}
	if (is_cmd(d, len, "KVMM:STOP")) {
		reply(src, sport, "KVMM:STOPPED", &srv.echoed, 1);
		srv.stop = 1;
	} else if (is_cmd(d, len, "KVMM:TX")) {
		server_tx(src, d, len, sport);
	} else if (is_cmd(d, len, "KVMM:RXEND")) {
		uint64_t v[3] = { srv.rx_count, srv.rx_bytes, srv.rx_last - srv.rx_first };
		srv.rx_counting = 0;
		reply(src, sport, "KVMM:RXDONE", v, 3);
	} else if (is_cmd(d, len, "KVMM:RX")) {
		srv.rx_counting = 1;
		srv.rx_count = srv.rx_bytes = 0;
		reply(src, sport, "KVMM:RXREADY", 0, 0);
	} else if (brk == 1 && len) {
		static uint8_t copy[UDP_MAX];
		memcpy(copy, d, len);
		copy[len - 1] ^= 0x20;
		udp_send(serve_port, src, sport, copy, len, 1, 1);
		srv.echoed++;
	} else {
		udp_send(serve_port, src, sport, d, len, 1, 1);
		srv.echoed++;
	}
}

static void serve(void)
{
	uint64_t idle = cmdline_u64("idle", 60);

	printf("server: echoing UDP on port %u until KVMM:STOP\n", serve_port);
	while (!srv.stop) {
		uint64_t before = stats.frames;
		wait_for(&srv.stop, idle * 1000);
		if (!srv.stop && stats.frames == before)
			fail("server: no frame for %lu s", idle);
	}
	/* Let the device take the last reply before we power off. */
	for (int i = 0; i < 1000 && tx_inflight; i++) {
		tx_reclaim();
		delay_us(100);
	}
	printf("server: stopped after echoing %lu datagrams\n", srv.echoed);
}

/* --- the test's client steps --- */

static void arp_resolve(void)
{
	for (int t = 0; t < 10 && !host_mac_known; t++) {
		static const uint8_t zero[6];
		arp_send(1, zero, host_ip, bcast);
		wait_for(&host_mac_known, 1000);
	}
	if (!host_mac_known)
		fail("arp: no reply from the host in 10 tries");
}

static void ping_test(uint16_t seq, uint16_t len)
{
	static uint8_t data[UDP_MAX];
	for (uint16_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7 + seq);
	for (int t = 0; t < 5; t++) {
		icmp_reply.got = 0;
		icmp_send(8, ICMP_ID, seq, data, len, host_ip, host_mac);
		while (wait_for(&icmp_reply.got, 1000)) {
			if (icmp_reply.seq != seq) { /* a late reply to an earlier try */
				icmp_reply.got = 0;
				continue;
			}
			if (icmp_reply.len != len || memcmp(icmp_reply.data, data, len))
				fail("icmp: echo reply seq %u has %u bytes that differ from the %u sent",
				     seq, icmp_reply.len, len);
			printf("icmp: echo reply seq %u, %u bytes: OK\n", seq, len);
			return;
		}
	}
	fail("icmp: no echo reply for seq %u (%u bytes) in 5 tries", seq, len);
}

static void udp_test(unsigned k, uint16_t len, int partial)
{
	static uint8_t data[UDP_MAX];
	data[0] = (uint8_t)k;
	for (uint16_t i = 1; i < len; i++)
		data[i] = (uint8_t)(i * 31 + k);
	for (int t = 0; t < 5; t++) {
		udp_reply.got = 0;
		udp_send(client_port, host_ip, echo_port, data, len, partial, 1);
		while (wait_for(&udp_reply.got, 1000)) {
			if (udp_reply.len != len || udp_reply.data[0] != (uint8_t)k) {
				udp_reply.got = 0; /* a late echo of an earlier datagram */
				continue;
			}
			if (memcmp(udp_reply.data, data, len))
				fail("udp: the echo of %u bytes differs from what was sent", len);
			printf("udp: %u bytes echoed (%s): OK\n", len,
			       partial ? "checksum by the device, NEEDS_CSUM" : "checksum by the guest");
			return;
		}
	}
	fail("udp: no echo of %u bytes (%s) from port %u in 5 tries", len,
	     partial ? "NEEDS_CSUM" : "full checksum", echo_port);
}

void guest_main(void)
{
	char a[16], b[16];
	int test = cmdline_is("mode", "test", 1);

	if (!test && !cmdline_is("mode", "serve", 0))
		fail("mode=: give test or serve");
	my_ip = cmdline_ip("ip", 0x0a00020f);
	host_ip = cmdline_ip("host", 0x0a000202);
	serve_port = (uint16_t)cmdline_u64("port", 7000);
	echo_port = (uint16_t)cmdline_u64("echo", 7777);
	brk = cmdline_u64("break", 0);
	if (!find_device())
		fail("no virtio-net device (1af4:1041) on PCI bus 0");
	vpci_enable(&dev.p);
	vpci_find_caps(&dev.p);
	if (!dev.p.device)
		fail("virtio-net: no device configuration capability (the MAC)");
	dev_init();
	rx_post_all();
	ip_str(my_ip, a);
	ip_str(host_ip, b);
	printf("virtio-net at 00:%02x.%x: mac %02x:%02x:%02x:%02x:%02x:%02x, ip %s, host %s, "
	       "queues %u/%u\n",
	       dev.p.slot, dev.p.fn, my_mac[0], my_mac[1], my_mac[2], my_mac[3], my_mac[4], my_mac[5],
	       a, b, dev.q[RXQ].size, dev.q[TXQ].size);

	arp_resolve();
	if (test) {
		ping_test(1, 56);
		ping_test(2, 1000);
		static const uint16_t sizes[] = { 1, 18, 64, 512, 1000, 1400, UDP_MAX };
		for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			udp_test(k, sizes[k], 0);
			udp_test(k + 100, sizes[k], 1);
		}
		printf("client: OK\n");
	}
	serve();
	printf("net: %lu frames, %lu malformed, %lu ignored, %lu ARP requests and %lu pings "
	       "answered; notifications rx %lu (%lu suppressed), tx %lu (%lu suppressed)\n",
	       stats.frames, stats.bad, stats.ignored, stats.arp_answered, stats.pings_answered,
	       stats.kicks[RXQ], stats.kicks_saved[RXQ], stats.kicks[TXQ], stats.kicks_saved[TXQ]);
	success();
}
