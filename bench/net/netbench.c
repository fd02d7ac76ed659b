// SPDX-License-Identifier: MIT
/* netbench.c: the host side of bench/net: UDP round trips, and streams to and from
 * guests/net.elf (mode=serve), timed on the host with CLOCK_MONOTONIC.
 *
 * Usage: netbench HOST_IP GUEST_IP PORT DPORT PINGS PING_SIZE N SIZE
 *   waits until the guest's server echoes a probe (boot time is not measured), then:
 *   rtt: 100 warm-up round trips, then PINGS datagrams of PING_SIZE bytes one at a time,
 *        each timed from send to its echo;
 *   tx:  "KVMM:TX N SIZE DPORT": the guest sends N datagrams of SIZE bytes to
 *        HOST_IP:DPORT; timed from the first to the last one received here;
 *   rx:  "KVMM:RX", then N datagrams of SIZE bytes to GUEST_IP:PORT+1 as fast as the
 *        host sends, then "KVMM:RXEND": timed from the first send to the guest's
 *        "KVMM:RXDONE count ..." reply, which it sends after handling all before it;
 *   "KVMM:STOP": the guest powers off.
 * Prints one line per figure:
 *   rtt n=N lost=L median_us=X p99_us=Y mean_us=Z
 *   tx n=N got=G secs=S pps=P mibps=M
 *   rx n=N got=G secs=S pps=P mibps=M
 * and exits 0, or prints "netbench: ..." on stderr and exits 1. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXDGRAM 2048
#define BATCH 32

static void die(const char *fmt, ...)
{
	va_list ap;
	fputs("netbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int udp_socket(const char *ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), big = 16 << 20;

	if (s < 0 || inet_pton(AF_INET, ip, &a.sin_addr) != 1)
		die("socket or address %s: %s", ip, strerror(errno));
	/* Large buffers (FORCE as root, else capped by rmem_max/wmem_max). */
	if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)))
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)))
		setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)))
		die("bind %s:%u: %s", ip, port, strerror(errno));
	return s;
}

static void udp_connect(int s, const char *ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1 || connect(s, (struct sockaddr *)&a, sizeof(a)))
		die("connect %s:%u: %s", ip, port, strerror(errno));
}

/* A datagram within ms milliseconds: its length, or -1. */
static ssize_t recv_wait(int s, void *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = s, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return -1;
	return recv(s, buf, len, MSG_DONTWAIT);
}

/* Send cmd every every_ms until a reply starting with want arrives (for up to 6 s); the
 * reply in buf. Only commands that may be repeated. */
static void command(int s, const char *cmd, const char *want, char *buf, size_t len, int every_ms)
{
	for (int t = 0; t < 6000 / every_ms; t++) {
		double end = now() + every_ms / 1000.0;
		if (send(s, cmd, strlen(cmd), 0) < 0 && errno != ENOBUFS)
			die("send %s: %s", cmd, strerror(errno));
		while (now() < end) {
			ssize_t n = recv_wait(s, buf, len - 1, every_ms);
			if (n < 0)
				continue;
			buf[n] = 0;
			if (!strncmp(buf, want, strlen(want)))
				return;
		}
	}
	die("no %s reply to %s", want, cmd);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void rtt(int s, unsigned pings, unsigned size)
{
	uint8_t out[MAXDGRAM], in[MAXDGRAM];
	double *t = calloc(pings, sizeof(*t)), sum = 0;
	unsigned lost = 0, n = 0;

	if (!t)
		die("out of memory");
	for (unsigned i = 0; i < size; i++)
		out[i] = (uint8_t)(i * 7);
	for (unsigned i = 0; i < 100 + pings; i++) {
		uint32_t seq = i + 1;
		memcpy(out, &seq, 4);
		double t0 = now();
		if (send(s, out, size, 0) < 0)
			die("send: %s", strerror(errno));
		for (;;) {
			ssize_t r = recv_wait(s, in, sizeof(in), 1000);
			if (r < 0) {
				lost++;
				break;
			}
			if (r == (ssize_t)size && !memcmp(in, out, size)) {
				if (i >= 100) {
					t[n] = (now() - t0) * 1e6;
					sum += t[n++];
				}
				break;
			}
		}
	}
	if (!n)
		die("no round trip completed");
	qsort(t, n, sizeof(*t), cmp_double);
	printf("rtt n=%u lost=%u median_us=%.1f p99_us=%.1f mean_us=%.1f\n", n, lost, t[n / 2],
	       t[(size_t)(n * 0.99) < n ? (size_t)(n * 0.99) : n - 1], sum / n);
	free(t);
}

static void tx(int s, const char *host, uint16_t dport, unsigned count, unsigned size)
{
	int d = udp_socket(host, dport);
	static uint8_t bufs[BATCH][MAXDGRAM];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	char cmd[96], rep[256];
	unsigned got = 0;
	double first = 0, last = 0;

	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ bufs[i], MAXDGRAM };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	snprintf(cmd, sizeof(cmd), "KVMM:TX %u %u %u", count, size, dport);
	if (send(s, cmd, strlen(cmd), 0) < 0)
		die("send: %s", strerror(errno));
	while (got < count) {
		struct pollfd p = { .fd = d, .events = POLLIN };
		/* 10 s for the first datagram, then 1 s of silence ends the stream. */
		if (poll(&p, 1, got ? 1000 : 10000) != 1)
			break;
		int n = recvmmsg(d, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			continue;
		last = now();
		if (!got)
			first = last;
		got += (unsigned)n;
	}
	if (recv_wait(s, rep, sizeof(rep) - 1, 5000) < 0 || strncmp(rep, "KVMM:TXDONE", 11))
		die("no KVMM:TXDONE from the guest");
	close(d);
	if (got < 2)
		die("tx: %u datagrams arrived", got);
	/* From the first arrival to the last: got - 1 intervals. */
	double secs = last - first, pps = (got - 1) / secs;
	printf("tx n=%u got=%u secs=%.4f pps=%.0f mibps=%.1f\n", count, got, secs, pps,
	       pps * size / 1048576.0);
}

static void rx(int s, const char *host, const char *guest, uint16_t port, unsigned count,
	       unsigned size)
{
	int d = udp_socket(host, 0);
	static uint8_t bufs[BATCH][MAXDGRAM];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	char rep[256];
	unsigned long long gcount = 0, gbytes = 0, gtsc = 0;

	udp_connect(d, guest, (uint16_t)(port + 1));
	for (int i = 0; i < BATCH; i++) {
		memset(bufs[i], 0x5a, size);
		iov[i] = (struct iovec){ bufs[i], size };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	command(s, "KVMM:RX", "KVMM:RXREADY", rep, sizeof(rep), 500);
	double t0 = now();
	for (unsigned sent = 0; sent < count;) {
		unsigned k = count - sent < BATCH ? count - sent : BATCH;
		for (unsigned i = 0; i < k; i++) {
			uint32_t seq = sent + i;
			memcpy(bufs[i], &seq, 4);
		}
		int n = sendmmsg(d, msgs, k, 0);
		if (n < 0) {
			if (errno == ENOBUFS || errno == EAGAIN)
				continue;
			die("sendmmsg: %s", strerror(errno));
		}
		sent += (unsigned)n;
	}
	/* Repeated every 2 ms: the first may be dropped with the stream's tail. */
	command(s, "KVMM:RXEND", "KVMM:RXDONE", rep, sizeof(rep), 2);
	double secs = now() - t0;
	close(d);
	if (sscanf(rep, "KVMM:RXDONE %llu %llu %llu", &gcount, &gbytes, &gtsc) != 3)
		die("bad reply '%s'", rep);
	double pps = (double)gcount / secs;
	printf("rx n=%u got=%llu secs=%.4f pps=%.0f mibps=%.1f\n", count, gcount, secs, pps,
	       pps * size / 1048576.0);
}

int main(int argc, char **argv)
{
	char buf[256];

	if (argc != 9)
		die("usage: netbench HOST_IP GUEST_IP PORT DPORT PINGS PING_SIZE N SIZE");
	const char *host = argv[1], *guest = argv[2];
	uint16_t port = (uint16_t)atoi(argv[3]), dport = (uint16_t)atoi(argv[4]);
	unsigned pings = (unsigned)atoi(argv[5]), psize = (unsigned)atoi(argv[6]);
	unsigned n = (unsigned)atoi(argv[7]), size = (unsigned)atoi(argv[8]);
	if (psize < 4 || psize > 1472 || size < 4 || size > 1472 || !pings || !n)
		die("sizes: 4 to 1472 bytes; counts: at least 1");
	int s = udp_socket(host, 0);
	udp_connect(s, guest, port);

	/* The guest is booting: probe every 100 ms for up to 120 s. */
	double end = now() + 120;
	for (;;) {
		if (send(s, "probe", 5, 0) < 0 && errno != ECONNREFUSED)
			die("send: %s", strerror(errno));
		ssize_t r = recv_wait(s, buf, sizeof(buf), 100);
		if (r == 5 && !memcmp(buf, "probe", 5))
			break;
		if (now() > end)
			die("the guest did not answer in 120 s");
	}
	/* Stale probe echoes would be taken for round trips. */
	while (recv_wait(s, buf, sizeof(buf), 200) >= 0)
		;
	rtt(s, pings, psize);
	tx(s, host, dport, n, size);
	rx(s, host, guest, port, n, size);
	command(s, "KVMM:STOP", "KVMM:STOPPED", buf, sizeof(buf), 500);
	fflush(stdout);
	return 0;
}
