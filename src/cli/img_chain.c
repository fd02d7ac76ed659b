// SPDX-License-Identifier: MIT
/* img_chain.c: backing chains: `kvmm img commit` and `kvmm img rebase`. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "cli/img_int.h"

int img_commit(int argc, char **argv)
{
	struct image_open_opts to = { .read_only = false, .no_backing = true }, bo = { 0 };
	struct image *top = NULL, *base = NULL;
	bool keep = false, want_progress = false;
	struct img_progress pr;
	struct err e = { { 0 } };
	uint64_t size;
	uint8_t *buf = NULL;
	char *bpath = NULL;
	int c, ret = EXIT_ERR;

	optind = 1;
	while ((c = getopt(argc, argv, "f:dpqh")) != -1) {
		switch (c) {
		case 'f':
			if (image_format_parse(optarg, &to.format) < 0)
				return img_fail("unknown format '%s'", optarg);
			break;
		case 'd': keep = true; break;
		case 'p': want_progress = true; break;
		case 'q': break;
		case 'h': printf("usage: kvmm img commit [-f fmt] [-d] [-p] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return img_fail("commit: missing file name"), EXIT_USAGE;
	to.read_only = keep;
	if (image_open(argv[optind], &to, &top, &e) < 0)
		return img_fail("%s", e.msg);
	if (!top->backing_name) {
		img_fail("%s: image has no backing file", argv[optind]);
		goto out;
	}
	bpath = image_backing_path(top, top->backing_name);
	bo.format = top->backing_format;
	if (!bpath || image_open(bpath, &bo, &base, &e) < 0) {
		img_fail("%s", bpath ? e.msg : "out of memory");
		goto out;
	}
	size = image_size(top);
	if (image_size(base) < size) {
		if (!base->ops->truncate || base->ops->truncate(base, size, false, &e) < 0) {
			img_fail("%s", e.msg);
			goto out;
		}
	}
	buf = malloc(2 * MiB);
	if (!buf) {
		img_fail("out of memory");
		goto out;
	}
	img_progress_init(&pr, want_progress);
	/* Copy what the top layer defines (data or zeroes) into the backing image. */
	for (uint64_t off = 0, pnum; off < size; off += pnum) {
		struct image_status st;

		img_progress_show(&pr, off, size);
		ret = image_block_status(top, off, MIN(size - off, 2 * MiB), &pnum, &st);
		if (ret < 0)
			break;
		if (!(st.flags & IMAGE_ST_ALLOCATED))
			continue;
		if (img_st_zero(&st))
			ret = image_write_zeroes(base, off, pnum, 0);
		else if ((ret = image_pread(top, off, buf, pnum)) == 0)
			ret = image_pwrite(base, off, buf, pnum);
		if (ret < 0)
			break;
	}
	if (ret == 0)
		ret = image_flush(base);
	/* Then empty the top layer (opened without its backing: discard leaves clusters unallocated). */
	if (ret == 0 && !keep)
		ret = image_discard(top, 0, size);
	if (ret == 0 && !keep)
		ret = image_flush(top);
	if (ret < 0) {
		ret = img_fail("commit failed: %s", strerror(-ret));
		goto out;
	}
	if (want_progress)
		img_progress_end(&pr);
	printf("Image committed.\n");
	ret = EXIT_OK;
out:
	free(buf);
	free(bpath);
	image_close(base);
	image_close(top);
	return ret;
}

int img_rebase(int argc, char **argv)
{
	struct image_open_opts to = { 0 }, no = { .read_only = true };
	const char *nb = NULL, *nf = NULL;
	enum image_format nfmt = IMAGE_FMT_AUTO;
	bool unsafe = false, want_progress = false;
	struct image *top = NULL, *nbimg = NULL;
	struct img_progress pr;
	struct err e = { { 0 } };
	uint8_t *a = NULL, *b = NULL;
	char *npath = NULL;
	int c, ret = EXIT_ERR;

	optind = 1;
	while ((c = getopt(argc, argv, "f:b:F:upqh")) != -1) {
		switch (c) {
		case 'f':
			if (image_format_parse(optarg, &to.format) < 0)
				return img_fail("unknown format '%s'", optarg);
			break;
		case 'b': nb = optarg; break;
		case 'F': nf = optarg; break;
		case 'u': unsafe = true; break;
		case 'p': want_progress = true; break;
		case 'q': break;
		case 'h': printf("usage: kvmm img rebase [-f fmt] [-u] -b BACKING [-F fmt] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc || !nb)
		return img_fail("rebase: need -b BACKING (\"\" for none) and a file"), EXIT_USAGE;
	if (nf && image_format_parse(nf, &nfmt) < 0)
		return img_fail("unknown format '%s'", nf);
	to.no_backing = unsafe;
	if (image_open(argv[optind], &to, &top, &e) < 0)
		return img_fail("%s", e.msg);
	if (!qcow2_of(top)) {
		img_fail("%s: rebase needs a qcow2 image", argv[optind]);
		goto out;
	}
	if (!unsafe) {
		uint64_t size = image_size(top), nsize = 0;

		if (*nb) {
			npath = image_backing_path(top, nb);
			no.format = nfmt;
			if (!npath || image_open(npath, &no, &nbimg, &e) < 0) {
				img_fail("%s", npath ? e.msg : "out of memory");
				goto out;
			}
			nsize = image_size(nbimg);
		}
		a = malloc(2 * MiB);
		b = malloc(2 * MiB);
		if (!a || !b) {
			img_fail("out of memory");
			goto out;
		}
		img_progress_init(&pr, want_progress);
		/* Where the top layer shows its backing, keep what it showed if the new one differs. */
		for (uint64_t off = 0, pnum; off < size; off += pnum) {
			struct image_status st;

			img_progress_show(&pr, off, size);
			ret = image_block_status(top, off, MIN(size - off, 2 * MiB), &pnum, &st);
			if (ret < 0)
				break;
			if (st.flags & IMAGE_ST_ALLOCATED)
				continue;
			ret = image_pread(top, off, a, pnum);
			if (ret < 0)
				break;
			memset(b, 0, pnum);
			if (nbimg && off < nsize)
				ret = image_pread(nbimg, off, b, MIN(pnum, nsize - off));
			if (ret < 0)
				break;
			for (uint64_t o = 0; o < pnum && ret == 0; o += 64 * KiB) {
				uint64_t n = MIN(64 * KiB, pnum - o);

				if (memcmp(a + o, b + o, n))
					ret = image_pwrite(top, off + o, a + o, n);
			}
			if (ret < 0)
				break;
		}
		if (ret == 0)
			ret = image_flush(top);
		if (ret < 0) {
			ret = img_fail("rebase failed: %s", strerror(-ret));
			goto out;
		}
		if (want_progress)
			img_progress_end(&pr);
	}
	if (qcow2_set_backing(top, *nb ? nb : NULL, nfmt, &e) < 0) {
		img_fail("%s", e.msg);
		goto out;
	}
	ret = EXIT_OK;
out:
	free(a);
	free(b);
	free(npath);
	image_close(nbimg);
	image_close(top);
	return ret;
}

