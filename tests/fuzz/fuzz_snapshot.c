// SPDX-License-Identifier: MIT
/* fuzz_snapshot.c: libFuzzer harness: a snapshot's state.bin and vm.json, as an attacker or a bad disk could write them, fed to snap_parse_state() and snap_parse_config(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/err.h"
#include "base/sbuf.h"
#include "config.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

/*
 * Input: byte 0 selects what the rest is.
 *   bit 0 clear: state.bin as is; set: the checksums are recomputed first (every
 *     section's crc32 and the END section's), so the fuzzer reaches the checks behind
 *     them and the round trip below sees many accepted records.
 *   bit 1 set: the rest is vm.json instead.
 * An accepted state record must be exactly what snap_encode_state() writes for the
 * sections it yielded: anything else in an accepted file is damage that went unnoticed.
 */

#define SEC_HDR 24 /* u32 type, u32 index, u64 len, u32 crc, u32 reserved */
#define FILE_HDR 24 /* magic[8], u32 version, u32 nsections, u64 mem_size */
#define END_TYPE 0xffffu

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Recompute the checksums in place, walking the record as a writer would lay it out. */
static void fix_checksums(uint8_t *b, size_t len)
{
	size_t off = FILE_HDR;

	while (off + SEC_HDR <= len) {
		uint32_t type = rd32(b + off), crc;
		uint64_t n = rd64(b + off + 8);

		if (type == END_TYPE) {
			crc = (uint32_t)crc32(0, b, (uInt)off);
			memcpy(b + off + 16, &crc, 4);
			return;
		}
		if (n > len - off - SEC_HDR)
			return;
		crc = (uint32_t)crc32(0, b + off + SEC_HDR, (uInt)n);
		memcpy(b + off + 16, &crc, 4);
		off += SEC_HDR + n;
	}
}

static void check_state(const uint8_t *data, size_t size, int fix)
{
	struct snap_state st;
	struct sbuf secs = { 0 }, all = { 0 };
	struct err e = { "" };
	uint8_t *buf = malloc(size ? size : 1);
	unsigned i;

	if (!buf)
		return;
	memcpy(buf, data, size);
	if (fix)
		fix_checksums(buf, size);
	/* snap_parse_state owns buf from here, on failure too. */
	if (snap_parse_state(buf, size, &st, &e)) {
		if (!e.msg[0] || strchr(e.msg, '\n'))
			abort(); /* a refusal says why, on one line */
		if (st.buf || st.sec)
			abort(); /* freed on failure */
		return;
	}
	/* Every section lies inside the buffer, and snap_find finds what the list holds. */
	for (i = 0; i < st.n; i++) {
		const struct snap_section_view *s = &st.sec[i];

		if (s->data < st.buf || s->len > st.len ||
		    (size_t)(s->data - st.buf) > st.len - s->len)
			abort();
		if (!snap_find(&st, s->type, s->index))
			abort();
		if (snap_add(&secs, s->type, s->index, s->data, s->len))
			abort();
	}
	/* Round trip: the accepted file is the canonical encoding of its sections. */
	if (snap_encode_state(&secs, st.mem_size, &all))
		abort();
	if (all.len != st.len || memcmp(all.data, st.buf, st.len)) {
		size_t k = 0;

		while (k < st.len && k < all.len && all.data[k] == st.buf[k])
			k++;
		fprintf(stderr, "accepted state record differs from its re-encoding at byte %zu "
			"(%zu vs %zu bytes)\n", k, st.len, all.len);
		abort();
	}
	sbuf_free(&secs);
	sbuf_free(&all);
	snap_state_free(&st);
}

static void check_config(const uint8_t *data, size_t size)
{
	static struct vm_config cfg, again;
	struct err e = { "" };
	char *json;
	unsigned i;

	memset(&cfg, 0, sizeof(cfg));
	if (snap_parse_config((const char *)data, size, &cfg, &e)) {
		if (!e.msg[0])
			abort();
		free_config(&cfg);
		return;
	}
	/* What the VM builder relies on. */
	if (cfg.ncpus < 1 || cfg.mem.size < 16ULL << 20 || cfg.mem.size % 4096 ||
	    cfg.ndisks > VM_MAX_DISKS)
		abort();
	for (i = 0; i < cfg.ndisks; i++)
		if (!cfg.disks[i].path || cfg.disks[i].queues < 1 || cfg.disks[i].queues > 16)
			abort();
	/* What a source writes, a destination reads back the same. */
	json = snap_config_json(&cfg);
	if (!json)
		abort();
	memset(&again, 0, sizeof(again));
	if (snap_parse_config(json, strlen(json), &again, &e)) {
		fprintf(stderr, "re-encoded configuration refused: %s\n%s\n", e.msg, json);
		abort();
	}
	if (again.ncpus != cfg.ncpus || again.mem.size != cfg.mem.size ||
	    again.ndisks != cfg.ndisks || again.rng != cfg.rng)
		abort();
	for (i = 0; i < cfg.ndisks; i++)
		if (strcmp(again.disks[i].path, cfg.disks[i].path) ||
		    again.disks[i].read_only != cfg.disks[i].read_only ||
		    again.disks[i].queues != cfg.disks[i].queues)
			abort();
	free(json);
	free_config(&again);
	free_config(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	if (mode & 2)
		check_config(data, size);
	else
		check_state(data, size, mode & 1);
	return 0;
}
