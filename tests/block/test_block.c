// SPDX-License-Identifier: MIT
/* test_block.c: block layer unit tests: raw and qcow2 drivers, requests, a randomised differential test. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/util.h"
#include "block/block.h"
#include "block/qcow2.h"

static char tmpdir[256];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvmm-block-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, const char *name)
{
	snprintf(out, 300, "%s/%s", tmpdir, name);
}

static bool have_qemu_img(void)
{
	return system("qemu-img --version >/dev/null 2>&1") == 0;
}

/* qemu-img check exit status (0 clean, 2 corrupt, 3 leaks), or 0 without qemu-img. */
static int qemu_check(const char *path)
{
	char cmd[400];
	int st;

	if (!have_qemu_img())
		return 0;
	snprintf(cmd, sizeof(cmd), "qemu-img check -q %s >/dev/null 2>&1", path);
	st = system(cmd);
	return WEXITSTATUS(st);
}

static struct image *open_rw(const char *p)
{
	struct image_open_opts o = { 0 };
	struct image *img = NULL;
	struct err e = { { 0 } };
	int ret = image_open(p, &o, &img, &e);

	if (ret < 0)
		fprintf(stderr, "open %s: %s\n", p, e.msg);
	assert_int_equal(ret, 0);
	return img;
}

static void test_raw_basic(void **state)
{
	struct image_create_opts co = { .format = IMAGE_FMT_RAW, .size = 1 * MiB };
	char p[300], buf[8192], rd[8192];
	struct image *img;
	struct err e;

	(void)state;
	path_of(p, "basic.raw");
	assert_int_equal(image_create(p, &co, &e), 0);
	img = open_rw(p);
	assert_int_equal(img->format, IMAGE_FMT_RAW);
	assert_int_equal(image_size(img), 1 * MiB);
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(image_pwrite(img, 4096 + 7, buf, sizeof(buf)), 0);
	assert_int_equal(image_flush(img), 0);
	assert_int_equal(image_pread(img, 4096 + 7, rd, sizeof(rd)), 0);
	assert_memory_equal(buf, rd, sizeof(buf));
	/* Out of range requests are refused, never clamped. */
	assert_int_equal(image_pread(img, 1 * MiB - 10, rd, 20), -EINVAL);
	assert_int_equal(image_write_zeroes(img, 4096, 4096, 0), 0);
	assert_int_equal(image_pread(img, 4096 + 7, rd, 10), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(rd[i], i < 4096 - 7 ? 0 : (char)0xab);
	image_close(img);
}

static void test_qcow2_basic(void **state)
{
	struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .size = 16 * MiB };
	char p[300];
	uint8_t buf[100000], rd[100000];
	struct image *img;
	struct err e;

	(void)state;
	path_of(p, "basic.qcow2");
	assert_int_equal(image_create(p, &co, &e), 0);
	img = open_rw(p);
	assert_int_equal(img->format, IMAGE_FMT_QCOW2);
	assert_int_equal(image_size(img), 16 * MiB);
	assert_int_equal(image_pread(img, 0, rd, sizeof(rd)), 0);
	for (size_t i = 0; i < sizeof(rd); i++)
		assert_int_equal(rd[i], 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(image_pwrite(img, 12345, buf, sizeof(buf)), 0);
	assert_int_equal(image_pread(img, 12345, rd, sizeof(rd)), 0);
	assert_memory_equal(buf, rd, sizeof(buf));
	image_close(img);
	img = open_rw(p);
	assert_int_equal(image_pread(img, 12345, rd, sizeof(rd)), 0);
	assert_memory_equal(buf, rd, sizeof(buf));
	image_close(img);
	assert_int_equal(qemu_check(p), 0);
}

static size_t iov_len_total(const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

struct aio_ctx {
	int done, errors;
};

static void aio_done(struct blk_req *r, int ret)
{
	struct aio_ctx *c = r->opaque;

	c->done++;
	if (ret)
		c->errors++;
}

static void aio_run(enum image_format fmt)
{
	struct image_create_opts co = { .format = fmt, .size = 8 * MiB, .cluster_size = 4096 };
	enum { N = 64 };
	static uint8_t bufs[N][4096], rd[4096];
	struct iovec iov[N];
	struct blk_req req[N + 1];
	struct aio_ctx ctx = { 0 };
	char p[300];
	struct image *img;
	struct err e;

	path_of(p, fmt == IMAGE_FMT_RAW ? "aio.raw" : "aio.qcow2");
	assert_int_equal(image_create(p, &co, &e), 0);
	img = open_rw(p);
	assert_int_equal(image_aio_start(img, &e), 0);
	for (int i = 0; i < N; i++) {
		memset(bufs[i], i + 1, sizeof(bufs[i]));
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		req[i] = (struct blk_req){ .op = BLK_WRITE, .offset = (uint64_t)i * 3 * 4096, .iov = &iov[i],
					   .iovcnt = 1, .done = aio_done, .opaque = &ctx };
		assert_int_equal(image_submit(img, &req[i]), 0);
	}
	req[N] = (struct blk_req){ .op = BLK_FLUSH, .done = aio_done, .opaque = &ctx };
	assert_int_equal(image_submit(img, &req[N]), 0);
	/* Completions arrive through the eventfd, callbacks run on this thread. */
	while (ctx.done < N + 1) {
		struct pollfd pfd = { .fd = image_aio_fd(img), .events = POLLIN };

		assert_true(poll(&pfd, 1, 5000) > 0);
		image_aio_complete(img);
	}
	assert_int_equal(ctx.errors, 0);
	/* The synchronous API goes through the worker while it runs. */
	assert_int_equal(image_pread(img, 5 * 3 * 4096, rd, sizeof(rd)), 0);
	assert_memory_equal(rd, bufs[5], sizeof(rd));
	/* Reads and writes submitted together (raw batches them into one io_uring submission). */
	ctx.done = 0;
	for (int i = 0; i < N; i++) {
		req[i] = (struct blk_req){ .op = i % 2 ? BLK_READ : BLK_WRITE, .offset = (uint64_t)(i / 2) * 3 * 4096,
					   .iov = &iov[i], .iovcnt = 1, .done = aio_done, .opaque = &ctx };
		if (i % 2)
			memset(bufs[i], 0, sizeof(bufs[i]));
		assert_int_equal(image_submit(img, &req[i]), 0);
	}
	image_aio_drain(img);
	assert_int_equal(ctx.done, N);
	assert_int_equal(ctx.errors, 0);
	for (int i = 1; i < N; i += 2)
		assert_memory_equal(bufs[i], bufs[i - 1], sizeof(bufs[i])); /* each read saw the write before it */
	/* Out-of-range requests fail alone. */
	req[0] = (struct blk_req){ .op = BLK_READ, .offset = 8 * MiB, .iov = &iov[0], .iovcnt = 1,
				   .done = aio_done, .opaque = &ctx };
	assert_int_equal(image_submit(img, &req[0]), 0);
	image_aio_drain(img);
	assert_int_equal(ctx.errors, 1);
	image_close(img);
	if (fmt == IMAGE_FMT_QCOW2)
		assert_int_equal(qemu_check(p), 0);
}

static void test_aio(void **state)
{
	(void)state;
	aio_run(IMAGE_FMT_QCOW2);
	aio_run(IMAGE_FMT_RAW);
}

/* try_done: odd requests are finished by the worker, even ones declined (posted). */
struct here_ctx {
	pthread_t main;
	int here, here_bad_thread, posted, errors;
};

static bool here_try(struct blk_req *r, int ret)
{
	struct here_ctx *c = r->opaque;

	if (((uintptr_t)r->offset / 4096) % 2 == 0)
		return false;
	__atomic_fetch_add(&c->here, 1, __ATOMIC_SEQ_CST);
	if (pthread_equal(pthread_self(), c->main))
		__atomic_fetch_add(&c->here_bad_thread, 1, __ATOMIC_SEQ_CST);
	if (ret)
		__atomic_fetch_add(&c->errors, 1, __ATOMIC_SEQ_CST);
	return true;
}

static void here_done(struct blk_req *r, int ret)
{
	struct here_ctx *c = r->opaque;

	c->posted++;
	if (ret)
		c->errors++;
}

/*
 * Writes offered to their owner on the worker thread (try_done): each is
 * finished exactly once, either there or through the completion eventfd, and
 * drain and the data see all of them. One at a time (the worker finishes the
 * accepted ones itself), then a burst (queued behind each other: posted).
 */
static void test_aio_finish_here(void **state)
{
	struct image_create_opts co = { .format = IMAGE_FMT_RAW, .size = 1 * MiB };
	enum { N = 48 };
	static uint8_t bufs[N][4096], rd[4096];
	struct iovec iov[N];
	struct blk_req req[N];
	struct here_ctx c = { .main = pthread_self() };
	struct image *img;
	struct err e;
	char p[300];

	(void)state;
	path_of(p, "here.raw");
	assert_int_equal(image_create(p, &co, &e), 0);
	img = open_rw(p);
	assert_int_equal(image_aio_start(img, &e), 0);
	for (int i = 0; i < N; i++) {
		memset(bufs[i], 0x40 + i, sizeof(bufs[i]));
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		req[i] = (struct blk_req){ .op = BLK_WRITE, .offset = (uint64_t)i * 4096, .iov = &iov[i],
					   .iovcnt = 1, .done = here_done, .try_done = here_try,
					   .opaque = &c };
	}
	for (int i = 0; i < N / 2; i++) {
		assert_int_equal(image_submit(img, &req[i]), 0);
		image_aio_drain(img);
		assert_int_equal(__atomic_load_n(&c.here, __ATOMIC_SEQ_CST) + c.posted, i + 1);
	}
	if (img->io.uring) /* the pipelined worker offers writes; the fallback never does */
		assert_int_equal(__atomic_load_n(&c.here, __ATOMIC_SEQ_CST), N / 4);
	for (int i = N / 2; i < N; i++)
		assert_int_equal(image_submit(img, &req[i]), 0);
	image_aio_drain(img);
	assert_int_equal(__atomic_load_n(&c.here, __ATOMIC_SEQ_CST) + c.posted, N);
	assert_int_equal(c.here_bad_thread, 0);
	assert_int_equal(c.errors, 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(image_pread(img, (uint64_t)i * 4096, rd, sizeof(rd)), 0);
		assert_memory_equal(rd, bufs[i], sizeof(rd));
	}
	image_close(img);
}

/*
 * Many requests in flight at once over a small area, so that they overlap:
 * reads (several vectors each), writes, FLUSH, DISCARD and WRITE_ZEROES, with a
 * synchronous read now and then. Whatever runs together, every read must see
 * the disk as it was at its place in submission order, and the file must end as
 * the requests say, in order (raw: the io_uring pipeline; qcow2: batches).
 */
static void aio_order_run(enum image_format fmt, bool uring)
{
	enum { AREA = 64 * 1024, N = 400, SEG = 2048 };
	struct image_create_opts co = { .format = fmt, .size = 1 * MiB, .cluster_size = 4096 };
	struct image_open_opts oo = { .format = fmt, .no_uring = !uring };
	static uint8_t model[AREA], bufs[N][3 * SEG], want[N][3 * SEG], back[AREA];
	static struct iovec iov[N][3];
	static struct blk_req req[N];
	struct aio_ctx ctx = { 0 };
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	char p[300];
	struct image *img;
	struct err e;
	uint64_t prev_end = 0;
	int submitted = 0;

	path_of(p, fmt == IMAGE_FMT_RAW ? "order.raw" : "order.qcow2");
	assert_int_equal(image_create(p, &co, &e), 0);
	assert_int_equal(image_open(p, &oo, &img, &e), 0);
	assert_int_equal(image_aio_start(img, &e), 0);
	memset(model, 0, sizeof(model));
	for (int i = 0; i < N; i++) {
		unsigned kind, segs, len;
		uint64_t off;

		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		kind = (unsigned)(rng % 20);
		segs = 1 + (unsigned)(rng >> 8) % 3;
		len = segs * SEG;
		off = ((rng >> 16) % (AREA / 512 - 3 * SEG / 512)) * 512;
		if ((rng >> 40) % 3 && prev_end + len <= AREA)
			off = prev_end; /* runs that continue each other (merged) */
		prev_end = off + len;
		req[i] = (struct blk_req){ .offset = off, .done = aio_done, .opaque = &ctx };
		for (unsigned k = 0; k < segs; k++)
			iov[i][k] = (struct iovec){ bufs[i] + k * SEG, SEG };
		if (kind < 8) {
			req[i].op = BLK_READ;
			memset(bufs[i], 0xee, len);
			memcpy(want[i], model + off, len); /* the disk at this point */
		} else if (kind < 17) {
			req[i].op = BLK_WRITE;
			for (unsigned k = 0; k < len; k++)
				bufs[i][k] = (uint8_t)(i * 7 + k / 512);
			memcpy(model + off, bufs[i], len);
		} else if (kind == 17) {
			req[i].op = BLK_FLUSH;
		} else {
			/* Whole clusters: qcow2 leaves a partial one alone (discard is a hint). */
			req[i].op = kind == 18 ? BLK_WRITE_ZEROES : BLK_DISCARD;
			req[i].offset = off &= ~4095ULL;
			req[i].len = len = 4096 * (1 + segs % 2);
			memset(model + off, 0, len); /* both read back as zeroes here */
		}
		if (req[i].op == BLK_READ || req[i].op == BLK_WRITE) {
			req[i].iov = iov[i];
			req[i].iovcnt = (int)segs;
		}
		if (i % 10 == 0)
			image_plug(img); /* as virtio-blk does for one pass over a queue */
		assert_int_equal(image_submit(img, &req[i]), 0);
		submitted++;
		if (i % 97 == 96) {
			/* The synchronous API queues behind everything submitted so far. */
			uint8_t rd[SEG];

			assert_int_equal(image_pread(img, off, rd, sizeof(rd)), 0);
			assert_memory_equal(rd, model + off, sizeof(rd));
		}
		if (i % 10 == 9)
			image_unplug(img);
		if (i % 50 == 49) {
			struct pollfd pfd = { .fd = image_aio_fd(img), .events = POLLIN };

			if (poll(&pfd, 1, 0) > 0)
				image_aio_complete(img);
		}
	}
	image_aio_drain(img);
	assert_int_equal(ctx.done, submitted);
	assert_int_equal(ctx.errors, 0);
	for (int i = 0; i < N; i++)
		if (req[i].op == BLK_READ)
			assert_memory_equal(bufs[i], want[i], iov_len_total(iov[i], req[i].iovcnt));
	assert_int_equal(image_pread(img, 0, back, sizeof(back)), 0);
	assert_memory_equal(back, model, sizeof(back));
	image_close(img);
	if (fmt == IMAGE_FMT_QCOW2)
		assert_int_equal(qemu_check(p), 0);
}

static void test_aio_order(void **state)
{
	(void)state;
	aio_order_run(IMAGE_FMT_RAW, true);
	aio_order_run(IMAGE_FMT_RAW, false);
	aio_order_run(IMAGE_FMT_QCOW2, true);
}

/* ---- randomised differential test: qcow2 driver vs raw driver vs memory ---- */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void diff_run(uint64_t seed, unsigned cluster, int compat, bool with_backing, bool refcount8)
{
	const uint64_t size = 4 * MiB + 3 * 512;
	struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .size = size, .cluster_size = cluster,
					.compat = compat, .refcount_bits = refcount8 ? 8 : 0 };
	struct image_create_opts ro = { .format = IMAGE_FMT_RAW, .size = size };
	char qp[300], rp[300], bp[300];
	uint8_t *model = calloc(1, size), *buf = malloc(7 * MiB), *rd = malloc(7 * MiB);
	struct image *q, *r;
	uint64_t s = seed * 2654435761u + 1;
	struct err e;

	assert_non_null(model);
	snprintf(qp, sizeof(qp), "%s/diff-%llu-%u.qcow2", tmpdir, (unsigned long long)seed, cluster);
	snprintf(rp, sizeof(rp), "%s/diff-%llu-%u.raw", tmpdir, (unsigned long long)seed, cluster);
	if (with_backing) {
		snprintf(bp, sizeof(bp), "%s/diff-%llu-%u.base", tmpdir, (unsigned long long)seed, cluster);
		assert_int_equal(image_create(bp, &ro, &e), 0);
		r = open_rw(bp);
		for (uint64_t o = 0; o < size; o += 64 * KiB) {
			uint64_t n = MIN(64 * KiB, size - o);

			if (rng_next(&s) % 3 == 0)
				continue;
			for (uint64_t i = 0; i < n; i++)
				model[o + i] = (uint8_t)rng_next(&s);
			assert_int_equal(image_pwrite(r, o, model + o, n), 0);
		}
		image_close(r);
		co.backing = strrchr(bp, '/') + 1; /* relative to the overlay's directory */
		co.backing_format = IMAGE_FMT_RAW;
	}
	assert_int_equal(image_create(qp, &co, &e), 0);
	assert_int_equal(image_create(rp, &ro, &e), 0);
	q = open_rw(qp);
	r = open_rw(rp);
	assert_int_equal(image_pwrite(r, 0, model, size), 0);
	for (int op = 0; op < 300; op++) {
		uint64_t kind = rng_next(&s) % 16;
		uint64_t len = 1 + rng_next(&s) % (kind < 2 ? 256 * KiB : 3 * cluster + 100);
		uint64_t off = rng_next(&s) % size;

		if (rng_next(&s) % 4 == 0) {
			off &= ~511ull;
			len = ALIGN_UP(len, 512);
		}
		len = MIN(len, size - off);
		if (kind < 9) {
			uint8_t v = (uint8_t)rng_next(&s);

			for (uint64_t i = 0; i < len; i++)
				buf[i] = (uint8_t)(v + i * 13);
			assert_int_equal(image_pwrite(q, off, buf, len), 0);
			assert_int_equal(image_pwrite(r, off, buf, len), 0);
			memcpy(model + off, buf, len);
		} else if (kind < 11) {
			/* Discard whole clusters: they then read as zeroes in both. */
			uint64_t a = ALIGN_UP(off, cluster), b = ALIGN_DOWN(off + len, cluster);

			if (b > a && (!with_backing || compat == 3)) {
				assert_int_equal(image_discard(q, a, b - a), 0);
				assert_int_equal(image_write_zeroes(r, a, b - a, 0), 0);
				memset(model + a, 0, b - a);
			}
		} else if (kind < 13) {
			assert_int_equal(image_write_zeroes(q, off, len, IMAGE_ZERO_MAY_UNMAP), 0);
			assert_int_equal(image_write_zeroes(r, off, len, 0), 0);
			memset(model + off, 0, len);
		} else if (kind == 13) {
			assert_int_equal(image_flush(q), 0);
		} else if (kind == 14) {
			image_close(q);
			q = open_rw(qp);
		} else {
			len = MIN(len, 256 * KiB);
			assert_int_equal(image_pread(q, off, rd, len), 0);
			assert_memory_equal(rd, model + off, len);
		}
	}
	for (uint64_t o = 0; o < size; o += 256 * KiB) {
		uint64_t n = MIN(256 * KiB, size - o);

		assert_int_equal(image_pread(q, o, rd, n), 0);
		assert_memory_equal(rd, model + o, n);
		assert_int_equal(image_pread(r, o, buf, n), 0);
		assert_memory_equal(buf, model + o, n);
	}
	image_close(q);
	image_close(r);
	assert_int_equal(qemu_check(qp), 0);
	/* And a third reader: QEMU agrees on the contents. */
	if (have_qemu_img()) {
		char cmd[2000];

		snprintf(cmd, sizeof(cmd), "qemu-img convert -O raw %s %s.out && cmp -s %s.out %s", qp, qp, qp, rp);
		assert_int_equal(system(cmd), 0);
		snprintf(cmd, sizeof(cmd), "rm -f %s.out", qp);
		assert_int_equal(system(cmd), 0);
	}
	unlink(qp);
	unlink(rp);
	if (with_backing)
		unlink(bp);
	free(model);
	free(buf);
	free(rd);
}

static void test_differential(void **state)
{
	static const unsigned clusters[] = { 512, 1024, 4096, 65536, 2 * 1024 * 1024 };
	const char *env = getenv("KVMM_DIFF_SEEDS");
	unsigned seeds = env ? (unsigned)atoi(env) : 6;

	(void)state;
	for (unsigned seed = 1; seed <= seeds; seed++)
		for (size_t c = 0; c < ARRAY_SIZE(clusters); c++)
			diff_run(seed, clusters[c], seed % 3 == 0 ? 2 : 3, seed % 2 == 0, seed % 3 && seed % 5 == 0);
}

/* ---- hostile headers ---- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static void p_trunc(uint8_t *h, int fd) { (void)h; (void)fd; }

/* Make a valid image, patch it, and expect open to fail with a message containing `want`. */
static void expect_bad(void (*patch)(uint8_t *h, int fd), const char *want)
{
	struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .size = 1 * MiB, .cluster_size = 4096 };
	struct image_open_opts o = { .read_only = true };
	struct image *img = NULL;
	struct err e = { { 0 } };
	uint8_t h[4096];
	char p[300];
	int fd;

	path_of(p, "bad.qcow2");
	assert_int_equal(image_create(p, &co, &e), 0);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, h, sizeof(h), 0), sizeof(h));
	patch(h, fd);
	assert_int_equal(pwrite(fd, h, sizeof(h), 0), sizeof(h));
	if (patch == p_trunc)
		assert_int_equal(ftruncate(fd, 50), 0); /* a header cut short */
	close(fd);
	if (image_open(p, &o, &img, &e) == 0)
		fail_msg("opened an image that should fail with '%s'", want);
	assert_null(img);
	if (!strstr(e.msg, want))
		fail_msg("error '%s' does not mention '%s'", e.msg, want);
	assert_null(strchr(e.msg, '\n'));
}

static void p_l1_huge(uint8_t *h, int fd) { (void)fd; put32(h + 36, 0x7fffffff); }
static void p_l1_eof(uint8_t *h, int fd) { (void)fd; put64(h + 40, 1ull << 40); }
static void p_rt_eof(uint8_t *h, int fd) { (void)fd; put64(h + 48, 1ull << 40); }
static void p_rt_huge(uint8_t *h, int fd) { (void)fd; put32(h + 56, 0xffffffff); }
static void p_incompat(uint8_t *h, int fd) { (void)fd; put64(h + 72, 1ull << 9); }
static void p_refcount(uint8_t *h, int fd) { (void)fd; put32(h + 96, 7); }
static void p_cbits_lo(uint8_t *h, int fd) { (void)fd; put32(h + 20, 8); }
static void p_cbits_hi(uint8_t *h, int fd) { (void)fd; put32(h + 20, 22); }
static void p_version(uint8_t *h, int fd) { (void)fd; put32(h + 4, 4); }
static void p_size(uint8_t *h, int fd) { (void)fd; put64(h + 24, 1ull << 62); }
static void p_backing_len(uint8_t *h, int fd) { (void)fd; put64(h + 8, 4000); put32(h + 16, 2000); }
static void p_crypt(uint8_t *h, int fd) { (void)fd; put32(h + 32, 1); }
static void p_snap(uint8_t *h, int fd) { (void)fd; put32(h + 60, 1000000); put64(h + 64, 4096); }
static void p_hdrlen(uint8_t *h, int fd) { (void)fd; put32(h + 100, 5000); }
static void p_datafile(uint8_t *h, int fd) { (void)fd; put64(h + 72, 1ull << 2); }

static void test_malformed(void **state)
{
	(void)state;
	expect_bad(p_l1_huge, "L1 table size");
	expect_bad(p_l1_eof, "L1 table offset");
	expect_bad(p_rt_eof, "refcount table");
	expect_bad(p_rt_huge, "refcount table");
	expect_bad(p_incompat, "incompatible feature bit 9");
	expect_bad(p_refcount, "refcount_order 7");
	expect_bad(p_cbits_lo, "cluster_bits 8");
	expect_bad(p_cbits_hi, "cluster_bits 22");
	expect_bad(p_version, "not a qcow2 image");
	expect_bad(p_size, "virtual size");
	expect_bad(p_trunc, "too small");
	expect_bad(p_backing_len, "backing file name");
	expect_bad(p_crypt, "encrypted");
	expect_bad(p_snap, "snapshots");
	expect_bad(p_hdrlen, "header length");
	expect_bad(p_datafile, "external data file");
}

static void test_backing_loop(void **state)
{
	struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .size = 1 * MiB, .backing = "loop-b.qcow2",
					.backing_format = IMAGE_FMT_QCOW2 };
	struct image_open_opts o = { .read_only = true };
	struct image *img = NULL;
	struct err e = { { 0 } };
	char a[300], b[300];

	(void)state;
	path_of(a, "loop-a.qcow2");
	path_of(b, "loop-b.qcow2");
	co.backing = NULL;
	assert_int_equal(image_create(b, &co, &e), 0);
	co.backing = "loop-b.qcow2";
	assert_int_equal(image_create(a, &co, &e), 0);
	co.backing = "loop-a.qcow2";
	co.size = 1 * MiB;
	assert_int_equal(image_create(b, &co, &e), 0); /* b now points back at a */
	assert_true(image_open(a, &o, &img, &e) < 0);
	assert_non_null(strstr(e.msg, "loop"));
}

static void test_corrupt_bit(void **state)
{
	struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .size = 1 * MiB };
	struct image_open_opts o = { .read_only = false };
	struct image *img = NULL;
	struct err e = { { 0 } };
	uint8_t v[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };
	char p[300];
	int fd;

	(void)state;
	path_of(p, "corrupt.qcow2");
	assert_int_equal(image_create(p, &co, &e), 0);
	fd = open(p, O_RDWR);
	assert_int_equal(pwrite(fd, v, 8, 72), 8);
	close(fd);
	assert_true(image_open(p, &o, &img, &e) < 0);
	assert_non_null(strstr(e.msg, "corrupt"));
	o.read_only = true;
	assert_int_equal(image_open(p, &o, &img, &e), 0);
	image_close(img);
}

static void fill_pattern(uint8_t *b, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v + i * 31);
}

/* Snapshots: created by kvmm or qemu-img, then kvmm writes copy-on-write around them. */
static void test_snapshots(void **state)
{
	struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .size = 4 * MiB, .cluster_size = 4096 };
	const size_t n = 3 * MiB;
	uint8_t *a = malloc(n), *b = malloc(n), *rd = malloc(n);
	struct image *img;
	struct err e = { { 0 } };
	char p[300], cmd[1200];

	(void)state;
	path_of(p, "snap.qcow2");
	assert_int_equal(image_create(p, &co, &e), 0);
	fill_pattern(a, n, 1);
	fill_pattern(b, n, 2);
	img = open_rw(p);
	assert_int_equal(image_pwrite(img, 1000, a, n), 0);
	assert_int_equal(qcow2_snapshot_create(img, "first", &e), 0);
	/* Overwrites now copy the shared clusters (and their L2 tables). */
	assert_int_equal(image_pwrite(img, 5000, b, n / 2), 0);
	assert_int_equal(image_discard(img, 2 * MiB, 512 * KiB), 0);
	assert_int_equal(image_write_zeroes(img, 3 * MiB + 7, 9000, 0), 0);
	assert_int_equal(qcow2_snapshot_create(img, "first", &e), -EEXIST);
	assert_int_equal(qcow2_snapshot_create(img, "second", &e), 0);
	image_close(img);
	assert_int_equal(qemu_check(p), 0);
	img = open_rw(p);
	assert_int_equal(qcow2_snapshot_apply(img, "first", &e), 0);
	assert_int_equal(image_pread(img, 1000, rd, n), 0);
	assert_memory_equal(rd, a, n);
	assert_int_equal(qcow2_snapshot_delete(img, "first", &e), 0);
	assert_int_equal(qcow2_snapshot_apply(img, "nosuch", &e), -ENOENT);
	image_close(img);
	assert_int_equal(qemu_check(p), 0);
	if (have_qemu_img()) {
		/* qemu-img applies kvmm's snapshot and writes; kvmm reads and checks. */
		snprintf(cmd, sizeof(cmd), "qemu-img snapshot -a second %s && qemu-img snapshot -c third %s && "
			 "qemu-io -c 'write -P 9 0 64k' %s >/dev/null", p, p, p);
		assert_int_equal(system(cmd), 0);
		img = open_rw(p);
		assert_int_equal(image_pread(img, 64 * KiB, rd, 4096), 0);
		assert_memory_equal(rd, b + 64 * KiB - 5000, 4096);
		assert_int_equal(image_pwrite(img, 100 * KiB, a, 300 * KiB), 0);
		assert_int_equal(qcow2_snapshot_delete(img, "third", &e), 0);
		assert_int_equal(qcow2_snapshot_delete(img, "second", &e), 0);
		image_close(img);
		assert_int_equal(qemu_check(p), 0);
	}
	free(a);
	free(b);
	free(rd);
}

/* A dirty image (lazy refcounts, stale refcounts) is repaired when opened read-write. */
static void test_dirty_repair(void **state)
{
	struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .size = 4 * MiB, .lazy_refcounts = true };
	uint8_t buf[65536], v[8] = { 0, 0, 0, 0, 0, 0, 0, 1 }, zero2[2] = { 0, 0 };
	struct image_open_opts ro = { .read_only = true };
	struct image *img;
	struct err e = { { 0 } };
	char p[300];
	int fd;

	(void)state;
	path_of(p, "dirty.qcow2");
	assert_int_equal(image_create(p, &co, &e), 0);
	img = open_rw(p);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(image_pwrite(img, 0, buf, sizeof(buf)), 0);
	image_close(img);
	/* Dirty bit set, and the data cluster (cluster 5: after header, reftable, refblock, L1
	 * and the L2 table) has lost its refcount, as after a crash with lazy refcounts. */
	fd = open(p, O_RDWR);
	assert_int_equal(pwrite(fd, v, 8, 72), 8);
	assert_int_equal(pwrite(fd, zero2, 2, 2 * 65536 + 2 * 5), 2);
	close(fd);
	if (have_qemu_img())
		assert_int_not_equal(qemu_check(p), 0);
	assert_int_equal(image_open(p, &ro, &img, &e), 0); /* read-only: no repair, reads fine */
	assert_int_equal(image_pread(img, 0, buf, 16), 0);
	assert_int_equal(buf[0], 0x5a);
	image_close(img);
	img = open_rw(p);
	assert_false(qcow2_of(img)->incompat & QCOW2_INCOMPAT_DIRTY);
	assert_int_equal(image_pwrite(img, 65536, buf, sizeof(buf)), 0);
	image_close(img);
	assert_int_equal(qemu_check(p), 0);
}

/* ---- metadata cache: the O(1) victim choice matches the full scan it replaced ---- */

/* The policy as a scan over every entry: the first unused unpinned entry in index order,
 * else the least recently used clean unpinned one, else the least recently used dirty one. */
static int scan_victim(const struct qcow2_cache *c)
{
	int victim = -1;

	for (unsigned k = 0; k < c->n; k++) {
		const struct qcow2_cache_entry *ce = &c->e[k];

		if (ce->pins)
			continue;
		if (!ce->offset)
			return (int)k;
		if (victim == -1 || (!ce->dirty && (c->e[victim].dirty || ce->lru < c->e[victim].lru)) ||
		    (ce->dirty && c->e[victim].dirty && ce->lru < c->e[victim].lru))
			victim = (int)k;
	}
	return victim;
}

/* Lists sorted by lru, holding exactly the entries in use (an unpinned one on the list its
 * dirty bit names); the free bitmap holds the unused unpinned ones. */
static void check_lists(const struct qcow2_cache *c)
{
	unsigned listed = 0, nfree = 0;

	for (int l = 0; l < 2; l++) {
		const struct qcow2_lru_list *li = l ? &c->dirty : &c->clean;
		int prev = -1;

		for (int i = li->head; i != -1; prev = i, i = c->e[i].next_lru) {
			assert_int_equal(c->e[i].prev_lru, prev);
			assert_true(c->e[i].offset != 0);
			if (!c->e[i].pins)
				assert_int_equal(c->e[i].dirty, l == 1);
			if (prev != -1)
				assert_true(c->e[prev].lru < c->e[i].lru);
			listed++;
		}
		assert_int_equal(li->tail, prev);
	}
	for (unsigned k = 0; k < c->n; k++) {
		bool bit = c->freemap[k / 64] >> (k % 64) & 1;

		assert_int_equal(bit, !c->e[k].pins && !c->e[k].offset);
		nfree += bit;
		if (c->e[k].offset)
			listed--;
	}
	assert_int_equal(listed, 0);
	assert_int_equal(nfree, c->nfree);
}

static void test_cache_policy(void **state)
{
	struct image_create_opts co = { .format = IMAGE_FMT_QCOW2, .size = 16 * MiB, .cluster_size = 4096 };
	struct qcow2_cache_entry *pinned[80]; /* more than the cache holds: -EBUSY too */
	unsigned misses_dirty = 0, misses_clean = 0, busy = 0;
	struct qcow2_cache c;
	struct image *img;
	struct qcow2 *q;
	struct err e;
	unsigned npinned = 0;
	uint64_t seed = 7;
	char p[300];

	(void)state;
	path_of(p, "cache.qcow2");
	assert_int_equal(image_create(p, &co, &e), 0);
	img = open_rw(p);
	q = qcow2_of(img);
	/* A cache of its own over scratch clusters past the image's end: evicting a dirty
	 * entry writes it there, which nothing reads. */
	assert_int_equal(qcow2_cache_init(&c, 70, q->cluster_size, false), 0);
	for (int step = 0; step < 20000; step++) {
		unsigned r, op;
		uint64_t off;

		seed ^= seed << 13; /* xorshift64 */
		seed ^= seed >> 7;
		seed ^= seed << 17;
		r = (unsigned)(seed >> 32);
		off = (uint64_t)(256 + (seed & 0xffff) % 160) * q->cluster_size;
		/* Phases: balanced, then mostly gets (every entry ends up pinned), then mostly puts;
		 * tables put back dirty in the later two, so dirty ones get evicted too. */
		unsigned phase = (unsigned)step / 1500 % 3;

		op = r % 16;

		if (phase == 1 && op >= 6 && op <= 11)
			op = r & (1u << 21) ? op : 0;
		if (phase == 2 && (op < 6 || op > 13))
			op = r & (1u << 21) ? op : 6;
		switch (op) {
		default: { /* get: a hit, or a miss that must evict what the scan would */
			struct qcow2_cache_entry *ce = NULL;
			bool hit = false;
			int want, ret;

			for (unsigned k = 0; k < c.n; k++)
				hit |= c.e[k].offset == off;
			want = hit ? -1 : scan_victim(&c);
			if (npinned == ARRAY_SIZE(pinned))
				break;
			if (!hit && want != -1 && c.e[want].offset)
				*(c.e[want].dirty ? &misses_dirty : &misses_clean) += 1;
			ret = qcow2_cache_get(q, &c, off, false, &ce);
			if (!hit && want == -1) {
				assert_int_equal(ret, -EBUSY);
				busy++;
				break;
			}
			assert_int_equal(ret, 0);
			assert_int_equal(ce->offset, off);
			if (!hit)
				assert_ptr_equal(ce, &c.e[want]);
			pinned[npinned++] = ce;
			break;
		}
		case 6: case 7: case 8: case 9: case 10: case 11: /* put, maybe after dirtying */
			if (npinned) {
				unsigned k = (r >> 4) % npinned;

				if (phase || r & (1u << 19)) /* mostly dirty, all but the first phase */
					pinned[k]->dirty = true;
				qcow2_cache_put(pinned[k]);
				pinned[k] = pinned[--npinned];
			}
			break;
		case 12:
			qcow2_cache_drop(&c, off);
			break;
		case 13:
			if (r % 7 == 0)
				assert_int_equal(qcow2_cache_write(q, &c), 0);
			break;
		}
		check_lists(&c);
	}
	while (npinned)
		qcow2_cache_put(pinned[--npinned]);
	check_lists(&c);
	/* The run went through every branch of the choice. */
	fprintf(stderr, "# evictions: %u clean, %u dirty; %u busy\n", misses_clean, misses_dirty, busy);
	assert_true(misses_clean > 100 && misses_dirty > 100 && busy > 0);
	qcow2_cache_fini(&c);
	image_close(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw_basic),
		cmocka_unit_test(test_qcow2_basic),
		cmocka_unit_test(test_aio),
		cmocka_unit_test(test_aio_finish_here),
		cmocka_unit_test(test_aio_order),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_backing_loop),
		cmocka_unit_test(test_corrupt_bit),
		cmocka_unit_test(test_snapshots),
		cmocka_unit_test(test_dirty_repair),
		cmocka_unit_test(test_cache_policy),
		cmocka_unit_test(test_differential),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
