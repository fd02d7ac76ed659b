// SPDX-License-Identifier: MIT
/* fuzz_virtq.c: libFuzzer harness: a guest-controlled descriptor table and avail ring fed to the virtqueue walker. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtq.h"
#include "vmm/mem.h"

#define RAM (1u << 20)
#define QSIZE 16
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct virtq_elem elem;
	struct guest_mem gm = { .fd = -1, .size = RAM, .low_size = RAM, .page_size = 4096 };
	struct virtq q;
	size_t n;
	int i, r;

	if (!ram)
		ram = malloc(RAM);
	memset(ram, 0, 0x10000);
	gm.host = ram;
	/* Input: avail ring (index first), then the descriptor table, then other RAM. */
	n = size < 4 + 2 * QSIZE + 2 ? size : 4 + 2 * QSIZE + 2;
	memcpy(ram + AVAIL, data, n);
	data += n;
	size -= n;
	n = size < QSIZE * 16 ? size : QSIZE * 16;
	memcpy(ram + DESC, data, n);
	data += n;
	size -= n;
	memcpy(ram + 0x4000, data, size < 0xc000 ? size : 0xc000);

	virtq_reset(&q);
	if (virtq_setup(&q, &gm, QSIZE, DESC, AVAIL, USED, size & 1, true))
		abort(); /* valid addresses must be accepted */
	for (i = 0; i < 2 * QSIZE; i++) {
		r = virtq_pop(&q, &elem);
		if (r <= 0)
			break;
		/* Every iovec the walker hands out must lie inside guest RAM. */
		for (unsigned k = 0; k < elem.out_num + elem.in_num; k++) {
			uint8_t *b = elem.iov[k].iov_base;

			if (elem.iov[k].iov_len &&
			    (b < ram || b + elem.iov[k].iov_len > ram + RAM))
				abort();
		}
		virtq_push(&q, elem.head, (uint32_t)elem.in_len);
		virtq_need_interrupt(&q);
	}
	return 0;
}
