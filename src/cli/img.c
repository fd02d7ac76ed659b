// SPDX-License-Identifier: MIT
/* img.c: `kvmm img` (qemu-img compatible): the subcommand table and the helpers its files share. */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "cli/img_int.h"

int img_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("kvmm img: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_ERR;
}

int img_parse_output(const char *arg, bool *json)
{
	if (strcmp(arg, "json") && strcmp(arg, "human"))
		return img_fail("--output must be human or json");
	*json = !strcmp(arg, "json");
	return 0;
}

int img_open(const char *path, const char *fmt, bool rw, bool no_backing, struct image **img)
{
	struct image_open_opts o = { .read_only = !rw, .no_backing = no_backing };
	struct err e = { { 0 } };

	if (fmt && image_format_parse(fmt, &o.format) < 0)
		return img_fail("unknown format '%s' (raw or qcow2)", fmt);
	if (image_open(path, &o, img, &e) < 0)
		return img_fail("%s", e.msg);
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

int img_parse_create_opts(char *s, struct image_create_opts *co)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		char *v = strchr(tok, '=');
		uint64_t n;

		if (!v)
			return img_fail("option '%s' needs a value (key=value)", tok);
		*v++ = '\0';
		if (!strcmp(tok, "cluster_size")) {
			if (parse_size(v, &n) < 0 || n > 2 * MiB)
				return img_fail("invalid cluster_size '%s'", v);
			co->cluster_size = (unsigned)n;
		} else if (!strcmp(tok, "compat")) {
			if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
				co->compat = 2;
			else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
				co->compat = 3;
			else
				return img_fail("invalid compat '%s' (0.10 or 1.1)", v);
		} else if (!strcmp(tok, "refcount_bits")) {
			if (parse_u64(v, 1, 64, &n) < 0)
				return img_fail("invalid refcount_bits '%s'", v);
			co->refcount_bits = (unsigned)n;
		} else if (!strcmp(tok, "lazy_refcounts")) {
			if (!opt_bool(v, &co->lazy_refcounts))
				return img_fail("invalid lazy_refcounts '%s'", v);
		} else if (!strcmp(tok, "compression_type")) {
			if (!strcmp(v, "zstd"))
				co->zstd = true;
			else if (!strcmp(v, "zlib"))
				co->zstd = false;
			else
				return img_fail("invalid compression_type '%s' (zlib or zstd)", v);
		} else if (!strcmp(tok, "extended_l2")) {
			bool b;
			if (!opt_bool(v, &b))
				return img_fail("invalid extended_l2 '%s'", v);
			if (b)
				return img_fail("creating images with extended_l2=on is not supported");
		} else if (!strcmp(tok, "backing_file")) {
			co->backing = v;
		} else if (!strcmp(tok, "backing_fmt")) {
			if (image_format_parse(v, &co->backing_format) < 0)
				return img_fail("unknown backing format '%s'", v);
		} else if (!strcmp(tok, "preallocation")) {
			if (strcmp(v, "off"))
				return img_fail("only preallocation=off is supported");
		} else {
			return img_fail("unknown option '%s'", tok);
		}
	}
	return 0;
}

void img_size_human(uint64_t n, char *out, size_t len)
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

/* ---- progress ---- */

void img_progress_init(struct img_progress *p, bool want)
{
	p->on = want && isatty(2);
	p->last = -1;
}

void img_progress_show(struct img_progress *p, uint64_t done, uint64_t total)
{
	int pct = total ? (int)(done * 100 / total) : 100;

	if (!p->on || pct == p->last)
		return;
	p->last = pct;
	fprintf(stderr, "\r    (%3d.00/100%%)", pct);
	fflush(stderr);
}

void img_progress_end(struct img_progress *p)
{
	if (p->on) {
		img_progress_show(p, 1, 1);
		fputc('\n', stderr);
	}
}

void img_progress_cb(void *opaque, uint64_t done, uint64_t total)
{
	img_progress_show(opaque, done, total);
}

/* ---- JSON ---- */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates,
 * nothing past U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

json_t *img_json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	json_t *j = json_string(s);
	char *fixed, *o;

	if (j)
		return j;
	/* Not UTF-8 (or out of memory): each bad byte becomes U+FFFD (3 bytes). */
	fixed = malloc(strlen(s) * 3 + 1);
	if (!fixed)
		return NULL;
	for (o = fixed; *p;) {
		size_t n = utf8_len(p);

		if (n) {
			memcpy(o, p, n);
			o += n;
			p += n;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			p++;
		}
	}
	*o = '\0';
	j = json_string(fixed);
	free(fixed);
	return j;
}

json_t *img_json_u64(uint64_t v)
{
	return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

int img_json_print(json_t *v, size_t flags)
{
	int ret;

	if (!v)
		return img_fail("out of memory");
	ret = json_dumpf(v, stdout, flags);
	json_decref(v);
	if (ret < 0 || fputc('\n', stdout) == EOF)
		return img_fail("cannot write the JSON output");
	return 0;
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

int img_file_opts(int argc, char **argv, const char *name, const char **fmt, bool *json)
{
	static const struct option lo[] = { { "output", required_argument, NULL, 'O' },
					    { "help", no_argument, NULL, 'h' }, { 0 } };
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:Uh", lo, NULL)) != -1) {
		switch (c) {
		case 'f': *fmt = optarg; break;
		case 'U': break;
		case 'O':
			if (img_parse_output(optarg, json))
				return EXIT_ERR;
			break;
		case 'h': printf("usage: kvmm img %s [-f fmt] [--output human|json] FILE\n", name); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return img_fail("%s: missing file name", name), EXIT_USAGE;
	return -1;
}
