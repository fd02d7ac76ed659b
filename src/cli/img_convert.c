// SPDX-License-Identifier: MIT
/* img_convert.c: `kvmm img convert`: copy an image (and its chain) into a new raw or qcow2 one. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "cli/img_int.h"

static bool is_zero(const uint8_t *p, size_t n)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	for (i = 0; i < n / 8; i++)
		if (w[i])
			return false;
	for (i *= 8; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Status through the chain: is [off, off+*pnum) known to read as zeroes? */
static int chain_zero(struct image *img, uint64_t off, uint64_t len, uint64_t *pnum, bool *zero)
{
	struct image_status st;
	int ret = image_block_status(img, off, len, pnum, &st);

	if (ret < 0)
		return ret;
	if (st.flags & IMAGE_ST_ALLOCATED) {
		*zero = img_st_zero(&st);
		return 0;
	}
	if (!img->backing || off >= image_size(img->backing)) {
		*zero = true;
		return 0;
	}
	return chain_zero(img->backing, off, MIN(*pnum, image_size(img->backing) - off), pnum, zero);
}

/* Compressing a chunk's clusters on several threads (zlib/zstd are the slow part). */
struct zjob {
	const struct qcow2 *q;
	const uint8_t *src;
	uint8_t *dst;	/* n slots of cluster_size bytes */
	size_t *clen;
	uint64_t n, first, stride;
};

static void *zjob_run(void *arg)
{
	struct zjob *j = arg;

	for (uint64_t i = j->first; i < j->n; i += j->stride) {
		const uint8_t *s = j->src + i * j->q->cluster_size;

		j->clen[i] = is_zero(s, j->q->cluster_size)
				     ? SIZE_MAX
				     : qcow2_compress_cluster(j->q, s, j->dst + i * j->q->cluster_size,
							      j->q->cluster_size - 1);
	}
	return NULL;
}

#define ZTHREADS 8 /* at most; one per online CPU */

static int convert_compressed(struct image *out, uint64_t off, const uint8_t *buf, uint64_t len,
			      uint8_t *zbuf, size_t *clen)
{
	struct qcow2 *q = qcow2_of(out);
	uint64_t cs = q->cluster_size, n = len / cs;
	struct zjob jobs[ZTHREADS];
	pthread_t th[ZTHREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int started = 0, nt = (int)MAX(1, MIN(ZTHREADS, cpus)), ret;

	for (int t = 0; t < nt; t++) {
		jobs[t] = (struct zjob){ q, buf, zbuf, clen, n, (uint64_t)t, (uint64_t)nt };
		if (t > 0 && pthread_create(&th[t], NULL, zjob_run, &jobs[t]) == 0)
			started |= 1 << t;
	}
	zjob_run(&jobs[0]);
	for (int t = 1; t < nt; t++) {
		if (started & (1 << t))
			pthread_join(th[t], NULL);
		else
			zjob_run(&jobs[t]);
	}
	for (uint64_t i = 0; i < n; i++) {
		if (clen[i] == SIZE_MAX)
			continue;
		ret = qcow2_store_compressed(out, off + i * cs, buf + i * cs, zbuf + i * cs, clen[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int img_convert(int argc, char **argv)
{
	static const struct option lo[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	struct image_create_opts co = { .format = IMAGE_FMT_RAW };
	const char *ifmt = NULL, *src, *dst;
	char *opts = NULL;
	bool compress = false, want_progress = false;
	struct image *in = NULL, *out = NULL;
	struct img_progress pr;
	struct err e = { { 0 } };
	uint64_t size, chunk, blk;
	uint8_t *buf = NULL, *zbuf = NULL;
	size_t *zlen = NULL;
	int c, ret = EXIT_ERR;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:O:o:cpqS:B:Wnh", lo, NULL)) != -1) {
		switch (c) {
		case 'f': ifmt = optarg; break;
		case 'O':
			if (image_format_parse(optarg, &co.format) < 0)
				return img_fail("unknown format '%s' (raw or qcow2)", optarg);
			break;
		case 'o': opts = optarg; break;
		case 'c': compress = true; break;
		case 'p': want_progress = true; break;
		case 'B': co.backing = optarg; break;
		case 'q': case 'S': case 'W': case 'n': break;
		case 'h':
			printf("usage: kvmm img convert [-f fmt] [-O raw|qcow2] [-c] [-o opts] [-p] IN OUT\n");
			return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind + 2 != argc)
		return img_fail("convert: need an input and an output file"), EXIT_USAGE;
	src = argv[optind];
	dst = argv[optind + 1];
	if (opts && img_parse_create_opts(opts, &co))
		return EXIT_ERR;
	if (compress && co.format != IMAGE_FMT_QCOW2)
		return img_fail("compression (-c) needs -O qcow2");
	if (co.backing)
		return img_fail("convert -B is not supported");
	if (img_open(src, ifmt, false, false, &in))
		return EXIT_ERR;
	size = image_size(in);
	co.size = size;
	if (image_create(dst, &co, &e) < 0) {
		img_fail("%s", e.msg);
		goto out;
	}
	{
		struct image_open_opts oo = { .format = co.format };

		if (image_open(dst, &oo, &out, &e) < 0) {
			img_fail("%s", e.msg);
			goto out;
		}
	}
	blk = qcow2_of(out) ? qcow2_of(out)->cluster_size : 64 * KiB;
	/* Compression works in big chunks: each one ends with a join of the compressing threads. */
	chunk = MAX(blk, compress ? 32 * MiB : 2 * MiB);
	buf = aligned_alloc(4096, chunk);
	if (compress) {
		zbuf = malloc(chunk);
		zlen = calloc(chunk / blk, sizeof(*zlen));
	}
	if (!buf || (compress && (!zbuf || !zlen))) {
		img_fail("out of memory");
		goto out;
	}
	img_progress_init(&pr, want_progress);
	for (uint64_t off = 0; off < size;) {
		uint64_t len = MIN(chunk, size - off), pnum;
		bool zero;

		img_progress_show(&pr, off, size);
		/* Skip what the source says reads as zeroes: the new image already does. */
		ret = chain_zero(in, off, len, &pnum, &zero);
		if (ret < 0) {
			ret = img_fail("%s: %s", src, strerror(-ret));
			goto out;
		}
		if (zero) {
			uint64_t end = off + pnum;

			/* Compressed clusters are stored whole: skip to a cluster boundary only. */
			if (compress && end < size)
				end = ALIGN_DOWN(end, blk);
			if (end > off) {
				off = end;
				continue;
			}
			pnum = blk; /* under a cluster of zeroes: read it with the data after it */
		}
		len = MIN(len, ALIGN_UP(off + pnum, blk) - off);
		ret = image_pread(in, off, buf, len);
		if (ret < 0) {
			ret = img_fail("%s: read error at %" PRIu64 ": %s", src, off, strerror(-ret));
			goto out;
		}
		if (compress && len >= blk) {
			uint64_t whole = ALIGN_DOWN(len, blk);

			ret = convert_compressed(out, off, buf, whole, zbuf, zlen);
			if (ret < 0) {
				ret = img_fail("%s: write error at %" PRIu64 ": %s", dst, off, strerror(-ret));
				goto out;
			}
			off += whole;
			len -= whole;
			if (!len)
				continue;
			memmove(buf, buf + whole, len);
		}
		for (uint64_t o = 0; o < len; o += blk) {
			uint64_t n = MIN(blk, len - o);

			if (is_zero(buf + o, n))
				continue;
			ret = image_pwrite(out, off + o, buf + o, n);
			if (ret < 0) {
				ret = img_fail("%s: write error at %" PRIu64 ": %s", dst, off + o, strerror(-ret));
				goto out;
			}
		}
		off += len;
	}
	ret = image_flush(out);
	if (ret < 0) {
		ret = img_fail("%s: flush: %s", dst, strerror(-ret));
		goto out;
	}
	if (want_progress)
		img_progress_end(&pr);
	ret = EXIT_OK;
out:
	free(buf);
	free(zbuf);
	free(zlen);
	image_close(out);
	image_close(in);
	return ret;
}

