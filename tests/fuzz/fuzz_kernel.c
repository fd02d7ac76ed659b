// SPDX-License-Identifier: MIT
/* fuzz_kernel.c: libFuzzer harness for the bzImage and ELF parsers and the decompressors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "base/err.h"

/* Small enough that a decompression bomb is cut off quickly. */
#define FUZZ_DECOMPRESS_MAX (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bzimage_info bz;
	struct elf_info ei;
	struct err e;
	uint8_t *out = NULL;
	size_t out_len = 0;
	const char *method;

	/*
	 * Copy into an exact-size heap buffer so ASan catches any read past
	 * the end that the parsers' length checks should have stopped.
	 */
	uint8_t *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);

	if (bzimage_parse(buf, size, &bz, &e) == 0) {
		/* The fields it vouched for must describe bytes inside the file. */
		if (bz.pm_offset + bz.pm_size != size ||
		    bz.pm_offset + bz.payload_offset + (uint64_t)bz.payload_length > size)
			abort();
		if (bz.payload_length &&
		    kernel_decompress(buf + bz.pm_offset + bz.payload_offset, bz.payload_length,
				      FUZZ_DECOMPRESS_MAX, &out, &out_len, &method, &e) == 0) {
			if (out_len > FUZZ_DECOMPRESS_MAX)
				abort();
			(void)elf_parse(out, out_len, &ei, &e);
			free(out);
			out = NULL;
		}
	}

	if (elf_parse(buf, size, &ei, &e) == 0) {
		for (int i = 0; i < ei.nsegs; i++)
			if (ei.segs[i].file_off + ei.segs[i].file_size > size ||
			    ei.segs[i].mem_size < ei.segs[i].file_size)
				abort();
	}

	if (kernel_decompress(buf, size, FUZZ_DECOMPRESS_MAX, &out, &out_len, &method, &e) == 0) {
		if (out_len > FUZZ_DECOMPRESS_MAX)
			abort();
		free(out);
	}
	free(buf);
	return 0;
}
