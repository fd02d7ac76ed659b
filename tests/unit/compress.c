// SPDX-License-Identifier: MIT
/* compress.c: compressors for the unit tests that feed kernel_decompress (compress.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lz4.h>
#include <string.h>
#include <zlib.h>

#include "base/util.h"
#include "compress.h"

void compress_put_le32(uint8_t *p, size_t *len, uint32_t v)
{
	p[(*len)++] = (uint8_t)v;
	p[(*len)++] = (uint8_t)(v >> 8);
	p[(*len)++] = (uint8_t)(v >> 16);
	p[(*len)++] = (uint8_t)(v >> 24);
}

size_t compress_gzip(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int level)
{
	z_stream s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(deflateInit2(&s, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
			 Z_OK);
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)n;
	s.next_out = out;
	s.avail_out = (uInt)cap;
	assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
	deflateEnd(&s);
	return s.total_out;
}

size_t compress_lz4_legacy(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	size_t len = 0, off = 0;

	compress_put_le32(out, &len, 0x184c2102);
	while (off < n) {
		int chunk = (int)MIN(n - off, 8 * MiB);
		int c = LZ4_compress_default((const char *)in + off, (char *)out + len + 4, chunk,
					     (int)(cap - len - 4));

		assert_true(c > 0);
		compress_put_le32(out, &len, (uint32_t)c);
		len += (size_t)c;
		off += (size_t)chunk;
	}
	return len;
}
