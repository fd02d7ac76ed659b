// SPDX-License-Identifier: MIT
/* img.c: `kvmm img`: create, info, check, convert, resize, map, snapshot, commit, rebase (qemu-img compatible). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "block/block.h"
#include "block/qcow2.h"
#include "cli/cli.h"

#define IMG_EXIT_CORRUPT 2
#define IMG_EXIT_LEAKS 3

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("kvmm img: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_ERR;
}

/* --output human|json: 0, or EXIT_ERR after saying why. */
static int parse_output(const char *arg, bool *json)
{
	if (strcmp(arg, "json") && strcmp(arg, "human"))
		return fail("--output must be human or json");
	*json = !strcmp(arg, "json");
	return 0;
}

/* ---- progress bar (stderr, only on a terminal) ---- */

struct progress {
	bool on;
	int last;
};

static void progress_init(struct progress *p, bool want)
{
	p->on = want && isatty(2);
	p->last = -1;
}

static void progress_show(struct progress *p, uint64_t done, uint64_t total)
{
	int pct = total ? (int)(done * 100 / total) : 100;

	if (!p->on || pct == p->last)
		return;
	p->last = pct;
	fprintf(stderr, "\r    (%3d.00/100%%)", pct);
	fflush(stderr);
}

static void progress_end(struct progress *p)
{
	if (p->on) {
		progress_show(p, 1, 1);
		fputc('\n', stderr);
	}
}

static void progress_cb(void *opaque, uint64_t done, uint64_t total)
{
	progress_show(opaque, done, total);
}

/* ---- helpers ---- */

static int open_image(const char *path, const char *fmt, bool rw, bool no_backing, struct image **img)
{
	struct image_open_opts o = { .read_only = !rw, .no_backing = no_backing };
	struct err e = { { 0 } };

	if (fmt && image_format_parse(fmt, &o.format) < 0)
		return fail("unknown format '%s' (raw or qcow2)", fmt);
	if (image_open(path, &o, img, &e) < 0)
		return fail("%s", e.msg);
	return 0;
}

static bool opt_bool(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
		*out = true;
		return true;
	}
	if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
		*out = false;
		return true;
	}
	return false;
}

/* -o key=value,key=value for qcow2 creation. */
static int parse_create_opts(char *s, struct image_create_opts *co)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		char *v = strchr(tok, '=');
		uint64_t n;

		if (!v)
			return fail("option '%s' needs a value (key=value)", tok);
		*v++ = '\0';
		if (!strcmp(tok, "cluster_size")) {
			if (parse_size(v, &n) < 0 || n > 2 * MiB)
				return fail("invalid cluster_size '%s'", v);
			co->cluster_size = (unsigned)n;
		} else if (!strcmp(tok, "compat")) {
			if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
				co->compat = 2;
			else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
				co->compat = 3;
			else
				return fail("invalid compat '%s' (0.10 or 1.1)", v);
		} else if (!strcmp(tok, "refcount_bits")) {
			if (parse_u64(v, 1, 64, &n) < 0)
				return fail("invalid refcount_bits '%s'", v);
			co->refcount_bits = (unsigned)n;
		} else if (!strcmp(tok, "lazy_refcounts")) {
			if (!opt_bool(v, &co->lazy_refcounts))
				return fail("invalid lazy_refcounts '%s'", v);
		} else if (!strcmp(tok, "compression_type")) {
			if (!strcmp(v, "zstd"))
				co->zstd = true;
			else if (!strcmp(v, "zlib"))
				co->zstd = false;
			else
				return fail("invalid compression_type '%s' (zlib or zstd)", v);
		} else if (!strcmp(tok, "extended_l2")) {
			bool b;
			if (!opt_bool(v, &b))
				return fail("invalid extended_l2 '%s'", v);
			if (b)
				return fail("creating images with extended_l2=on is not supported");
		} else if (!strcmp(tok, "backing_file")) {
			co->backing = v;
		} else if (!strcmp(tok, "backing_fmt")) {
			if (image_format_parse(v, &co->backing_format) < 0)
				return fail("unknown backing format '%s'", v);
		} else if (!strcmp(tok, "preallocation")) {
			if (strcmp(v, "off"))
				return fail("only preallocation=off is supported");
		} else {
			return fail("unknown option '%s'", tok);
		}
	}
	return 0;
}

static void print_size_human(uint64_t n, char *out, size_t len)
{
	static const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)n;
	int i = 0;

	while (v >= 1024 && i < 6) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(out, len, "%" PRIu64 " B", n);
	else
		snprintf(out, len, "%.3g %s", v, u[i]);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

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
		*zero = (st.flags & IMAGE_ST_ZERO) && !(st.flags & IMAGE_ST_DATA);
		return 0;
	}
	if (!img->backing || off >= image_size(img->backing)) {
		*zero = true;
		return 0;
	}
	return chain_zero(img->backing, off, MIN(*pnum, image_size(img->backing) - off), pnum, zero);
}

/* ---- create ---- */

static int img_create(int argc, char **argv)
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
				return fail("unknown format '%s' (raw or qcow2)", optarg);
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
	if (opts && parse_create_opts(opts, &co))
		return EXIT_ERR;
	if (bfmt && image_format_parse(bfmt, &co.backing_format) < 0)
		return fail("unknown backing format '%s'", bfmt);
	if (optind >= argc)
		return fail("create: missing file name"), EXIT_USAGE;
	if (optind + 1 < argc) {
		if (parse_size(argv[optind + 1], &co.size) < 0)
			return fail("invalid size '%s'", argv[optind + 1]);
	} else if (!co.backing) {
		return fail("create: missing size"), EXIT_USAGE;
	}
	if (co.backing && co.format != IMAGE_FMT_QCOW2)
		return fail("a backing file needs -f qcow2");
	if (image_create(argv[optind], &co, &e) < 0)
		return fail("%s", e.msg);
	return EXIT_OK;
}

/* ---- info ---- */

static void fmt_date(uint32_t sec, char *out, size_t len)
{
	time_t t = sec;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void print_snapshots_human(struct qcow2 *q)
{
	printf("ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\n");
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		struct qcow2_snapshot *s = &q->snaps[i];
		char date[32], vms[32];
		uint64_t ns = s->vm_clock_nsec;

		fmt_date(s->date_sec, date, sizeof(date));
		print_size_human(s->vm_state_size, vms, sizeof(vms));
		printf("%-9s %-17s %7s %s %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64 " %10u\n",
		       s->id, s->name, vms, date, (uint64_t)(ns / 3600000000000ull),
		       (uint64_t)(ns / 60000000000ull % 60), (uint64_t)(ns / 1000000000ull % 60),
		       (uint64_t)(ns / 1000000ull % 1000), 0);
	}
}

static int img_info(int argc, char **argv)
{
	static const struct option lo[] = { { "output", required_argument, NULL, 'O' },
					    { "help", no_argument, NULL, 'h' }, { 0 } };
	const char *fmt = NULL;
	bool json = false;
	struct image *img;
	struct qcow2 *q;
	char buf[64];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:Uh", lo, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'U': break;
		case 'O':
			if (parse_output(optarg, &json))
				return EXIT_ERR;
			break;
		case 'h': printf("usage: kvmm img info [-f fmt] [--output human|json] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return fail("info: missing file name"), EXIT_USAGE;
	if (open_image(argv[optind], fmt, false, true, &img))
		return EXIT_ERR;
	q = qcow2_of(img);
	if (json) {
		printf("{\n");
		if (q && q->nb_snapshots) {
			printf("    \"snapshots\": [\n");
			for (uint32_t i = 0; i < q->nb_snapshots; i++) {
				struct qcow2_snapshot *s = &q->snaps[i];

				printf("        {\n            \"icount\": 0,\n            \"vm-clock-nsec\": %" PRIu64
				       ",\n            \"name\": ",
				       (uint64_t)(s->vm_clock_nsec % 1000000000ull));
				json_str(stdout, s->name);
				printf(",\n            \"date-sec\": %u,\n            \"date-nsec\": %u,\n"
				       "            \"vm-clock-sec\": %" PRIu64 ",\n            \"id\": ",
				       s->date_sec, s->date_nsec, (uint64_t)(s->vm_clock_nsec / 1000000000ull));
				json_str(stdout, s->id);
				printf(",\n            \"vm-state-size\": %" PRIu64 "\n        }%s\n", s->vm_state_size,
				       i + 1 < q->nb_snapshots ? "," : "");
			}
			printf("    ],\n");
		}
		if (img->backing_name && img->backing_format != IMAGE_FMT_AUTO)
			printf("    \"backing-filename-format\": \"%s\",\n", image_format_name(img->backing_format));
		printf("    \"virtual-size\": %" PRIu64 ",\n    \"filename\": ", image_size(img));
		json_str(stdout, img->path);
		if (q)
			printf(",\n    \"cluster-size\": %" PRIu64, q->cluster_size);
		printf(",\n    \"format\": \"%s\",\n    \"actual-size\": %" PRIu64, image_format_name(img->format),
		       image_actual_size(img));
		if (q) {
			printf(",\n    \"format-specific\": {\n        \"type\": \"qcow2\",\n        \"data\": {\n");
			if (q->version >= 3)
				printf("            \"compat\": \"1.1\",\n            \"compression-type\": \"%s\",\n"
				       "            \"lazy-refcounts\": %s,\n            \"refcount-bits\": %u,\n"
				       "            \"corrupt\": %s,\n            \"extended-l2\": %s\n",
				       q->compression_type ? "zstd" : "zlib",
				       q->compat & QCOW2_COMPAT_LAZY_REFCOUNTS ? "true" : "false",
				       1u << q->refcount_order, q->incompat & QCOW2_INCOMPAT_CORRUPT ? "true" : "false",
				       q->ext_l2 ? "true" : "false");
			else
				printf("            \"compat\": \"0.10\",\n            \"compression-type\": \"zlib\",\n"
				       "            \"refcount-bits\": 16\n");
			printf("        }\n    }");
		}
		if (img->backing_name) {
			char *full = NULL;

			if (img->backing_name[0] == '/' || !strcmp(img->dir, "."))
				full = strdup(img->backing_name);
			else if (asprintf(&full, "%s/%s", img->dir, img->backing_name) < 0)
				full = NULL;
			printf(",\n    \"full-backing-filename\": ");
			json_str(stdout, full ? full : img->backing_name);
			printf(",\n    \"backing-filename\": ");
			json_str(stdout, img->backing_name);
			free(full);
		}
		if (q)
			printf(",\n    \"dirty-flag\": %s", q->incompat & QCOW2_INCOMPAT_DIRTY ? "true" : "false");
		printf("\n}\n");
	} else {
		printf("image: %s\nfile format: %s\n", img->path, image_format_name(img->format));
		print_size_human(image_size(img), buf, sizeof(buf));
		printf("virtual size: %s (%" PRIu64 " bytes)\n", buf, image_size(img));
		print_size_human(image_actual_size(img), buf, sizeof(buf));
		printf("disk size: %s\n", buf);
		if (q)
			printf("cluster_size: %" PRIu64 "\n", q->cluster_size);
		if (img->backing_name) {
			printf("backing file: %s\n", img->backing_name);
			if (img->backing_format != IMAGE_FMT_AUTO)
				printf("backing file format: %s\n", image_format_name(img->backing_format));
		}
		if (q && q->nb_snapshots) {
			printf("Snapshot list:\n");
			print_snapshots_human(q);
		}
		if (q) {
			printf("Format specific information:\n    compat: %s\n    compression type: %s\n",
			       q->version >= 3 ? "1.1" : "0.10", q->compression_type ? "zstd" : "zlib");
			if (q->version >= 3)
				printf("    lazy refcounts: %s\n", q->compat & QCOW2_COMPAT_LAZY_REFCOUNTS ? "true" : "false");
			printf("    refcount bits: %u\n", 1u << q->refcount_order);
			if (q->version >= 3)
				printf("    corrupt: %s\n    extended l2: %s\n",
				       q->incompat & QCOW2_INCOMPAT_CORRUPT ? "true" : "false",
				       q->ext_l2 ? "true" : "false");
		}
	}
	image_close(img);
	return EXIT_OK;
}

/* ---- check ---- */

static int img_check(int argc, char **argv)
{
	static const struct option lo[] = { { "output", required_argument, NULL, 'O' },
					    { "help", no_argument, NULL, 'h' }, { 0 } };
	struct qcow2_check_result r;
	struct image_open_opts o = { .read_only = true, .no_backing = true, .for_check = true };
	struct progress pr;
	bool json = false, want_progress = false;
	unsigned fix = 0;
	struct image *img;
	struct err e = { { 0 } };
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:r:pqUh", lo, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (image_format_parse(optarg, &o.format) < 0)
				return fail("unknown format '%s'", optarg);
			break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				fix = QCOW2_FIX_LEAKS;
			else if (!strcmp(optarg, "all"))
				fix = QCOW2_FIX_LEAKS | QCOW2_FIX_ERRORS;
			else
				return fail("-r must be leaks or all");
			break;
		case 'p': want_progress = true; break;
		case 'q': case 'U': break;
		case 'O':
			if (parse_output(optarg, &json))
				return EXIT_ERR;
			break;
		case 'h': printf("usage: kvmm img check [-f fmt] [-r leaks|all] [-p] [--output human|json] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return fail("check: missing file name"), EXIT_USAGE;
	o.read_only = fix == 0;
	if (image_open(argv[optind], &o, &img, &e) < 0)
		return fail("%s", e.msg);
	if (!qcow2_of(img)) {
		image_close(img);
		return fail("%s: this image format does not support checks", argv[optind]), 63;
	}
	progress_init(&pr, want_progress);
	ret = qcow2_check(img, fix, &r, json ? NULL : stderr, progress_cb, &pr, &e);
	if (want_progress)
		progress_end(&pr);
	if (ret < 0) {
		image_close(img);
		return fail("%s", e.msg);
	}
	if (json) {
		printf("{\n    \"image-end-offset\": %" PRIu64 ",\n    \"total-clusters\": %" PRIu64 ",\n",
		       r.image_end_offset, r.total_clusters);
		if (r.allocated_clusters)
			printf("    \"allocated-clusters\": %" PRIu64 ",\n    \"fragmented-clusters\": %" PRIu64
			       ",\n    \"compressed-clusters\": %" PRIu64 ",\n",
			       r.allocated_clusters, r.fragmented_clusters, r.compressed_clusters);
		printf("    \"check-errors\": %" PRIu64 ",\n", r.check_errors);
		if (r.leaks)
			printf("    \"leaks\": %" PRIu64 ",\n", r.leaks);
		if (r.corruptions)
			printf("    \"corruptions\": %" PRIu64 ",\n", r.corruptions);
		if (r.leaks_fixed)
			printf("    \"leaks-fixed\": %" PRIu64 ",\n", r.leaks_fixed);
		if (r.corruptions_fixed)
			printf("    \"corruptions-fixed\": %" PRIu64 ",\n", r.corruptions_fixed);
		printf("    \"filename\": ");
		json_str(stdout, img->path);
		printf(",\n    \"format\": \"qcow2\"\n}\n");
	} else {
		if (r.leaks_fixed || r.corruptions_fixed)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n"
			       "Double checking the fixed image now...\n",
			       r.leaks_fixed, r.corruptions_fixed);
		if (!r.corruptions && !r.leaks && !r.check_errors)
			printf("No errors were found on the image.\n");
		if (r.corruptions)
			printf("\n%" PRIu64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt it.\n",
			       r.corruptions);
		if (r.leaks)
			printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n", r.leaks);
		if (r.total_clusters && r.allocated_clusters)
			printf("%" PRIu64 "/%" PRIu64 " = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters\n",
			       r.allocated_clusters, r.total_clusters,
			       r.allocated_clusters * 100.0 / r.total_clusters,
			       r.fragmented_clusters * 100.0 / r.allocated_clusters,
			       r.compressed_clusters * 100.0 / r.allocated_clusters);
		printf("Image end offset: %" PRIu64 "\n", r.image_end_offset);
	}
	image_close(img);
	if (r.corruptions)
		return IMG_EXIT_CORRUPT;
	if (r.leaks)
		return IMG_EXIT_LEAKS;
	return EXIT_OK;
}

/* ---- convert ---- */

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

static int img_convert(int argc, char **argv)
{
	static const struct option lo[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	struct image_create_opts co = { .format = IMAGE_FMT_RAW };
	const char *ifmt = NULL, *src, *dst;
	char *opts = NULL;
	bool compress = false, want_progress = false;
	struct image *in = NULL, *out = NULL;
	struct progress pr;
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
				return fail("unknown format '%s' (raw or qcow2)", optarg);
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
		return fail("convert: need an input and an output file"), EXIT_USAGE;
	src = argv[optind];
	dst = argv[optind + 1];
	if (opts && parse_create_opts(opts, &co))
		return EXIT_ERR;
	if (compress && co.format != IMAGE_FMT_QCOW2)
		return fail("compression (-c) needs -O qcow2");
	if (co.backing)
		return fail("convert -B is not supported");
	if (open_image(src, ifmt, false, false, &in))
		return EXIT_ERR;
	size = image_size(in);
	co.size = size;
	if (image_create(dst, &co, &e) < 0) {
		fail("%s", e.msg);
		goto out;
	}
	{
		struct image_open_opts oo = { .format = co.format };

		if (image_open(dst, &oo, &out, &e) < 0) {
			fail("%s", e.msg);
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
		fail("out of memory");
		goto out;
	}
	progress_init(&pr, want_progress);
	for (uint64_t off = 0; off < size;) {
		uint64_t len = MIN(chunk, size - off), pnum;
		bool zero;

		progress_show(&pr, off, size);
		/* Skip what the source says reads as zeroes: the new image already does. */
		ret = chain_zero(in, off, len, &pnum, &zero);
		if (ret < 0) {
			ret = fail("%s: %s", src, strerror(-ret));
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
			ret = fail("%s: read error at %" PRIu64 ": %s", src, off, strerror(-ret));
			goto out;
		}
		if (compress && len >= blk) {
			uint64_t whole = ALIGN_DOWN(len, blk);

			ret = convert_compressed(out, off, buf, whole, zbuf, zlen);
			if (ret < 0) {
				ret = fail("%s: write error at %" PRIu64 ": %s", dst, off, strerror(-ret));
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
				ret = fail("%s: write error at %" PRIu64 ": %s", dst, off + o, strerror(-ret));
				goto out;
			}
		}
		off += len;
	}
	ret = image_flush(out);
	if (ret < 0) {
		ret = fail("%s: flush: %s", dst, strerror(-ret));
		goto out;
	}
	if (want_progress)
		progress_end(&pr);
	ret = EXIT_OK;
out:
	free(buf);
	free(zbuf);
	free(zlen);
	image_close(out);
	image_close(in);
	return ret;
}

/* ---- resize ---- */

static int img_resize(int argc, char **argv)
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
		return fail("resize: need a file and a size"), EXIT_USAGE;
	arg = argv[optind + 1];
	if (parse_size(arg + (*arg == '+' || *arg == '-'), &n) < 0)
		return fail("invalid size '%s'", arg);
	if (open_image(argv[optind], fmt, true, true, &img))
		return EXIT_ERR;
	cur = image_size(img);
	if (*arg == '+' && n > UINT64_MAX - cur) {
		/* Wrapping around would shrink the image instead. */
		image_close(img);
		return fail("size '%s' is too large", arg);
	}
	if (*arg == '+')
		size = cur + n;
	else if (*arg == '-')
		size = n > cur ? 0 : cur - n;
	else
		size = n;
	if (size < cur && !shrink && img->format != IMAGE_FMT_RAW) {
		image_close(img);
		return fail("use the --shrink option to shrink an image (data past the new end is lost)");
	}
	if (!img->ops->truncate || img->ops->truncate(img, size, true, &e) < 0) {
		image_close(img);
		return fail("%s", e.msg[0] ? e.msg : "resize not supported");
	}
	image_close(img);
	printf("Image resized.\n");
	return EXIT_OK;
}

/* ---- map ---- */

struct map_ext {
	uint64_t start, length, offset;
	int depth;
	bool present, zero, data, has_offset;
};

static void map_print(const struct map_ext *m, bool json, bool *first)
{
	if (json) {
		printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %d, \"present\": %s, "
		       "\"zero\": %s, \"data\": %s",
		       *first ? "[" : ",\n", m->start, m->length, m->depth, m->present ? "true" : "false",
		       m->zero ? "true" : "false", m->data ? "true" : "false");
		if (m->has_offset)
			printf(", \"offset\": %" PRIu64, m->offset);
		printf("}");
	} else if (m->data && m->has_offset) {
		printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", m->start, m->length, m->offset, "");
	}
	*first = false;
}

static int map_one(struct image *top, uint64_t off, uint64_t len, struct map_ext *m)
{
	struct image *img = top;
	int depth = 0;

	for (;;) {
		struct image_status st;
		uint64_t pnum;
		int ret;

		if (off >= image_size(img)) {
			*m = (struct map_ext){ .start = off, .length = len, .depth = depth, .zero = true };
			return 0;
		}
		ret = image_block_status(img, off, len, &pnum, &st);
		if (ret < 0)
			return ret;
		if (st.flags & IMAGE_ST_ALLOCATED) {
			*m = (struct map_ext){
				.start = off, .length = pnum, .depth = depth, .present = true,
				.zero = (st.flags & IMAGE_ST_ZERO) && !(st.flags & IMAGE_ST_DATA),
				.data = st.flags & IMAGE_ST_DATA,
				.has_offset = (st.flags & IMAGE_ST_DATA || img->format == IMAGE_FMT_RAW) &&
					      !(st.flags & IMAGE_ST_COMPRESSED),
				.offset = st.host_offset,
			};
			return 0;
		}
		if (!img->backing) {
			*m = (struct map_ext){ .start = off, .length = pnum, .depth = depth, .zero = true };
			return 0;
		}
		len = pnum;
		img = img->backing;
		depth++;
	}
}

static int img_map(int argc, char **argv)
{
	static const struct option lo[] = { { "output", required_argument, NULL, 'O' },
					    { "help", no_argument, NULL, 'h' }, { 0 } };
	const char *fmt = NULL;
	bool json = false, first = true, have = false;
	struct image *img;
	struct map_ext cur = { 0 }, m;
	uint64_t size;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:Uh", lo, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'U': break;
		case 'O':
			if (parse_output(optarg, &json))
				return EXIT_ERR;
			break;
		case 'h': printf("usage: kvmm img map [-f fmt] [--output human|json] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return fail("map: missing file name"), EXIT_USAGE;
	if (open_image(argv[optind], fmt, false, false, &img))
		return EXIT_ERR;
	if (!json)
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	size = image_size(img);
	for (uint64_t off = 0; off < size; off += m.length) {
		ret = map_one(img, off, MIN(size - off, 1ull << 30), &m);
		if (ret < 0) {
			image_close(img);
			return fail("%s: %s", argv[optind], strerror(-ret));
		}
		if (have && cur.depth == m.depth && cur.present == m.present && cur.zero == m.zero &&
		    cur.data == m.data && cur.has_offset == m.has_offset &&
		    (!m.has_offset || cur.offset + cur.length == m.offset)) {
			cur.length += m.length;
			continue;
		}
		if (have)
			map_print(&cur, json, &first);
		cur = m;
		have = true;
	}
	if (have)
		map_print(&cur, json, &first);
	if (json)
		printf("%s]\n", first ? "[" : "");
	image_close(img);
	return EXIT_OK;
}

/* ---- snapshot ---- */

static int img_snapshot(int argc, char **argv)
{
	const char *name = NULL;
	char op = 'l';
	struct image *img;
	struct err e = { { 0 } };
	int c, ret = 0;

	optind = 1;
	while ((c = getopt(argc, argv, "c:a:d:lqUh")) != -1) {
		switch (c) {
		case 'c': case 'a': case 'd': op = (char)c; name = optarg; break;
		case 'l': op = 'l'; break;
		case 'q': case 'U': break;
		case 'h': printf("usage: kvmm img snapshot [-l | -c NAME | -a NAME | -d NAME] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return fail("snapshot: missing file name"), EXIT_USAGE;
	if (open_image(argv[optind], NULL, op != 'l', true, &img))
		return EXIT_ERR;
	if (!qcow2_of(img)) {
		image_close(img);
		return fail("%s: snapshots need a qcow2 image", argv[optind]);
	}
	switch (op) {
	case 'l':
		if (qcow2_of(img)->nb_snapshots) {
			printf("Snapshot list:\n");
			print_snapshots_human(qcow2_of(img));
		}
		break;
	case 'c': ret = qcow2_snapshot_create(img, name, &e); break;
	case 'a': ret = qcow2_snapshot_apply(img, name, &e); break;
	case 'd': ret = qcow2_snapshot_delete(img, name, &e); break;
	}
	image_close(img);
	if (ret < 0)
		return fail("%s", e.msg);
	return EXIT_OK;
}

/* ---- commit, rebase ---- */

static int img_commit(int argc, char **argv)
{
	struct image_open_opts to = { .read_only = false, .no_backing = true }, bo = { 0 };
	struct image *top = NULL, *base = NULL;
	bool keep = false, want_progress = false;
	struct progress pr;
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
				return fail("unknown format '%s'", optarg);
			break;
		case 'd': keep = true; break;
		case 'p': want_progress = true; break;
		case 'q': break;
		case 'h': printf("usage: kvmm img commit [-f fmt] [-d] [-p] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return fail("commit: missing file name"), EXIT_USAGE;
	to.read_only = keep;
	if (image_open(argv[optind], &to, &top, &e) < 0)
		return fail("%s", e.msg);
	if (!top->backing_name) {
		fail("%s: image has no backing file", argv[optind]);
		goto out;
	}
	bpath = image_backing_path(top, top->backing_name);
	bo.format = top->backing_format;
	if (!bpath || image_open(bpath, &bo, &base, &e) < 0) {
		fail("%s", bpath ? e.msg : "out of memory");
		goto out;
	}
	size = image_size(top);
	if (image_size(base) < size) {
		if (!base->ops->truncate || base->ops->truncate(base, size, false, &e) < 0) {
			fail("%s", e.msg);
			goto out;
		}
	}
	buf = malloc(2 * MiB);
	if (!buf) {
		fail("out of memory");
		goto out;
	}
	progress_init(&pr, want_progress);
	/* Copy what the top layer defines (data or zeroes) into the backing image. */
	for (uint64_t off = 0, pnum; off < size; off += pnum) {
		struct image_status st;

		progress_show(&pr, off, size);
		ret = image_block_status(top, off, MIN(size - off, 2 * MiB), &pnum, &st);
		if (ret < 0)
			break;
		if (!(st.flags & IMAGE_ST_ALLOCATED))
			continue;
		if ((st.flags & IMAGE_ST_ZERO) && !(st.flags & IMAGE_ST_DATA))
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
		ret = fail("commit failed: %s", strerror(-ret));
		goto out;
	}
	if (want_progress)
		progress_end(&pr);
	printf("Image committed.\n");
	ret = EXIT_OK;
out:
	free(buf);
	free(bpath);
	image_close(base);
	image_close(top);
	return ret;
}

static int img_rebase(int argc, char **argv)
{
	struct image_open_opts to = { 0 }, no = { .read_only = true };
	const char *nb = NULL, *nf = NULL;
	enum image_format nfmt = IMAGE_FMT_AUTO;
	bool unsafe = false, want_progress = false;
	struct image *top = NULL, *nbimg = NULL;
	struct progress pr;
	struct err e = { { 0 } };
	uint8_t *a = NULL, *b = NULL;
	char *npath = NULL;
	int c, ret = EXIT_ERR;

	optind = 1;
	while ((c = getopt(argc, argv, "f:b:F:upqh")) != -1) {
		switch (c) {
		case 'f':
			if (image_format_parse(optarg, &to.format) < 0)
				return fail("unknown format '%s'", optarg);
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
		return fail("rebase: need -b BACKING (\"\" for none) and a file"), EXIT_USAGE;
	if (nf && image_format_parse(nf, &nfmt) < 0)
		return fail("unknown format '%s'", nf);
	to.no_backing = unsafe;
	if (image_open(argv[optind], &to, &top, &e) < 0)
		return fail("%s", e.msg);
	if (!qcow2_of(top)) {
		fail("%s: rebase needs a qcow2 image", argv[optind]);
		goto out;
	}
	if (!unsafe) {
		uint64_t size = image_size(top), nsize = 0;

		if (*nb) {
			npath = image_backing_path(top, nb);
			no.format = nfmt;
			if (!npath || image_open(npath, &no, &nbimg, &e) < 0) {
				fail("%s", npath ? e.msg : "out of memory");
				goto out;
			}
			nsize = image_size(nbimg);
		}
		a = malloc(2 * MiB);
		b = malloc(2 * MiB);
		if (!a || !b) {
			fail("out of memory");
			goto out;
		}
		progress_init(&pr, want_progress);
		/* Where the top layer shows its backing, keep what it showed if the new one differs. */
		for (uint64_t off = 0, pnum; off < size; off += pnum) {
			struct image_status st;

			progress_show(&pr, off, size);
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
			ret = fail("rebase failed: %s", strerror(-ret));
			goto out;
		}
		if (want_progress)
			progress_end(&pr);
	}
	if (qcow2_set_backing(top, *nb ? nb : NULL, nfmt, &e) < 0) {
		fail("%s", e.msg);
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

/* ---- the table ---- */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} img_cmds[] = {
	{ "create", img_create, "create an image: -f raw|qcow2 [-o opts] [-b backing -F fmt] FILE SIZE" },
	{ "info", img_info, "describe an image [--output json]" },
	{ "check", img_check, "check refcounts [-r leaks|all]" },
	{ "convert", img_convert, "copy between formats [-O fmt] [-c] IN OUT" },
	{ "resize", img_resize, "change the virtual size [--shrink] FILE [+|-]SIZE" },
	{ "map", img_map, "show how the virtual disk maps to the file [--output json]" },
	{ "snapshot", img_snapshot, "internal snapshots: -l | -c NAME | -a NAME | -d NAME" },
	{ "commit", img_commit, "write an overlay into its backing file [-d keeps the overlay]" },
	{ "rebase", img_rebase, "change the backing file [-u unsafe] -b NEW [-F fmt] FILE" },
};

int cmd_img(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		printf("usage: kvmm img COMMAND [OPTIONS]\n\ncommands:\n");
		for (size_t i = 0; i < ARRAY_SIZE(img_cmds); i++)
			printf("  %-9s %s\n", img_cmds[i].name, img_cmds[i].summary);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(img_cmds); i++)
		if (!strcmp(argv[1], img_cmds[i].name))
			return img_cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "kvmm img: unknown command '%s' (try 'kvmm img help')\n", argv[1]);
	return EXIT_USAGE;
}
