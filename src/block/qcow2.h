/* SPDX-License-Identifier: MIT */
/* qcow2.h: the qcow2 driver's internal state, shared by its files (see QEMU docs/interop/qcow2.txt). */
#ifndef KVMM_BLOCK_QCOW2_H
#define KVMM_BLOCK_QCOW2_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

/* Header feature bits (spec: "Header", bytes 72-95). */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

/* Header extension types. */
#define QCOW2_EXT_END 0
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* Table entry bits. */
#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_RT_OFFSET_MASK 0xfffffffffffffe00ull

/* Sanity limits on header values (QEMU uses the same orders of magnitude). */
#define QCOW2_MAX_L1_BYTES (32u * 1024 * 1024)
#define QCOW2_MAX_REFTABLE_BYTES (8u * 1024 * 1024)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_BACKING_NAME 1023u
#define QCOW2_MAX_SIZE (1ull << 56)

/* Where a cache entry is: unused, on the clean or dirty LRU list (every entry in use, pinned
 * or not), or in none (dropped while pinned, or between lists). */
enum qcow2_ce_where { QCOW2_CE_NONE, QCOW2_CE_FREE, QCOW2_CE_CLEAN, QCOW2_CE_DIRTY };

struct qcow2_cache_entry {
	uint64_t offset; /* 0: unused */
	uint8_t *buf;
	uint64_t lru;	 /* tick of the last get */
	struct qcow2_cache *cache;
	int next;	 /* hash chain */
	int prev_lru, next_lru; /* neighbours on the clean or dirty list, -1: none */
	unsigned pins;
	bool dirty;
	uint8_t where; /* enum qcow2_ce_where */
};

/* Entries in use, least recently used (lowest lru) first. */
struct qcow2_lru_list {
	int head, tail;
};

/*
 * Lookup is a hash on the table offset. Choosing a victim is O(1) on average too: the
 * lowest-numbered unused entry (a bitmap), else the first unpinned entry of the clean
 * list, else of the dirty list: the same choice a scan of every entry for "unused, else
 * least recently used clean, else least recently used dirty" makes. A pinned entry made
 * dirty changes lists when it is put back; a hit moves the entry to its list's tail.
 */
struct qcow2_cache {
	struct qcow2_cache_entry *e;
	int *bucket;
	uint64_t *freemap; /* bit i: entry i is unused and unpinned */
	unsigned nfree;
	struct qcow2_lru_list clean, dirty;
	unsigned n, nbuckets;
	size_t cs;
	uint64_t tick;
	bool is_l2; /* dirty L2 tables need the ordered flush before eviction */
};

struct qcow2_snapshot {
	uint64_t l1_offset;
	uint32_t l1_size;
	char *id, *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size;
	uint64_t disk_size;
	uint32_t extra_size;
	uint8_t *extra; /* extra data kept verbatim beyond what we parse */
};

struct qcow2 {
	struct image *img;
	/* Header. */
	uint32_t version;
	unsigned cluster_bits;
	uint64_t cluster_size;
	uint64_t size;
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t reftable_offset;
	uint32_t reftable_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompat, compat, autoclear;
	unsigned refcount_order;
	uint32_t header_length;
	uint8_t compression_type; /* 0 zlib, 1 zstd */
	uint64_t backing_offset;
	uint32_t backing_len;
	/* Derived. */
	bool ext_l2;
	unsigned l2_entry_size; /* 8, or 16 with extended L2 */
	unsigned l2_bits;	/* log2 entries per L2 table */
	unsigned rb_bits;	/* log2 entries per refcount block */
	uint64_t refcount_max;
	unsigned csize_shift;	/* compressed descriptor: sector count position */
	uint64_t csize_mask, coffset_mask;
	/* Tables kept in memory (host order). */
	uint64_t *l1;
	uint64_t *reftable;
	uint64_t reftable_size; /* entries */
	bool l1_dirty, reftable_dirty;
	struct qcow2_snapshot *snaps;
	/* Allocation. */
	uint64_t alloc_end; /* first cluster index past everything in use or in the file */
	uint64_t free_hint;
	uint64_t comp_next; /* next free byte for packed compressed data, 0 = none */
	uint64_t *pending; /* clusters whose refcount drops after the next L2 flush */
	size_t npending, cap_pending;
	struct qcow2_cache l2c, rbc;
	/* Buffers. */
	uint8_t *cbuf, *dbuf; /* compressed input, decompressed cluster */
	uint64_t dbuf_entry;  /* L2 entry whose data is in dbuf, 0 = none */
	uint8_t *tmp;	      /* one cluster for copy-on-write */
	void *zstd_dctx;
	bool corrupt;
	bool writable;
};

/* qcow2_cache.c: entries are pinned between get and put; a dirty L2 table is only
 * evicted through qcow2_flush_meta (ordering), a dirty refcount block is written. */
int qcow2_cache_init(struct qcow2_cache *c, unsigned n, size_t cs, bool is_l2);
void qcow2_cache_fini(struct qcow2_cache *c);
int qcow2_cache_write(struct qcow2 *q, struct qcow2_cache *c);
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off);

/* qcow2.c */
int qcow2_cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, bool fill,
		    struct qcow2_cache_entry **out);
void qcow2_cache_put(struct qcow2_cache_entry *ce);
int qcow2_read_cluster_data(struct qcow2 *q, uint64_t guest_off, uint8_t *buf);
/* The cluster walk of readv and writev: fn gets each piece of the request, split at guest
 * cluster boundaries (it lies in one cluster); stops at the first error. */
int qcow2_for_each_piece(struct qcow2 *q, uint64_t off, const struct iovec *iov, int cnt,
			 int (*fn)(struct qcow2 *q, uint64_t off, void *p, size_t n));
int qcow2_l2_lookup(struct qcow2 *q, uint64_t guest_off, uint64_t *entry, uint64_t *bitmap);
int qcow2_mark_corrupt(struct qcow2 *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int qcow2_decompress(struct qcow2 *q, uint64_t entry, uint8_t *out);
void qcow2_free_state(struct qcow2 *q);
int qcow2_write_header_field(struct qcow2 *q, unsigned off, const void *be_val, size_t len);

static inline uint64_t qcow2_l2_entry(const struct qcow2 *q, const uint8_t *tbl, uint64_t i)
{
	return __builtin_bswap64(((const uint64_t *)(tbl))[i * (q->l2_entry_size / 8)]);
}
static inline uint64_t qcow2_l2_bitmap(const struct qcow2 *q, const uint8_t *tbl, uint64_t i)
{
	return q->ext_l2 ? __builtin_bswap64(((const uint64_t *)(tbl))[i * 2 + 1]) : 0;
}
static inline void qcow2_l2_set(const struct qcow2 *q, uint8_t *tbl, uint64_t i, uint64_t v)
{
	((uint64_t *)(tbl))[i * (q->l2_entry_size / 8)] = __builtin_bswap64(v);
}
/* A (standard) L2 entry that maps its cluster to plain data: allocated, not compressed, not zero. */
static inline bool qcow2_entry_is_plain(const struct qcow2 *q, uint64_t e)
{
	return (e & QCOW2_OFFSET_MASK) && !(e & QCOW2_OFLAG_COMPRESSED) &&
	       !((e & QCOW2_OFLAG_ZERO) && q->version >= 3);
}

/* qcow2_refcount.c */
uint64_t qcow2_rb_get(const struct qcow2 *q, const uint8_t *blk, uint64_t idx);
void qcow2_rb_set(const struct qcow2 *q, uint8_t *blk, uint64_t idx, uint64_t v);
int qcow2_get_refcount(struct qcow2 *q, uint64_t cluster, uint64_t *rc);
int qcow2_update_refcount(struct qcow2 *q, uint64_t cluster, int64_t delta);
int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *off);
int qcow2_alloc_contig(struct qcow2 *q, uint64_t n, uint64_t *off);
int qcow2_defer_free(struct qcow2 *q, uint64_t entry_or_off, bool compressed);
int qcow2_flush_meta(struct qcow2 *q);

/* qcow2_write.c */
int qcow2_writev(struct image *img, uint64_t off, const struct iovec *iov, int cnt);
int qcow2_discard(struct image *img, uint64_t off, uint64_t len);
int qcow2_write_zeroes(struct image *img, uint64_t off, uint64_t len, unsigned flags);
int qcow2_write_compressed(struct image *img, uint64_t off, const void *buf, size_t len);
/* Compression split in two so callers can compress on many threads: the first is pure
 * (returns the compressed size, 0 when it does not fit in cap); the second stores the
 * result for the guest cluster at off, or buf uncompressed when clen is 0 or too big. */
size_t qcow2_compress_cluster(const struct qcow2 *q, const void *src, uint8_t *dst, size_t cap);
int qcow2_store_compressed(struct image *img, uint64_t off, const void *buf, const void *cdata,
			   size_t clen);
int qcow2_truncate(struct image *img, uint64_t size, bool shrink, struct err *e);

/* qcow2_check.c: the image-level tooling, reached through qcow2_of(). */
struct qcow2 *qcow2_of(struct image *img);

/* ---- tooling (qcow2_check.c, qcow2_snapshot.c), used by `kvmm img` ---- */
#include <stdio.h>

struct qcow2_check_result {
	uint64_t corruptions, leaks, check_errors;
	uint64_t corruptions_fixed, leaks_fixed;
	uint64_t image_end_offset;
	uint64_t total_clusters, allocated_clusters, fragmented_clusters, compressed_clusters;
};
#define QCOW2_FIX_LEAKS 1u
#define QCOW2_FIX_ERRORS 2u
/* Recount every reference and compare with the stored refcounts (like qemu-img check).
 * Messages for each problem go to `out` when not NULL. progress(done, total) may be NULL. */
int qcow2_check(struct image *img, unsigned fix, struct qcow2_check_result *r, FILE *out,
		void (*progress)(void *opaque, uint64_t done, uint64_t total), void *opaque,
		struct err *e);

/* Rewrite the backing file name and format in the header (rebase). name NULL: none. */
int qcow2_set_backing(struct image *img, const char *name, enum image_format fmt, struct err *e);

/* Internal snapshots. */
int qcow2_snapshot_create(struct image *img, const char *name, struct err *e);
int qcow2_snapshot_apply(struct image *img, const char *name, struct err *e);
int qcow2_snapshot_delete(struct image *img, const char *name, struct err *e);
uint64_t qcow2_snapshot_table_bytes(const struct qcow2 *q);

#endif
