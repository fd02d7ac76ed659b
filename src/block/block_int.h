/* SPDX-License-Identifier: MIT */
/* block_int.h: what block.c and aio.c share inside the block layer. */
#ifndef KVMM_BLOCK_BLOCK_INT_H
#define KVMM_BLOCK_BLOCK_INT_H

#include <stdint.h>
#include <sys/uio.h>

#include "block/block.h"

static inline uint64_t iov_bytes(const struct iovec *iov, int cnt)
{
	uint64_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Range and permission checks shared by the request and synchronous APIs: 0 or -errno. */
int image_req_check(struct image *img, const struct blk_req *r);
/* Stop the worker after the requests in flight (image_close). */
void image_aio_stop(struct image *img);

#endif
