// SPDX-License-Identifier: MIT
/* rng.c: virtio-rng (virtio 1.2, 5.4): fills the driver's buffers from the host's getrandom(). */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "base/err.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"
#include "vmm/mem.h"

/* Bound the work one request can ask of the host. */
#define RNG_MAX_PER_REQUEST (64 * 1024)
/* Requests per pass: a driver that keeps refilling the ring must not keep the loop to itself. */
#define RNG_BUDGET 64

struct rng {
	struct virtq_elem elem;
};

static void rng_notify(void *priv, struct virtio_dev *vd, unsigned q)
{
	struct rng *r = priv;
	struct virtq_elem *e = &r->elem;
	bool pushed = false;
	unsigned budget = RNG_BUDGET;
	int got;

	while ((got = virtq_pop(&vd->vq[q], e)) == 1) {
		uint32_t written = 0;
		unsigned i;

		for (i = e->out_num; i < e->out_num + e->in_num; i++) {
			size_t want = e->iov[i].iov_len;
			ssize_t n;

			if (written + want > RNG_MAX_PER_REQUEST)
				want = RNG_MAX_PER_REQUEST - written;
			if (!want)
				break;
			n = getrandom(e->iov[i].iov_base, want, 0);
			if (n <= 0)
				break;
			written += (uint32_t)n;
			/* A short read leaves a gap: the driver takes the first written bytes. */
			if ((size_t)n < want)
				break;
		}
		vd->stats.requests++;
		vd->stats.bytes_in += written;
		gm_mark_dirty_iov(vd->ctx.gm, e->iov + e->out_num, e->in_num);
		if (virtq_push(&vd->vq[q], e->head, written))
			break;
		pushed = true;
		if (--budget == 0 && virtio_queue_requeue(vd, q))
			break;
	}
	if (got < 0)
		virtio_needs_reset(vd, "malformed descriptor chain on the request queue");
	if (pushed)
		virtio_queue_interrupt(vd, q);
}

static void rng_destroy(void *priv)
{
	free(priv);
}

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = 4,
	.pci_class = 0xff0000,
	.nqueues = 1,
	.queue_size = 256,
	.queue_notify = rng_notify,
	.destroy = rng_destroy,
};

int virtio_rng_create(const struct dev_ctx *ctx, struct virtio_dev **out, struct err *e)
{
	struct rng *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return err_set(e, ENOMEM, "out of memory");
	ret = virtio_pci_create(ctx, &rng_ops, r, out, e);
	if (ret)
		free(r);
	return ret;
}
