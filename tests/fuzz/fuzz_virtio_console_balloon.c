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

#include "base/err.h"
#include "base/log.h"
#include "fdrv.h"
#include "virtio/devices.h"

#define MAX_OPS 2048

/* Features from the input (2 bytes), the low word of the device's offer; four queues. */
static void start(struct fdrv *d, struct input *in)
{
	fdrv_start(d, in, next16(in), 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct err e = { { 0 } };
	static struct fdrv d;
	struct virtio_dev *vd;
	uint8_t buf[256];
	unsigned ops = 0;
	bool balloon;
	int r;

	log_set_level(LOG_ERROR);
	fdrv_init(&d, 4);
	d.ctx.console_out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	balloon = next(&in) & 1;
	if (balloon) {
		struct balloon_opts bo = { .target = 64 << 10, .stats_period = 1 };

		r = virtio_balloon_create(&d.ctx, &bo, &vd, &e);
	} else {
		r = virtio_console_create(&d.ctx, &vd, &e);
	}
	if (r)
		abort();
	fdrv_plug(&d, vd);
	start(&d, &in);

	while (in.n && ops++ < MAX_OPS) {
		uint8_t op = next(&in);

		if (fdrv_op(&d, op, &in))
			continue;
		switch (op & 7) {
		case 3:
			if (balloon) {
				virtio_balloon_set_target(d.vd, (uint64_t)next16(&in) << 16);
			} else {
				unsigned len = next(&in), i;

				for (i = 0; i < len; i++)
					buf[i] = next(&in);
				virtio_console_receive(d.vd, buf, len);
			}
			break;
		case 4:
			if ((op & 8) && balloon) {
				struct balloon_info bi;

				virtio_balloon_request_stats(d.vd);
				virtio_balloon_info(d.vd, &bi);
			} else {
				unsigned off = next(&in) % 20, width = 1u << (next(&in) % 3);
				uint32_t v = (uint32_t)next16(&in) | (uint32_t)next16(&in) << 16;

				fdrv_wr(&d, 0x2000 + off, width, v);
				fdrv_rd(&d, 0x2000 + (off & ~3u), 4);
			}
			break;
		case 5:
			start(&d, &in);
			break;
		}
	}
	fdrv_fini(&d);
	return 0;
}
