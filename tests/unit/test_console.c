// SPDX-License-Identifier: MIT
/* test_console.c: unit tests for the host console: Ctrl-a escape filter, input queue, raw tty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/util.h"
#include "vmm/console.h"

/* Undefined behaviour fails the test: meson 1.0 does not set UBSAN_OPTIONS for us. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

#define ESC "\x01"

/* Run the filter over a string; returns the output length. */
static size_t filt(struct console *c, const char *in, uint8_t *out, bool *quit)
{
	*quit = false;
	return console_filter(c, (const uint8_t *)in, strlen(in), out, quit);
}

static void test_plain_bytes(void **state)
{
	struct console c;
	uint8_t out[64];
	bool quit;

	console_init(&c, -1, true);
	assert_int_equal(filt(&c, "hello\r\n", out, &quit), 7);
	assert_memory_equal(out, "hello\r\n", 7);
	assert_false(quit);
}

static void test_ctrl_a_x_quits(void **state)
{
	struct console c;
	uint8_t out[64];
	bool quit;

	console_init(&c, -1, true);
	/* Bytes before the sequence are delivered; the rest is dropped. */
	assert_int_equal(filt(&c, "ab" ESC "xcd", out, &quit), 2);
	assert_memory_equal(out, "ab", 2);
	assert_true(quit);
	assert_false(c.esc_seen);

	console_init(&c, -1, true);
	assert_int_equal(filt(&c, ESC "X", out, &quit), 0);
	assert_true(quit);
}

static void test_ctrl_a_ctrl_a(void **state)
{
	struct console c;
	uint8_t out[64];
	bool quit;

	console_init(&c, -1, true);
	assert_int_equal(filt(&c, "a" ESC ESC "b", out, &quit), 3);
	assert_memory_equal(out, "a\x01" "b", 3);
	assert_false(quit);
	/* Three in a row: one passes, the third starts a new sequence. */
	assert_int_equal(filt(&c, ESC ESC ESC, out, &quit), 1);
	assert_int_equal(out[0], 0x01);
	assert_true(c.esc_seen);
	assert_int_equal(filt(&c, "x", out, &quit), 0);
	assert_true(quit);
}

static void test_unknown_escape(void **state)
{
	struct console c;
	uint8_t out[64];
	bool quit;

	console_init(&c, -1, true);
	assert_int_equal(filt(&c, ESC "q" ESC "c", out, &quit), 4);
	assert_memory_equal(out, ESC "q" ESC "c", 4);
	assert_false(quit);
	assert_false(c.esc_seen);
}

/* The escape state survives between reads: Ctrl-a and x may arrive separately. */
static void test_split_sequence(void **state)
{
	struct console c;
	uint8_t out[64];
	bool quit;

	console_init(&c, -1, true);
	assert_int_equal(filt(&c, "z" ESC, out, &quit), 1);
	assert_int_equal(out[0], 'z');
	assert_true(c.esc_seen);
	assert_false(quit);
	assert_int_equal(filt(&c, "x", out, &quit), 0);
	assert_true(quit);

	/* A lone trailing escape followed by an ordinary byte in the next read. */
	console_init(&c, -1, true);
	assert_int_equal(filt(&c, ESC, out, &quit), 0);
	assert_int_equal(filt(&c, "k", out, &quit), 2);
	assert_memory_equal(out, ESC "k", 2);
}

static void test_no_escape_mode(void **state)
{
	struct console c;
	uint8_t out[64];
	bool quit;

	console_init(&c, -1, false);
	assert_int_equal(filt(&c, ESC "x" ESC ESC "y", out, &quit), 5);
	assert_memory_equal(out, ESC "x" ESC ESC "y", 5);
	assert_false(quit);
	assert_false(c.esc_seen);
}

static void test_all_bytes_pass(void **state)
{
	struct console c;
	uint8_t in[256], out[512];
	bool quit = false;

	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	console_init(&c, -1, false);
	assert_int_equal(console_filter(&c, in, 256, out, &quit), 256);
	assert_memory_equal(in, out, 256);
	/* With escapes on, 0x01 followed by 0x02 is an unknown sequence: everything still arrives. */
	console_init(&c, -1, true);
	assert_int_equal(console_filter(&c, in, 256, out, &quit), 256);
	assert_memory_equal(in, out, 256);
	assert_false(quit);
}

/* console_read on a pipe: reads at most half of the room, applies the filter. */
static void test_console_read(void **state)
{
	struct console c;
	uint8_t buf[256];
	bool quit = false, eof = false;
	int p[2];
	char rest[256];

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	console_init(&c, p[0], true);
	assert_int_equal(write(p[1], "hi" ESC "x", 4), 4);
	assert_int_equal(console_read(&c, buf, sizeof(buf), &quit, &eof), 2);
	assert_memory_equal(buf, "hi", 2);
	assert_true(quit);

	/* Nothing to read: 0, no quit. */
	quit = false;
	assert_int_equal(console_read(&c, buf, sizeof(buf), &quit, &eof), 0);
	assert_false(quit);
	assert_false(eof); /* EAGAIN is not end of input */

	/* A small buffer takes cap/2 bytes; the rest stays in the pipe. */
	assert_int_equal(write(p[1], "0123456789", 10), 10);
	assert_int_equal(console_read(&c, buf, 6, &quit, &eof), 3);
	assert_memory_equal(buf, "012", 3);
	assert_int_equal(console_read(&c, buf, 1, &quit, &eof), 0);
	/* A nearly full queue also holds input back. */
	c.qlen = CONSOLE_QUEUE - 1;
	assert_int_equal(console_read(&c, buf, sizeof(buf), &quit, &eof), 0);
	c.qlen = CONSOLE_QUEUE - 4;
	assert_int_equal(console_read(&c, buf, sizeof(buf), &quit, &eof), 2);
	assert_memory_equal(buf, "34", 2);
	assert_int_equal(read(p[0], rest, sizeof(rest)), 5);
	assert_memory_equal(rest, "56789", 5);

	/* No input fd. */
	c.in_fd = -1;
	c.qlen = 0;
	assert_int_equal(console_read(&c, buf, sizeof(buf), &quit, &eof), 0);
	close(p[0]);
	close(p[1]);
}

/* A device that takes at most `limit` bytes per call and records what it got. */
struct sink {
	size_t limit;
	unsigned calls;
	size_t got;
	uint8_t data[8192];
};

static size_t sink_take(void *opaque, const uint8_t *buf, size_t n)
{
	struct sink *s = opaque;
	size_t k = MIN(n, s->limit);

	s->calls++;
	memcpy(s->data + s->got, buf, k);
	s->got += k;
	return k;
}

static void test_queue_flush_partial(void **state)
{
	static struct console c;
	struct sink s = { .limit = 3 };
	const char *msg = "hello, world";
	size_t len = strlen(msg);

	console_init(&c, -1, true);
	assert_false(console_pending(&c));
	console_flush(&c, sink_take, &s);
	assert_int_equal(s.calls, 0); /* an empty queue does not call the device */

	console_queue(&c, (const uint8_t *)msg, len);
	assert_true(console_pending(&c));
	console_flush(&c, sink_take, &s);
	assert_int_equal(s.got, 3);
	assert_int_equal(c.qlen, len - 3);
	assert_memory_equal(c.q, msg + 3, len - 3);

	/* A full device takes nothing; the queue keeps everything. */
	s.limit = 0;
	console_flush(&c, sink_take, &s);
	assert_int_equal(c.qlen, len - 3);

	/* More input joins the end of the queue, order is kept. */
	console_queue(&c, (const uint8_t *)"!", 1);
	s.limit = 4;
	while (console_pending(&c))
		console_flush(&c, sink_take, &s);
	assert_int_equal(s.got, len + 1);
	assert_memory_equal(s.data, "hello, world!", len + 1);
}

static void test_queue_bounded(void **state)
{
	static struct console c;
	static uint8_t big[CONSOLE_QUEUE + 100];
	static struct sink s;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i % 251);
	console_init(&c, -1, true);
	console_queue(&c, big, sizeof(big));
	assert_int_equal(c.qlen, CONSOLE_QUEUE);
	console_queue(&c, big, 10);
	assert_int_equal(c.qlen, CONSOLE_QUEUE);
	s.limit = SIZE_MAX;
	console_flush(&c, sink_take, &s);
	assert_false(console_pending(&c));
	assert_int_equal(s.got, CONSOLE_QUEUE);
	assert_memory_equal(s.data, big, CONSOLE_QUEUE);
}

static void test_tty_raw(void **state)
{
	struct termios t;
	int m, sfd;

	/* Not a terminal. */
	{
		int p[2];

		assert_int_equal(pipe(p), 0);
		assert_int_equal(console_tty_raw(p[0]), -ENOTTY);
		close(p[0]);
		close(p[1]);
	}
	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0) {
		skip();
		return;
	}
	assert_int_equal(grantpt(m), 0);
	assert_int_equal(unlockpt(m), 0);
	sfd = open(ptsname(m), O_RDWR | O_NOCTTY);
	assert_true(sfd >= 0);
	assert_int_equal(tcgetattr(sfd, &t), 0);
	assert_true(t.c_lflag & ICANON);

	assert_int_equal(console_tty_raw(sfd), 0);
	assert_int_equal(tcgetattr(sfd, &t), 0);
	assert_false(t.c_lflag & (ICANON | ECHO | ISIG));
	/* Output processing stays so log lines keep their line breaks. */
	assert_true(t.c_oflag & OPOST);
	assert_true(t.c_oflag & ONLCR);

	console_tty_restore();
	assert_int_equal(tcgetattr(sfd, &t), 0);
	assert_true(t.c_lflag & ICANON);
	assert_true(t.c_lflag & ECHO);
	console_tty_restore(); /* twice is harmless */
	close(sfd);
	close(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_bytes),
		cmocka_unit_test(test_ctrl_a_x_quits),
		cmocka_unit_test(test_ctrl_a_ctrl_a),
		cmocka_unit_test(test_unknown_escape),
		cmocka_unit_test(test_split_sequence),
		cmocka_unit_test(test_no_escape_mode),
		cmocka_unit_test(test_all_bytes_pass),
		cmocka_unit_test(test_console_read),
		cmocka_unit_test(test_queue_flush_partial),
		cmocka_unit_test(test_queue_bounded),
		cmocka_unit_test(test_tty_raw),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
