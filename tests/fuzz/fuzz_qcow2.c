// SPDX-License-Identifier: MIT
/* fuzz_qcow2.c: libFuzzer target: open the input as a qcow2 image (read-only) and read all of it.
 * Built with -DFUZZ_STANDALONE it is its own small mutation fuzzer (for gcc/ASan CI runs):
 *   fuzz_qcow2 [ITERATIONS] [SEED]   or   fuzz_qcow2 FILE...   (replay inputs) */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "block/block.h"
#include "block/qcow2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long long fuzz_opened; /* statistics for the standalone driver only */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_open_opts o = { .format = IMAGE_FMT_QCOW2, .read_only = true, .no_backing = true,
				     .no_uring = true };
	struct qcow2_check_result r;
	struct image *img = NULL;
	struct err e;
	char path[64];
	uint8_t *buf;
	int fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	if (write_all(fd, data, size) < 0) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (image_open(path, &o, &img, &e) == 0) {
		struct qcow2 *q = qcow2_of(img);

		fuzz_opened++;
		uint64_t cs = q->cluster_size, vsize = image_size(img), n = 0;

		buf = malloc(cs);
		/* Every cluster (bounded: a tiny file may describe an enormous disk). */
		for (uint64_t off = 0; buf && off < vsize && n < 4096; off += cs, n++)
			image_pread(img, off, buf, (size_t)MIN(cs, vsize - off));
		for (uint64_t off = 0, pnum = 0, k = 0; off < vsize && k < 4096; off += pnum, k++) {
			struct image_status st;

			if (image_block_status(img, off, vsize - off, &pnum, &st) < 0 || pnum == 0)
				break;
		}
		qcow2_check(img, 0, &r, NULL, NULL, NULL, &e);
		free(buf);
		image_close(img);
	}
	close(fd);
	return 0;
}

#ifdef FUZZ_STANDALONE
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int load_seed(const char *path, uint8_t **out, size_t *len)
{
	size_t l;
	return read_file(path, 64 * MiB, out, len ? len : &l);
}

int main(int argc, char **argv)
{
	static const char *const opts[] = { "", "-o cluster_size=4k", "-o compat=0.10,cluster_size=512",
					    "-o refcount_bits=1,cluster_size=1k", "-c" };
	uint64_t iters = argc > 1 ? strtoull(argv[1], NULL, 0) : 2000, s = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
	char dir[] = "/tmp/kvmm-fuzz-XXXXXX", cmd[512], p[128];

	if (argc > 1 && access(argv[1], R_OK) == 0) {
		for (int i = 1; i < argc; i++) {
			uint8_t *d;
			size_t l;

			if (load_seed(argv[i], &d, &l) == 0) {
				LLVMFuzzerTestOneInput(d, l);
				free(d);
			}
		}
		return 0;
	}
	if (!mkdtemp(dir))
		return 1;
	/* Seeds: small images from qemu-img when present (compressed, snapshots), else none. */
	for (size_t k = 0; k < ARRAY_SIZE(opts); k++) {
		snprintf(cmd, sizeof(cmd),
			 "cd %s && head -c 300000 /dev/urandom > d && yes kvmm | head -c 200000 >> d && "
			 "qemu-img convert -q -O qcow2 %s d s%zu 2>/dev/null && qemu-img snapshot -c a s%zu 2>/dev/null",
			 dir, opts[k], k, k);
		if (system(cmd) != 0)
			continue;
	}
	for (uint64_t i = 0; i < iters; i++) {
		uint8_t *d;
		size_t l;

		snprintf(p, sizeof(p), "%s/s%llu", dir, (unsigned long long)(rnd(&s) % ARRAY_SIZE(opts)));
		if (load_seed(p, &d, &l) < 0)
			continue;
		/* A few random byte, word and truncation mutations, biased to the metadata. */
		for (int m = 0, nm = 1 + (int)(rnd(&s) % 8); m < nm; m++) {
			size_t at = rnd(&s) % 4 ? rnd(&s) % MIN(l, 4096) : rnd(&s) % l;
			switch (rnd(&s) % 4) {
			case 0: d[at] ^= (uint8_t)(1u << (rnd(&s) % 8)); break;
			case 1: d[at] = (uint8_t)rnd(&s); break;
			case 2: if (at + 8 <= l) memset(d + at, rnd(&s) % 2 ? 0xff : 0, 8); break;
			default: l = MAX(at, 1); break;
			}
		}
		LLVMFuzzerTestOneInput(d, l);
		free(d);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	printf("fuzz_qcow2: %llu inputs, %llu opened, no crash\n", (unsigned long long)iters, fuzz_opened);
	return 0;
}
#endif
