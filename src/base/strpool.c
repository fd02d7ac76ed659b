// SPDX-License-Identifier: MIT
/* strpool.c: a list of owned strings freed at once. */
#include "base/strpool.h"

#include <stdlib.h>
#include <string.h>

char *strpool_own(struct strpool *p, char *s)
{
	if (!s || !p)
		return s;
	if (p->n == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 16;
		char **nv = realloc(p->v, ncap * sizeof(*nv));

		if (!nv) {
			free(s);
			return NULL;
		}
		p->v = nv;
		p->cap = ncap;
	}
	p->v[p->n++] = s;
	return s;
}

char *strpool_dup(struct strpool *p, const char *s)
{
	return s ? strpool_own(p, strdup(s)) : NULL;
}

void strpool_free(struct strpool *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
	p->v = NULL;
	p->n = p->cap = 0;
}
