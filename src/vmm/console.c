// SPDX-License-Identifier: MIT
/* console.c: serial console plumbing on the host side: input queue, Ctrl-a escape, raw tty. */
#include "vmm/console.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/util.h"

void console_init(struct console *c, int in_fd, bool escape)
{
	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	c->escape = escape;
}

size_t console_filter(struct console *c, const uint8_t *in, size_t n, uint8_t *out, bool *quit)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		uint8_t ch = in[i];

		if (!c->escape) {
			out[o++] = ch;
			continue;
		}
		if (c->esc_seen) {
			c->esc_seen = false;
			if (ch == 'x' || ch == 'X') {
				*quit = true;
				return o;
			}
			if (ch == CONSOLE_ESCAPE_CHAR) {
				out[o++] = ch;
				continue;
			}
			/* Unknown sequence: pass both bytes through. */
			out[o++] = CONSOLE_ESCAPE_CHAR;
			out[o++] = ch;
			continue;
		}
		if (ch == CONSOLE_ESCAPE_CHAR) {
			c->esc_seen = true;
			continue;
		}
		out[o++] = ch;
	}
	return o;
}

size_t console_read(struct console *c, uint8_t *buf, size_t cap, bool *quit, bool *eof)
{
	uint8_t raw[128];
	size_t room = CONSOLE_QUEUE - c->qlen;
	ssize_t n;

	/* Each raw byte can expand to two (unknown escape): read at most half of what fits. */
	if (c->in_fd < 0 || room < 2 || cap < 2)
		return 0;
	n = read(c->in_fd, raw, MIN(sizeof(raw), MIN(room, cap) / 2));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		*eof = true;
	if (n <= 0)
		return 0;
	return console_filter(c, raw, (size_t)n, buf, quit);
}

void console_queue(struct console *c, const uint8_t *buf, size_t n)
{
	n = MIN(n, CONSOLE_QUEUE - c->qlen);
	memcpy(c->q + c->qlen, buf, n);
	c->qlen += n;
}

bool console_pending(const struct console *c)
{
	return c->qlen > 0;
}

void console_flush(struct console *c, size_t (*take)(void *, const uint8_t *, size_t), void *dev)
{
	size_t n;

	if (!c->qlen)
		return;
	n = take(dev, c->q, c->qlen);
	memmove(c->q, c->q + n, c->qlen - n);
	c->qlen -= n;
}

/* The saved terminal state: one terminal per process, restored from any exit path. */
static struct termios saved_tio;
static int saved_fd = -1;

int console_tty_raw(int fd)
{
	struct termios t;

	if (!isatty(fd) || tcgetattr(fd, &saved_tio) < 0)
		return -ENOTTY;
	t = saved_tio;
	cfmakeraw(&t);
	/* Keep output post-processing so host log lines stay readable. */
	t.c_oflag |= OPOST | ONLCR;
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		return -errno;
	saved_fd = fd;
	return 0;
}

void console_tty_restore(void)
{
	if (saved_fd >= 0) {
		tcsetattr(saved_fd, TCSANOW, &saved_tio);
		saved_fd = -1;
	}
}
