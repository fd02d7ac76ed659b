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
 * live at fixed guest-physical addresses from 4 MiB (identity-mapped).
 */
#include "lib/guest.h"

#define QS 128            /* 3 descriptors per request: QD 32 needs 96 */
#define RING 0x400000UL   /* desc, avail at +0x1000, used at +0x2000 */
#define HDRS 0x410000UL   /* 16-byte headers, then status bytes at +0x1000 */
#define BUFS 0x800000UL   /* one buffer per slot */
#define SLOT_BUF 0x20000UL /* 128 KiB */
#define MAXQD 32

#define T_IN 0
#define T_OUT 1

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static uintptr_t common, notify, devcfg;
static uint32_t notify_mult;
static uint16_t notify_off;
static uint64_t capacity; /* sectors */
static int has_flush;
static uint16_t avail_idx, last_used;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static uint32_t cfg_rd32(unsigned slot, unsigned off)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (off & 0xfc));
	return inl(0xcfc);
}

static void cfg_wr32(unsigned slot, unsigned off, uint32_t v)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (off & 0xfc));
	outl(0xcfc, v);
}

static uint8_t cfg_rd8(unsigned slot, unsigned off)
{
	return (uint8_t)(cfg_rd32(slot, off) >> (8 * (off & 3)));
}

static uint64_t bar(unsigned slot, unsigned b)
{
	uint32_t lo = cfg_rd32(slot, 0x10 + 4 * b);
	uint64_t a = lo & ~0xfULL;

	if (lo & 1)
		fail("BAR %u is an I/O BAR", b);
	if (((lo >> 1) & 3) == 2)
		a |= (uint64_t)cfg_rd32(slot, 0x14 + 4 * b) << 32;
	if (!a || a >= 0x100000000ULL)
		fail("BAR %u at 0x%lx is not below 4 GiB", b, a);
	return a;
}

#define R8(a) (*(volatile uint8_t *)(a))
#define R16(a) (*(volatile uint16_t *)(a))
#define R32(a) (*(volatile uint32_t *)(a))
#define W8(a, v) (*(volatile uint8_t *)(a) = (v))
#define W16(a, v) (*(volatile uint16_t *)(a) = (v))
#define W32(a, v) (*(volatile uint32_t *)(a) = (v))

static void find_device(void)
{
	unsigned slot, p;

	for (slot = 0; slot < 32; slot++) {
		uint32_t id = cfg_rd32(slot, 0);

		if ((id & 0xffff) == 0x1af4 && (id >> 16) == 0x1042)
			break;
	}
	if (slot == 32)
		fail("no modern virtio-blk (1af4:1042) on bus 0");
	/* Memory decoding and bus mastering on. */
	cfg_wr32(slot, 0x04, (cfg_rd32(slot, 0x04) & 0xffff) | 0x6);
	for (p = cfg_rd8(slot, 0x34) & 0xfc; p; p = cfg_rd8(slot, p + 1) & 0xfc) {
		uint8_t type;
		uintptr_t a;

		if (cfg_rd8(slot, p) != 0x09)
			continue;
		type = cfg_rd8(slot, p + 3);
		if (type != 1 && type != 2 && type != 4)
			continue; /* ISR and the PCI_CFG window are not used */
		a = (uintptr_t)(bar(slot, cfg_rd8(slot, p + 4)) + cfg_rd32(slot, p + 8));
		if (type == 1 && !common)
			common = a;
		else if (type == 2 && !notify) {
			notify = a;
			notify_mult = cfg_rd32(slot, p + 16);
		} else if (type == 4 && !devcfg)
			devcfg = a;
	}
	if (!common || !notify || !devcfg)
		fail("virtio capabilities missing");
}

static void setup(void)
{
	struct desc *d = (struct desc *)RING;
	uint32_t flush;
	uint16_t qmax;

	W8(common + 0x14, 0);
	while (R8(common + 0x14))
		cpu_relax();
	W8(common + 0x14, 1 | 2);
	/*
	 * VERSION_1, and FLUSH when offered, as Linux does: without FLUSH the
	 * device must write through (virtio 1.2, 5.2.5), which QEMU does with an
	 * fdatasync per write; with it both VMMs may cache writes until a FLUSH.
	 */
	W32(common + 0x00, 0);
	flush = (R32(common + 0x04) >> 9) & 1;
	W32(common + 0x08, 0);
	W32(common + 0x0c, flush << 9);
	W32(common + 0x08, 1);
	W32(common + 0x0c, 1);
	W8(common + 0x14, 1 | 2 | 8);
	if (!(R8(common + 0x14) & 8))
		fail("FEATURES_OK refused");
	W16(common + 0x16, 0);
	qmax = R16(common + 0x18);
	if (qmax < QS)
		fail("queue 0 holds %u entries, need %u", qmax, QS);
	W16(common + 0x18, QS);
	W16(common + 0x1a, 0xffff); /* no MSI-X vector */
	memset((void *)RING, 0, 0x3000);
	W32(common + 0x20, RING);
	W32(common + 0x24, 0);
	W32(common + 0x28, RING + 0x1000);
	W32(common + 0x2c, 0);
	W32(common + 0x30, RING + 0x2000);
	W32(common + 0x34, 0);
	notify_off = R16(common + 0x1e);
	W16(common + 0x1c, 1);
	W8(common + 0x14, 1 | 2 | 4 | 8);
	if (R8(common + 0x14) & 0x40)
		fail("device needs reset after setup");
	/* Polling: ask for no interrupts (2.7.7). */
	W16(RING + 0x1000, 1);
	capacity = R32(devcfg) | (uint64_t)R32(devcfg + 4) << 32;
	/* Fixed descriptors: slot s uses s*3 (header), s*3+1 (data), s*3+2 (status). */
	for (unsigned s = 0; s < MAXQD; s++) {
		d[3 * s] = (struct desc){ HDRS + 16 * s, 16, 1, (uint16_t)(3 * s + 1) };
		d[3 * s + 1] = (struct desc){ BUFS + SLOT_BUF * s, 4096, 1, (uint16_t)(3 * s + 2) };
		d[3 * s + 2] = (struct desc){ HDRS + 0x1000 + s, 1, 2, 0 };
	}
	avail_idx = last_used = 0;
	has_flush = (int)flush;
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
	struct desc *d = (struct desc *)RING;
	volatile uint16_t *ring = (volatile uint16_t *)(RING + 0x1000 + 4);
	uint32_t *h = (uint32_t *)(HDRS + 16 * s);

	h[0] = type;
	h[1] = 0;
	*(uint64_t *)(h + 2) = sector;
	*(volatile uint8_t *)(HDRS + 0x1000 + s) = 0xff;
	d[3 * s + 1].len = len;
	d[3 * s + 1].flags = (uint16_t)(1 | (type == T_IN ? 2 : 0));
	ring[avail_idx % QS] = (uint16_t)(3 * s);
	avail_idx++;
}

static void publish_and_kick(void)
{
	__atomic_store_n((volatile uint16_t *)(RING + 0x1000 + 2), avail_idx, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!(R16(RING + 0x2000) & 1))
		W16(notify + (uintptr_t)notify_off * notify_mult, 0);
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
		volatile uint16_t *uidx = (volatile uint16_t *)(RING + 0x2002);
		int refill = 0;

		while (__atomic_load_n(uidx, __ATOMIC_ACQUIRE) != last_used) {
			uint32_t id = *(volatile uint32_t *)(RING + 0x2004 + 8 * (last_used % QS));
			unsigned s = id / 3;

			last_used++;
			done++;
			if (*(volatile uint8_t *)(HDRS + 0x1000 + s) != 0)
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
	       capacity, QS, notify_mult, has_flush ? "negotiated" : "not offered");
	if (span > capacity)
		span = capacity;
	/* Writes first in each pair would read back our own data; reads go first, on what the host wrote. */
	for (unsigned i = 0; i < sizeof(works) / sizeof(works[0]); i++)
		if (works[i].ops)
			run(&works[i], works[i].random ? span : capacity);
	success();
}
