// SPDX-License-Identifier: MIT
/* crash_writer.c: allocating writes + flushes until killed, and the verifier run afterwards.
 *   crash_writer write IMAGE LOG SEED   (runs until SIGKILL; LOG gets "ack G" after each flush)
 *   crash_writer verify IMAGE LOG SEED  (every acknowledged write must be there)
 * The writes are a pure function of (SEED, generation), so the verifier replays them. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "block/block.h"

#define SLOT 4096u
#define SECTOR 512u
#define PER_GEN 8

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t slot_of(uint64_t seed, uint64_t gen, int k, uint64_t nslots)
{
	return mix(seed * 1000003 + gen * 31 + (uint64_t)k) % nslots;
}

static void fill(uint8_t *b, uint64_t gen, uint64_t slot)
{
	memcpy(b, &gen, 8);
	memcpy(b + 8, &slot, 8);
	for (unsigned i = 16; i < SLOT; i++)
		b[i] = (uint8_t)(gen * 131 + slot * 7 + i);
}

/* Does generation gen write slot s? */
static bool gen_writes(uint64_t seed, uint64_t gen, uint64_t s, uint64_t nslots)
{
	for (int k = 0; k < PER_GEN; k++)
		if (slot_of(seed, gen, k, nslots) == s)
			return true;
	return false;
}

/*
 * Sector c of slot s (read into r) holds generation want or a later one that writes
 * s. The writer flushes every 4 generations and logs the acknowledgement after
 * that, so nothing past acked + 4 was ever written.
 */
static bool sector_ok(uint64_t seed, uint64_t s, uint64_t want, uint64_t acked, uint64_t nslots,
		      const uint8_t *r, unsigned c)
{
	uint8_t b[SLOT];

	for (uint64_t g = want; g <= acked + 4; g++) {
		if (g != want && !gen_writes(seed, g, s, nslots))
			continue;
		fill(b, g, s);
		if (!memcmp(b + c, r + c, SECTOR))
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct image_open_opts o = { 0 };
	struct image *img;
	struct err e = { { 0 } };
	uint64_t seed, nslots, gen;
	uint8_t b[SLOT], r[SLOT];

	if (argc != 5)
		return 2;
	seed = strtoull(argv[4], NULL, 0);
	o.read_only = !strcmp(argv[1], "verify");
	if (image_open(argv[2], &o, &img, &e) < 0) {
		fprintf(stderr, "crash_writer: %s\n", e.msg);
		return 1;
	}
	nslots = image_size(img) / SLOT;
	if (!strcmp(argv[1], "write")) {
		FILE *log = fopen(argv[3], "a");

		if (!log || image_aio_start(img, &e) < 0)
			return 1;
		for (gen = 1;; gen++) {
			for (int k = 0; k < PER_GEN; k++) {
				uint64_t s = slot_of(seed, gen, k, nslots);

				fill(b, gen, s);
				if (image_pwrite(img, s * SLOT, b, SLOT) < 0)
					return 1;
			}
			if (gen % 4 == 0) {
				if (image_flush(img) < 0)
					return 1;
				/* Only now is generation `gen` acknowledged. */
				fprintf(log, "ack %llu\n", (unsigned long long)gen);
				fflush(log);
			}
		}
	}
	/* verify */
	{
		FILE *log = fopen(argv[3], "r");
		uint64_t acked = 0, v, *want = calloc(nslots, 8);
		unsigned long long a;
		int bad = 0, torn = 0;

		while (log && fscanf(log, "ack %llu\n", &a) == 1)
			acked = a;
		for (gen = 1; gen <= acked; gen++)
			for (int k = 0; k < PER_GEN; k++)
				want[slot_of(seed, gen, k, nslots)] = gen;
		for (uint64_t s = 0; s < nslots; s++) {
			if (!want[s])
				continue;
			if (image_pread(img, s * SLOT, r, SLOT) < 0)
				return 1;
			memcpy(&v, r, 8);
			/* A later (unacknowledged) generation may have landed too. */
			if (v < want[s]) {
				fprintf(stderr, "slot %llu: generation %llu, acknowledged %llu\n",
					(unsigned long long)s, (unsigned long long)v, (unsigned long long)want[s]);
				bad++;
				continue;
			}
			/*
			 * A write that was not acknowledged may be torn where the driver splits
			 * it (a 4 KiB slot spans eight 512-byte clusters): each sector must hold
			 * the acknowledged generation or one written after it, never anything else.
			 */
			fill(b, v, s);
			if (memcmp(b, r, SLOT)) {
				torn++;
				for (unsigned c = 0; c < SLOT; c += SECTOR) {
					if (!sector_ok(seed, s, want[s], acked, nslots, r, c)) {
						fprintf(stderr, "slot %llu: contents damaged at byte %u\n",
							(unsigned long long)s, c);
						bad++;
						break;
					}
				}
			}
		}
		printf("verified %llu acknowledged generations, %d bad slots, %d torn unacknowledged writes\n",
		       (unsigned long long)acked, bad, torn);
		free(want);
		image_close(img);
		return bad ? 1 : 0;
	}
}
