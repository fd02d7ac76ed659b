// SPDX-License-Identifier: MIT
/* test_util.c: unit tests for src/base: parse_size, parse_u64, read_file, write_all, err, sbuf, log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "base/util.h"

/* Undefined behaviour fails the test: meson 1.0 does not set UBSAN_OPTIONS for us. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

/* ---- parse_size ---- */

static void test_parse_size_valid(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} cases[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "64K", 64 * KiB },
		{ "64k", 64 * KiB },
		{ "512M", 512 * MiB },
		{ "512m", 512 * MiB },
		{ "2G", 2 * GiB },
		{ "2g", 2 * GiB },
		{ "1T", 1024 * GiB },
		{ "2Gi", 2 * GiB },
		{ "2GiB", 2 * GiB },
		{ "2GB", 2 * GiB },
		{ "16KiB", 16 * KiB },
		{ "18446744073709551615", UINT64_MAX },
		{ "17179869183G", 17179869183ULL * GiB },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 12345;

		assert_int_equal(parse_size(cases[i].s, &v), 0);
		assert_int_equal(v, cases[i].v);
	}
}

static void test_parse_size_invalid(void **state)
{
	static const char *const bad[] = {
		"", "-1", "+1", "abc", "M", "12X", "1MM", "1P", "1 M", "1M ", "1iB",
		"1B", "1KBi", "1KiBX", "1Gb", "0x10", "1.5G",
		/* strtoull skips leading blanks and accepts a sign after them. */
		" 1", " -1", "\t-4096",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 777;

		if (parse_size(bad[i], &v) != -EINVAL)
			fail_msg("parse_size(\"%s\") accepted or wrong error", bad[i]);
		assert_int_equal(v, 777); /* untouched on failure */
	}
	assert_int_equal(parse_size(NULL, &(uint64_t){ 0 }), -EINVAL);
}

static void test_parse_size_overflow(void **state)
{
	uint64_t v = 5;

	assert_int_equal(parse_size("18446744073709551616", &v), -ERANGE);
	/* 2^34 GiB is 2^64: one past the largest. */
	assert_int_equal(parse_size("17179869184G", &v), -ERANGE);
	assert_int_equal(parse_size("16777216T", &v), -ERANGE);
	assert_int_equal(parse_size("99999999999999999999999K", &v), -ERANGE);
	assert_int_equal(v, 5);
}

/* ---- parse_u64 ---- */

static void test_parse_u64_valid(void **state)
{
	uint64_t v = 0;

	assert_int_equal(parse_u64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_u64("0x2a", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_u64("0X2A", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_u64("0", 0, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(parse_u64("0xffffffffffffffff", 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, UINT64_MAX);
	/* Bounds are inclusive. */
	assert_int_equal(parse_u64("1", 1, 254, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(parse_u64("254", 1, 254, &v), 0);
	assert_int_equal(v, 254);
}

static void test_parse_u64_decimal_not_octal(void **state)
{
	uint64_t v = 0;

	/* The contract is "decimal or 0x-hex": a leading zero is still decimal. */
	assert_int_equal(parse_u64("010", 0, 100, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(parse_u64("08", 0, 100, &v), 0);
	assert_int_equal(v, 8);
}

static void test_parse_u64_invalid(void **state)
{
	static const char *const bad[] = {
		"", "-1", "+1", "abc", "12abc", "0x", "0xg", "1 ", "1.0", "--1",
		" 1", " -1", "\n-5",
	};
	uint64_t v = 99;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (parse_u64(bad[i], 0, UINT64_MAX, &v) != -EINVAL)
			fail_msg("parse_u64(\"%s\") accepted or wrong error", bad[i]);
	}
	assert_int_equal(parse_u64(NULL, 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(v, 99);
}

static void test_parse_u64_range(void **state)
{
	uint64_t v = 99;

	assert_int_equal(parse_u64("0", 1, 254, &v), -ERANGE);
	assert_int_equal(parse_u64("255", 1, 254, &v), -ERANGE);
	assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64("0x10000000000000000", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(v, 99);
}

/* ---- read_file ---- */

static char tmpdir[64];

static int util_setup(void **state)
{
	strcpy(tmpdir, "/tmp/kvmm-test-util-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int util_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void make_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, len), 0);
	close(fd);
}

static void test_read_file(void **state)
{
	char path[128];
	uint8_t data[10000], *buf = NULL;
	size_t len = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	make_file(path, data, sizeof(data));

	assert_int_equal(read_file(path, sizeof(data), &buf, &len), 0);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(buf, data, sizeof(data));
	free(buf);

	/* One byte more than allowed is refused and nothing is returned. */
	buf = NULL;
	assert_int_equal(read_file(path, sizeof(data) - 1, &buf, &len), -EFBIG);
	assert_null(buf);
}

static void test_read_file_empty(void **state)
{
	char path[128];
	uint8_t *buf = NULL;
	size_t len = 99;

	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	make_file(path, "", 0);
	assert_int_equal(read_file(path, 0, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_non_null(buf); /* a freeable buffer even for an empty file */
	free(buf);
}

static void test_read_file_errors(void **state)
{
	char path[128];
	uint8_t *buf = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(read_file(path, 100, &buf, &len), -ENOENT);
	/* A directory and a character device are not regular files. */
	assert_int_equal(read_file(tmpdir, 1 << 20, &buf, &len), -EINVAL);
	assert_int_equal(read_file("/dev/null", 1 << 20, &buf, &len), -EINVAL);
	assert_null(buf);
}

/* ---- write_all ---- */

static void test_write_all_pipe(void **state)
{
	int p[2];
	char out[64] = { 0 };

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write_all(p[1], "hello", 5), 0);
	assert_int_equal(write_all(p[1], "", 0), 0);
	assert_int_equal(read(p[0], out, sizeof(out)), 5);
	assert_memory_equal(out, "hello", 5);
	close(p[0]);
	close(p[1]);
}

/* A non-blocking pipe takes part of a large write, then fails with EAGAIN. */
static void test_write_all_partial_then_error(void **state)
{
	static uint8_t big[1 << 20];
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(write_all(p[1], big, sizeof(big)), -EAGAIN);
	close(p[0]);
	close(p[1]);
}

static void test_write_all_errors(void **state)
{
	int p[2];
	void (*old)(int);

	assert_int_equal(write_all(-1, "x", 1), -EBADF);
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	old = signal(SIGPIPE, SIG_IGN);
	assert_int_equal(write_all(p[1], "x", 1), -EPIPE);
	signal(SIGPIPE, old);
	close(p[1]);
}

static void test_range_ok(void **state)
{
	assert_true(range_ok(0, 10, 10));
	assert_true(range_ok(10, 0, 10));
	assert_false(range_ok(10, 1, 10));
	assert_false(range_ok(11, 0, 10));
	assert_false(range_ok(1, UINT64_MAX, 10));
	assert_false(range_ok(UINT64_MAX, 2, UINT64_MAX));
	assert_true(range_ok(UINT64_MAX - 1, 1, UINT64_MAX));
}

/* ---- err ---- */

static void test_err_set(void **state)
{
	struct err e;

	assert_int_equal(err_set(&e, EINVAL, "bad %s %d", "value", 7), -EINVAL);
	assert_string_equal(e.msg, "bad value 7");
	/* A negative errno passes through unchanged. */
	assert_int_equal(err_set(&e, -ENOENT, "x"), -ENOENT);
	assert_int_equal(err_set(NULL, EIO, "nobody reads this"), -EIO);
	err_clear(&e);
	assert_string_equal(e.msg, "");
	err_clear(NULL);
}

static void test_err_prefix(void **state)
{
	struct err e;

	err_set(&e, EINVAL, "no such file");
	assert_int_equal(err_prefix(&e, -ENOENT, "disk %d", 2), -ENOENT);
	assert_string_equal(e.msg, "disk 2: no such file");
	assert_int_equal(err_prefix(NULL, -5, "ctx"), -5);
}

static void test_err_truncation(void **state)
{
	struct err e;
	char longs[2000];

	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	err_set(&e, E2BIG, "%s", longs);
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
	err_prefix(&e, -E2BIG, "%s", longs);
	/* Still one terminated line: context, ": ", part of the old message. */
	assert_true(strlen(e.msg) < sizeof(e.msg));
	assert_non_null(strstr(e.msg, "a: a"));
}

/* ---- sbuf ---- */

static void test_sbuf_grow(void **state)
{
	struct sbuf s = { 0 };
	uint8_t chunk[100];

	for (int i = 0; i < 50; i++) {
		memset(chunk, i, sizeof(chunk));
		assert_int_equal(sbuf_put(&s, chunk, sizeof(chunk)), 0);
	}
	assert_int_equal(s.len, 5000);
	assert_true(s.cap >= s.len);
	for (int i = 0; i < 50; i++)
		for (int j = 0; j < 100; j++)
			assert_int_equal(s.data[i * 100 + j], i);
	sbuf_free(&s);
	assert_null(s.data);
	assert_int_equal(s.len, 0);
	assert_int_equal(s.cap, 0);
	sbuf_free(&s); /* twice is harmless */
}

static void test_sbuf_large_and_empty(void **state)
{
	struct sbuf s = { 0 };
	uint8_t *big = malloc(100000);

	assert_non_null(big);
	memset(big, 0x5a, 100000);
	assert_int_equal(sbuf_put(&s, "", 0), 0);
	assert_int_equal(s.len, 0);
	assert_int_equal(sbuf_put(&s, big, 100000), 0);
	assert_int_equal(s.len, 100000);
	assert_memory_equal(s.data, big, 100000);
	/* A length that cannot fit refuses without touching the buffer. */
	assert_int_equal(sbuf_put(&s, big, SIZE_MAX - 10), -ENOMEM);
	assert_int_equal(s.len, 100000);
	free(big);
	sbuf_free(&s);
}

/* ---- log ---- */

static size_t drain(int fd, char *buf, size_t cap)
{
	ssize_t n = read(fd, buf, cap);

	return n > 0 ? (size_t)n : 0;
}

static void test_log_levels(void **state)
{
	int p[2];
	char buf[4096];
	size_t n;
	enum log_level old = log_get_level();

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	log_set_fd(p[1]);
	log_set_level(LOG_WARN);
	log_info("hidden %d", 1);
	log_debug("hidden too");
	assert_int_equal(drain(p[0], buf, sizeof(buf)), 0);
	log_warn("visible %d", 2);
	n = drain(p[0], buf, sizeof(buf));
	buf[n] = '\0';
	assert_string_equal(buf, "kvmm: warning: visible 2\r\n");
	log_error("boom");
	n = drain(p[0], buf, sizeof(buf));
	buf[n] = '\0';
	assert_string_equal(buf, "kvmm: error: boom\r\n");
	log_set_level(LOG_DEBUG);
	assert_int_equal(log_get_level(), LOG_DEBUG);
	log_debug("now %s", "shown");
	n = drain(p[0], buf, sizeof(buf));
	buf[n] = '\0';
	assert_string_equal(buf, "kvmm: debug: now shown\r\n");

	log_set_level(old);
	log_set_fd(2);
	close(p[0]);
	close(p[1]);
}

/* A line longer than the buffer is cut, but stays one clean text line. */
static void test_log_long_line(void **state)
{
	int p[2];
	char buf[4096], msg[3000];
	size_t n;

	memset(msg, 'z', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	log_set_fd(p[1]);
	log_error("%s", msg);
	n = drain(p[0], buf, sizeof(buf));
	log_set_fd(2);
	close(p[0]);
	close(p[1]);

	assert_true(n > 100 && n <= 1024);
	assert_memory_equal(buf + n - 2, "\r\n", 2);
	assert_memory_equal(buf, "kvmm: error: zzz", 16);
	/* No NUL byte may leak into the log stream. */
	assert_null(memchr(buf, '\0', n));
}

static void test_ratelimit(void **state)
{
	struct ratelimit rl = RATELIMIT_INIT(3600 * 1000, 3);
	int p[2];
	char buf[256];
	size_t n;
	enum log_level old = log_get_level();

	assert_true(ratelimit_ok(&rl));
	assert_true(ratelimit_ok(&rl));
	assert_true(ratelimit_ok(&rl));
	assert_false(ratelimit_ok(&rl));
	assert_false(ratelimit_ok(&rl));
	assert_int_equal(rl.suppressed, 2);

	/* Pretend the window has passed: the count of suppressed lines is reported once. */
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	log_set_fd(p[1]);
	log_set_level(LOG_WARN);
	rl.window_start_ms -= rl.interval_ms;
	assert_true(ratelimit_ok(&rl));
	n = drain(p[0], buf, sizeof(buf) - 1);
	buf[n] = '\0';
	assert_string_equal(buf, "kvmm: warning: 2 similar messages suppressed\r\n");
	assert_int_equal(rl.suppressed, 0);
	assert_int_equal(rl.printed, 1);
	assert_true(ratelimit_ok(&rl));
	assert_true(ratelimit_ok(&rl));
	assert_false(ratelimit_ok(&rl));

	/* A window that passed with nothing suppressed logs nothing. */
	rl = (struct ratelimit)RATELIMIT_INIT(3600 * 1000, 1);
	assert_true(ratelimit_ok(&rl));
	rl.window_start_ms -= rl.interval_ms;
	assert_true(ratelimit_ok(&rl));
	assert_int_equal(drain(p[0], buf, sizeof(buf)), 0);

	log_set_level(old);
	log_set_fd(2);
	close(p[0]);
	close(p[1]);
}

static void test_time_ns_monotonic(void **state)
{
	uint64_t a = time_ns(), b;

	usleep(2000);
	b = time_ns();
	assert_true(b > a);
	assert_true(b - a >= 2000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_valid),
		cmocka_unit_test(test_parse_size_invalid),
		cmocka_unit_test(test_parse_size_overflow),
		cmocka_unit_test(test_parse_u64_valid),
		cmocka_unit_test(test_parse_u64_decimal_not_octal),
		cmocka_unit_test(test_parse_u64_invalid),
		cmocka_unit_test(test_parse_u64_range),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_read_file_empty),
		cmocka_unit_test(test_read_file_errors),
		cmocka_unit_test(test_write_all_pipe),
		cmocka_unit_test(test_write_all_partial_then_error),
		cmocka_unit_test(test_write_all_errors),
		cmocka_unit_test(test_range_ok),
		cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_err_prefix),
		cmocka_unit_test(test_err_truncation),
		cmocka_unit_test(test_sbuf_grow),
		cmocka_unit_test(test_sbuf_large_and_empty),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_log_long_line),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_time_ns_monotonic),
	};

	return cmocka_run_group_tests(tests, util_setup, util_teardown);
}
