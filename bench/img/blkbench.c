// SPDX-License-Identifier: MIT
/* blkbench.c: block-layer I/O benchmark with qemu-img bench's access pattern, for side-by-side runs.
 *   blkbench [-w] [-n (no io_uring)] [-c COUNT] [-d DEPTH] [-s SIZE] [-S STEP] [-f fmt] IMAGE
 * Requests go through the asynchronous API (image_submit + eventfd), like virtio-blk will.
 * Offsets: 0, STEP, 2*STEP, ... modulo the image size (a large odd STEP scatters them). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "block/block.h"

struct slot {
	struct blk_req req;
	struct iovec iov;
	int *inflight, *errors;
	bool busy;
};

static void done(struct blk_req *r, int ret)
{
	struct slot *s = r->opaque;

	s->busy = false;
	(*s->inflight)--;
	if (ret)
		(*s->errors)++;
}

int main(int argc, char **argv)
{
	struct image_open_opts o = { 0 };
	uint64_t count = 75000, size = 4096, step = 0, depth = 64, off = 0, issued = 0;
	bool write = false;
	struct image *img;
	struct err e = { { 0 } };
	int c, inflight = 0, errors = 0;
	struct slot *slots;
	uint64_t t0, t1, isize;

	while ((c = getopt(argc, argv, "wnc:d:s:S:f:")) != -1) {
		switch (c) {
		case 'n': o.no_uring = true; break;
		case 'w': write = true; break;
		case 'c': count = strtoull(optarg, NULL, 0); break;
		case 'd': depth = strtoull(optarg, NULL, 0); break;
		case 's': if (parse_size(optarg, &size) < 0) return 2; break;
		case 'S': if (parse_size(optarg, &step) < 0) return 2; break;
		case 'f': if (image_format_parse(optarg, &o.format) < 0) return 2; break;
		default: return 2;
		}
	}
	if (optind >= argc || depth == 0)
		return 2;
	if (!step)
		step = size;
	o.read_only = !write;
	if (image_open(argv[optind], &o, &img, &e) < 0 || image_aio_start(img, &e) < 0) {
		fprintf(stderr, "blkbench: %s\n", e.msg);
		return 1;
	}
	isize = image_size(img);
	slots = calloc(depth, sizeof(*slots));
	for (uint64_t i = 0; i < depth; i++) {
		slots[i].iov.iov_base = aligned_alloc(4096, ALIGN_UP(size, 4096));
		memset(slots[i].iov.iov_base, 0xa5, size);
		slots[i].iov.iov_len = size;
		slots[i].inflight = &inflight;
		slots[i].errors = &errors;
	}
	t0 = time_ns();
	while (issued < count || inflight > 0) {
		struct pollfd pfd = { .fd = image_aio_fd(img), .events = POLLIN };

		for (uint64_t i = 0; i < depth && issued < count; i++) {
			struct slot *s = &slots[i];

			if (s->busy)
				continue; /* its callback has not run yet */
			if (off + size > isize)
				off = 0;
			s->req = (struct blk_req){ .op = write ? BLK_WRITE : BLK_READ, .offset = off, .iov = &s->iov,
						   .iovcnt = 1, .done = done, .opaque = s };
			if (image_submit(img, &s->req) < 0)
				return 1;
			s->busy = true;
			inflight++;
			issued++;
			off = (off + step) % isize;
		}
		if (poll(&pfd, 1, 1000) > 0)
			image_aio_complete(img);
	}
	if (write)
		image_flush(img);
	t1 = time_ns();
	printf("blkbench: %llu requests of %llu bytes in %.3f s: %.0f IOPS (%s, %s engine)%s\n",
	       (unsigned long long)count, (unsigned long long)size, (t1 - t0) / 1e9, count / ((t1 - t0) / 1e9),
	       write ? "write" : "read", img->io.uring ? "io_uring" : "preadv", errors ? " ERRORS" : "");
	image_close(img);
	for (uint64_t i = 0; i < depth; i++)
		free(slots[i].iov.iov_base);
	free(slots);
	return errors ? 1 : 0;
}
