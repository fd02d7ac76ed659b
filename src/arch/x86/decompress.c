// SPDX-License-Identifier: MIT
/* decompress.c: host-side decompression of a bzImage payload (gzip, xz, lzma, zstd, lz4 legacy). */
#include "arch/x86/boot.h"
#include "base/err.h"
#include "base/util.h"

#include <errno.h>
#include <limits.h>
#include <lz4.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* The memory a decoder may use for its dictionary/window (the kernel's own need less). */
#define DEC_MEMLIMIT (256 * MiB)
#define ZSTD_WINDOWLOG_LIMIT 27

/*
 * Linux's lz4 payload is the LZ4 "legacy frame" (lib/decompress_unlz4.c):
 * a magic, then blocks each preceded by their 32-bit LE compressed size,
 * each inflating to at most 8 MiB.
 */
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8 * MiB)

/* A growing output buffer that never holds more than max bytes of result. */
struct obuf {
	uint8_t *p;
	size_t len, cap, max;
};

/*
 * Make room for at least `room` more bytes, never growing past hard_cap
 * (then less room is given); -EFBIG once the buffer is already hard_cap.
 * Streaming decoders use max + 1 as the hard cap, so that a result of
 * exactly max bytes can still be told from one that does not fit.
 */
static int ob_grow(struct obuf *ob, size_t room, size_t hard_cap)
{
	size_t want, ncap;
	uint8_t *np;

	if (ob->cap - ob->len >= room)
		return 0;
	if (ob->cap >= hard_cap)
		return -EFBIG;
	want = ob->len + room;
	ncap = ob->cap ? ob->cap : 1 * MiB;
	while (ncap < want && ncap < hard_cap / 2)
		ncap *= 2;
	if (ncap < want)
		ncap = hard_cap;
	ncap = MIN(ncap, hard_cap);
	np = realloc(ob->p, ncap);
	if (!np)
		return -ENOMEM;
	ob->p = np;
	ob->cap = ncap;
	return 0;
}

static int too_big(struct obuf *ob, const char *method, struct err *e)
{
	if (ob->max >= MiB)
		return err_set(e, EFBIG, "%s: decompressed kernel is larger than %llu MiB", method,
			       (unsigned long long)(ob->max / MiB));
	return err_set(e, EFBIG, "%s: decompressed kernel is larger than %zu bytes", method,
		       ob->max);
}

static int do_gzip(const uint8_t *in, size_t len, struct obuf *ob, struct err *e)
{
	z_stream s;
	int zr, ret = 0;

	if (len > UINT_MAX)
		return err_set(e, EINVAL, "gzip: input too large");
	memset(&s, 0, sizeof(s));
	/* 16 + MAX_WBITS: accept the gzip wrapper only (RFC 1952). */
	if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK)
		return err_set(e, ENOMEM, "gzip: cannot initialise zlib");
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)len;
	for (;;) {
		size_t room;

		ret = ob_grow(ob, 1, ob->max + 1);
		if (ret == -EFBIG) {
			ret = too_big(ob, "gzip", e);
			break;
		} else if (ret < 0) {
			ret = err_set(e, ENOMEM, "gzip: out of memory");
			break;
		}
		room = MIN(ob->cap - ob->len, (size_t)UINT_MAX);
		s.next_out = ob->p + ob->len;
		s.avail_out = (uInt)room;
		zr = inflate(&s, Z_NO_FLUSH);
		ob->len += room - s.avail_out;
		if (ob->len > ob->max) {
			ret = too_big(ob, "gzip", e);
			break;
		}
		if (zr == Z_STREAM_END) {
			ret = 0;
			break;
		}
		if (zr == Z_BUF_ERROR && s.avail_out == 0)
			continue; /* output full: grow */
		if (zr != Z_OK) {
			ret = err_set(e, EINVAL, "gzip: %s", zr == Z_BUF_ERROR ? "truncated data" :
						  s.msg ? s.msg : "corrupt data");
			break;
		}
		if (s.avail_in == 0 && s.avail_out != 0) {
			ret = err_set(e, EINVAL, "gzip: truncated data");
			break;
		}
	}
	inflateEnd(&s);
	return ret;
}

static int do_lzma(const uint8_t *in, size_t len, bool alone, struct obuf *ob, struct err *e)
{
	lzma_stream s = LZMA_STREAM_INIT;
	const char *name = alone ? "lzma" : "xz";
	lzma_ret lr;
	int ret;

	lr = alone ? lzma_alone_decoder(&s, DEC_MEMLIMIT) : lzma_stream_decoder(&s, DEC_MEMLIMIT, 0);
	if (lr != LZMA_OK)
		return err_set(e, ENOMEM, "%s: cannot initialise liblzma", name);
	s.next_in = in;
	s.avail_in = len;
	for (;;) {
		size_t room;

		ret = ob_grow(ob, 1, ob->max + 1);
		if (ret == -EFBIG) {
			ret = too_big(ob, name, e);
			break;
		} else if (ret < 0) {
			ret = err_set(e, ENOMEM, "%s: out of memory", name);
			break;
		}
		room = ob->cap - ob->len;
		s.next_out = ob->p + ob->len;
		s.avail_out = room;
		/* LZMA_FINISH: all input is present; a short stream is an error, not a wait. */
		lr = lzma_code(&s, LZMA_FINISH);
		ob->len += room - s.avail_out;
		if (ob->len > ob->max) {
			ret = too_big(ob, name, e);
			break;
		}
		if (lr == LZMA_STREAM_END) {
			ret = 0;
			break;
		}
		if (lr == LZMA_OK || (lr == LZMA_BUF_ERROR && s.avail_out == 0))
			continue;
		switch (lr) {
		case LZMA_MEMLIMIT_ERROR:
			ret = err_set(e, EINVAL, "%s: needs more than %llu MiB of dictionary", name,
				      DEC_MEMLIMIT / MiB);
			break;
		case LZMA_BUF_ERROR:
			ret = err_set(e, EINVAL, "%s: truncated data", name);
			break;
		case LZMA_MEM_ERROR:
			ret = err_set(e, ENOMEM, "%s: out of memory", name);
			break;
		default:
			ret = err_set(e, EINVAL, "%s: corrupt data (liblzma error %d)", name, (int)lr);
			break;
		}
		break;
	}
	lzma_end(&s);
	return ret;
}

static int do_zstd(const uint8_t *in, size_t len, struct obuf *ob, struct err *e)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	ZSTD_inBuffer ib = { in, len, 0 };
	size_t zr;
	int ret;

	if (!ds)
		return err_set(e, ENOMEM, "zstd: out of memory");
	/* Linux builds with zstd -22 --ultra: a 128 MiB window at most. */
	ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, ZSTD_WINDOWLOG_LIMIT);
	for (;;) {
		ZSTD_outBuffer obf;

		ret = ob_grow(ob, 1, ob->max + 1);
		if (ret == -EFBIG) {
			ret = too_big(ob, "zstd", e);
			break;
		} else if (ret < 0) {
			ret = err_set(e, ENOMEM, "zstd: out of memory");
			break;
		}
		obf.dst = ob->p + ob->len;
		obf.size = ob->cap - ob->len;
		obf.pos = 0;
		zr = ZSTD_decompressStream(ds, &obf, &ib);
		ob->len += obf.pos;
		if (ob->len > ob->max) {
			ret = too_big(ob, "zstd", e);
			break;
		}
		if (ZSTD_isError(zr)) {
			ret = err_set(e, EINVAL, "zstd: %s", ZSTD_getErrorName(zr));
			break;
		}
		if (zr == 0) {
			ret = 0; /* first frame complete; the kernel's appended size follows */
			break;
		}
		if (ib.pos == ib.size && obf.pos < obf.size) {
			ret = err_set(e, EINVAL, "zstd: truncated data");
			break;
		}
	}
	ZSTD_freeDStream(ds);
	return ret;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int do_lz4(const uint8_t *in, size_t len, struct obuf *ob, struct err *e)
{
	size_t off = 4; /* past the magic */
	const size_t bound = (size_t)LZ4_compressBound((int)LZ4_LEGACY_BLOCK);

	while (len - off >= 4) {
		uint32_t csize = le32(in + off);
		int n;

		off += 4;
		if (csize == LZ4_LEGACY_MAGIC)
			continue; /* concatenated frames (lib/decompress_unlz4.c) */
		/*
		 * The kernel build appends the decompressed size (4 bytes) after
		 * the last block: a header with nothing after it ends the data.
		 */
		if (off == len)
			break;
		if (csize == 0 || csize > bound || csize > len - off)
			return err_set(e, EINVAL, "lz4: block of %u bytes at offset %zu is corrupt or "
				       "truncated", csize, off - 4);
		/* Room for a whole block; the limit is checked once its size is known. */
		if (ob_grow(ob, LZ4_LEGACY_BLOCK, ob->max + LZ4_LEGACY_BLOCK) < 0)
			return ob->len >= ob->max ? too_big(ob, "lz4", e) :
						    err_set(e, ENOMEM, "lz4: out of memory");
		n = LZ4_decompress_safe((const char *)in + off, (char *)ob->p + ob->len, (int)csize,
					(int)LZ4_LEGACY_BLOCK);
		if (n < 0)
			return err_set(e, EINVAL, "lz4: corrupt block at offset %zu", off - 4);
		ob->len += (size_t)n;
		if (ob->len > ob->max)
			return too_big(ob, "lz4", e);
		off += csize;
	}
	if (ob->len == 0)
		return err_set(e, EINVAL, "lz4: no data");
	return 0;
}

int kernel_decompress(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len,
		      const char **method, struct err *e)
{
	static const uint8_t gz[] = { 0x1f, 0x8b }, xz[] = { 0xfd, '7', 'z', 'X', 'Z', 0x00 },
			     lzma[] = { 0x5d, 0x00, 0x00 }, zst[] = { 0x28, 0xb5, 0x2f, 0xfd },
			     lz4[] = { 0x02, 0x21, 0x4c, 0x18 }, bz2[] = { 'B', 'Z', 'h' },
			     lzo[] = { 0x89, 'L', 'Z', 'O' };
	struct obuf ob = { .max = max };
	const char *m;
	int ret;

	*out = NULL;
	*out_len = 0;
	if (method)
		*method = NULL;
	if (!in || max == 0)
		return err_set(e, EINVAL, "nothing to decompress");
	/* Keep max + block slack far from overflow; no kernel is near 1 TiB. */
	ob.max = MIN(max, (size_t)1 << 40);
#define HAS(magic) (len >= sizeof(magic) && memcmp(in, magic, sizeof(magic)) == 0)
	if (HAS(gz)) {
		m = "gzip";
		ret = do_gzip(in, len, &ob, e);
	} else if (HAS(xz)) {
		m = "xz";
		ret = do_lzma(in, len, false, &ob, e);
	} else if (HAS(lzma)) {
		m = "lzma";
		ret = do_lzma(in, len, true, &ob, e);
	} else if (HAS(zst)) {
		m = "zstd";
		ret = do_zstd(in, len, &ob, e);
	} else if (HAS(lz4)) {
		m = "lz4";
		ret = do_lz4(in, len, &ob, e);
	} else if (HAS(bz2) || HAS(lzo)) {
		return err_set(e, EINVAL, "%s compressed kernels are not supported",
			       HAS(bz2) ? "bzip2" : "lzo");
	} else {
		return err_set(e, EINVAL, "unknown compression (magic %02x %02x %02x %02x)",
			       len > 0 ? in[0] : 0, len > 1 ? in[1] : 0, len > 2 ? in[2] : 0,
			       len > 3 ? in[3] : 0);
	}
#undef HAS
	if (ret < 0) {
		free(ob.p);
		return ret;
	}
	*out = ob.p;
	*out_len = ob.len;
	if (method)
		*method = m;
	return 0;
}
