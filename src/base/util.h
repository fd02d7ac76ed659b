/* SPDX-License-Identifier: MIT */
/* util.h: small helpers shared by every module. */
#ifndef KVMM_BASE_UTIL_H
#define KVMM_BASE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((uint64_t)(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a)-1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* True when [off, off+len) lies inside [0, size) without overflow. */
static inline bool range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/* Parse a size such as "512M", "2G", "4096", "64K". Returns 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);
/* Parse an unsigned decimal or 0x-hex integer with range [min, max]. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Read a whole file into a malloc'ed buffer, refusing files above max. */
int read_file(const char *path, size_t max, uint8_t **buf, size_t *len);
/* write() all bytes, retrying on EINTR/partial writes. */
int write_all(int fd, const void *buf, size_t len);
uint64_t time_ns(void);

#endif
