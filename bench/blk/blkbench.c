/* SPDX-License-Identifier: MIT */
/* blkbench.c: a benchmark guest: a ring-3 polling virtio-blk driver (modern virtio-pci) keeping N requests in flight. */
/*
 * Runs the same workloads on whichever VMM boots it (kvmm, QEMU -M pc), timing
 * each with rdtsc, and prints one line per workload:
 *   blkbench: NAME ops=N bytes=B tsc=CYCLES errors=E
 * then SUCCESS. Workloads (command line, all optional):
 *   qd1=N   4 KiB random reads and writes at queue depth 1, N requests each (2000)
 *   qd32=N  the same at queue depth 32 (20000)
 *   seq=MiB 128 KiB sequential reads and writes at queue depth 8 (256)
 *   span=MiB the random requests fall in the first span MiB of the disk (256)
 * The driver negotiates VERSION_1 and FLUSH (when offered), polls the used ring (interrupts are
 * suppressed with VIRTQ_AVAIL_F_NO_INTERRUPT, so neither VMM injects any) and
 * notifies unless the device set VIRTQ_USED_F_NO_NOTIFY. Rings and buffers
 * live at fixed guest-physical addresses from 4 MiB (identity-mapped). The
 * transport (PCI scan, capabilities, status, features, queue set-up) is the
 * test guests' guests/lib/vpci.c.
 */
#include "lib/vpci.h"

#define PCI_DEVICE_BLK 0x1042
#define BLK_F_FLUSH 9

#define QS 128            /* 3 descriptors per request: QD 32 needs 96 */
#define RING 0x400000UL   /* descriptors, driver area at +0x800, device area at +0x1000 */
#define HDRS 0x410000UL   /* 16-byte headers, then status bytes at +0x1000 */
#define BUFS 0x800000UL   /* one buffer per slot */
#define SLOT_BUF 0x20000UL /* 128 KiB */
#define MAXQD 32

#define T_IN 0
#define T_OUT 1

struct ring VQ_SPLIT_RING(QS, 4096);
_Static_assert(sizeof(struct ring) <= HDRS - RING, "the ring ends below the headers");
static struct ring *const vq = (struct ring *)RING;

static struct vpci dev; /* the transport (guests/lib/vpci.c) */
static uintptr_t notify; /* queue 0's notify address */
static uint64_t capacity; /* sectors */
static int has_flush;
static uint16_t avail_idx, last_used;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static void find_device(void)
{
	unsigned pos = 0;
	int found = 0;

	while (!found && vpci_next(&dev, &pos))
		found = dev.id == PCI_DEVICE_BLK;
	if (!found)
		fail("no modern virtio-blk (1af4:1042) on bus 0");
	dev.name = "virtio-blk";
	vpci_enable(&dev);
	vpci_find_caps(&dev);
	if (!dev.device)
		fail("virtio capabilities missing");
}

static void setup(void)
{
	uint64_t offered;
	uint16_t qs;

	/*
	 * VERSION_1, and FLUSH when offered, as Linux does: without FLUSH the
	 * device must write through (virtio 1.2, 5.2.5), which QEMU does with an
	 * fdatasync per write; with it both VMMs may cache writes until a FLUSH.
	 */
	offered = vpci_negotiate(&dev, 0, 1ULL << BLK_F_FLUSH);
	memset(vq, 0, sizeof(*vq));
	/* Polling: ask for no interrupts (2.7.7). */
	vq->avail_flags = 1;
	qs = vpci_queue_setup(&dev, 0, QS, (uintptr_t)vq->desc, (uintptr_t)&vq->avail_flags,
			      (uintptr_t)&vq->used_flags);
	if (qs != QS)
		fail("queue 0 holds %u entries, need %u", qs, QS);
	notify = vpci_queue_notify(&dev, 0);
	vpci_driver_ok(&dev);
	capacity = rd32(dev.device) | (uint64_t)rd32(dev.device + 4) << 32;
	/* Fixed descriptors: slot s uses s*3 (header), s*3+1 (data), s*3+2 (status). */
	for (unsigned s = 0; s < MAXQD; s++) {
		vq->desc[3 * s] = (struct vq_desc){ HDRS + 16 * s, 16, VQ_DESC_NEXT,
						   (uint16_t)(3 * s + 1) };
		vq->desc[3 * s + 1] = (struct vq_desc){ BUFS + SLOT_BUF * s, 4096, VQ_DESC_NEXT,
						       (uint16_t)(3 * s + 2) };
		vq->desc[3 * s + 2] = (struct vq_desc){ HDRS + 0x1000 + s, 1, VQ_DESC_WRITE, 0 };
	}
	avail_idx = last_used = 0;
	has_flush = (int)(offered >> BLK_F_FLUSH & 1);
}

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Fill slot s with a request and put it on the avail ring (not yet published). */
static void queue_req(unsigned s, uint32_t type, uint64_t sector, uint32_t len)
{
	uint32_t *h = (uint32_t *)(HDRS + 16 * s);

	h[0] = type;
	h[1] = 0;
	*(uint64_t *)(h + 2) = sector;
	wr8(HDRS + 0x1000 + s, 0xff);
	vq->desc[3 * s + 1].len = len;
	vq->desc[3 * s + 1].flags = (uint16_t)(VQ_DESC_NEXT | (type == T_IN ? VQ_DESC_WRITE : 0));
	vq->avail_ring[avail_idx % QS] = (uint16_t)(3 * s);
	avail_idx++;
}

static void publish_and_kick(void)
{
	__atomic_store_n(&vq->avail_idx, avail_idx, __ATOMIC_RELEASE);
	mb();
	if (!(vq->used_flags & 1)) /* VIRTQ_USED_F_NO_NOTIFY */
		wr16(notify, 0);
}

struct work {
	const char *name;
	uint32_t type;
	int random;
	unsigned qd;
	uint32_t bs;
	uint64_t ops;
};

static void run(const struct work *w, uint64_t span_sectors)
{
	uint64_t issued = 0, done = 0, errors = 0, seq = 0, t0, t1;
	uint64_t bs_sec = w->bs / 512, slots = span_sectors / bs_sec;
	unsigned qd = w->qd > MAXQD ? MAXQD : w->qd;

	if (!slots)
		fail("%s: disk too small", w->name);
	t0 = rdtsc();
	for (unsigned s = 0; s < qd && issued < w->ops; s++, issued++) {
		uint64_t sec = w->random ? (rnd() % slots) * bs_sec : (seq++ % slots) * bs_sec;

		queue_req(s, w->type, sec, w->bs);
	}
	publish_and_kick();
	while (done < w->ops) {
		int refill = 0;

		while (__atomic_load_n(&vq->used_idx, __ATOMIC_ACQUIRE) != last_used) {
			uint32_t id = vq->used_ring[last_used % QS].id;
			unsigned s = id / 3;

			last_used++;
			done++;
			if (rd8(HDRS + 0x1000 + s) != 0)
				errors++;
			if (issued < w->ops) {
				uint64_t sec = w->random ? (rnd() % slots) * bs_sec :
							   (seq++ % slots) * bs_sec;

				queue_req(s, w->type, sec, w->bs);
				issued++;
				refill = 1;
			}
		}
		if (refill)
			publish_and_kick();
		else
			cpu_relax();
	}
	t1 = rdtsc();
	printf("blkbench: %s ops=%lu bytes=%lu tsc=%lu errors=%lu\n", w->name, done,
	       done * w->bs, t1 - t0, errors);
	if (errors)
		fail("%s: %lu requests failed", w->name, errors);
}

void guest_main(void)
{
	uint64_t qd1 = cmdline_u64("qd1", 2000), qd32 = cmdline_u64("qd32", 20000);
	uint64_t seq = cmdline_u64("seq", 256), span = cmdline_u64("span", 256) << 11;
	const uint32_t K4 = 4096, K128 = 128 * 1024;
	const struct work works[] = {
		{ "randread-4k-qd1", T_IN, 1, 1, K4, qd1 },
		{ "randwrite-4k-qd1", T_OUT, 1, 1, K4, qd1 },
		{ "randread-4k-qd32", T_IN, 1, 32, K4, qd32 },
		{ "randwrite-4k-qd32", T_OUT, 1, 32, K4, qd32 },
		{ "seqread-128k-qd8", T_IN, 0, 8, K128, seq * 8 },
		{ "seqwrite-128k-qd8", T_OUT, 0, 8, K128, seq * 8 },
	};

	find_device();
	setup();
	printf("blkbench: capacity %lu sectors, queue %u, notify multiplier %u, flush %s\n",
	       capacity, QS, dev.mult, has_flush ? "negotiated" : "not offered");
	if (span > capacity)
		span = capacity;
	/* Writes first in each pair would read back our own data; reads go first, on what the host wrote. */
	for (unsigned i = 0; i < sizeof(works) / sizeof(works[0]); i++)
		if (works[i].ops)
			run(&works[i], works[i].random ? span : capacity);
	success();
}
