// SPDX-License-Identifier: MIT
/* img_create.c: `kvmm img create` and `kvmm img resize`. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"
#include "cli/img_int.h"

/* ---- create ---- */

int img_create(int argc, char **argv)
{
	static const struct option lo[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	struct image_create_opts co = { .format = IMAGE_FMT_RAW };
	char *opts = NULL;
	const char *bfmt = NULL;
	struct err e = { { 0 } };
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:o:b:F:uqh", lo, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (image_format_parse(optarg, &co.format) < 0)
				return img_fail("unknown format '%s' (raw or qcow2)", optarg);
			break;
		case 'o': opts = optarg; break;
		case 'b': co.backing = optarg; break;
		case 'F': bfmt = optarg; break;
		case 'u': case 'q': break;
		case 'h':
			printf("usage: kvmm img create [-f raw|qcow2] [-o cluster_size=N,compat=0.10|1.1,"
			       "refcount_bits=N,lazy_refcounts=on,compression_type=zlib|zstd] "
			       "[-b backing [-F fmt]] FILE [SIZE]\n");
			return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (opts && img_parse_create_opts(opts, &co))
		return EXIT_ERR;
	if (bfmt && image_format_parse(bfmt, &co.backing_format) < 0)
		return img_fail("unknown backing format '%s'", bfmt);
	if (optind >= argc)
		return img_fail("create: missing file name"), EXIT_USAGE;
	if (optind + 1 < argc) {
		if (parse_size(argv[optind + 1], &co.size) < 0)
			return img_fail("invalid size '%s'", argv[optind + 1]);
	} else if (!co.backing) {
		return img_fail("create: missing size"), EXIT_USAGE;
	}
	if (co.backing && co.format != IMAGE_FMT_QCOW2)
		return img_fail("a backing file needs -f qcow2");
	if (image_create(argv[optind], &co, &e) < 0)
		return img_fail("%s", e.msg);
	return EXIT_OK;
}

/* ---- resize ---- */

int img_resize(int argc, char **argv)
{
	static const struct option lo[] = { { "shrink", no_argument, NULL, 'S' },
					    { "help", no_argument, NULL, 'h' }, { 0 } };
	const char *fmt = NULL, *arg;
	bool shrink = false;
	struct image *img;
	struct err e = { { 0 } };
	uint64_t cur, n, size;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+f:qh", lo, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'S': shrink = true; break;
		case 'q': break;
		case 'h': printf("usage: kvmm img resize [-f fmt] [--shrink] FILE [+|-]SIZE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind + 2 != argc)
		return img_fail("resize: need a file and a size"), EXIT_USAGE;
	arg = argv[optind + 1];
	if (parse_size(arg + (*arg == '+' || *arg == '-'), &n) < 0)
		return img_fail("invalid size '%s'", arg);
	if (img_open(argv[optind], fmt, true, true, &img))
		return EXIT_ERR;
	cur = image_size(img);
	if (*arg == '+' && n > UINT64_MAX - cur) {
		/* Wrapping around would shrink the image instead. */
		image_close(img);
		return img_fail("size '%s' is too large", arg);
	}
	if (*arg == '+')
		size = cur + n;
	else if (*arg == '-')
		size = n > cur ? 0 : cur - n;
	else
		size = n;
	if (size < cur && !shrink && img->format != IMAGE_FMT_RAW) {
		image_close(img);
		return img_fail("use the --shrink option to shrink an image (data past the new end is lost)");
	}
	if (!img->ops->truncate || img->ops->truncate(img, size, true, &e) < 0) {
		image_close(img);
		return img_fail("%s", e.msg[0] ? e.msg : "resize not supported");
	}
	image_close(img);
	printf("Image resized.\n");
	return EXIT_OK;
}

