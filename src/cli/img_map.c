// SPDX-License-Identifier: MIT
/* img_map.c: `kvmm img map`: how the virtual disk maps onto the chain's files, as qemu-img prints it. */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "base/util.h"
#include "cli/img_int.h"

struct map_ext {
	uint64_t start, length, offset;
	int depth;
	bool present, zero, data, has_offset;
};

static json_t *map_ext_json(const struct map_ext *m)
{
	json_t *o = json_object();
	int err = 0;

	err |= json_object_set_new(o, "start", img_json_u64(m->start));
	err |= json_object_set_new(o, "length", img_json_u64(m->length));
	err |= json_object_set_new(o, "depth", json_integer(m->depth));
	err |= json_object_set_new(o, "present", json_boolean(m->present));
	err |= json_object_set_new(o, "zero", json_boolean(m->zero));
	err |= json_object_set_new(o, "data", json_boolean(m->data));
	if (m->has_offset)
		err |= json_object_set_new(o, "offset", img_json_u64(m->offset));
	if (err) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The JSON form is an array written one extent at a time, one per line as qemu-img does:
 * a big fragmented image has millions of extents, too many to hold as one jansson array. */
static int map_print(const struct map_ext *m, bool json, bool *first)
{
	if (json) {
		json_t *o = map_ext_json(m);
		int ret;

		if (!o)
			return img_fail("out of memory");
		fputs(*first ? "[" : ",\n", stdout);
		ret = json_dumpf(o, stdout, JSON_PRESERVE_ORDER);
		json_decref(o);
		if (ret < 0)
			return img_fail("cannot write the JSON output");
	} else if (m->data && m->has_offset) {
		printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", m->start, m->length, m->offset, "");
	}
	*first = false;
	return 0;
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
				.zero = img_st_zero(&st),
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

int img_map(int argc, char **argv)
{
	const char *fmt = NULL;
	bool json = false, first = true, have = false;
	struct image *img;
	struct map_ext cur = { 0 }, m;
	uint64_t size;
	int c, ret;

	c = img_file_opts(argc, argv, "map", &fmt, &json);
	if (c >= 0)
		return c;
	if (img_open(argv[optind], fmt, false, false, &img))
		return EXIT_ERR;
	if (!json)
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	size = image_size(img);
	for (uint64_t off = 0; off < size; off += m.length) {
		ret = map_one(img, off, MIN(size - off, 1ull << 30), &m);
		if (ret < 0) {
			image_close(img);
			return img_fail("%s: %s", argv[optind], strerror(-ret));
		}
		if (have && cur.depth == m.depth && cur.present == m.present && cur.zero == m.zero &&
		    cur.data == m.data && cur.has_offset == m.has_offset &&
		    (!m.has_offset || cur.offset + cur.length == m.offset)) {
			cur.length += m.length;
			continue;
		}
		if (have && map_print(&cur, json, &first)) {
			image_close(img);
			return EXIT_ERR;
		}
		cur = m;
		have = true;
	}
	ret = have ? map_print(&cur, json, &first) : 0;
	if (!ret && json)
		printf("%s]\n", first ? "[" : "");
	image_close(img);
	return ret ? EXIT_ERR : EXIT_OK;
}

