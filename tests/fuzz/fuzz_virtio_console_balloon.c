// SPDX-License-Identifier: MIT
/* fuzz_virtio_console_balloon.c: libFuzzer harness driving virtio-console or virtio-balloon through virtio-pci. */
/*
 * A fresh device serves each input. The first byte picks the device (bit 0:
 * console or balloon), then the negotiated features and queue sizes follow,
 * then a sequence of operations, each starting with one op byte (op & 7):
 *   0  write guest RAM in the ring and buffer window: offset (2 bytes), a
 *      length byte, the bytes; with op bit 3 write a descriptor instead:
 *      queue and index bytes, buffer (2 bytes, 16-byte units), length (2
 *      bytes), flags and next bytes
 *   1  publish a head on a queue's avail ring (queue byte, head 2 bytes)
 *   2  kick a queue (queue byte)
 *   3  console: host input (length byte, bytes); balloon: a new target (2 bytes, 64 KiB units)
 *   4  device config write (offset, width and 4 value bytes); with op bit 3,
 *      balloon: ask for statistics and read the info
 *   5  reset and set the device up again
 *   6  save the state, flip a byte, load it back, load the good state again
 *   7  write a common-config register (offset byte, value 2 bytes)
 * Guest-chosen PFNs and reported ranges may point anywhere, rings included.
 * The device must not crash, hang, leak or trip ASan/UBSan.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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
#define WIN 0x10000ULL /* queue q's rings at WIN + 0x2000 * q, buffers from WIN + 0x8000 */
#define WIN_LEN 0x40000ULL
#define NQ 4
#define MAX_OPS 2048

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
	bool balloon;
	uint64_t bar;
	uint16_t qsize[NQ], avail_idx[NQ];
};

static int h_irq(void *opaque, uint32_t gsi, bool level)
{
	(void)opaque;
	(void)gsi;
	(void)level;
	return 0;
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

/* The driver's side of 3.1.1: features, the queues with input-chosen sizes, DRIVER_OK. */
static void start(struct h *h, struct input *in)
{
	uint64_t f = next16(in) | VIRTIO_BIT(VIRTIO_F_VERSION_1);

	f |= (uint64_t)(next(in) & 0x30) << 24; /* INDIRECT_DESC, EVENT_IDX */
	wr(h, 0x14, 1, 0);
	if (!(next(in) & 0x80)) {
		wr(h, 0x00, 4, 0);
		f &= rd(h, 0x04, 4) | (0xffffffffULL << 32);
	}
	wr(h, 0x14, 1, 3);
	wr(h, 0x08, 4, 0);
	wr(h, 0x0c, 4, (uint32_t)f);
	wr(h, 0x08, 4, 1);
	wr(h, 0x0c, 4, (uint32_t)(f >> 32));
	wr(h, 0x14, 1, 11);
	for (unsigned q = 0; q < NQ; q++) {
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
	struct err e = { { 0 } };
	static struct h h;
	uint8_t buf[256];
	unsigned ops = 0;
	int r;

	log_set_level(LOG_ERROR);
	memset(&h, 0, sizeof(h));
	h.ctx.pio = bus_create("pio");
	h.ctx.mmio = bus_create("mmio");
	if (!h.ctx.pio || !h.ctx.mmio || mem_create(&h.gm, &mo, &e))
		abort();
	h.ctx.gm = &h.gm;
	h.ctx.irq_set = h_irq;
	h.ctx.irq_opaque = &h;
	h.ctx.console_in_fd = -1;
	h.ctx.console_out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (pci_host_desc.create(&h.ctx, &h.host, &e))
		abort();
	h.ctx.pci = h.host;
	h.balloon = next(&in) & 1;
	if (h.balloon) {
		struct balloon_opts bo = { .target = 64 << 10, .stats_period = 1 };

		r = virtio_balloon_create(&h.ctx, &bo, &h.vd, &e);
	} else {
		r = virtio_console_create(&h.ctx, &h.vd, &e);
	}
	if (r)
		abort();
	h.bar = X86_PCI_MMIO_START; /* the first device's BAR 0, as the host bridge assigns it */
	start(&h, &in);

	while (in.n && ops++ < MAX_OPS) {
		uint8_t op = next(&in);

		switch (op & 7) {
		case 0: {
			if (op & 8) {
				unsigned q = next(&in) % NQ, i = next(&in) % h.qsize[q];
				uint8_t *d = gm_ptr(&h.gm, WIN + 0x2000ULL * q + 16ULL * i, 16);
				uint64_t a = WIN + 0x8000 + 16ULL * next16(&in);
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
			unsigned q = next(&in) % NQ;
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
		case 3:
			if (h.balloon) {
				virtio_balloon_set_target(h.vd, (uint64_t)next16(&in) << 16);
			} else {
				unsigned len = next(&in), i;

				for (i = 0; i < len; i++)
					buf[i] = next(&in);
				virtio_console_receive(h.vd, buf, len);
			}
			break;
		case 4:
			if ((op & 8) && h.balloon) {
				struct balloon_info bi;

				virtio_balloon_request_stats(h.vd);
				virtio_balloon_info(h.vd, &bi);
			} else {
				unsigned off = next(&in) % 20, width = 1u << (next(&in) % 3);
				uint32_t v = (uint32_t)next16(&in) | (uint32_t)next16(&in) << 16;

				wr(&h, 0x2000 + off, width, v);
				rd(&h, 0x2000 + (off & ~3u), 4);
			}
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
	virtio_pci_destroy(h.vd);
	pci_host_desc.destroy(h.host);
	mem_destroy(&h.gm);
	bus_destroy(h.ctx.pio);
	bus_destroy(h.ctx.mmio);
	if (h.ctx.console_out_fd >= 0)
		close(h.ctx.console_out_fd);
	return 0;
}
