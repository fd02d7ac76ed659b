/* SPDX-License-Identifier: MIT */
/* sbuf.h: a growable byte buffer, used for device and vCPU state records. */
#ifndef KVMM_BASE_SBUF_H
#define KVMM_BASE_SBUF_H

#include <stddef.h>
#include <stdint.h>

struct sbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

int sbuf_put(struct sbuf *s, const void *p, size_t len);
void sbuf_free(struct sbuf *s);

#endif
