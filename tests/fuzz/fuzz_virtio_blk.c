// SPDX-License-Identifier: MIT
/* fuzz_virtio_blk.c: libFuzzer harness driving virtio-blk through virtio-pci with guest-chosen rings, descriptors, headers and payloads. */
/*
 * Each input gets a fresh device on a 64 KiB raw disk (a memfd reached through
 * /proc/self/fd, reset to a known pattern) and fake guest RAM (tests/dev/fake.c,
 * which also fakes the event loop). Byte 0 picks read-only, the negotiated
 * features, two queues and the queue size. Then a sequence of operations,
 * each starting with one op byte (op & 7):
 *   0  a well-formed request built by the harness on a freshly reset device:
 *      type, sector, data pieces (their sizes and the bytes written), a
 *      DISCARD/WRITE_ZEROES segment; its outcome is checked against a model
 *      of the disk (status byte, used length, bytes read, the whole file)
 *   1  write guest RAM in the ring and buffer window (offset, length, bytes)
 *   2  write a descriptor: queue, index, address (in the window, or outside
 *      RAM, in the PCI hole, wrapping), length, flags, next
 *   3  publish a head on a queue's avail ring (or make avail->idx jump), kick
 *   4  kick a queue
 *   5  run the event loop (completions; op bit 7: wait up to 1 ms for one)
 *   6  reset and set the device up again with features from the next byte
 *   7  the rest: save the state, flip a byte, load it, load the good one;
 *      write a common-config register or the writeback byte
 * Checked after every operation: the file keeps its size (nothing is written
 * past the disk), a read-only disk never changes, and the device never
 * crashes, hangs or trips ASan/UBSan.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../dev/fake.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "input.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"

#define RAM (1ULL << 20)
#define DISK (64ULL * 1024)
#define SECTORS (DISK / 512)
#define RINGS 0x10000ULL /* queue q: desc at RINGS + 0x4000 * q, avail +0x1000, used +0x2000 */
#define HDR 0x20000ULL   /* the structured request's header, segment and status */
#define WIN 0x30000ULL   /* buffers, indirect tables */
#define WIN_LEN 0x40000ULL
#define MAX_OPS 512

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13

#define FATAL(...)                                    \
	do {                                          \
		fprintf(stderr, "fuzz_virtio_blk: " __VA_ARGS__); \
		fputc('\n', stderr);                  \
		abort();                              \
	} while (0)

struct h {
	struct fake f;
	void *host;
	struct virtio_dev *vd;
	uint64_t bar;
	bool ro;
	unsigned nq;
	uint16_t qsize, avail_idx[2];
	uint8_t shadow[DISK];
};

static int disk_fd = -1;
static char disk_path[64];
static uint8_t baseline[DISK];

static void wr(struct h *h, uint64_t off, unsigned len, uint64_t v)
{
	fake_mmio_write(&h->f, h->bar + off, len, v);
}

static uint8_t status(struct h *h)
{
	return (uint8_t)fake_mmio_read(&h->f, h->bar + 0x14, 1);
}

static void *gpa(struct h *h, uint64_t a, uint64_t len)
{
	return fake_gpa(&h->f, a, len);
}

static void file_read(uint8_t *buf)
{
	struct stat st;

	if (fstat(disk_fd, &st) || (uint64_t)st.st_size != DISK)
		FATAL("the disk changed size: %lld bytes", (long long)st.st_size);
	if (pread(disk_fd, buf, DISK, 0) != (ssize_t)DISK)
		FATAL("cannot read the disk back");
}

/* After anything the guest did: no growth, and a read-only disk never changes. */
static void check_disk(struct h *h)
{
	static uint8_t now[DISK];

	file_read(now);
	if (h->ro && memcmp(now, baseline, DISK))
		FATAL("a read-only disk was written");
}

/* Reset, negotiate features (VERSION_1 added) and set up every queue; DRIVER_OK. */
static void setup_dev(struct h *h, uint8_t fb)
{
	uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1);

	if (fb & 1)
		f |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
	if (fb & 2)
		f |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
	if (fb & 4)
		f |= VIRTIO_BIT(9); /* FLUSH */
	if (fb & 8)
		f |= h->ro ? VIRTIO_BIT(5) : VIRTIO_BIT(13) | VIRTIO_BIT(14);
	wr(h, 0x14, 1, 0);
	wr(h, 0x14, 1, 3);
	wr(h, 0x08, 4, 0);
	wr(h, 0x0c, 4, (uint32_t)f);
	wr(h, 0x08, 4, 1);
	wr(h, 0x0c, 4, (uint32_t)(f >> 32));
	wr(h, 0x14, 1, 0x0b);
	for (unsigned q = 0; q < h->nq; q++) {
		uint64_t d = RINGS + 0x4000ULL * q;

		memset(gpa(h, d, 0x4000), 0, 0x4000);
		wr(h, 0x16, 2, q);
		wr(h, 0x18, 2, h->qsize);
		wr(h, 0x20, 4, d);
		wr(h, 0x24, 4, 0);
		wr(h, 0x28, 4, d + 0x1000);
		wr(h, 0x2c, 4, 0);
		wr(h, 0x30, 4, d + 0x2000);
		wr(h, 0x34, 4, 0);
		wr(h, 0x1c, 2, 1);
		h->avail_idx[q] = 0;
	}
	wr(h, 0x14, 1, 0x0f);
	if (status(h) != 0x0f)
		FATAL("device refused a valid setup: status 0x%02x", status(h));
}

static void set_desc(struct h *h, unsigned q, uint16_t i, uint64_t a, uint32_t len,
		     uint16_t flags, uint16_t nx)
{
	uint8_t *d = gpa(h, RINGS + 0x4000ULL * q + 16ULL * (i % h->qsize), 16);

	memcpy(d, &a, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &nx, 2);
}

static void publish(struct h *h, unsigned q, uint16_t head)
{
	uint16_t *avail = gpa(h, RINGS + 0x4000ULL * q + 0x1000, 4 + 2ULL * h->qsize);

	avail[2 + h->avail_idx[q] % h->qsize] = head;
	__atomic_store_n(&avail[1], ++h->avail_idx[q], __ATOMIC_RELEASE);
}

static uint16_t used_idx(struct h *h, unsigned q)
{
	uint16_t v;

	memcpy(&v, gpa(h, RINGS + 0x4000ULL * q + 0x2002, 2), 2);
	return v;
}

static void kick(struct h *h, unsigned q)
{
	wr(h, 0x3000 + 4ULL * q, 2, q);
}

/* --- op 0: a well-formed request, checked against the model --- */

static void structured(struct h *h, struct input *in)
{
	uint8_t sel = next(in), *st;
	uint32_t type, lens[4], total = 0, used_len, id;
	uint64_t sector, s_sec = 0;
	uint32_t s_num = 0, s_flags = 0;
	unsigned nd = next(in) % 4, n = 0, q = next(in) % h->nq;
	uint16_t raw = next16(in);
	uint8_t *hd, *u;
	bool dev_writes, valid;
	uint8_t expect;
	int i;

	static const uint32_t types[8] = { T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD,
					   T_WRITE_ZEROES, T_IN, T_OUT };
	type = (sel & 0x80) ? next(in) : types[sel & 7];
	/* Mostly inside the disk, sometimes just past it, sometimes near 2^64. */
	sector = (raw & 0x8000) ? UINT64_MAX - (raw & 0xff) : (uint64_t)(raw % (SECTORS + 8));
	dev_writes = type == T_IN || type == T_GET_ID;
	for (i = 0; i < (int)nd; i++) {
		uint16_t l = next16(in);

		/* Sector multiples mostly; any size sometimes. */
		lens[i] = (l & 0x8000) ? l % 4097 : 512u * (l % 9);
		if (total + lens[i] > WIN_LEN / 2)
			lens[i] = 0;
		total += lens[i];
	}
	if (type == T_DISCARD || type == T_WRITE_ZEROES) {
		uint16_t a = next16(in), b = next16(in);

		s_sec = (a & 0x8000) ? UINT64_MAX / 512 - (a & 0xff) : a % (SECTORS + 8);
		s_num = b % (SECTORS + 8);
		s_flags = next(in) & 3;
		nd = 0;
		total = 16;
	}

	/* A fresh device: whatever the chaos ops left on the rings is gone. */
	setup_dev(h, 0x0f);
	file_read(h->shadow);

	hd = gpa(h, HDR, 16);
	memcpy(hd, &type, 4);
	memset(hd + 4, 0, 4);
	memcpy(hd + 8, &sector, 8);
	st = gpa(h, HDR + 64, 1);
	*st = 0xee;
	set_desc(h, q, (uint16_t)n++, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	if (type == T_DISCARD || type == T_WRITE_ZEROES) {
		uint8_t *s = gpa(h, HDR + 32, 16);

		memcpy(s, &s_sec, 8);
		memcpy(s + 8, &s_num, 4);
		memcpy(s + 12, &s_flags, 4);
		set_desc(h, q, (uint16_t)n, HDR + 32, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(n + 1));
		n++;
	}
	{
		uint64_t a = WIN;

		for (i = 0; i < (int)nd; i++) {
			uint8_t *p = lens[i] ? gpa(h, a, lens[i]) : NULL;

			for (uint32_t k = 0; k < lens[i]; k++)
				p[k] = dev_writes ? 0xa5 : next(in);
			set_desc(h, q, (uint16_t)n, a, lens[i],
				 (uint16_t)(VIRTQ_DESC_F_NEXT | (dev_writes ? VIRTQ_DESC_F_WRITE : 0)),
				 (uint16_t)(n + 1));
			n++;
			a += lens[i];
		}
	}
	set_desc(h, q, (uint16_t)n, HDR + 64, 1, VIRTQ_DESC_F_WRITE, 0);
	n++;
	if (n > h->qsize) {
		setup_dev(h, 0x0f);
		return; /* does not fit the ring: skip */
	}
	/* A zero-length descriptor in a chain is legal but refused by the walker: skip those. */
	for (i = 0; i < (int)nd; i++)
		if (!lens[i]) {
			setup_dev(h, 0x0f);
			return;
		}
	publish(h, q, 0);
	kick(h, q);
	for (i = 0; i < 500 && used_idx(h, q) == 0 && !(status(h) & 0x40); i++)
		fake_pump(&h->f, 10);
	if (status(h) & 0x40)
		FATAL("a well-formed request (type %u) put the device into NEEDS_RESET", type);
	if (used_idx(h, q) != 1)
		FATAL("a request (type %u) never completed", type);
	u = gpa(h, RINGS + 0x4000ULL * q + 0x2004, 8);
	memcpy(&id, u, 4);
	memcpy(&used_len, u + 4, 4);
	if (id != 0)
		FATAL("used id %u, expected 0", id);

	/* The model. */
	switch (type) {
	case T_IN:
	case T_OUT: {
		uint64_t off = sector * 512;

		valid = total % 512 == 0 && sector <= UINT64_MAX / 512 && off <= DISK &&
			total <= DISK - off;
		if (type == T_OUT && h->ro)
			valid = false;
		expect = valid ? 0 : 1;
		if (*st != expect)
			FATAL("type %u sector %llu len %u: status %u, expected %u", type,
			      (unsigned long long)sector, total, *st, expect);
		if (valid && type == T_IN) {
			uint64_t a = WIN;

			if (used_len != total + 1)
				FATAL("read of %u bytes: used len %u", total, used_len);
			if (total && memcmp(gpa(h, a, total), h->shadow + off, total))
				FATAL("read sector %llu len %u: data differs from the disk",
				      (unsigned long long)sector, total);
		} else if (valid) {
			uint64_t a = WIN;

			for (i = 0; i < (int)nd; i++) {
				memcpy(h->shadow + off, gpa(h, a, lens[i]), lens[i]);
				off += lens[i];
				a += lens[i];
			}
		}
		if (!valid && used_len != 1)
			FATAL("failed request: used len %u", used_len);
		break;
	}
	case T_FLUSH:
		if (*st != 0)
			FATAL("flush failed: %u", *st);
		break;
	case T_GET_ID:
		if (*st != (total ? 0 : 1))
			FATAL("GET_ID with %u bytes: status %u", total, *st);
		if (total && used_len != (total < 20 ? total : 20) + 1)
			FATAL("GET_ID with %u bytes: used len %u", total, used_len);
		break;
	case T_DISCARD:
	case T_WRITE_ZEROES: {
		bool wz = type == T_WRITE_ZEROES;

		valid = !h->ro && s_num && s_sec <= UINT64_MAX / 512 && s_sec * 512 <= DISK &&
			(uint64_t)s_num * 512 <= DISK - s_sec * 512 && (wz || !s_flags) &&
			!(s_flags & ~1u);
		if (*st != (valid ? 0 : 1))
			FATAL("%s sector %llu num %u flags %u: status %u",
			      wz ? "write-zeroes" : "discard", (unsigned long long)s_sec, s_num,
			      s_flags, *st);
		if (valid && wz) {
			memset(h->shadow + s_sec * 512, 0, (size_t)s_num * 512);
		} else if (valid) {
			/* A discard may leave the data (a hint) or zero it: take what is there. */
			static uint8_t now[DISK];

			file_read(now);
			for (uint64_t k = s_sec * 512; k < (s_sec + s_num) * 512; k++)
				if (now[k] && now[k] != h->shadow[k])
					FATAL("discard left byte %llu neither old nor zero",
					      (unsigned long long)k);
			memcpy(h->shadow + s_sec * 512, now + s_sec * 512, (size_t)s_num * 512);
		}
		break;
	}
	default:
		if (*st != 2)
			FATAL("unknown type %u: status %u", type, *st);
		break;
	}
	/* Nothing but the request's own range may have changed. */
	{
		static uint8_t now[DISK];

		file_read(now);
		for (uint64_t k = 0; k < DISK; k++)
			if (now[k] != h->shadow[k])
				FATAL("type %u sector %llu: disk byte %llu is 0x%02x, expected 0x%02x",
				      type, (unsigned long long)sector, (unsigned long long)k, now[k],
				      h->shadow[k]);
	}
}

/* --- the chaos ops --- */

static uint64_t pick_addr(struct input *in)
{
	uint16_t v = next16(in);

	switch (v >> 13) {
	case 0: return RAM - (v & 0x1ff);                     /* straddling the end of RAM */
	case 1: return X86_PCI_MMIO_START + (v & 0xfff);      /* the PCI hole */
	case 2: return UINT64_MAX - (v & 0x1ff);              /* wrapping */
	case 3: return RINGS + (v & 0xfff0);                  /* the rings themselves */
	default: return WIN + (uint64_t)(v & 0x1fff) * 16;    /* buffers */
	}
}

static void saveload(struct h *h, struct input *in)
{
	struct sbuf sb = { 0 };

	if (virtio_save(h->vd, &sb) == 0 && sb.len) {
		uint8_t *bad = malloc(sb.len);

		if (bad) {
			memcpy(bad, sb.data, sb.len);
			bad[next16(in) % sb.len] ^= (uint8_t)(next(in) | 1);
			(void)virtio_load(h->vd, bad, sb.len);
			free(bad);
		}
		(void)virtio_load(h->vd, sb.data, sb.len);
	}
	sbuf_free(&sb);
}

static void run(struct h *h, struct input *in)
{
	for (unsigned ops = 0; in->n && ops < MAX_OPS; ops++) {
		uint8_t op = next(in);

		switch (op & 7) {
		case 0:
			structured(h, in);
			break;
		case 1: {
			uint64_t off = RINGS + next16(in) % (WIN + WIN_LEN - RINGS);
			unsigned len = next(in);

			if (off + len > WIN + WIN_LEN)
				len = (unsigned)(WIN + WIN_LEN - off);
			for (unsigned i = 0; i < len; i++)
				*(uint8_t *)gpa(h, off + i, 1) = next(in);
			break;
		}
		case 2: {
			unsigned q = next(in) % h->nq;
			uint16_t idx = next(in);
			uint64_t a = pick_addr(in);
			uint32_t len = next16(in);
			uint16_t fl = next(in) & 7;

			set_desc(h, q, idx, a, len, fl, next(in));
			break;
		}
		case 3: {
			unsigned q = next(in) % h->nq;
			uint16_t head = next16(in);

			if (op & 8) /* claim many new entries at once */
				h->avail_idx[q] = (uint16_t)(h->avail_idx[q] + (head >> 8));
			publish(h, q, (op & 0x10) ? head : head % h->qsize);
			kick(h, q);
			break;
		}
		case 4:
			kick(h, next(in) % 4);
			break;
		case 5:
			/* Completions already there; with op bit 7 also wait for the worker once. */
			for (unsigned i = 0; i < 4u; i++)
				fake_pump(&h->f, 0);
			if (op & 0x80)
				fake_pump(&h->f, 1);
			break;
		case 6:
			setup_dev(h, next(in));
			break;
		case 7:
			if (op & 8) {
				saveload(h, in);
			} else if (op & 0x10) {
				wr(h, 0x2000 + 32, 1, next(in)); /* writeback */
			} else {
				uint8_t off = next(in) & 0x3e;

				wr(h, off, 2, next16(in));
			}
			break;
		}
		check_disk(h);
	}
}

/* One device per (read-only, queues) pair, made on first use and kept: creating a
 * block device (I/O thread, io_uring) per input would cost milliseconds. Each input
 * starts from a reset device, MSI-X off, zeroed rings and buffers and the disk
 * pattern, so an input's result does not depend on the ones before it. */
static struct h *get_dev(bool ro, unsigned nq)
{
	static struct h *devs[4];
	struct h **slot = &devs[(ro ? 2 : 0) + nq - 1];
	struct blk_opts o = { .path = disk_path, .format = "raw", .serial = "fuzz",
			      .read_only = ro, .queues = nq };
	struct err e = { { 0 } };
	struct h *h = *slot;
	uint32_t lo, hi;

	if (h)
		return h;
	h = calloc(1, sizeof(*h));
	if (!h || fake_init(&h->f, false) || fake_mem_init(&h->f, RAM))
		FATAL("fake");
	h->ro = ro;
	h->nq = nq;
	fake_loop(&h->f);
	fake_msi(&h->f);
	h->host = fake_pci_host(&h->f);
	if (virtio_blk_create(&h->f.ctx, &o, &h->vd, &e))
		FATAL("virtio_blk_create: %s", e.msg);
	fake_out(&h->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | 1u << 11 | 0x10);
	lo = fake_in(&h->f, X86_PORT_PCI_CONFIG + 4, 4);
	fake_out(&h->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | 1u << 11 | 0x14);
	hi = fake_in(&h->f, X86_PORT_PCI_CONFIG + 4, 4);
	h->bar = (lo & ~0xfULL) | (uint64_t)hi << 32;
	*slot = h;
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint8_t cfg;
	struct h *h;

	if (disk_fd < 0) {
		log_set_level(LOG_ERROR);
		disk_fd = memfd_create("fuzz-vblk-disk", MFD_CLOEXEC);
		if (disk_fd < 0)
			FATAL("memfd_create: %s", strerror(errno));
		snprintf(disk_path, sizeof(disk_path), "/proc/self/fd/%d", disk_fd);
		for (uint64_t i = 0; i < DISK; i++)
			baseline[i] = (uint8_t)(i * 7 + (i >> 9) + 1) | 1;
		if (ftruncate(disk_fd, DISK))
			FATAL("ftruncate");
	}
	if (pwrite(disk_fd, baseline, DISK, 0) != (ssize_t)DISK)
		FATAL("cannot reset the disk");

	cfg = next(&in);
	h = get_dev(cfg & 1, (cfg & 2) ? 2 : 1);
	h->qsize = (uint16_t)(4u << ((cfg >> 2) & 7)); /* 4 ... 512; above 256 is refused */
	if (h->qsize > 256)
		h->qsize = 256;
	/* MSI-X off (a loaded state record may have turned it on), RAM window zeroed. */
	fake_out(&h->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | 1u << 11 | 0x40);
	fake_out(&h->f, X86_PORT_PCI_CONFIG + 6, 2, 0);
	memset(gpa(h, RINGS, WIN + WIN_LEN - RINGS), 0, WIN + WIN_LEN - RINGS);
	setup_dev(h, cfg >> 5);

	run(h, &in);

	/* A reset waits for every request in flight and drops their results. */
	wr(h, 0x14, 1, 0);
	fake_pump(&h->f, 0);
	check_disk(h);
	return 0;
}
