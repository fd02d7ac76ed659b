/* SPDX-License-Identifier: MIT */
/* err.h: a caller-owned error message for failures a person must read. */
#ifndef KVMM_BASE_ERR_H
#define KVMM_BASE_ERR_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Functions return 0 or a negative errno. When a human must read why, the
 * caller passes a struct err and the callee fills it once with one line
 * (no trailing newline). The caller decides whether to log or pass it on.
 */
struct err {
	char msg[512];
};

/* Set the message (printf-style) and return -errnum (errnum > 0). */
int err_set(struct err *e, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix the existing message with more context: "ctx: old message". */
int err_prefix(struct err *e, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline void err_clear(struct err *e)
{
	if (e)
		e->msg[0] = '\0';
}

#endif
