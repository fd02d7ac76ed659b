/* SPDX-License-Identifier: MIT */
/* compress.h: compressors for the unit tests that feed kernel_decompress (test_boot.c,
 * test_decompress.c); each fails the running cmocka test on an encoder error. */
#ifndef KVMM_TESTS_UNIT_COMPRESS_H
#define KVMM_TESTS_UNIT_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

/* Appends v, little-endian, at p + *len and advances *len by 4. */
void compress_put_le32(uint8_t *p, size_t *len, uint32_t v);
/* n bytes of in as one gzip member at zlib level 0-9 into out (cap bytes): its length. */
size_t compress_gzip(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int level);
/* n bytes of in as an LZ4 legacy frame (lz4 -l, as Linux's build writes it: 8 MiB blocks)
 * into out (cap bytes), without the kernel build's size trailer: its length. */
size_t compress_lz4_legacy(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

#endif
