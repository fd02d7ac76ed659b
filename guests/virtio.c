/* SPDX-License-Identifier: MIT */
/* virtio.c: a minimal polling virtio-pci (modern, virtio 1.2 section 4.1) driver in
 * ring 3 for the VMM's virtio-blk and virtio-rng devices, and a hostile mode that feeds
 * a device malformed descriptor chains.
 *
 * Finds every device of vendor 0x1af4 on PCI bus 0 (configuration mechanism #1),
 * follows its vendor capabilities to the common, notify, ISR and device regions, and
 * drives queue 0 with rings in guest RAM, polling the used ring (INTx disabled, MSI-X
 * left off).
 *   virtio-blk (0x1042): writes a pattern (seed=, see blk_pattern()) to count= sectors
 *     from lba= in requests of chunk= sectors, FLUSH, reads them back and compares,
 *     checks that a read at the capacity fails, prints the GET_ID serial. With ro=1
 *     every write must fail with VIRTIO_BLK_S_IOERR and the sectors must not read back
 *     as the pattern.
 *   virtio-rng (0x1044): reads 64 bytes twice: not all zero, not equal.
 *   hostile=1: before the normal test, submits each malformed chain of hostile_names[]
 *     (rounds= times), expects DEVICE_NEEDS_RESET (0x40) in the status each time, and
 *     resets the device; the normal test afterwards proves it works again. skip=MASK
 *     leaves out the cases whose bit (1 << index in hostile_names[]) is set.
 * Prints "virtio-blk: OK" / "virtio-rng: OK" per device, then SUCCESS. */
#include "lib/vpci.h"

#include "arch/x86/pvh.h"

#define PCI_DEVICE_BLK 0x1042
#define PCI_DEVICE_RNG 0x1044

/* Device features, in the common configuration (4.1.4.3). */
#define CC_DFSELECT 0x00
#define CC_DF 0x04

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_F_RO 5
#define SECTOR 512

#define QSIZE_MAX 16
#define MAX_DEVS 8
#define MAX_CHUNK 16 /* sectors per request */
#define WAIT_S 5

/* Descriptors, then the driver area; the device area at 2 KiB. */
struct rings VQ_SPLIT_RING(QSIZE_MAX, 2048);
_Static_assert(__builtin_offsetof(struct rings, used_flags) == 2048, "ring layout");

struct seg {
	uint64_t addr;
	uint32_t len;
	int write;
};

struct vdev {
	struct vpci p; /* the transport (lib/vpci.c) */
	uintptr_t qnotify; /* queue 0's notify address */
	uint16_t qsize, avail, used;
	struct rings *r;
};

static struct rings rings[MAX_DEVS];
static struct vdev devs[MAX_DEVS];
static int ndevs;

/* Request buffers (the device reads and writes them in place). */
static struct {
	uint32_t type, reserved;
	uint64_t sector;
} blk_hdr;
static uint8_t blk_status;
static uint8_t wbuf[MAX_CHUNK * SECTOR] __attribute__((aligned(4096)));
static uint8_t rbuf[MAX_CHUNK * SECTOR] __attribute__((aligned(4096)));
static uint8_t small[64] __attribute__((aligned(64)));

static const char *dev_name(const struct vdev *d) { return d->p.name; }
static uint8_t status(const struct vdev *d) { return vpci_status(&d->p); }

/* The four virtio structures (4.1.4) and queue 0's notify address. */
static void find_caps(struct vdev *d)
{
	vpci_find_caps(&d->p);
	if (d->p.id == PCI_DEVICE_BLK && !d->p.device)
		fail("%s: missing device capability", dev_name(d));
	d->qnotify = vpci_queue_notify(&d->p, 0);
	printf("%s at 00:%02x.%x: common 0x%lx notify 0x%lx (multiplier %u) isr 0x%lx device "
	       "0x%lx\n",
	       dev_name(d), d->p.slot, d->p.fn, (uint64_t)d->p.common, (uint64_t)d->qnotify,
	       d->p.mult, (uint64_t)d->p.isr, (uint64_t)d->p.device);
}

/* Driver initialization (3.1.1): VERSION_1 only, queue 0 with up to 16 entries. */
static void init(struct vdev *d)
{
	vpci_negotiate(&d->p, 0, 0);
	memset(d->r, 0, sizeof(*d->r));
	d->avail = d->used = 0;
	d->qsize = vpci_queue_setup(&d->p, 0, QSIZE_MAX, (uintptr_t)d->r->desc,
				    (uintptr_t)&d->r->avail_flags, (uintptr_t)&d->r->used_flags);
	vpci_driver_ok(&d->p);
}

/* Publish descriptor head and ring the doorbell. */
static void publish(struct vdev *d, uint16_t head)
{
	d->r->avail_ring[d->avail % d->qsize] = head;
	mb();
	d->r->avail_idx = ++d->avail;
	mb();
	wr16(d->qnotify, 0); /* queue index (no VIRTIO_F_NOTIFICATION_DATA) */
}

/* Wait for the used ring to move: the used length, -1 on timeout, -2 on NEEDS_RESET. */
static int64_t wait_used(struct vdev *d)
{
	uint64_t end = rdtsc() + WAIT_S * 4000000000ULL;

	for (uint32_t i = 0;; i++) {
		if (d->r->used_idx != d->used) {
			mb();
			uint32_t slot = d->used % d->qsize;
			uint32_t id = d->r->used_ring[slot].id, len = d->r->used_ring[slot].len;
			d->used++;
			if (id != 0)
				fail("%s: used ring returned head %u, we submitted 0", dev_name(d), id);
			return len;
		}
		if ((i & 0xfff) == 0) {
			if (status(d) & VIRTIO_ST_NEEDS_RESET)
				return -2;
			if ((int64_t)(rdtsc() - end) > 0)
				return -1;
		}
		cpu_relax();
	}
}

/* One chain from descriptor 0, synchronously. */
static int64_t request(struct vdev *d, const struct seg *s, int n)
{
	if (n > d->qsize)
		fail("%s: a %d-descriptor chain does not fit queue size %u", dev_name(d), n,
		     d->qsize);
	for (int i = 0; i < n; i++) {
		d->r->desc[i].addr = s[i].addr;
		d->r->desc[i].len = s[i].len;
		d->r->desc[i].flags = (uint16_t)((i + 1 < n ? VQ_DESC_NEXT : 0) |
						 (s[i].write ? VQ_DESC_WRITE : 0));
		d->r->desc[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
	}
	publish(d, 0);
	int64_t r = wait_used(d);
	if (r == -1)
		fail("%s: request not completed in %d s (status 0x%x)", dev_name(d), WAIT_S,
		     status(d));
	if (r == -2)
		fail("%s: device needs reset after a well-formed request", dev_name(d));
	return r;
}

/* --- virtio-blk (5.2) --- */

/* The 64-bit word at disk byte offset off (a multiple of 8): splitmix64(seed + off).
 * tests/e2e/disk.py computes the same. */
static uint64_t blk_pattern(uint64_t seed, uint64_t off)
{
	uint64_t z = seed + off + 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A read or write of n sectors from lba with buf: the status byte. The data of a write
 * goes in two descriptors (first sector, rest) to exercise scatter-gather. */
static uint8_t blk_rw(struct vdev *d, int wr, uint64_t lba, uint8_t *buf, uint32_t n)
{
	struct seg s[4];
	int k = 0;

	blk_hdr.type = wr ? BLK_T_OUT : BLK_T_IN;
	blk_hdr.reserved = 0;
	blk_hdr.sector = lba;
	blk_status = 0xff;
	s[k++] = (struct seg){ (uintptr_t)&blk_hdr, sizeof(blk_hdr), 0 };
	if (wr && n > 1) {
		s[k++] = (struct seg){ (uintptr_t)buf, SECTOR, 0 };
		s[k++] = (struct seg){ (uintptr_t)buf + SECTOR, (n - 1) * SECTOR, 0 };
	} else {
		s[k++] = (struct seg){ (uintptr_t)buf, n * SECTOR, !wr };
	}
	s[k++] = (struct seg){ (uintptr_t)&blk_status, 1, 1 };
	int64_t len = request(d, s, k);
	uint32_t want = wr ? 1 : n * SECTOR + 1;
	if (blk_status == BLK_S_OK && len != want)
		fail("virtio-blk: %s of %u sectors: used length %ld, expected %u",
		     wr ? "write" : "read", n, len, want);
	return blk_status;
}

static uint8_t blk_simple(struct vdev *d, uint32_t type, uint8_t *buf, uint32_t len)
{
	struct seg s[3];
	int k = 0;

	blk_hdr.type = type;
	blk_hdr.reserved = 0;
	blk_hdr.sector = 0;
	blk_status = 0xff;
	s[k++] = (struct seg){ (uintptr_t)&blk_hdr, sizeof(blk_hdr), 0 };
	if (len)
		s[k++] = (struct seg){ (uintptr_t)buf, len, 1 };
	s[k++] = (struct seg){ (uintptr_t)&blk_status, 1, 1 };
	request(d, s, k);
	return blk_status;
}

static void fill(uint8_t *buf, uint64_t seed, uint64_t lba, uint32_t n)
{
	for (uint32_t i = 0; i < n * SECTOR; i += 8) {
		uint64_t v = blk_pattern(seed, lba * SECTOR + i);
		memcpy(buf + i, &v, 8);
	}
}

static void blk_test(struct vdev *d)
{
	uint64_t seed = cmdline_u64("seed", 1), lba = cmdline_u64("lba", 0);
	uint64_t count = cmdline_u64("count", 64), chunk = cmdline_u64("chunk", 8);
	int ro = cmdline_u64("ro", 0) != 0;
	uint8_t st;

	if (chunk == 0 || chunk > MAX_CHUNK)
		fail("chunk=%lu: give 1 to %d sectors", chunk, MAX_CHUNK);
	uint64_t cap = rd32(d->p.device) | (uint64_t)rd32(d->p.device + 4) << 32;
	wr32(d->p.common + CC_DFSELECT, 0);
	uint32_t f0 = rd32(d->p.common + CC_DF);
	printf("virtio-blk: capacity %lu sectors, features[0:31] 0x%x\n", cap, f0);
	if (lba + count > cap)
		fail("virtio-blk: lba=%lu count=%lu beyond the capacity (%lu)", lba, count, cap);
	if (ro && !(f0 & 1u << BLK_F_RO))
		fail("virtio-blk: ro=1 but VIRTIO_BLK_F_RO not offered");
	if (!ro && (f0 & 1u << BLK_F_RO))
		fail("virtio-blk: VIRTIO_BLK_F_RO offered for a writable disk");

	for (uint64_t s = lba; s < lba + count; s += chunk) {
		uint32_t n = (uint32_t)(lba + count - s < chunk ? lba + count - s : chunk);
		fill(wbuf, seed, s, n);
		st = blk_rw(d, 1, s, wbuf, n);
		if (st != (ro ? BLK_S_IOERR : BLK_S_OK))
			fail("virtio-blk: write of %u sectors at %lu: status %u, expected %u", n, s,
			     st, ro ? BLK_S_IOERR : BLK_S_OK);
	}
	if (ro)
		printf("virtio-blk: writes fail with status %u (IOERR) on a read-only disk, as "
		       "expected\n", BLK_S_IOERR);
	else
		printf("virtio-blk: wrote %lu sectors from %lu, seed %lu\n", count, lba, seed);

	st = blk_simple(d, BLK_T_FLUSH, 0, 0);
	if (st != BLK_S_OK)
		fail("virtio-blk: FLUSH: status %u", st);

	for (uint64_t s = lba; s < lba + count; s += chunk) {
		uint32_t n = (uint32_t)(lba + count - s < chunk ? lba + count - s : chunk);
		memset(rbuf, 0xa5, sizeof(rbuf));
		st = blk_rw(d, 0, s, rbuf, n);
		if (st != BLK_S_OK)
			fail("virtio-blk: read of %u sectors at %lu: status %u", n, s, st);
		fill(wbuf, seed, s, n);
		for (uint32_t k = 0; k < n; k++) {
			int same = !memcmp(rbuf + k * SECTOR, wbuf + k * SECTOR, SECTOR);
			if (!ro && !same)
				fail("virtio-blk: sector %lu reads back different from what was written",
				     s + k);
			if (ro && same)
				fail("virtio-blk: sector %lu of a read-only disk holds the pattern",
				     s + k);
		}
	}
	printf("virtio-blk: read back %lu sectors: %s\n", count,
	       ro ? "unchanged" : "match");

	/* Past the end: the device must refuse, not read beyond the image. */
	st = blk_rw(d, 0, cap, rbuf, 1);
	if (st != BLK_S_IOERR)
		fail("virtio-blk: read at sector %lu (the capacity): status %u, expected IOERR", cap,
		     st);

	char serial[21];
	memset(small, 0, sizeof(small));
	st = blk_simple(d, BLK_T_GET_ID, small, 20);
	if (st != BLK_S_OK)
		fail("virtio-blk: GET_ID: status %u", st);
	memcpy(serial, small, 20);
	serial[20] = 0;
	printf("virtio-blk: serial '%s'\n", serial);
	printf("virtio-blk: OK\n");
}

/* --- virtio-rng (5.4) --- */

static void rng_read(struct vdev *d, uint8_t *buf)
{
	struct seg s = { (uintptr_t)buf, 64, 1 };
	memset(buf, 0, 64);
	int64_t n = request(d, &s, 1);
	if (n != 64)
		fail("virtio-rng: got %ld bytes, asked for 64", n);
	for (int i = 0; i < 64; i++)
		if (buf[i])
			return;
	fail("virtio-rng: 64 zero bytes");
}

static void rng_test(struct vdev *d)
{
	uint8_t first[64];

	rng_read(d, small);
	memcpy(first, small, 64);
	rng_read(d, small);
	if (!memcmp(first, small, 64))
		fail("virtio-rng: two reads returned the same 64 bytes");
	uint64_t v;
	memcpy(&v, first, 8);
	printf("virtio-rng: 64 bytes, starting 0x%016lx\n", v);
	printf("virtio-rng: OK\n");
}

/* --- hostile mode --- */

enum {
	H_LOOP,
	H_HOLE,
	H_WRAP,
	H_WRITE_THEN_READ,
	H_BAD_HEAD,
	H_NO_HEADER,
	H_STRADDLE,
	H_CASES
};
static const char *const hostile_names[H_CASES] = {
	"descriptor loop",
	"descriptor in the PCI hole (not RAM)",
	"descriptor wrapping past 2^64",
	"readable descriptor after a writable one",
	"head index beyond the queue size",
	"request without a header (virtio-blk only)",
	"descriptor straddling the end of the RAM block",
};

/* End of the memory map's RAM entry that holds the image (from hvm_start_info). */
static uint64_t ram_block_end(void)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)start_info_paddr;
	const struct hvm_memmap_table_entry *m;

	if (!si || si->magic != HVM_START_MAGIC || si->version < 1 || !si->memmap_paddr)
		fail("no memory map in hvm_start_info");
	m = (const void *)(uintptr_t)si->memmap_paddr;
	for (uint32_t i = 0; i < si->memmap_entries; i++)
		if (m[i].type == HVM_MEMMAP_TYPE_RAM && m[i].addr <= 0x100000 &&
		    m[i].addr + m[i].size > 0x100000)
			return m[i].addr + m[i].size;
	fail("no RAM entry holds the image at 1 MiB");
}

/* Write the malformed chain from descriptor 0 and publish it. */
static void hostile_submit(struct vdev *d, int c)
{
	struct vq_desc *t = d->r->desc;
	uint16_t head = 0;

	blk_hdr.type = BLK_T_IN;
	blk_hdr.reserved = 0;
	blk_hdr.sector = 0;
	/* A well-formed start: the header (readable) for blk, a buffer for rng. */
	int blk = d->p.id == PCI_DEVICE_BLK;
	t[0] = (struct vq_desc){ blk ? (uintptr_t)&blk_hdr : (uintptr_t)small, blk ? 16 : 64,
			      blk ? 0 : VQ_DESC_WRITE, 0 };
	t[1] = (struct vq_desc){ (uintptr_t)rbuf, SECTOR, VQ_DESC_WRITE, 0 };
	t[2] = (struct vq_desc){ (uintptr_t)&blk_status, 1, VQ_DESC_WRITE, 0 };
	switch (c) {
	case H_LOOP: /* 0 -> 1 -> 0 -> ..., both of one direction: only the loop is wrong */
		t[0].flags |= VQ_DESC_NEXT;
		t[0].next = 1;
		t[1].flags = (uint16_t)(VQ_DESC_NEXT | (blk ? 0 : VQ_DESC_WRITE));
		t[1].next = 0;
		break;
	case H_HOLE:
		t[0].flags |= VQ_DESC_NEXT;
		t[0].next = 1;
		t[1].addr = 0xe0000000ULL;
		break;
	case H_WRAP:
		t[0].flags |= VQ_DESC_NEXT;
		t[0].next = 1;
		t[1].addr = 0xfffffffffffff000ULL;
		t[1].len = 0x2000;
		break;
	case H_WRITE_THEN_READ: /* header, status (writable), then a readable buffer */
		t[0].flags |= VQ_DESC_NEXT;
		t[0].next = 2;
		t[2].flags |= VQ_DESC_NEXT;
		t[2].next = 1;
		t[1].flags = 0;
		if (!blk) { /* rng: writable buffer, then a readable one */
			t[0].next = 1;
			t[1].flags = 0;
			t[2].flags = 0;
		}
		break;
	case H_BAD_HEAD:
		head = (uint16_t)(d->qsize + 3);
		break;
	case H_NO_HEADER: /* only the status byte: a well-formed chain, a malformed request */
		head = 2;
		break;
	case H_STRADDLE: /* the last 256 bytes of RAM below the hole (or the end), and beyond */
		t[0].flags |= VQ_DESC_NEXT;
		t[0].next = 1;
		t[1].addr = ram_block_end() - 256;
		break;
	}
	publish(d, head);
}

static void hostile(struct vdev *d)
{
	uint64_t rounds = cmdline_u64("rounds", 1), skip = cmdline_u64("skip", 0), n = 0;

	for (uint64_t r = 0; r < rounds; r++) {
		for (int c = 0; c < H_CASES; c++) {
			if ((c == H_NO_HEADER && d->p.id != PCI_DEVICE_BLK) || (skip >> c & 1))
				continue;
			n++;
			init(d);
			hostile_submit(d, c);
			int64_t got = wait_used(d);
			if (got == -1)
				fail("%s: %s: no DEVICE_NEEDS_RESET within %d s (status 0x%x)",
				     dev_name(d), hostile_names[c], WAIT_S, status(d));
			if (got >= 0)
				fail("%s: %s: the device completed the chain (used length %ld)",
				     dev_name(d), hostile_names[c], got);
			if (r == 0)
				printf("%s: hostile: %s: status 0x%x (DEVICE_NEEDS_RESET)\n",
				       dev_name(d), hostile_names[c], status(d));
		}
	}
	printf("%s: hostile: %lu malformed chains, each answered with DEVICE_NEEDS_RESET\n",
	       dev_name(d), n);
}

/* --- enumeration --- */

static void scan(void)
{
	struct vpci p;
	unsigned pos = 0;

	while (vpci_next(&p, &pos)) {
		if (p.id != PCI_DEVICE_BLK && p.id != PCI_DEVICE_RNG) {
			printf("virtio device 0x%x at 00:%02x.%x: not ours, skipped\n", p.id, p.slot,
			       p.fn);
		} else if (ndevs < MAX_DEVS) {
			p.name = p.id == PCI_DEVICE_BLK ? "virtio-blk" : "virtio-rng";
			devs[ndevs] = (struct vdev){ .p = p, .r = &rings[ndevs] };
			ndevs++;
		}
	}
}

void guest_main(void)
{
	int host = cmdline_u64("hostile", 0) != 0;

	scan();
	if (ndevs == 0)
		fail("no virtio-blk or virtio-rng device on PCI bus 0");
	for (int i = 0; i < ndevs; i++) {
		struct vdev *d = &devs[i];
		vpci_enable(&d->p);
		find_caps(d);
		if (host)
			hostile(d);
		init(d);
		if (d->p.id == PCI_DEVICE_BLK)
			blk_test(d);
		else
			rng_test(d);
		vpci_reset(&d->p);
	}
}