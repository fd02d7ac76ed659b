// SPDX-License-Identifier: MIT
/* img_info.c: `kvmm img info` and `kvmm img check`, in qemu-img's human and JSON formats. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"
#include "cli/img_int.h"

/* qemu-img's ImageInfo, with its key order. */
static json_t *snapshot_json(const struct qcow2_snapshot *s)
{
	json_t *o = json_object();
	int err = 0;

	err |= json_object_set_new(o, "icount", json_integer(0));
	err |= json_object_set_new(o, "vm-clock-nsec", img_json_u64(s->vm_clock_nsec % 1000000000ull));
	err |= json_object_set_new(o, "name", img_json_string(s->name));
	err |= json_object_set_new(o, "date-sec", json_integer(s->date_sec));
	err |= json_object_set_new(o, "date-nsec", json_integer(s->date_nsec));
	err |= json_object_set_new(o, "vm-clock-sec", img_json_u64(s->vm_clock_nsec / 1000000000ull));
	err |= json_object_set_new(o, "id", img_json_string(s->id));
	err |= json_object_set_new(o, "vm-state-size", img_json_u64(s->vm_state_size));
	if (err) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *qcow2_specific_json(const struct qcow2 *q)
{
	if (q->version < 3)
		return json_pack("{s:s, s:s, s:i}", "compat", "0.10", "compression-type", "zlib",
				 "refcount-bits", 16);
	return json_pack("{s:s, s:s, s:b, s:i, s:b, s:b}", "compat", "1.1", "compression-type",
			 q->compression_type ? "zstd" : "zlib", "lazy-refcounts",
			 !!(q->compat & QCOW2_COMPAT_LAZY_REFCOUNTS), "refcount-bits",
			 1 << q->refcount_order, "corrupt", !!(q->incompat & QCOW2_INCOMPAT_CORRUPT),
			 "extended-l2", (int)q->ext_l2);
}

static json_t *info_json(struct image *img)
{
	const struct qcow2 *q = qcow2_of(img);
	json_t *o = json_object();
	int err = 0;

	if (q && q->nb_snapshots) {
		json_t *snaps = json_array();

		for (uint32_t i = 0; i < q->nb_snapshots; i++)
			err |= json_array_append_new(snaps, snapshot_json(&q->snaps[i]));
		err |= json_object_set_new(o, "snapshots", snaps);
	}
	if (img->backing_name && img->backing_format != IMAGE_FMT_AUTO)
		err |= json_object_set_new(o, "backing-filename-format",
					   json_string(image_format_name(img->backing_format)));
	err |= json_object_set_new(o, "virtual-size", img_json_u64(image_size(img)));
	err |= json_object_set_new(o, "filename", img_json_string(img->path));
	if (q)
		err |= json_object_set_new(o, "cluster-size", img_json_u64(q->cluster_size));
	err |= json_object_set_new(o, "format", json_string(image_format_name(img->format)));
	err |= json_object_set_new(o, "actual-size", img_json_u64(image_actual_size(img)));
	if (q)
		err |= json_object_set_new(o, "format-specific",
					   json_pack("{s:s, s:o}", "type", "qcow2", "data", qcow2_specific_json(q)));
	if (img->backing_name) {
		char *full = image_backing_path(img, img->backing_name);

		err |= json_object_set_new(o, "full-backing-filename", full ? img_json_string(full) : NULL);
		err |= json_object_set_new(o, "backing-filename", img_json_string(img->backing_name));
		free(full);
	}
	if (q)
		err |= json_object_set_new(o, "dirty-flag", json_boolean(q->incompat & QCOW2_INCOMPAT_DIRTY));
	if (err) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void info_human(struct image *img)
{
	const struct qcow2 *q = qcow2_of(img);
	char buf[64];

	printf("image: %s\nfile format: %s\n", img->path, image_format_name(img->format));
	img_size_human(image_size(img), buf, sizeof(buf));
	printf("virtual size: %s (%" PRIu64 " bytes)\n", buf, image_size(img));
	img_size_human(image_actual_size(img), buf, sizeof(buf));
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
		img_print_snapshots_human(q);
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

int img_info(int argc, char **argv)
{
	const char *fmt = NULL;
	bool json = false;
	struct image *img;
	int c, ret = EXIT_OK;

	c = img_file_opts(argc, argv, "info", &fmt, &json);
	if (c >= 0)
		return c;
	if (img_open(argv[optind], fmt, false, true, &img))
		return EXIT_ERR;
	if (json)
		ret = img_json_print(info_json(img), JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	else
		info_human(img);
	image_close(img);
	return ret;
}

/* ---- check ---- */

/* qemu-img's ImageCheck, with its key order: counts that are zero are left out. */
static json_t *check_json(const struct qcow2_check_result *r, const char *path)
{
	json_t *o = json_object();
	int err = 0;

	err |= json_object_set_new(o, "image-end-offset", img_json_u64(r->image_end_offset));
	err |= json_object_set_new(o, "total-clusters", img_json_u64(r->total_clusters));
	if (r->allocated_clusters) {
		err |= json_object_set_new(o, "allocated-clusters", img_json_u64(r->allocated_clusters));
		err |= json_object_set_new(o, "fragmented-clusters", img_json_u64(r->fragmented_clusters));
		err |= json_object_set_new(o, "compressed-clusters", img_json_u64(r->compressed_clusters));
	}
	err |= json_object_set_new(o, "check-errors", img_json_u64(r->check_errors));
	if (r->leaks)
		err |= json_object_set_new(o, "leaks", img_json_u64(r->leaks));
	if (r->corruptions)
		err |= json_object_set_new(o, "corruptions", img_json_u64(r->corruptions));
	if (r->leaks_fixed)
		err |= json_object_set_new(o, "leaks-fixed", img_json_u64(r->leaks_fixed));
	if (r->corruptions_fixed)
		err |= json_object_set_new(o, "corruptions-fixed", img_json_u64(r->corruptions_fixed));
	err |= json_object_set_new(o, "filename", img_json_string(path));
	err |= json_object_set_new(o, "format", json_string("qcow2"));
	if (err) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int img_check(int argc, char **argv)
{
	static const struct option lo[] = { { "output", required_argument, NULL, 'O' },
					    { "help", no_argument, NULL, 'h' }, { 0 } };
	struct qcow2_check_result r;
	struct image_open_opts o = { .read_only = true, .no_backing = true, .for_check = true };
	struct img_progress pr;
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
				return img_fail("unknown format '%s'", optarg);
			break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				fix = QCOW2_FIX_LEAKS;
			else if (!strcmp(optarg, "all"))
				fix = QCOW2_FIX_LEAKS | QCOW2_FIX_ERRORS;
			else
				return img_fail("-r must be leaks or all");
			break;
		case 'p': want_progress = true; break;
		case 'q': case 'U': break;
		case 'O':
			if (img_parse_output(optarg, &json))
				return EXIT_ERR;
			break;
		case 'h': printf("usage: kvmm img check [-f fmt] [-r leaks|all] [-p] [--output human|json] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return img_fail("check: missing file name"), EXIT_USAGE;
	o.read_only = fix == 0;
	if (image_open(argv[optind], &o, &img, &e) < 0)
		return img_fail("%s", e.msg);
	if (!qcow2_of(img)) {
		image_close(img);
		return img_fail("%s: this image format does not support checks", argv[optind]), 63;
	}
	img_progress_init(&pr, want_progress);
	ret = qcow2_check(img, fix, &r, json ? NULL : stderr, img_progress_cb, &pr, &e);
	if (want_progress)
		img_progress_end(&pr);
	if (ret < 0) {
		image_close(img);
		return img_fail("%s", e.msg);
	}
	if (json) {
		ret = img_json_print(check_json(&r, img->path), JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	} else {
		ret = 0;
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
	if (ret)
		return ret;
	if (r.corruptions)
		return IMG_EXIT_CORRUPT;
	if (r.leaks)
		return IMG_EXIT_LEAKS;
	return EXIT_OK;
}

