/* SPDX-License-Identifier: MIT */
/* input.h: how the fuzz harnesses take their input, a byte at a time (zeros once it runs out). */
#ifndef KVMM_TESTS_FUZZ_INPUT_H
#define KVMM_TESTS_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct input {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t next(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* Two bytes, little-endian. */
static inline uint16_t next16(struct input *in)
{
	uint16_t lo = next(in);

	return (uint16_t)(lo | next(in) << 8);
}

#endif
