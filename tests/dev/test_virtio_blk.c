// SPDX-License-Identifier: MIT
/* test_virtio_blk.c: virtio-blk on a temporary raw file, driven through virtio-pci on a fake bus, fake RAM and a fake event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/sbuf.h"
#include "dev/pci.h"
#include "fake.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"

#define RAM (16ULL << 20)
#define DISK (1ULL << 20)
#define SECTORS (DISK / 512)
#define QSTRIDE 0x4000ULL /* rings of queue q at DESC + q * QSTRIDE */
#define DESC 0x10000ULL
#define AVAIL (DESC + 0x1000)
#define USED (DESC + 0x2000)
#define HDRS 0x40000ULL   /* request headers, 32 bytes per slot */
#define STATS 0x50000ULL  /* status bytes, one per slot */
#define INDIR 0x60000ULL  /* indirect tables */
#define DATA 0x100000ULL  /* data buffers, 8 KiB per slot */
#define SLOTS 64

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2

#define F_SIZE_MAX 1
#define F_SEG_MAX 2
#define F_RO 5
#define F_BLK_SIZE 6
#define F_FLUSH 9
#define F_MQ 12
#define F_DISCARD 13
#define F_WRITE_ZEROES 14

#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_STATUS 0x14
#define C_Q_SELECT 0x16
#define C_Q_SIZE 0x18
#define C_Q_ENABLE 0x1c
#define C_Q_DESC 0x20
#define C_Q_AVAIL 0x28
#define C_Q_USED 0x30
#define ISR 0x1000
#define DEVCFG 0x2000
#define NOTIFY 0x3000

#define SERIAL "kvmm-test-serial-01" /* 19 bytes */

struct q {
	uint16_t size, avail_idx, used_seen, next_desc;
};

struct t {
	struct fake f;
	void *host;
	struct virtio_dev *vd;
	uint64_t bar;
	uint8_t line;
	char path[256];
	int fd;          /* the test's own descriptor on the disk file */
	uint8_t *shadow; /* what the file must hold */
	struct q q[2];
};

struct dbuf {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

/* --- harness --- */

static uint64_t rd(struct t *t, uint64_t off, unsigned len)
{
	return fake_mmio_read(&t->f, t->bar + off, len);
}

static void wr(struct t *t, uint64_t off, unsigned len, uint64_t v)
{
	fake_mmio_write(&t->f, t->bar + off, len, v);
}

static uint32_t cfg_rd(struct t *t, unsigned reg)
{
	fake_out(&t->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | 1u << 11 | (reg & 0xfc));
	return fake_in(&t->f, X86_PORT_PCI_CONFIG + 4, 4);
}

static uint8_t status(struct t *t)
{
	return (uint8_t)rd(t, C_STATUS, 1);
}

/* The disk: a byte pattern that differs in every sector, mirrored in t->shadow. */
static int make_disk(struct t *t)
{
	const char *dir = getenv("TMPDIR");

	snprintf(t->path, sizeof(t->path), "%s/kvmm-test-vblk-XXXXXX", dir && *dir ? dir : "/tmp");
	t->fd = mkstemp(t->path);
	if (t->fd < 0)
		return -1;
	t->shadow = malloc(DISK);
	if (!t->shadow)
		return -1;
	for (uint64_t i = 0; i < DISK; i++)
		t->shadow[i] = (uint8_t)(i * 7 + (i >> 9) + 1) | 1; /* never 0 */
	return pwrite(t->fd, t->shadow, DISK, 0) == (ssize_t)DISK ? 0 : -1;
}

static int make_dev(struct t *t, bool ro, unsigned queues)
{
	struct blk_opts o = { .path = t->path, .format = "raw", .serial = SERIAL,
			      .read_only = ro, .queues = queues };
	struct err e = { { 0 } };

	if (fake_init(&t->f, false) || fake_mem_init(&t->f, RAM))
		return -1;
	fake_loop(&t->f);
	fake_msi(&t->f);
	t->host = fake_pci_host(&t->f);
	if (virtio_blk_create(&t->f.ctx, &o, &t->vd, &e)) {
		fprintf(stderr, "virtio_blk_create: %s\n", e.msg);
		return -1;
	}
	if ((cfg_rd(t, 0) & 0xffff) != 0x1af4)
		return -1;
	t->bar = (cfg_rd(t, 0x10) & ~0xfULL) | (uint64_t)cfg_rd(t, 0x14) << 32;
	t->line = (uint8_t)cfg_rd(t, PCI_INTERRUPT_LINE);
	return 0;
}

static void t_fini(struct t *t)
{
	fake_virtio_fini(&t->f, t->vd, t->host);
	t->vd = NULL;
	t->host = NULL;
}

static int setup_common(void **state, bool ro, unsigned queues)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t || make_disk(t) || make_dev(t, ro, queues))
		return -1;
	*state = t;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false, 1);
}

static int setup_ro(void **state)
{
	return setup_common(state, true, 1);
}

static int setup_mq(void **state)
{
	return setup_common(state, false, 2);
}

static int teardown(void **state)
{
	struct t *t = *state;

	t_fini(t);
	close(t->fd);
	unlink(t->path);
	free(t->shadow);
	free(t);
	return 0;
}

static uint64_t device_features(struct t *t)
{
	uint64_t f;

	wr(t, C_DFSELECT, 4, 0);
	f = rd(t, C_DF, 4);
	wr(t, C_DFSELECT, 4, 1);
	return f | rd(t, C_DF, 4) << 32;
}

/* Reset, negotiate, set up nq queues of qsize, DRIVER_OK. */
static void start_q(struct t *t, uint64_t features, unsigned nq, uint16_t qsize)
{
	features |= VIRTIO_BIT(VIRTIO_F_VERSION_1);
	wr(t, C_STATUS, 1, 0);
	wr(t, C_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(t, C_GFSELECT, 4, 0);
	wr(t, C_GF, 4, (uint32_t)features);
	wr(t, C_GFSELECT, 4, 1);
	wr(t, C_GF, 4, (uint32_t)(features >> 32));
	wr(t, C_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK);
	assert_true(status(t) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned i = 0; i < nq; i++) {
		uint64_t d = DESC + QSTRIDE * i;

		memset(fake_gpa(&t->f, d, QSTRIDE), 0, QSTRIDE);
		wr(t, C_Q_SELECT, 2, i);
		wr(t, C_Q_SIZE, 2, qsize);
		wr(t, C_Q_DESC, 4, d);
		wr(t, C_Q_DESC + 4, 4, 0);
		wr(t, C_Q_AVAIL, 4, d + 0x1000);
		wr(t, C_Q_AVAIL + 4, 4, 0);
		wr(t, C_Q_USED, 4, d + 0x2000);
		wr(t, C_Q_USED + 4, 4, 0);
		wr(t, C_Q_ENABLE, 2, 1);
		assert_int_equal(rd(t, C_Q_ENABLE, 2), 1);
		t->q[i] = (struct q){ .size = qsize };
	}
	wr(t, C_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(t), 0x0f);
}

static void start(struct t *t)
{
	start_q(t, 0, 1, 64);
}

static void set_desc(struct t *t, unsigned q, uint16_t i, uint64_t gpa, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = fake_gpa(&t->f, DESC + QSTRIDE * q + 16ULL * i, 16);

	memcpy(d, &gpa, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void publish(struct t *t, unsigned q, uint16_t head)
{
	struct q *vq = &t->q[q];
	uint16_t *avail = fake_gpa(&t->f, DESC + QSTRIDE * q + 0x1000, 4 + 2ULL * vq->size);

	avail[2 + vq->avail_idx % vq->size] = head;
	__atomic_store_n(&avail[1], ++vq->avail_idx, __ATOMIC_RELEASE);
}

/* Chain n buffers on queue q and publish it; returns the head. */
static uint16_t add(struct t *t, unsigned q, const struct dbuf *b, unsigned n)
{
	struct q *vq = &t->q[q];
	uint16_t head = vq->next_desc;

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % vq->size);

		set_desc(t, q, idx, b[i].gpa, b[i].len,
			 (uint16_t)((b[i].w ? VIRTQ_DESC_F_WRITE : 0) |
				    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			 (uint16_t)((idx + 1) % vq->size));
	}
	vq->next_desc = (uint16_t)((head + n) % vq->size);
	publish(t, q, head);
	return head;
}

static void kick(struct t *t, unsigned q)
{
	wr(t, NOTIFY + 4ULL * q, 2, q);
}

static uint16_t used_idx(struct t *t, unsigned q)
{
	uint16_t idx;

	memcpy(&idx, (uint8_t *)fake_gpa(&t->f, DESC + QSTRIDE * q + 0x2002, 2), 2);
	return idx;
}

static bool used(struct t *t, unsigned q, uint32_t *id, uint32_t *len)
{
	struct q *vq = &t->q[q];
	uint8_t *u = fake_gpa(&t->f, DESC + QSTRIDE * q + 0x2000, 4 + 8ULL * vq->size);

	if (used_idx(t, q) == vq->used_seen)
		return false;
	memcpy(id, u + 4 + 8 * (vq->used_seen % vq->size), 4);
	memcpy(len, u + 8 + 8 * (vq->used_seen % vq->size), 4);
	vq->used_seen++;
	return true;
}

/* Run the fake event loop until queue q has a used element (5 s at most). */
static bool wait_used(struct t *t, unsigned q, uint32_t *id, uint32_t *len)
{
	for (int i = 0; i < 500; i++) {
		if (used(t, q, id, len))
			return true;
		fake_pump(&t->f, 10);
	}
	return used(t, q, id, len);
}

/* Run the loop for a while with nothing expected. */
static void settle(struct t *t)
{
	for (int i = 0; i < 5; i++)
		fake_pump(&t->f, 2);
}

static uint64_t hdr(struct t *t, unsigned slot, uint32_t type, uint64_t sector)
{
	uint64_t gpa = HDRS + 32ULL * slot;
	uint8_t *h = fake_gpa(&t->f, gpa, 16);
	uint32_t zero = 0;

	memcpy(h, &type, 4);
	memcpy(h + 4, &zero, 4);
	memcpy(h + 8, &sector, 8);
	return gpa;
}

static uint64_t stat_gpa(struct t *t, unsigned slot)
{
	*(uint8_t *)fake_gpa(&t->f, STATS + slot, 1) = 0xee;
	return STATS + slot;
}

static uint8_t req_status(struct t *t, unsigned slot)
{
	return *(uint8_t *)fake_gpa(&t->f, STATS + slot, 1);
}

/*
 * One request: header, data in up to 3 pieces (sizes in parts, summing to
 * len) at DATA + 8 KiB * slot, status byte; waits for it and returns the
 * status byte. *ulen gets the used length.
 */
static uint8_t request(struct t *t, unsigned q, uint32_t type, uint64_t sector, uint32_t len,
		       bool dev_writes, const uint32_t *parts, unsigned nparts, uint32_t *ulen)
{
	struct dbuf b[5];
	unsigned n = 0, slot = 0;
	uint64_t data = DATA;
	uint32_t id, l, one = len;
	uint16_t head;

	if (!parts) {
		parts = &one;
		nparts = len ? 1 : 0;
	}
	b[n++] = (struct dbuf){ hdr(t, slot, type, sector), 16, false };
	for (unsigned i = 0; i < nparts; i++) {
		b[n++] = (struct dbuf){ data, parts[i], dev_writes };
		data += parts[i];
	}
	b[n++] = (struct dbuf){ stat_gpa(t, slot), 1, true };
	head = add(t, q, b, n);
	kick(t, q);
	assert_true(wait_used(t, q, &id, &l));
	assert_int_equal(id, head);
	if (ulen)
		*ulen = l;
	return req_status(t, slot);
}

static uint8_t simple(struct t *t, uint32_t type, uint64_t sector, uint32_t len,
		      uint32_t *ulen)
{
	return request(t, 0, type, sector, len, type == T_IN || type == T_GET_ID, NULL, 0, ulen);
}

static uint8_t *data(struct t *t, uint64_t off, uint64_t len)
{
	return fake_gpa(&t->f, DATA + off, len);
}

/* The file must hold exactly the shadow. */
static void check_file(struct t *t)
{
	uint8_t *buf = malloc(DISK);
	struct stat st;

	assert_non_null(buf);
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, DISK);
	assert_int_equal(pread(t->fd, buf, DISK, 0), DISK);
	for (uint64_t i = 0; i < DISK; i++) {
		if (buf[i] != t->shadow[i]) {
			fprintf(stderr, "file differs at byte %llu: 0x%02x, expected 0x%02x\n",
				(unsigned long long)i, buf[i], t->shadow[i]);
			fail();
		}
	}
	free(buf);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13 + (i >> 8));
}

static uint64_t segment(struct t *t, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint8_t *s = data(t, 0, 16);

	memcpy(s, &sector, 8);
	memcpy(s + 8, &num, 4);
	memcpy(s + 12, &flags, 4);
	return DATA;
}

/* --- tests --- */

static void test_config(void **state)
{
	struct t *t = *state;
	uint64_t f = device_features(t);

	assert_int_equal(cfg_rd(t, 0), 0x10421af4u);
	assert_int_equal(cfg_rd(t, 0x08) >> 8, 0x018000);
	assert_int_equal(rd(t, DEVCFG, 8), SECTORS); /* capacity */
	assert_true(rd(t, DEVCFG + 8, 4) >= 4096);  /* size_max */
	assert_true(rd(t, DEVCFG + 12, 4) >= 2);    /* seg_max */
	assert_int_equal(rd(t, DEVCFG + 20, 4), 512); /* blk_size */
	assert_int_equal(rd(t, DEVCFG + 34, 2), 1);   /* num_queues */
	assert_int_equal(rd(t, DEVCFG + 40, 4), 1);   /* max_discard_seg */
	assert_int_equal(rd(t, DEVCFG + 52, 4), 1);   /* max_write_zeroes_seg */
	assert_true(f & VIRTIO_BIT(F_FLUSH));
	assert_true(f & VIRTIO_BIT(F_BLK_SIZE));
	assert_true(f & VIRTIO_BIT(F_SEG_MAX));
	assert_true(f & VIRTIO_BIT(F_SIZE_MAX));
	assert_true(f & VIRTIO_BIT(F_DISCARD));
	assert_true(f & VIRTIO_BIT(F_WRITE_ZEROES));
	assert_false(f & VIRTIO_BIT(F_RO));
	/* Only writeback is writable; reads past the structure are all-ones. */
	wr(t, DEVCFG, 8, 0);
	assert_int_equal(rd(t, DEVCFG, 8), SECTORS);
	wr(t, DEVCFG + 32, 1, 1);
	assert_int_equal(rd(t, DEVCFG + 32, 1), 1);
	wr(t, DEVCFG + 32, 1, 0);
	assert_int_equal(rd(t, DEVCFG + 32, 1), 0);
	assert_int_equal(rd(t, DEVCFG + 0x100, 4), 0xffffffffu);
	/* Negotiating every offered feature works. */
	start_q(t, f, 1, 64);
	assert_int_equal(simple(t, T_FLUSH, 0, 0, NULL), S_OK);
}

static void test_write_read(void **state)
{
	struct t *t = *state;
	const uint32_t wparts[2] = { 1024, 3072 }, rparts[3] = { 1000, 96, 3000 };
	uint32_t ulen;

	start(t);
	fill(data(t, 0, 4096), 4096, 0x30);
	memcpy(t->shadow + 10 * 512, data(t, 0, 4096), 4096);
	assert_int_equal(request(t, 0, T_OUT, 10, 4096, false, wparts, 2, &ulen), S_OK);
	assert_int_equal(ulen, 1); /* only the status byte is written */
	check_file(t);

	memset(data(t, 0, 8192), 0, 8192);
	assert_int_equal(request(t, 0, T_IN, 10, 4096, true, rparts, 3, &ulen), S_OK);
	assert_int_equal(ulen, 4096 + 1);
	assert_memory_equal(data(t, 0, 4096), t->shadow + 10 * 512, 4096);
	assert_int_equal(*data(t, 4096, 1), 0); /* nothing past the buffers */

	/* Untouched sectors read back as they were: the last one of the disk. */
	assert_int_equal(simple(t, T_IN, SECTORS - 1, 512, &ulen), S_OK);
	assert_memory_equal(data(t, 0, 512), t->shadow + DISK - 512, 512);

	/* One descriptor holding data and the status byte (5.2.6: any framing). */
	{
		struct dbuf b[2] = { { hdr(t, 1, T_IN, 3), 16, false }, { DATA, 513, true } };
		uint32_t id, l;

		*data(t, 512, 1) = 0xee;
		add(t, 0, b, 2);
		kick(t, 0);
		assert_true(wait_used(t, 0, &id, &l));
		assert_int_equal(l, 513);
		assert_int_equal(*data(t, 512, 1), S_OK);
		assert_memory_equal(data(t, 0, 512), t->shadow + 3 * 512, 512);
	}
	/* One descriptor holding the header and the data of a write. */
	{
		uint8_t *p = fake_gpa(&t->f, DATA + 0x10000, 16 + 1024);
		uint64_t sector = 100;
		uint32_t type = T_OUT, zero = 0, id, l;
		struct dbuf b[2] = { { DATA + 0x10000, 16 + 1024, false },
				     { stat_gpa(t, 2), 1, true } };

		memcpy(p, &type, 4);
		memcpy(p + 4, &zero, 4);
		memcpy(p + 8, &sector, 8);
		fill(p + 16, 1024, 0x77);
		memcpy(t->shadow + sector * 512, p + 16, 1024);
		add(t, 0, b, 2);
		kick(t, 0);
		assert_true(wait_used(t, 0, &id, &l));
		assert_int_equal(req_status(t, 2), S_OK);
		check_file(t);
	}
	assert_int_equal(t->vd->stats.errors, 0);
	assert_true(t->vd->stats.bytes_out >= 4096 + 1024);
	assert_false(status(t) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_flush_get_id(void **state)
{
	struct t *t = *state;
	uint32_t ulen;

	start(t);
	assert_int_equal(simple(t, T_FLUSH, 0, 0, &ulen), S_OK);
	assert_int_equal(ulen, 1);
	/* GET_ID: 20 bytes, NUL-padded, nothing written past them. */
	memset(data(t, 0, 64), 0xaa, 64);
	assert_int_equal(simple(t, T_GET_ID, 0, 64, &ulen), S_OK);
	assert_int_equal(ulen, 20 + 1);
	assert_memory_equal(data(t, 0, 20), SERIAL "\0", 20);
	assert_int_equal(*data(t, 20, 1), 0xaa);
	/* A shorter buffer gets a prefix. */
	memset(data(t, 0, 64), 0xaa, 64);
	assert_int_equal(simple(t, T_GET_ID, 0, 8, &ulen), S_OK);
	assert_int_equal(ulen, 8 + 1);
	assert_memory_equal(data(t, 0, 8), SERIAL, 8);
	assert_int_equal(*data(t, 8, 1), 0xaa);
	check_file(t);
}

static void test_discard_write_zeroes(void **state)
{
	struct t *t = *state;
	uint32_t ulen;

	start(t);
	/* DISCARD 8 sectors (4 KiB aligned): a raw file on ext4/tmpfs punches a hole. */
	segment(t, 16, 8, 0);
	assert_int_equal(request(t, 0, T_DISCARD, 0, 16, false, NULL, 0, &ulen), S_OK);
	memset(t->shadow + 16 * 512, 0, 8 * 512);
	check_file(t);
	/* WRITE_ZEROES without and with UNMAP. */
	segment(t, 41, 3, 0);
	assert_int_equal(request(t, 0, T_WRITE_ZEROES, 0, 16, false, NULL, 0, NULL), S_OK);
	memset(t->shadow + 41 * 512, 0, 3 * 512);
	check_file(t);
	segment(t, 64, 16, 1);
	assert_int_equal(request(t, 0, T_WRITE_ZEROES, 0, 16, false, NULL, 0, NULL), S_OK);
	memset(t->shadow + 64 * 512, 0, 16 * 512);
	check_file(t);
	/* The zeroes read back through the device too. */
	memset(data(t, 0, 4096), 0xff, 4096);
	assert_int_equal(simple(t, T_IN, 40, 2048, NULL), S_OK);
	assert_memory_equal(data(t, 0, 2048), t->shadow + 40 * 512, 2048);

	/* Refused: flags on DISCARD, unknown flags, 0 sectors, out of range, 2 segments. */
	segment(t, 200, 8, 1);
	assert_int_equal(request(t, 0, T_DISCARD, 0, 16, false, NULL, 0, NULL), S_IOERR);
	segment(t, 200, 8, 2);
	assert_int_equal(request(t, 0, T_WRITE_ZEROES, 0, 16, false, NULL, 0, NULL), S_IOERR);
	segment(t, 200, 0, 0);
	assert_int_equal(request(t, 0, T_WRITE_ZEROES, 0, 16, false, NULL, 0, NULL), S_IOERR);
	segment(t, SECTORS - 4, 8, 0);
	assert_int_equal(request(t, 0, T_DISCARD, 0, 16, false, NULL, 0, NULL), S_IOERR);
	segment(t, UINT64_MAX / 256, 8, 0);
	assert_int_equal(request(t, 0, T_WRITE_ZEROES, 0, 16, false, NULL, 0, NULL), S_IOERR);
	segment(t, 200, 8, 0);
	memcpy(data(t, 16, 16), data(t, 0, 16), 16);
	assert_int_equal(request(t, 0, T_DISCARD, 0, 32, false, NULL, 0, NULL), S_IOERR);
	assert_int_equal(request(t, 0, T_WRITE_ZEROES, 0, 8, false, NULL, 0, NULL), S_IOERR);
	check_file(t);
	assert_false(status(t) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_read_only(void **state)
{
	struct t *t = *state;
	uint64_t f = device_features(t);

	assert_true(f & VIRTIO_BIT(F_RO));
	assert_false(f & VIRTIO_BIT(F_DISCARD));
	assert_false(f & VIRTIO_BIT(F_WRITE_ZEROES));
	start_q(t, VIRTIO_BIT(F_RO), 1, 64);
	fill(data(t, 0, 4096), 4096, 0x99);
	assert_int_equal(simple(t, T_OUT, 0, 4096, NULL), S_IOERR);
	assert_int_equal(simple(t, T_OUT, SECTORS - 8, 4096, NULL), S_IOERR);
	segment(t, 0, 8, 0);
	assert_int_equal(request(t, 0, T_DISCARD, 0, 16, false, NULL, 0, NULL), S_IOERR);
	assert_int_equal(request(t, 0, T_WRITE_ZEROES, 0, 16, false, NULL, 0, NULL), S_IOERR);
	check_file(t);
	/* Reads, flush and GET_ID still work. */
	assert_int_equal(simple(t, T_IN, 0, 4096, NULL), S_OK);
	assert_memory_equal(data(t, 0, 4096), t->shadow, 4096);
	assert_int_equal(simple(t, T_FLUSH, 0, 0, NULL), S_OK);
	assert_int_equal(simple(t, T_GET_ID, 0, 20, NULL), S_OK);
	assert_false(status(t) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_ranges(void **state)
{
	struct t *t = *state;
	uint32_t ulen;

	start(t);
	/* The last sector is fine; one past it, or straddling the end, is not. */
	assert_int_equal(simple(t, T_IN, SECTORS - 1, 512, NULL), S_OK);
	assert_int_equal(simple(t, T_IN, SECTORS, 512, &ulen), S_IOERR);
	assert_int_equal(ulen, 1); /* nothing but the status counts as written */
	assert_int_equal(simple(t, T_IN, SECTORS - 1, 1024, NULL), S_IOERR);
	fill(data(t, 0, 4096), 4096, 0x11);
	assert_int_equal(simple(t, T_OUT, SECTORS - 4, 4096, NULL), S_IOERR);
	assert_int_equal(simple(t, T_OUT, SECTORS, 512, NULL), S_IOERR);
	/* Sectors whose byte offset overflows 64 bits. */
	assert_int_equal(simple(t, T_IN, UINT64_MAX, 512, NULL), S_IOERR);
	assert_int_equal(simple(t, T_OUT, UINT64_MAX / 512 + 1, 512, NULL), S_IOERR);
	assert_int_equal(simple(t, T_OUT, (UINT64_MAX / 512) & ~7ULL, 4096, NULL), S_IOERR);
	/* Lengths that are not a multiple of 512. */
	assert_int_equal(simple(t, T_OUT, 0, 513, NULL), S_IOERR);
	assert_int_equal(simple(t, T_OUT, 0, 100, NULL), S_IOERR);
	assert_int_equal(simple(t, T_IN, 0, 511, NULL), S_IOERR);
	{
		const uint32_t parts[2] = { 256, 300 };

		assert_int_equal(request(t, 0, T_OUT, 0, 556, false, parts, 2, NULL), S_IOERR);
	}
	/* A write with a device-writable data buffer besides the status. */
	{
		struct dbuf b[4] = { { hdr(t, 0, T_OUT, 0), 16, false },
				     { DATA, 512, false },
				     { DATA + 4096, 512, true },
				     { stat_gpa(t, 0), 1, true } };
		uint32_t id, l;

		add(t, 0, b, 4);
		kick(t, 0);
		assert_true(wait_used(t, 0, &id, &l));
		assert_int_equal(req_status(t, 0), S_IOERR);
	}
	check_file(t);
	/* Zero-length reads and writes complete without touching anything. */
	assert_int_equal(simple(t, T_OUT, 0, 0, NULL), S_OK);
	assert_int_equal(simple(t, T_IN, SECTORS - 1, 0, NULL), S_OK);
	check_file(t);
	assert_true(t->vd->stats.errors >= 10);
	assert_false(status(t) & VIRTIO_STATUS_NEEDS_RESET);
	/* Still working. */
	assert_int_equal(simple(t, T_IN, 0, 512, NULL), S_OK);
	assert_memory_equal(data(t, 0, 512), t->shadow, 512);
}

static void test_unsupported(void **state)
{
	struct t *t = *state;

	start(t);
	assert_int_equal(simple(t, 2, 0, 0, NULL), S_UNSUPP);
	assert_int_equal(simple(t, 99, 0, 512, NULL), S_UNSUPP);
	assert_int_equal(simple(t, 0xffffffffu, 0, 0, NULL), S_UNSUPP);
	assert_int_equal(request(t, 0, 0x80000001u, 0, 512, false, NULL, 0, NULL), S_UNSUPP);
	check_file(t);
	assert_false(status(t) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(simple(t, T_FLUSH, 0, 0, NULL), S_OK);
}

/* Malformed chains: each must end in NEEDS_RESET with the used ring untouched. */
enum bad { BAD_NO_STATUS, BAD_SHORT_HDR, BAD_LOOP, BAD_OUTSIDE, BAD_STRADDLE, BAD_HOLE,
	   BAD_WRAP, BAD_ORDER, BAD_HEAD, BAD_EMPTY_STATUS, BAD_INDIRECT_OUT, BAD_INDIRECT_LOOP,
	   BAD_NESTED, BAD_AVAIL_JUMP, BAD_COUNT };

static void build_bad(struct t *t, enum bad k)
{
	uint64_t h = hdr(t, 0, T_IN, 0), s = stat_gpa(t, 0);
	const uint16_t N = VIRTQ_DESC_F_NEXT, W = VIRTQ_DESC_F_WRITE, I = VIRTQ_DESC_F_INDIRECT;

	switch (k) {
	case BAD_NO_STATUS:
		set_desc(t, 0, 0, h, 16, N, 1);
		set_desc(t, 0, 1, DATA, 512, 0, 0);
		break;
	case BAD_SHORT_HDR:
		set_desc(t, 0, 0, h, 8, N, 1);
		set_desc(t, 0, 1, s, 1, W, 0);
		break;
	case BAD_LOOP:
		set_desc(t, 0, 0, h, 16, N, 1);
		set_desc(t, 0, 1, DATA, 512, N | W, 0);
		break;
	case BAD_OUTSIDE:
		set_desc(t, 0, 0, h, 16, N, 1);
		set_desc(t, 0, 1, RAM + 0x1000, 512, N | W, 2);
		set_desc(t, 0, 2, s, 1, W, 0);
		break;
	case BAD_STRADDLE:
		set_desc(t, 0, 0, h, 16, N, 1);
		set_desc(t, 0, 1, RAM - 256, 512, N | W, 2);
		set_desc(t, 0, 2, s, 1, W, 0);
		break;
	case BAD_HOLE:
		set_desc(t, 0, 0, X86_PCI_MMIO_START, 16, N, 1);
		set_desc(t, 0, 1, s, 1, W, 0);
		break;
	case BAD_WRAP:
		set_desc(t, 0, 0, h, 16, N, 1);
		set_desc(t, 0, 1, UINT64_MAX - 255, 512, N | W, 2);
		set_desc(t, 0, 2, s, 1, W, 0);
		break;
	case BAD_ORDER: /* readable after writable */
		set_desc(t, 0, 0, s, 1, N | W, 1);
		set_desc(t, 0, 1, h, 16, 0, 0);
		break;
	case BAD_HEAD:
		break; /* the avail entry names descriptor 1000 */
	case BAD_EMPTY_STATUS:
		set_desc(t, 0, 0, h, 16, N, 1);
		set_desc(t, 0, 1, s, 0, W, 0);
		break;
	case BAD_INDIRECT_OUT:
		set_desc(t, 0, 0, RAM - 32, 64, I, 0);
		break;
	case BAD_INDIRECT_LOOP: {
		uint8_t *tb = fake_gpa(&t->f, INDIR, 48);
		uint16_t f1 = N, f2 = N | W, n1 = 1, n2 = 0;
		uint32_t l1 = 16, l2 = 1;

		memset(tb, 0, 48);
		memcpy(tb, &h, 8);
		memcpy(tb + 8, &l1, 4);
		memcpy(tb + 12, &f1, 2);
		memcpy(tb + 14, &n1, 2);
		memcpy(tb + 16, &s, 8);
		memcpy(tb + 24, &l2, 4);
		memcpy(tb + 28, &f2, 2);
		memcpy(tb + 30, &n2, 2);
		set_desc(t, 0, 0, INDIR, 32, I, 0);
		break;
	}
	case BAD_NESTED: {
		uint8_t *tb = fake_gpa(&t->f, INDIR, 16);
		uint64_t a = INDIR;
		uint32_t l = 16;
		uint16_t f = I, n = 0;

		memcpy(tb, &a, 8);
		memcpy(tb + 8, &l, 4);
		memcpy(tb + 12, &f, 2);
		memcpy(tb + 14, &n, 2);
		set_desc(t, 0, 0, INDIR, 16, I, 0);
		break;
	}
	case BAD_AVAIL_JUMP: /* the driver claims more new entries than the ring holds */
		set_desc(t, 0, 0, h, 16, N, 1);
		set_desc(t, 0, 1, s, 1, W, 0);
		t->q[0].avail_idx = (uint16_t)(t->q[0].avail_idx + 200);
		break;
	case BAD_COUNT:
		break;
	}
	publish(t, 0, k == BAD_HEAD ? 1000 : 0);
}

static void test_malformed(void **state)
{
	struct t *t = *state;
	uint32_t id, len;

	for (unsigned k = 0; k < BAD_COUNT; k++) {
		uint64_t errors = t->vd->stats.errors;

		start_q(t, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC), 1, 64);
		(void)rd(t, ISR, 1);
		build_bad(t, k);
		kick(t, 0);
		settle(t);
		if (!(status(t) & VIRTIO_STATUS_NEEDS_RESET)) {
			fprintf(stderr, "malformed case %u: no NEEDS_RESET (status 0x%02x)\n", k,
				status(t));
			fail();
		}
		assert_int_equal(used_idx(t, 0), 0);
		assert_true(t->vd->stats.errors > errors);
		/* The driver hears of it: a configuration-change interrupt (ISR bit 1). */
		assert_true(t->f.level[t->line]);
		assert_int_equal(rd(t, ISR, 1) & 2, 2);
		/* Further kicks are ignored until the reset. */
		add(t, 0, (struct dbuf[]){ { hdr(t, 1, T_FLUSH, 0), 16, false },
					   { stat_gpa(t, 1), 1, true } }, 2);
		kick(t, 0);
		settle(t);
		assert_false(used(t, 0, &id, &len));

		/* After a reset it works again. */
		start(t);
		fill(data(t, 0, 1024), 1024, (uint8_t)k);
		memcpy(t->shadow + 512ULL * (200 + 2 * k), data(t, 0, 1024), 1024);
		assert_int_equal(simple(t, T_OUT, 200 + 2 * k, 1024, NULL), S_OK);
		assert_int_equal(simple(t, T_IN, 200 + 2 * k, 1024, NULL), S_OK);
		assert_memory_equal(data(t, 0, 1024), t->shadow + 512ULL * (200 + 2 * k), 1024);
	}
	check_file(t);
}

static void test_queue_depth(void **state)
{
	struct t *t = *state;
	unsigned done = 0, seen[SLOTS] = { 0 };
	uint16_t heads[SLOTS];
	uint32_t id, len;

	start_q(t, 0, 1, 128);
	/* 32 writes of 4 KiB in flight at once, one kick, then 32 reads. */
	for (int pass = 0; pass < 2; pass++) {
		bool wr_pass = pass == 0;

		memset(seen, 0, sizeof(seen));
		for (unsigned s = 0; s < 32; s++) {
			uint64_t sector = 8ULL * ((s * 37) % 256);
			struct dbuf b[3] = { { hdr(t, s, wr_pass ? T_OUT : T_IN, sector), 16, false },
					     { DATA + 8192ULL * s, 4096, !wr_pass },
					     { stat_gpa(t, s), 1, true } };

			if (wr_pass) {
				fill(data(t, 8192ULL * s, 4096), 4096, (uint8_t)(s * 3));
				memcpy(t->shadow + sector * 512, data(t, 8192ULL * s, 4096), 4096);
			} else {
				memset(data(t, 8192ULL * s, 4096), 0, 4096);
			}
			heads[s] = add(t, 0, b, 3);
		}
		kick(t, 0);
		for (done = 0; done < 32;) {
			assert_true(wait_used(t, 0, &id, &len));
			for (unsigned s = 0; s < 32; s++) {
				if (heads[s] == id) {
					assert_int_equal(seen[s], 0);
					seen[s] = 1;
					assert_int_equal(req_status(t, s), S_OK);
					assert_int_equal(len, wr_pass ? 1 : 4097);
				}
			}
			done++;
		}
		for (unsigned s = 0; s < 32; s++) {
			uint64_t sector = 8ULL * ((s * 37) % 256);

			assert_int_equal(seen[s], 1);
			if (!wr_pass)
				assert_memory_equal(data(t, 8192ULL * s, 4096),
						    t->shadow + sector * 512, 4096);
		}
	}
	check_file(t);
	assert_true(t->f.raised[t->line] >= 1);
}

/* A reset with requests in flight: they finish, their results are dropped, the queue restarts. */
static void test_reset_inflight(void **state)
{
	struct t *t = *state;
	uint32_t id, len;

	start_q(t, 0, 1, 128); /* 32 chains of 3 descriptors */
	for (unsigned s = 0; s < 32; s++) {
		uint64_t sector = 300 + 8ULL * s;
		struct dbuf b[3] = { { hdr(t, s, T_OUT, sector), 16, false },
				     { DATA + 8192ULL * s, 4096, false },
				     { stat_gpa(t, s), 1, true } };

		fill(data(t, 8192ULL * s, 4096), 4096, (uint8_t)(s + 100));
		memcpy(t->shadow + sector * 512, data(t, 8192ULL * s, 4096), 4096);
		add(t, 0, b, 3);
	}
	kick(t, 0);
	fake_pump(&t->f, 100); /* the kick only: requests go to the block layer */
	wr(t, C_STATUS, 1, 0);
	assert_int_equal(status(t), 0);
	settle(t);
	assert_int_equal(used_idx(t, 0), 0);
	/* A reset waits for them (they may write guest RAM): the file has every write. */
	check_file(t);
	start(t);
	assert_int_equal(simple(t, T_IN, 300, 4096, NULL), S_OK);
	assert_memory_equal(data(t, 0, 4096), t->shadow + 300 * 512, 4096);
	assert_false(used(t, 0, &id, &len));
}

/* Dirty page-cache pages of the disk file (cachestat(2), Linux 6.5); -1 when unavailable. */
static long dirty_pages(struct t *t)
{
	struct {
		uint64_t off, len;
	} range = { 0, DISK };
	struct {
		uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
	} cs;

	memset(&cs, 0, sizeof(cs));
	if (syscall(451 /* __NR_cachestat */, t->fd, &range, &cs, 0) < 0)
		return -1;
	return (long)cs.nr_dirty;
}

/* FLUSH negotiated: a completed FLUSH means every completed write is durable (5.2.6). */
static void test_flush_durable(void **state)
{
	struct t *t = *state;

	assert_int_equal(fdatasync(t->fd), 0);
	if (dirty_pages(t) < 0)
		skip(); /* no cachestat(2) on this kernel */
	assert_int_equal(dirty_pages(t), 0);
	start_q(t, VIRTIO_BIT(F_FLUSH), 1, 64);
	fill(data(t, 0, 4096), 4096, 0x5c);
	memcpy(t->shadow + 24 * 512, data(t, 0, 4096), 4096);
	assert_int_equal(simple(t, T_OUT, 24, 4096, NULL), S_OK);
	assert_int_equal(simple(t, T_FLUSH, 0, 0, NULL), S_OK);
	assert_int_equal(dirty_pages(t), 0);
	check_file(t);
}

/*
 * FLUSH not negotiated: the device has no writeback cache, so a completed
 * write is already durable (virtio 1.2, 5.2.5: the cache is in writeback mode
 * after reset if and only if VIRTIO_BLK_F_FLUSH is negotiated). A driver that
 * does not negotiate FLUSH never sends one.
 */
static void test_writethrough_without_flush(void **state)
{
	struct t *t = *state;

	assert_int_equal(fdatasync(t->fd), 0);
	if (dirty_pages(t) < 0)
		skip(); /* no cachestat(2) on this kernel */
	assert_int_equal(dirty_pages(t), 0);
	start_q(t, 0, 1, 64);
	fill(data(t, 0, 4096), 4096, 0x6d);
	memcpy(t->shadow + 32 * 512, data(t, 0, 4096), 4096);
	assert_int_equal(simple(t, T_OUT, 32, 4096, NULL), S_OK);
	if (dirty_pages(t) != 0)
		fprintf(stderr, "a completed write without FLUSH negotiated left %ld pages dirty\n",
			dirty_pages(t));
	assert_int_equal(dirty_pages(t), 0);
	check_file(t);
}

/* The VM's event loop, on its own thread: runs completions until told to stop. */
struct pumper {
	struct t *t;
	bool stop; /* atomic */
};

static void *pump_thread(void *arg)
{
	struct pumper *p = arg;

	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
		fake_pump(&p->t->f, 1);
	return NULL;
}

/*
 * A reset from a vCPU thread while the event-loop thread completes requests
 * (a guest rebooting with I/O in flight): afterwards nothing may be counted
 * in flight, so a snapshot (virtio_save) must succeed.
 */
static void test_reset_race(void **state)
{
	struct t *t = *state;
	struct sbuf sb = { 0 };
	int busy = 0;

	for (int round = 0; round < 50; round++) {
		struct pumper p = { t, false };
		pthread_t th;

		start_q(t, 0, 1, 128);
		for (unsigned s = 0; s < 32; s++) {
			struct dbuf b[3] = { { hdr(t, s, T_IN, 8ULL * s), 16, false },
					     { DATA + 8192ULL * s, 4096, true },
					     { stat_gpa(t, s), 1, true } };

			add(t, 0, b, 3);
		}
		kick(t, 0);
		fake_pump(&t->f, 100); /* the kick: 32 requests to the block layer */
		assert_int_equal(pthread_create(&th, NULL, pump_thread, &p), 0);
		for (volatile int spin = 0; spin < (round % 20) * 500; spin++)
			;
		wr(t, C_STATUS, 1, 0);
		__atomic_store_n(&p.stop, true, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
		settle(t);
		if (virtio_save(t->vd, &sb) == -EBUSY)
			busy++;
		sbuf_free(&sb);
		memset(&sb, 0, sizeof(sb));
	}
	if (busy)
		fprintf(stderr, "virtio_save said -EBUSY after %d of 50 resets with nothing in flight\n",
			busy);
	assert_int_equal(busy, 0);
}

static void test_indirect(void **state)
{
	struct t *t = *state;
	uint8_t *tb = fake_gpa(&t->f, INDIR, 64);
	uint64_t a[3] = { hdr(t, 0, T_IN, 5), DATA, stat_gpa(t, 0) };
	uint32_t l[3] = { 16, 2048, 1 }, id, len;
	uint16_t f[3] = { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
			  VIRTQ_DESC_F_WRITE };

	start_q(t, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC), 1, 64);
	for (uint16_t i = 0; i < 3; i++) {
		uint16_t next = (uint16_t)(i + 1);

		memcpy(tb + 16 * i, &a[i], 8);
		memcpy(tb + 16 * i + 8, &l[i], 4);
		memcpy(tb + 16 * i + 12, &f[i], 2);
		memcpy(tb + 16 * i + 14, &next, 2);
	}
	set_desc(t, 0, 0, INDIR, 48, VIRTQ_DESC_F_INDIRECT, 0);
	t->q[0].next_desc = 1;
	publish(t, 0, 0);
	kick(t, 0);
	assert_true(wait_used(t, 0, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, 2049);
	assert_int_equal(req_status(t, 0), S_OK);
	assert_memory_equal(data(t, 0, 2048), t->shadow + 5 * 512, 2048);
}

/* A disk just past 4 GiB (sparse), so that only the 32-bit used length limits a request. */
#define BIG_DISK ((4ULL << 30) + (16ULL << 20))

static int setup_big(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t || make_disk(t) || ftruncate(t->fd, BIG_DISK) || make_dev(t, false, 1))
		return -1;
	*state = t;
	return 0;
}

/*
 * A read whose data descriptors add up to more than 4 GiB (the same 8 MiB of
 * RAM, 513 times, through an indirect table): its used length cannot be
 * represented in 32 bits, so it is refused with IOERR before any I/O, counted
 * as an error, and the device goes on.
 */
static void test_used_len_overflow(void **state)
{
	struct t *t = *state;
	const unsigned nd = 513, n = nd + 2;
	const uint32_t piece = 8u << 20;
	uint8_t *tb = fake_gpa(&t->f, INDIR, 16ULL * n);
	uint64_t errors;
	uint32_t id, len;

	start_q(t, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC), 1, 64);
	errors = t->vd->stats.errors;
	memset(data(t, 0, piece), 0xa5, piece);
	for (unsigned i = 0; i < n; i++) {
		uint64_t a = i == 0 ? hdr(t, 0, T_IN, 0) : i == n - 1 ? stat_gpa(t, 0) : DATA;
		uint32_t l = i == 0 ? 16 : i == n - 1 ? 1 : piece;
		uint16_t f = (uint16_t)((i ? VIRTQ_DESC_F_WRITE : 0) |
					(i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		uint16_t next = (uint16_t)(i + 1);

		memcpy(tb + 16 * i, &a, 8);
		memcpy(tb + 16 * i + 8, &l, 4);
		memcpy(tb + 16 * i + 12, &f, 2);
		memcpy(tb + 16 * i + 14, &next, 2);
	}
	set_desc(t, 0, 0, INDIR, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	t->q[0].next_desc = 1;
	publish(t, 0, 0);
	kick(t, 0);
	assert_true(wait_used(t, 0, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, 1); /* the status byte only */
	assert_int_equal(req_status(t, 0), S_IOERR);
	/* Nothing was read into the buffers. */
	for (uint32_t i = 0; i < piece; i += 4096)
		assert_int_equal(*data(t, i, 1), 0xa5);
	assert_int_equal(t->vd->stats.errors, errors + 1);
	assert_false(status(t) & VIRTIO_STATUS_NEEDS_RESET);
	/* Still working, at the far end of the disk too. */
	assert_int_equal(simple(t, T_IN, 0, 512, NULL), S_OK);
	assert_memory_equal(data(t, 0, 512), t->shadow, 512);
	assert_int_equal(simple(t, T_IN, BIG_DISK / 512 - 1, 512, NULL), S_OK);
}

static void test_multiqueue(void **state)
{
	struct t *t = *state;
	uint64_t f = device_features(t);

	assert_true(f & VIRTIO_BIT(F_MQ));
	assert_int_equal(rd(t, DEVCFG + 34, 2), 2);
	start_q(t, VIRTIO_BIT(F_MQ), 2, 32);
	fill(data(t, 0, 2048), 2048, 0x42);
	memcpy(t->shadow + 64 * 512, data(t, 0, 2048), 2048);
	assert_int_equal(request(t, 1, T_OUT, 64, 2048, false, NULL, 0, NULL), S_OK);
	assert_int_equal(used_idx(t, 0), 0);
	assert_int_equal(request(t, 0, T_IN, 64, 2048, true, NULL, 0, NULL), S_OK);
	assert_memory_equal(data(t, 0, 2048), t->shadow + 64 * 512, 2048);
	assert_int_equal(used_idx(t, 1), 1);
	check_file(t);
}

static void test_save_load(void **state)
{
	struct t *t = *state, *u;
	struct sbuf sb = { 0 };
	uint32_t id, len;

	start(t);
	wr(t, DEVCFG + 32, 1, 1); /* writeback */
	/* Not while a request is in flight (a write: a cached read is answered in the kick). */
	add(t, 0, (struct dbuf[]){ { hdr(t, 0, T_OUT, 0), 16, false }, { DATA, 4096, false },
				   { stat_gpa(t, 0), 1, true } }, 3);
	kick(t, 0);
	fake_pump(&t->f, 100);
	assert_int_equal(used_idx(t, 0), 0);
	assert_int_equal(virtio_save(t->vd, &sb), -EBUSY);
	sbuf_free(&sb);
	memset(&sb, 0, sizeof(sb));
	assert_true(wait_used(t, 0, &id, &len));
	assert_int_equal(virtio_save(t->vd, &sb), 0);

	u = calloc(1, sizeof(*u));
	assert_non_null(u);
	strcpy(u->path, t->path);
	u->fd = -1;
	assert_int_equal(make_dev(u, false, 1), 0);
	assert_int_equal(virtio_load(u->vd, sb.data, sb.len), 0);
	assert_int_equal(rd(u, DEVCFG + 32, 1), 1);
	assert_int_equal(status(u), 0x0f);
	memcpy(fake_gpa(&u->f, 0, RAM), fake_gpa(&t->f, 0, RAM), RAM);
	u->q[0] = t->q[0];
	assert_int_equal(request(u, 0, T_IN, 8, 512, true, NULL, 0, NULL), S_OK);
	assert_memory_equal(data(u, 0, 512), t->shadow + 8 * 512, 512);
	assert_int_equal(used_idx(u, 0), 2);
	/* A device record of the wrong length is refused. */
	sb.data[sb.len - 5] = 2; /* devlen */
	assert_int_equal(virtio_load(u->vd, sb.data, sb.len), -EINVAL);
	sbuf_free(&sb);
	t_fini(u);
	free(u);
}

/*
 * More requests than one pass takes (BLK_NOTIFY_BUDGET, 64): the device re-queues
 * itself on its kick eventfd, and every request completes after the guest's one kick.
 */
static void test_budget(void **state)
{
	struct t *t = *state;
	unsigned n = 100, got = 0;
	uint64_t kicks;
	uint32_t id, len;

	start_q(t, VIRTIO_BIT(F_FLUSH), 1, 256);
	for (unsigned s = 0; s < n; s++) {
		struct dbuf b[2] = { { hdr(t, s % SLOTS, T_FLUSH, 0), 16, false },
				     { stat_gpa(t, s % SLOTS), 1, true } };

		add(t, 0, b, 2);
	}
	kicks = t->vd->stats.kicks;
	kick(t, 0);
	while (got < n && wait_used(t, 0, &id, &len))
		got++;
	assert_int_equal(got, n);
	/* The guest's kick, then the device's own for what the first pass left. */
	assert_true(t->vd->stats.kicks >= kicks + 2);
	assert_int_equal(t->vd->stats.errors, 0);
	for (unsigned s = 0; s < SLOTS; s++)
		assert_int_equal(req_status(t, s), S_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_get_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_write_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_inflight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writethrough_without_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiqueue, setup_mq, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_used_len_overflow, setup_big, teardown),
	};

	return cmocka_run_group_tests_name("virtio_blk", tests, NULL, NULL);
}
