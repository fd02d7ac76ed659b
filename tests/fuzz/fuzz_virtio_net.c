// SPDX-License-Identifier: MIT
/* fuzz_virtio_net.c: libFuzzer harness driving virtio-net through virtio-pci with guest-chosen rings, buffers and frames. */
/*
 * A fresh device on a socketpair serves each input. The input picks the
 * negotiated features and queue sizes, then is a sequence of operations, each
 * starting with one op byte (op & 7):
 *   0  write guest RAM: offset (2 bytes, in the ring and buffer window), a
 *      length byte, then that many bytes (rings, headers, indirect tables);
 *      with op bit 3, write a descriptor instead: queue and index bytes, a
 *      buffer in the window (2 bytes, in 16-byte units), length (2 bytes),
 *      flags and next bytes
 *   1  publish a head on a queue's avail ring (queue byte, head 2 bytes)
 *   2  kick a queue (queue byte)
 *   3  a frame arrives on the wire: length (2 bytes), then up to that many bytes
 *   4  run the event loop: tap readiness, queue kicks; drain the wire
 *   5  reset and set the device up again with features from the next bytes
 *   6  save the state, flip a byte, load it back, load the good state again
 *   7  write a common-config register (offset byte, value 2 bytes)
 * The device must not crash, hang, leak or trip ASan/UBSan.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "fdrv.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"

#define MAX_OPS 2048
#define MAX_WATCH 8

struct h {
	struct fdrv d;
	int peer;
	struct {
		int fd;
		void (*cb)(void *arg);
		void *arg;
	} w[MAX_WATCH];
	unsigned nw;
};

static int h_watch(void *opaque, int fd, void (*cb)(void *arg), void *arg)
{
	struct h *h = opaque;

	if (h->nw == MAX_WATCH)
		return -ENOSPC;
	h->w[h->nw].fd = fd;
	h->w[h->nw].cb = cb;
	h->w[h->nw].arg = arg;
	h->nw++;
	return 0;
}

static void h_unwatch(void *opaque, int fd)
{
	struct h *h = opaque;

	for (unsigned i = 0; i < h->nw; i++)
		if (h->w[i].fd == fd)
			h->w[i].cb = NULL;
}

static void pump(struct h *h)
{
	char sink[2048];

	for (unsigned round = 0; round < 64; round++) {
		bool any = false;

		for (unsigned i = 0; i < h->nw; i++) {
			struct pollfd p = { .fd = h->w[i].fd, .events = POLLIN };

			if (h->w[i].cb && poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
				h->w[i].cb(h->w[i].arg);
				any = true;
			}
		}
		if (!any)
			break;
	}
	while (recv(h->peer, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

/* Features from the input (4 bytes), both words of the device's offer; two queues. */
static void start(struct h *h, struct input *in)
{
	fdrv_start(&h->d, in, (uint64_t)next16(in) << 16 | next16(in), 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct net_opts no = { .has_fd = true, .vhost = NET_VHOST_OFF };
	struct err e = { { 0 } };
	static struct h h;
	struct virtio_dev *vd;
	uint8_t frame[70000];
	unsigned ops = 0;
	int sv[2];

	log_set_level(LOG_ERROR);
	memset(&h, 0, sizeof(h));
	fdrv_init(&h.d, 2);
	h.d.ctx.irq_opaque = &h; /* the watch hooks take irq_opaque too */
	h.d.ctx.watch_fd = h_watch;
	h.d.ctx.unwatch_fd = h_unwatch;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
		abort();
	h.peer = sv[1];
	no.fd = sv[0];
	if (virtio_net_create(&h.d.ctx, &no, &vd, &e))
		abort();
	close(sv[0]);
	fdrv_plug(&h.d, vd);
	start(&h, &in);

	while (in.n && ops++ < MAX_OPS) {
		uint8_t op = next(&in);

		if (fdrv_op(&h.d, op, &in))
			continue;
		switch (op & 7) {
		case 3: {
			size_t len = next16(&in) + (op & 8 ? 65536 - 4096 : 0), i;

			len = len > sizeof(frame) ? sizeof(frame) : len;
			for (i = 0; i < len && in.n; i++)
				frame[i] = next(&in);
			for (; i < len; i++)
				frame[i] = (uint8_t)i;
			send(h.peer, frame, len, MSG_DONTWAIT);
			break;
		}
		case 4:
			pump(&h);
			break;
		case 5:
			start(&h, &in);
			break;
		}
	}
	pump(&h);
	fdrv_fini(&h.d);
	close(h.peer);
	return 0;
}
