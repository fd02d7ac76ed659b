/* SPDX-License-Identifier: MIT */
/* console.h: the host side of the serial console: input queue, escape sequence, raw terminal mode. */
#ifndef KVMM_VMM_CONSOLE_H
#define KVMM_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONSOLE_ESCAPE_CHAR 0x01 /* Ctrl-a, as in QEMU: Ctrl-a x quits, Ctrl-a Ctrl-a sends one */
#define CONSOLE_QUEUE 4096

struct console {
	int in_fd;
	bool escape;   /* interpret Ctrl-a sequences */
	bool esc_seen; /* previous byte was the escape char */
	size_t qlen;
	uint8_t q[CONSOLE_QUEUE];
};

void console_init(struct console *c, int in_fd, bool escape);
/*
 * Read available input, applying the escape sequence. Returns the bytes for
 * the guest in buf; *quit set when the user typed Ctrl-a x, *eof when the
 * input is closed (end of file or a read error other than EAGAIN).
 */
size_t console_read(struct console *c, uint8_t *buf, size_t cap, bool *quit, bool *eof);
/* Pure filter used by console_read (exposed for tests). */
size_t console_filter(struct console *c, const uint8_t *in, size_t n, uint8_t *out, bool *quit);
/* Queue bytes for the guest; input beyond the queue is held back by not reading. */
void console_queue(struct console *c, const uint8_t *buf, size_t n);
bool console_pending(const struct console *c);
/* Hand queued bytes to the device; take() returns how many it accepted. */
void console_flush(struct console *c, size_t (*take)(void *, const uint8_t *, size_t), void *dev);

/* Raw terminal mode for an interactive console; restored by console_tty_restore. */
int console_tty_raw(int fd);
void console_tty_restore(void);

#endif
