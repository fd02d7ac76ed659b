// SPDX-License-Identifier: MIT
/* err.c: struct err helpers. */
#include "base/err.h"

#include <stdio.h>
#include <string.h>

int err_set(struct err *e, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return errnum > 0 ? -errnum : errnum;
}

int err_prefix(struct err *e, int ret, const char *fmt, ...)
{
	char ctx[256], old[sizeof(e->msg)];
	va_list ap;

	if (!e)
		return ret;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* Truncation is acceptable: the message stays one readable line. */
	snprintf(e->msg, sizeof(e->msg), "%.255s: %.254s", ctx, old);
	return ret;
}
