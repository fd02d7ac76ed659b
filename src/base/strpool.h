/* SPDX-License-Identifier: MIT */
/* strpool.h: strings that live as long as their owner (a VM configuration), freed together. */
#ifndef KVMM_BASE_STRPOOL_H
#define KVMM_BASE_STRPOOL_H

#include <stddef.h>

struct strpool {
	char **v;
	size_t n, cap;
};

/* A copy of s owned by the pool (NULL for NULL or out of memory). */
char *strpool_dup(struct strpool *p, const char *s);
/* Take ownership of an already allocated string; returns it. */
char *strpool_own(struct strpool *p, char *s);
void strpool_free(struct strpool *p);

#endif
