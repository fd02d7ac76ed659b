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
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "dev/legacy.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/mem.h"

#define MEM (1ULL << 20)
#define WIN 0x10000ULL      /* rings at WIN (rx) and WIN + 0x2000 (tx), buffers after */
#define WIN_LEN 0x40000ULL
#define MAX_OPS 2048
#define MAX_WATCH 8

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t next(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t next16(struct input *in)
{
	uint16_t lo = next(in);

	return (uint16_t)(lo | next(in) << 8);
}

struct h {
	struct dev_ctx ctx;
	struct guest_mem gm;
	void *host;
	struct virtio_dev *vd;
	uint64_t bar;
	int peer;
	struct {
		int fd;
		void (*cb)(void *arg);
		void *arg;
	} w[MAX_WATCH];
	unsigned nw;
	uint16_t qsize[2], avail_idx[2];
};

static int h_irq(void *opaque, uint32_t gsi, bool level)
{
	return 0;
}

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

static void wr(struct h *h, uint64_t off, unsigned len, uint64_t v)
{
	uint8_t b[8];

	memcpy(b, &v, 8);
	bus_access(h->ctx.mmio, h->bar + off, b, len, true);
}

static uint32_t rd(struct h *h, uint64_t off, unsigned len)
{
	uint8_t b[8] = { 0 };
	uint32_t v;

	bus_access(h->ctx.mmio, h->bar + off, b, len, false);
	memcpy(&v, b, 4);
	return v;
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

/* The driver's side of 3.1.1: features, two queues with input-chosen sizes, DRIVER_OK. */
static void start(struct h *h, struct input *in)
{
	uint64_t f = ((uint64_t)next16(in) << 16 | next16(in)) | VIRTIO_BIT(VIRTIO_F_VERSION_1);

	f |= (uint64_t)(next(in) & 0x30) << 24; /* INDIRECT_DESC, EVENT_IDX */
	wr(h, 0x14, 1, 0);
	/* Mostly what the device offers, sometimes not. */
	if (!(next(in) & 0x80)) {
		uint64_t offered;

		wr(h, 0x00, 4, 0);
		offered = rd(h, 0x04, 4);
		wr(h, 0x00, 4, 1);
		offered |= (uint64_t)rd(h, 0x04, 4) << 32;
		f &= offered;
	}
	wr(h, 0x14, 1, 3);
	wr(h, 0x08, 4, 0);
	wr(h, 0x0c, 4, (uint32_t)f);
	wr(h, 0x08, 4, 1);
	wr(h, 0x0c, 4, (uint32_t)(f >> 32));
	wr(h, 0x14, 1, 11);
	for (unsigned q = 0; q < 2; q++) {
		uint64_t desc = WIN + 0x2000ULL * q;
		uint16_t size = (uint16_t)(1u << (next(in) % 9)); /* 1 .. 256 */

		h->qsize[q] = size;
		h->avail_idx[q] = 0;
		memset(gm_ptr(&h->gm, desc, 0x2000), 0, 0x2000);
		wr(h, 0x16, 2, q);
		wr(h, 0x18, 2, size);
		wr(h, 0x20, 4, desc);
		wr(h, 0x28, 4, desc + 16ULL * size);
		wr(h, 0x30, 4, (desc + 16ULL * size + 6 + 2ULL * size + 3) & ~3ULL);
		wr(h, 0x1c, 2, 1);
	}
	wr(h, 0x14, 1, 15);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct mem_opts mo = { .size = MEM };
	struct net_opts no = { .has_fd = true, .vhost = NET_VHOST_OFF };
	struct err e = { { 0 } };
	static struct h h;
	uint8_t frame[70000];
	unsigned ops = 0;
	int sv[2];

	log_set_level(LOG_ERROR);
	memset(&h, 0, sizeof(h));
	h.ctx.pio = bus_create("pio");
	h.ctx.mmio = bus_create("mmio");
	if (!h.ctx.pio || !h.ctx.mmio || mem_create(&h.gm, &mo, &e))
		abort();
	h.ctx.gm = &h.gm;
	h.ctx.irq_set = h_irq;
	h.ctx.irq_opaque = &h;
	h.ctx.watch_fd = h_watch;
	h.ctx.unwatch_fd = h_unwatch;
	h.ctx.console_in_fd = h.ctx.console_out_fd = -1;
	if (pci_host_desc.create(&h.ctx, &h.host, &e))
		abort();
	h.ctx.pci = h.host;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv))
		abort();
	h.peer = sv[1];
	no.fd = sv[0];
	if (virtio_net_create(&h.ctx, &no, &h.vd, &e))
		abort();
	close(sv[0]);
	h.bar = X86_PCI_MMIO_START; /* the first device's BAR 0, as the host bridge assigns it */
	start(&h, &in);

	while (in.n && ops++ < MAX_OPS) {
		uint8_t op = next(&in);

		switch (op & 7) {
		case 0: {
			if (op & 8) {
				unsigned q = next(&in) & 1, i = next(&in) % h.qsize[q];
				uint8_t *d = gm_ptr(&h.gm, WIN + 0x2000ULL * q + 16ULL * i, 16);
				uint64_t a = WIN + 0x4000 + 16ULL * next16(&in);
				uint32_t l = next16(&in);
				uint16_t fl = next(&in) & 7, nx = next(&in);

				memcpy(d, &a, 8);
				memcpy(d + 8, &l, 4);
				memcpy(d + 12, &fl, 2);
				memcpy(d + 14, &nx, 2);
				break;
			}
			uint64_t off = WIN + next16(&in) % WIN_LEN;
			unsigned len = next(&in);
			uint8_t *p = gm_ptr(&h.gm, off, len ? len : 1);

			for (unsigned i = 0; p && i < len; i++)
				p[i] = next(&in);
			break;
		}
		case 1: {
			unsigned q = next(&in) & 1;
			uint16_t head = next16(&in);
			uint64_t avail = WIN + 0x2000ULL * q + 16ULL * h.qsize[q];
			uint16_t *ring = gm_ptr(&h.gm, avail, 4 + 2ULL * h.qsize[q]);

			ring[2 + h.avail_idx[q] % h.qsize[q]] = head;
			ring[1] = ++h.avail_idx[q];
			break;
		}
		case 2:
			wr(&h, 0x3000 + 4ULL * (next(&in) & 3), 2, 0);
			break;
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
		case 6: {
			struct sbuf s = { 0 };

			if (virtio_save(h.vd, &s) == 0 && s.len) {
				size_t at = next16(&in) % s.len;
				uint8_t old = s.data[at];

				s.data[at] ^= (uint8_t)(next(&in) | 1);
				virtio_load(h.vd, s.data, s.len);
				s.data[at] = old;
				if (virtio_load(h.vd, s.data, s.len))
					abort(); /* a device must take back its own state */
			}
			sbuf_free(&s);
			break;
		}
		case 7: {
			uint8_t off = next(&in) % 0x38;

			wr(&h, off & ~1u, 2, next16(&in));
			break;
		}
		}
	}
	pump(&h);
	virtio_pci_destroy(h.vd);
	pci_host_desc.destroy(h.host);
	mem_destroy(&h.gm);
	bus_destroy(h.ctx.pio);
	bus_destroy(h.ctx.mmio);
	close(h.peer);
	return 0;
}
