// SPDX-License-Identifier: MIT
/* test_decompress.c: unit tests for kernel_decompress: round trips, limits, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "arch/x86/boot.h"
#include "base/err.h"
#include "base/util.h"
#include "compress.h"

enum fmt { F_GZIP, F_XZ, F_LZMA, F_ZSTD, F_LZ4, F_COUNT };
static const char *const fmt_name[F_COUNT] = { "gzip", "xz", "lzma", "zstd", "lz4" };

/* Compressible but not trivial: text with a counter mixed in. */
static uint8_t *make_data(size_t n)
{
	uint8_t *p = malloc(n);
	uint32_t x = 12345;

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (i % 7 == 0) ? (uint8_t)(x >> 24) : (uint8_t)("kvmm kernel "[i % 12]);
	}
	return p;
}

static size_t lzma_enc(const uint8_t *in, size_t n, uint8_t *out, size_t cap, bool alone)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	size_t got;

	if (!alone) {
		size_t pos = 0;

		assert_int_equal(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC32, NULL, in, n, out, &pos,
							 cap),
				 LZMA_OK);
		return pos;
	}
	assert_false(lzma_lzma_preset(&opt, 1));
	assert_int_equal(lzma_alone_encoder(&s, &opt), LZMA_OK);
	s.next_in = in;
	s.avail_in = n;
	s.next_out = out;
	s.avail_out = cap;
	assert_int_equal(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
	got = cap - s.avail_out;
	lzma_end(&s);
	return got;
}

static size_t encode(enum fmt f, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	switch (f) {
	case F_GZIP:
		return compress_gzip(in, n, out, cap, 6);
	case F_XZ:
		return lzma_enc(in, n, out, cap, false);
	case F_LZMA:
		return lzma_enc(in, n, out, cap, true);
	case F_ZSTD: {
		size_t r = ZSTD_compress(out, cap, in, n, 3);

		assert_false(ZSTD_isError(r));
		return r;
	}
	case F_LZ4:
	default:
		return compress_lz4_legacy(in, n, out, cap);
	}
}

/* Compress n bytes, append the kernel build's 4-byte size trailer, and return the blob. */
static uint8_t *compressed(enum fmt f, const uint8_t *in, size_t n, size_t *clen)
{
	size_t cap = n + n / 8 + 64 * KiB;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	*clen = encode(f, in, n, out, cap - 4);
	compress_put_le32(out, clen, (uint32_t)n);
	return out;
}

static void round_trip(enum fmt f, size_t n)
{
	uint8_t *data = make_data(n), *c, *out = NULL;
	size_t clen, olen = 0;
	const char *method = NULL;
	struct err e = { { 0 } };

	c = compressed(f, data, n, &clen);
	assert_int_equal(kernel_decompress(c, clen, n, &out, &olen, &method, &e), 0);
	assert_string_equal(method, fmt_name[f]);
	assert_int_equal(olen, n);
	assert_memory_equal(out, data, n);
	free(out);

	/* One byte less room than needed: refused, nothing returned. */
	out = (uint8_t *)1;
	assert_int_equal(kernel_decompress(c, clen, n - 1, &out, &olen, &method, &e), -EFBIG);
	assert_null(out);
	assert_non_null(strstr(e.msg, "larger than"));
	assert_non_null(strstr(e.msg, fmt_name[f]));

	/* Truncated streams are errors, whatever the cut (the trailer excluded). */
	for (size_t cut = 1; cut < clen - 4; cut += 1 + (clen - 4) / 40) {
		int r = kernel_decompress(c, cut, n, &out, &olen, &method, &e);

		if (r == 0) {
			/* lz4 stops cleanly at a block boundary: a shorter result, never more. */
			assert_int_equal(f, F_LZ4);
			assert_true(olen < n);
			free(out);
		} else {
			assert_true(r == -EINVAL);
			assert_null(out);
		}
	}
	free(c);
	free(data);
}

static void test_gzip(void **state)
{
	round_trip(F_GZIP, 1 * MiB + 17);
}

static void test_xz(void **state)
{
	round_trip(F_XZ, 1 * MiB + 5);
}

static void test_lzma(void **state)
{
	round_trip(F_LZMA, 1 * MiB + 3);
}

static void test_zstd(void **state)
{
	round_trip(F_ZSTD, 1 * MiB + 1);
}

/* More than two 8 MiB blocks. */
static void test_lz4(void **state)
{
	round_trip(F_LZ4, 9 * MiB + 99);
}

static void test_lz4_small(void **state)
{
	round_trip(F_LZ4, 4096);
}

static void test_lz4_corrupt(void **state)
{
	uint8_t *data = make_data(64 * KiB), *c, *out;
	size_t clen, olen;
	struct err e;

	c = compressed(F_LZ4, data, 64 * KiB, &clen);
	/* Block size larger than what follows. */
	c[4] = 0xff, c[5] = 0xff, c[6] = 0x7f;
	assert_int_equal(kernel_decompress(c, clen, 1 * MiB, &out, &olen, NULL, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "lz4"));
	free(c);

	/* Garbage in the block body. */
	c = compressed(F_LZ4, data, 64 * KiB, &clen);
	memset(c + 8, 0xff, clen - 12);
	assert_int_equal(kernel_decompress(c, clen, 1 * MiB, &out, &olen, NULL, &e), -EINVAL);
	free(c);

	/* Magic only: no data. */
	assert_int_equal(kernel_decompress((const uint8_t *)"\x02\x21\x4c\x18", 4, 1 * MiB, &out,
					   &olen, NULL, &e),
			 -EINVAL);
	free(data);
}

/* A second legacy magic inside the stream starts a new frame (concatenated lz4 -l output). */
static void test_lz4_concatenated(void **state)
{
	uint8_t *data = make_data(100 * KiB), *a, *b, *cat, *out;
	size_t alen, blen, olen;
	struct err e;

	a = compressed(F_LZ4, data, 50 * KiB, &alen);
	b = compressed(F_LZ4, data + 50 * KiB, 50 * KiB, &blen);
	cat = malloc(alen + blen);
	memcpy(cat, a, alen - 4); /* drop the first trailer */
	memcpy(cat + alen - 4, b, blen);
	assert_int_equal(kernel_decompress(cat, alen - 4 + blen, 1 * MiB, &out, &olen, NULL, &e), 0);
	assert_int_equal(olen, 100 * KiB);
	assert_memory_equal(out, data, 100 * KiB);
	free(out);
	free(cat);
	free(a);
	free(b);
	free(data);
}

static void test_garbage_after_magic(void **state)
{
	static const uint8_t magics[F_COUNT][6] = {
		{ 0x1f, 0x8b }, { 0xfd, '7', 'z', 'X', 'Z', 0 }, { 0x5d, 0, 0 },
		{ 0x28, 0xb5, 0x2f, 0xfd }, { 0x02, 0x21, 0x4c, 0x18 },
	};
	uint8_t buf[4096];
	uint8_t *out;
	size_t olen;
	struct err e;

	for (int f = 0; f < F_COUNT; f++) {
		uint32_t x = 7;

		for (size_t i = 0; i < sizeof(buf); i++) {
			x = x * 1664525u + 1013904223u;
			buf[i] = (uint8_t)(x >> 24);
		}
		memcpy(buf, magics[f], sizeof(magics[f]));
		/* An lzma header asks for a dictionary: keep it sane so the data is what fails. */
		if (f == F_LZMA)
			memcpy(buf, "\x5d\x00\x00\x10\x00\xff\xff\xff\xff\xff\xff\xff\xff", 13);
		out = (uint8_t *)1;
		assert_int_equal(kernel_decompress(buf, sizeof(buf), 1 * MiB, &out, &olen, NULL, &e),
				 -EINVAL);
		assert_null(out);
		assert_true(e.msg[0] != '\0');
	}
}

static void test_unknown_and_unsupported(void **state)
{
	uint8_t *out;
	size_t olen;
	struct err e;

	assert_int_equal(kernel_decompress((const uint8_t *)"\x7f" "ELF", 4, 1 * MiB, &out, &olen,
					   NULL, &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "unknown compression"));
	assert_int_equal(kernel_decompress((const uint8_t *)"BZh91AY", 7, 1 * MiB, &out, &olen,
					   NULL, &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "bzip2"));
	assert_int_equal(kernel_decompress((const uint8_t *)"", 0, 1 * MiB, &out, &olen, NULL, &e),
			 -EINVAL);
	assert_int_equal(kernel_decompress((const uint8_t *)"\x1f", 1, 1 * MiB, &out, &olen, NULL, &e),
			 -EINVAL);
	assert_int_equal(kernel_decompress(NULL, 0, 1 * MiB, &out, &olen, NULL, &e), -EINVAL);
}

/* A tiny input that expands hugely is stopped at the limit (a decompression bomb). */
static void test_bomb(void **state)
{
	size_t n = 16 * MiB, clen;
	uint8_t *zero = calloc(1, n), *out;
	size_t olen;
	struct err e;

	assert_non_null(zero);
	for (int f = 0; f < F_COUNT; f++) {
		uint8_t *c = compressed(f, zero, n, &clen);

		assert_true(clen < n / 100);
		assert_int_equal(kernel_decompress(c, clen, 1 * MiB, &out, &olen, NULL, &e), -EFBIG);
		free(c);
	}
	free(zero);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_xz),
		cmocka_unit_test(test_lzma),
		cmocka_unit_test(test_zstd),
		cmocka_unit_test(test_lz4),
		cmocka_unit_test(test_lz4_small),
		cmocka_unit_test(test_lz4_corrupt),
		cmocka_unit_test(test_lz4_concatenated),
		cmocka_unit_test(test_garbage_after_magic),
		cmocka_unit_test(test_unknown_and_unsupported),
		cmocka_unit_test(test_bomb),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
