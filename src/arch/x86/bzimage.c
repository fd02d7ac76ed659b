// SPDX-License-Identifier: MIT
/* bzimage.c: parser and validator for the setup header of an x86 bzImage (boot protocol 2.06+). */
#include "arch/x86/boot.h"
#include "base/err.h"
#include "base/util.h"

#include <errno.h>
#include <string.h>

static uint16_t get16(const uint8_t *h, size_t off)
{
	return (uint16_t)(h[off] | h[off + 1] << 8);
}

static uint32_t get32(const uint8_t *h, size_t off)
{
	return (uint32_t)get16(h, off) | (uint32_t)get16(h, off + 2) << 16;
}

static uint64_t get64(const uint8_t *h, size_t off)
{
	return (uint64_t)get32(h, off) | (uint64_t)get32(h, off + 4) << 32;
}

size_t bzimage_hdr_end(const uint8_t *buf, size_t len)
{
	/*
	 * boot.rst "The real-mode kernel header": the byte at 0x201 is the
	 * offset of a short jump relative to 0x202, so it gives the header's
	 * length. Never read past the file, nor past the end of struct
	 * setup_header inside boot_params.
	 */
	size_t end;

	if (len < BZ_HDR_MAGIC + 4)
		return 0;
	end = BZ_HDR_MAGIC + buf[BZ_HDR_JUMP + 1];
	end = MIN(end, (size_t)BZ_HDR_MAX);
	return MIN(end, len);
}

int bzimage_parse(const uint8_t *buf, size_t len, struct bzimage_info *bz, struct err *e)
{
	uint8_t h[BZ_HDR_MAX];
	size_t hdr_end;
	uint64_t pm_size;

	memset(bz, 0, sizeof(*bz));
	if (!buf || len < BZ_HDR_MAGIC + 4)
		return err_set(e, EINVAL, "file too small for a setup header (%zu bytes, not a bzImage?)",
			       len);
	if (memcmp(buf + BZ_HDR_MAGIC, "HdrS", 4) != 0)
		return err_set(e, EINVAL, "setup header magic missing (not a bzImage?)");
	if (get16(buf, BZ_BOOT_FLAG) != 0xaa55)
		return err_set(e, EINVAL, "boot_flag is 0x%04x, not 0xaa55 (not a bzImage?)",
			       get16(buf, BZ_BOOT_FLAG));

	/* Work on a zero-filled copy: fields past the declared header read as 0. */
	memset(h, 0, sizeof(h));
	hdr_end = bzimage_hdr_end(buf, len);
	memcpy(h, buf, hdr_end);

	bz->version = get16(h, BZ_VERSION);
	if (bz->version < 0x0206)
		return err_set(e, EINVAL, "boot protocol %u.%02u is too old (2.06 or later needed)",
			       bz->version >> 8, bz->version & 0xff);
	if (hdr_end < BZ_CMDLINE_SIZE + 4)
		return err_set(e, EINVAL, "setup header is %zu bytes, too short for protocol %u.%02u",
			       hdr_end - BZ_SETUP_SECTS, bz->version >> 8, bz->version & 0xff);

	/* boot.rst "Loading the rest of the kernel": setup_sects 0 means 4. */
	bz->setup_sects = h[BZ_SETUP_SECTS] ? h[BZ_SETUP_SECTS] : 4;
	bz->setup_size = ((uint32_t)bz->setup_sects + 1) * 512;
	if (bz->setup_size >= len)
		return err_set(e, EINVAL,
			       "setup_sects %u: real-mode setup (%u bytes) reaches past the end of the "
			       "file (%zu bytes)",
			       bz->setup_sects, bz->setup_size, len);
	if (hdr_end > bz->setup_size)
		return err_set(e, EINVAL, "setup header (ends at 0x%zx) is larger than the setup code",
			       hdr_end);
	if (!(h[BZ_LOADFLAGS] & BZ_LOADED_HIGH))
		return err_set(e, EINVAL, "zImage (not LOADED_HIGH) is not supported, use a bzImage");

	bz->pm_offset = bz->setup_size;
	pm_size = len - bz->setup_size;
	bz->pm_size = pm_size;
	bz->initrd_addr_max = get32(h, BZ_INITRD_ADDR_MAX);
	bz->cmdline_size = get32(h, BZ_CMDLINE_SIZE);
	if (bz->cmdline_size == 0)
		bz->cmdline_size = 255; /* boot.rst: the pre-2.06 limit */
	bz->kernel_alignment = get32(h, BZ_KERNEL_ALIGNMENT);
	bz->relocatable = h[BZ_RELOCATABLE] != 0;
	/* A relocatable kernel is placed by aligning up: that needs a power of two. */
	if (bz->relocatable &&
	    (bz->kernel_alignment == 0 || (bz->kernel_alignment & (bz->kernel_alignment - 1))))
		return err_set(e, EINVAL, "kernel_alignment 0x%x is not a power of two",
			       bz->kernel_alignment);

	if (bz->version >= 0x0208) {
		bz->payload_offset = get32(h, BZ_PAYLOAD_OFFSET);
		bz->payload_length = get32(h, BZ_PAYLOAD_LENGTH);
		if (!range_ok(bz->payload_offset, bz->payload_length, pm_size))
			return err_set(e, EINVAL,
				       "payload [0x%x, +0x%x) lies outside the protected-mode kernel "
				       "(0x%llx bytes)",
				       bz->payload_offset, bz->payload_length,
				       (unsigned long long)pm_size);
	}
	if (bz->version >= 0x020a) {
		bz->pref_address = get64(h, BZ_PREF_ADDRESS);
		bz->init_size = get32(h, BZ_INIT_SIZE);
	}
	if (bz->version >= 0x020c)
		bz->xloadflags = get16(h, BZ_XLOADFLAGS);
	return 0;
}
