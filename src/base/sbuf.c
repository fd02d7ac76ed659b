// SPDX-License-Identifier: MIT
/* sbuf.c: growable byte buffer. */
#include "base/sbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sbuf_put(struct sbuf *s, const void *p, size_t len)
{
	if (!len)
		return 0; /* memcpy must not see a NULL buffer, even for 0 bytes */
	if (len > SIZE_MAX / 2 - s->len)
		return -ENOMEM;
	if (s->len + len > s->cap) {
		size_t ncap = s->cap ? s->cap : 256;
		uint8_t *n;

		while (ncap < s->len + len)
			ncap *= 2;
		n = realloc(s->data, ncap);
		if (!n)
			return -ENOMEM;
		s->data = n;
		s->cap = ncap;
	}
	memcpy(s->data + s->len, p, len);
	s->len += len;
	return 0;
}

void sbuf_free(struct sbuf *s)
{
	free(s->data);
	s->data = NULL;
	s->len = s->cap = 0;
}
