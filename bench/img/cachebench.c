// SPDX-License-Identifier: MIT
/* cachebench.c: the qcow2 L2 cache under random 4 KiB reads: nanoseconds per lookup and per read.
 *   cachebench [-C L2_ENTRIES] [-c COUNT] [-r REGION] [-s SIZE] [-m lookup|read] IMAGE
 * Synchronous, one thread: offsets are uniformly random (fixed seed) in [0, REGION). `lookup`
 * times qcow2_l2_lookup alone (the metadata path: cache hit, or miss = victim + table read);
 * `read` times whole reads through the driver. -C replaces the L2 cache with one of that many
 * entries (default: the driver's own size). Prints wall-clock and CPU (user+sys) time per
 * operation: on a shared host the CPU figure is the steadier one. Build against a release tree's core library:
 *   cc -O2 -Isrc bench/img/cachebench.c BUILD/libkvmmcore.a $(libs) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "block/block.h"
#include "block/qcow2.h"

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	struct image_open_opts o = { .read_only = true, .format = IMAGE_FMT_QCOW2 };
	uint64_t count = 200000, region = 0, size = 4096, seed = 0x9e3779b97f4a7c15ull, t0, t1, c0, c1;
	unsigned entries = 0;
	const char *mode = "lookup";
	struct image *img;
	struct err e = { { 0 } };
	struct qcow2 *q;
	uint8_t *buf;
	int c;

	while ((c = getopt(argc, argv, "C:c:r:s:m:")) != -1) {
		switch (c) {
		case 'C': entries = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'c': count = strtoull(optarg, NULL, 0); break;
		case 'r': if (parse_size(optarg, &region) < 0) return 2; break;
		case 's': if (parse_size(optarg, &size) < 0) return 2; break;
		case 'm': mode = optarg; break;
		default: return 2;
		}
	}
	if (optind >= argc)
		return 2;
	if (image_open(argv[optind], &o, &img, &e) < 0) {
		fprintf(stderr, "cachebench: %s\n", e.msg);
		return 1;
	}
	q = qcow2_of(img);
	if (!region || region > image_size(img))
		region = image_size(img);
	if (entries) {
		qcow2_cache_fini(&q->l2c);
		if (qcow2_cache_init(&q->l2c, entries, q->cluster_size, true) < 0)
			return 1;
	}
	buf = aligned_alloc(4096, ALIGN_UP(size, 4096));
	/* Warm up: every L2 table of the region into the page cache, then the timed run. */
	for (uint64_t off = 0; off < region; off += q->cluster_size << q->l2_bits) {
		uint64_t en, bm;

		qcow2_l2_lookup(q, off, &en, &bm);
	}
	t0 = time_ns();
	c0 = cpu_ns();
	for (uint64_t i = 0; i < count; i++) {
		uint64_t off = (rnd(&seed) % (region / size)) * size, en, bm;
		int ret = strcmp(mode, "read") == 0 ? image_pread(img, off, buf, size)
						     : qcow2_l2_lookup(q, off, &en, &bm);

		if (ret < 0) {
			fprintf(stderr, "cachebench: %s at %llu\n", strerror(-ret), (unsigned long long)off);
			return 1;
		}
	}
	t1 = time_ns();
	c1 = cpu_ns();
	printf("%s: %llu x %llu B in %llu MiB, L2 cache %u entries, %llu L2 tables: %.1f ns/op, cpu %.1f ns/op\n", mode,
	       (unsigned long long)count, (unsigned long long)size, (unsigned long long)(region >> 20),
	       q->l2c.n, (unsigned long long)((region + (q->cluster_size << q->l2_bits) - 1) >>
					       (q->cluster_bits + q->l2_bits)),
	       (double)(t1 - t0) / (double)count, (double)(c1 - c0) / (double)count);
	free(buf);
	image_close(img);
	return 0;
}
