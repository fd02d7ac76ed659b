// SPDX-License-Identifier: MIT
/* test_virtio_pci.c: the virtio 1.x PCI transport driven like a guest driver would, with virtio-rng behind it, on a fake bus and fake RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/sbuf.h"
#include "dev/pci.h"
#include "fake.h"
#include "virtio/devices.h"
#include "virtio/virtio.h"

#define RAM (4ULL << 20)
#define DESC 0x10000ULL
#define AVAIL 0x11000ULL
#define USED 0x12000ULL
#define BUFS 0x100000ULL

/* Common configuration registers (virtio 1.2, 4.1.4.3). */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_MSIX_CONFIG 0x10
#define C_NUM_QUEUES 0x12
#define C_STATUS 0x14
#define C_GENERATION 0x15
#define C_Q_SELECT 0x16
#define C_Q_SIZE 0x18
#define C_Q_MSIX 0x1a
#define C_Q_ENABLE 0x1c
#define C_Q_NOTIFY_OFF 0x1e
#define C_Q_DESC 0x20
#define C_Q_AVAIL 0x28
#define C_Q_USED 0x30
#define ISR 0x1000
#define NOTIFY 0x3000
#define MSIX_TABLE 0x4000
#define MSIX_PBA 0x5000

#define S_ACK VIRTIO_STATUS_ACKNOWLEDGE
#define S_DRV VIRTIO_STATUS_DRIVER
#define S_FOK VIRTIO_STATUS_FEATURES_OK
#define S_DOK VIRTIO_STATUS_DRIVER_OK
#define S_NR VIRTIO_STATUS_NEEDS_RESET

#define MSI_ADDR 0xfee00000ULL

struct t {
	struct fake f;
	void *host;
	struct virtio_dev *vd;
	unsigned slot;
	uint64_t bar;
	uint8_t line;
	uint8_t msix_cap;
	uint16_t qsize, avail_idx, used_seen, next_desc;
};

/* --- configuration space through mechanism #1 --- */

static uint32_t cfg_rd(struct t *t, unsigned slot, unsigned reg, unsigned len)
{
	fake_out(&t->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | slot << 11 | (reg & 0xfc));
	return fake_in(&t->f, (uint16_t)(X86_PORT_PCI_CONFIG + 4 + (reg & 3)), len);
}

static void cfg_wr(struct t *t, unsigned slot, unsigned reg, unsigned len, uint32_t v)
{
	fake_out(&t->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | slot << 11 | (reg & 0xfc));
	fake_out(&t->f, (uint16_t)(X86_PORT_PCI_CONFIG + 4 + (reg & 3)), len, v);
}

/* --- BAR0 --- */

static uint64_t rd(struct t *t, uint64_t off, unsigned len)
{
	return fake_mmio_read(&t->f, t->bar + off, len);
}

static void wr(struct t *t, uint64_t off, unsigned len, uint64_t v)
{
	fake_mmio_write(&t->f, t->bar + off, len, v);
}

static uint8_t status(struct t *t)
{
	return (uint8_t)rd(t, C_STATUS, 1);
}

static int t_init(struct t *t)
{
	struct err e = { { 0 } };
	unsigned s;

	memset(t, 0, sizeof(*t));
	if (fake_init(&t->f, false) || fake_mem_init(&t->f, RAM))
		return -1;
	fake_msi(&t->f);
	t->host = fake_pci_host(&t->f);
	if (virtio_rng_create(&t->f.ctx, &t->vd, &e)) {
		fprintf(stderr, "virtio_rng_create: %s\n", e.msg);
		return -1;
	}
	for (s = 1; s < 32; s++)
		if ((cfg_rd(t, s, 0, 4) & 0xffff) == 0x1af4)
			break;
	if (s == 32)
		return -1;
	t->slot = s;
	t->bar = (cfg_rd(t, s, 0x10, 4) & ~0xfULL) | (uint64_t)cfg_rd(t, s, 0x14, 4) << 32;
	t->line = (uint8_t)cfg_rd(t, s, PCI_INTERRUPT_LINE, 1);
	for (unsigned p = cfg_rd(t, s, PCI_CAPABILITY_LIST, 1), n = 0; p && n < 48;
	     p = cfg_rd(t, s, p + 1, 1), n++)
		if (cfg_rd(t, s, p, 1) == PCI_CAP_ID_MSIX)
			t->msix_cap = (uint8_t)p;
	return 0;
}

static void t_fini(struct t *t)
{
	fake_virtio_fini(&t->f, t->vd, t->host);
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t || t_init(t))
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	t_fini(t);
	free(t);
	return 0;
}

/* --- a driver --- */

static void set_features(struct t *t, uint64_t f)
{
	wr(t, C_GFSELECT, 4, 0);
	wr(t, C_GF, 4, (uint32_t)f);
	wr(t, C_GFSELECT, 4, 1);
	wr(t, C_GF, 4, (uint32_t)(f >> 32));
}

static uint64_t device_features(struct t *t)
{
	uint64_t f;

	wr(t, C_DFSELECT, 4, 0);
	f = rd(t, C_DF, 4);
	wr(t, C_DFSELECT, 4, 1);
	return f | rd(t, C_DF, 4) << 32;
}

/* Reset, negotiate features, return the status after FEATURES_OK. */
static uint8_t negotiate(struct t *t, uint64_t f)
{
	wr(t, C_STATUS, 1, 0);
	wr(t, C_STATUS, 1, S_ACK);
	wr(t, C_STATUS, 1, S_ACK | S_DRV);
	set_features(t, f);
	wr(t, C_STATUS, 1, S_ACK | S_DRV | S_FOK);
	return status(t);
}

static void queue_addrs(struct t *t, uint64_t desc, uint64_t avail, uint64_t used)
{
	wr(t, C_Q_DESC, 4, (uint32_t)desc);
	wr(t, C_Q_DESC + 4, 4, desc >> 32);
	wr(t, C_Q_AVAIL, 4, (uint32_t)avail);
	wr(t, C_Q_AVAIL + 4, 4, avail >> 32);
	wr(t, C_Q_USED, 4, (uint32_t)used);
	wr(t, C_Q_USED + 4, 4, used >> 32);
}

/* Full start: VERSION_1, queue 0 of qsize entries in RAM, DRIVER_OK. */
static void start(struct t *t, uint16_t qsize)
{
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1)), S_ACK | S_DRV | S_FOK);
	memset(fake_gpa(&t->f, DESC, 0x3000), 0, 0x3000);
	wr(t, C_Q_SELECT, 2, 0);
	wr(t, C_Q_SIZE, 2, qsize);
	queue_addrs(t, DESC, AVAIL, USED);
	wr(t, C_Q_ENABLE, 2, 1);
	assert_int_equal(rd(t, C_Q_ENABLE, 2), 1);
	wr(t, C_STATUS, 1, S_ACK | S_DRV | S_FOK | S_DOK);
	assert_int_equal(status(t), S_ACK | S_DRV | S_FOK | S_DOK);
	t->qsize = qsize;
	t->avail_idx = t->used_seen = t->next_desc = 0;
}

/* One device-writable buffer of len bytes at gpa, published and kicked. */
static uint16_t post(struct t *t, uint64_t gpa, uint32_t len, bool kick)
{
	uint16_t head = t->next_desc, flags = VIRTQ_DESC_F_WRITE, next = 0;
	uint8_t *d = fake_gpa(&t->f, DESC + 16ULL * head, 16);
	uint16_t *avail = fake_gpa(&t->f, AVAIL, 4 + 2ULL * t->qsize);

	memcpy(d, &gpa, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	t->next_desc = (uint16_t)((head + 1) % t->qsize);
	avail[2 + t->avail_idx % t->qsize] = head;
	__atomic_store_n(&avail[1], ++t->avail_idx, __ATOMIC_RELEASE);
	if (kick)
		wr(t, NOTIFY, 2, 0);
	return head;
}

static bool used(struct t *t, uint32_t *id, uint32_t *len)
{
	uint8_t *u = fake_gpa(&t->f, USED, 4 + 8ULL * t->qsize);
	uint16_t idx;

	memcpy(&idx, u + 2, 2);
	if (idx == t->used_seen)
		return false;
	memcpy(id, u + 4 + 8 * (t->used_seen % t->qsize), 4);
	memcpy(len, u + 8 + 8 * (t->used_seen % t->qsize), 4);
	t->used_seen++;
	return true;
}

static uint16_t used_idx(struct t *t)
{
	uint16_t idx;

	memcpy(&idx, (uint8_t *)fake_gpa(&t->f, USED, 4) + 2, 2);
	return idx;
}

static void msix_entry(struct t *t, unsigned v, uint64_t addr, uint32_t data, uint32_t ctrl)
{
	wr(t, MSIX_TABLE + 16 * v, 4, (uint32_t)addr);
	wr(t, MSIX_TABLE + 16 * v + 4, 4, addr >> 32);
	wr(t, MSIX_TABLE + 16 * v + 8, 4, data);
	wr(t, MSIX_TABLE + 16 * v + 12, 4, ctrl);
}

static void msix_control(struct t *t, uint16_t v)
{
	cfg_wr(t, t->slot, t->msix_cap + 2, 2, v);
}

/* --- tests --- */

static void test_enumerate(void **state)
{
	struct t *t = *state;
	unsigned s, found = 0;

	assert_int_equal(t->slot, 1);
	/* Slot 0 is the host bridge; empty slots read all-ones. */
	assert_int_equal(cfg_rd(t, 0, 0, 4), 0x00081b36);
	for (s = 0; s < 32; s++) {
		uint32_t id = cfg_rd(t, s, 0, 4);

		if (s > 1)
			assert_int_equal(id, 0xffffffffu);
		if ((id & 0xffff) == 0x1af4)
			found++;
	}
	assert_int_equal(found, 1);
	assert_int_equal(cfg_rd(t, 1, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg_rd(t, 1, PCI_DEVICE_ID, 2), 0x1044); /* 0x1040 + 4 (entropy) */
	assert_true(cfg_rd(t, 1, PCI_REVISION_ID, 1) >= 1);       /* modern-only (4.1.2.1) */
	assert_int_equal(cfg_rd(t, 1, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_true(cfg_rd(t, 1, PCI_SUBSYSTEM_ID, 2) >= 0x40);
	assert_int_equal(cfg_rd(t, 1, PCI_HEADER_TYPE, 1) & 0x7f, 0);
	assert_true(cfg_rd(t, 1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg_rd(t, 1, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(t->line, 17); /* 16 + (slot + pin) % 8 */
	/* Firmware-style: memory decoding on and BAR0 in the 32-bit window. */
	assert_true(cfg_rd(t, 1, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	assert_true(t->bar >= X86_PCI_MMIO_START && t->bar + 0x8000 <= X86_PCI_MMIO_END);
	assert_int_equal(t->bar & 0x7fff, 0);
	assert_true(fake_mmio_claimed(&t->f, t->bar, 4));
	/* Functions 1-7 and other buses are empty. */
	fake_out(&t->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | 1u << 11 | 1u << 8);
	assert_int_equal(fake_in(&t->f, X86_PORT_PCI_CONFIG + 4, 4), 0xffffffffu);
	fake_out(&t->f, X86_PORT_PCI_CONFIG, 4, 0x80000000u | 1u << 16 | 1u << 11);
	assert_int_equal(fake_in(&t->f, X86_PORT_PCI_CONFIG + 4, 4), 0xffffffffu);
}

static void test_capabilities(void **state)
{
	struct t *t = *state;
	unsigned seen[6] = { 0 }, p, n = 0, msix = 0;

	for (p = cfg_rd(t, 1, PCI_CAPABILITY_LIST, 1); p; p = cfg_rd(t, 1, p + 1, 1)) {
		uint8_t id = (uint8_t)cfg_rd(t, 1, p, 1);

		assert_true(++n < 48); /* no loop */
		assert_true(p >= 0x40 && p < 0x100 && !(p & 3));
		if (id == PCI_CAP_ID_MSIX) {
			uint16_t ctl = (uint16_t)cfg_rd(t, 1, p + 2, 2);

			msix++;
			assert_int_equal(ctl & 0x7ff, 1); /* 2 vectors: config + one queue */
			assert_int_equal(ctl & 0xc000, 0); /* disabled at reset */
			assert_int_equal(cfg_rd(t, 1, p + 4, 4), MSIX_TABLE); /* BIR 0 */
			assert_int_equal(cfg_rd(t, 1, p + 8, 4), MSIX_PBA);
			continue;
		}
		assert_int_equal(id, PCI_CAP_ID_VNDR);
		uint8_t type = (uint8_t)cfg_rd(t, 1, p + 3, 1);
		uint32_t off = cfg_rd(t, 1, p + 8, 4), len = cfg_rd(t, 1, p + 12, 4);

		assert_true(type >= 1 && type <= 5);
		seen[type]++;
		assert_int_equal(cfg_rd(t, 1, p + 4, 1), 0); /* BAR 0 */
		assert_true(cfg_rd(t, 1, p + 2, 1) >= 16);
		switch (type) {
		case 1:
			assert_int_equal(off, 0);
			assert_true(len >= 0x38);
			break;
		case 2:
			assert_int_equal(off, NOTIFY);
			assert_true(len >= 2);
			assert_int_equal(cfg_rd(t, 1, p + 2, 1), 20);
			assert_int_equal(cfg_rd(t, 1, p + 16, 4), 4); /* notify_off_multiplier */
			break;
		case 3:
			assert_int_equal(off, ISR);
			assert_true(len >= 1);
			break;
		case 4:
			assert_int_equal(off, 0x2000);
			break;
		case 5:
			assert_int_equal(cfg_rd(t, 1, p + 2, 1), 20);
			break;
		}
		if (type != 5)
			assert_true(off + len <= 0x8000);
	}
	assert_int_equal(msix, 1);
	for (p = 1; p <= 5; p++)
		assert_int_equal(seen[p], 1);
	assert_int_equal(t->msix_cap, 0x40);
}

static void test_bar_sizing(void **state)
{
	struct t *t = *state;
	uint32_t lo = cfg_rd(t, 1, PCI_BAR0, 4), hi = cfg_rd(t, 1, PCI_BAR0 + 4, 4);

	assert_int_equal(lo & 0x7, 0x4); /* memory, 64-bit */
	assert_int_equal(rd(t, C_NUM_QUEUES, 2), 1);
	/* Sizing: all-ones in, size mask out (PCI 3.0, 6.2.5.1). */
	cfg_wr(t, 1, PCI_BAR0, 4, 0xffffffffu);
	cfg_wr(t, 1, PCI_BAR0 + 4, 4, 0xffffffffu);
	assert_int_equal(cfg_rd(t, 1, PCI_BAR0, 4), 0xffff8004u); /* 32 KiB */
	assert_int_equal(cfg_rd(t, 1, PCI_BAR0 + 4, 4), 0xffffffffu);
	/* No decoding at the old address while the BAR holds the mask. */
	assert_false(fake_mmio_claimed(&t->f, t->bar, 4));
	for (unsigned b = 2; b < 6; b++) {
		cfg_wr(t, 1, PCI_BAR0 + 4 * b, 4, 0xffffffffu);
		assert_int_equal(cfg_rd(t, 1, PCI_BAR0 + 4 * b, 4), 0); /* unimplemented */
	}
	cfg_wr(t, 1, PCI_BAR0, 4, lo);
	cfg_wr(t, 1, PCI_BAR0 + 4, 4, hi);
	assert_int_equal(cfg_rd(t, 1, PCI_BAR0, 4), lo);
	assert_int_equal(rd(t, C_NUM_QUEUES, 2), 1);

	/* Moved within the window: decoded at the new address only. */
	cfg_wr(t, 1, PCI_BAR0, 4, 0xd0000000u);
	assert_false(fake_mmio_claimed(&t->f, t->bar, 4));
	assert_int_equal(fake_mmio_read(&t->f, 0xd0000000ULL + C_NUM_QUEUES, 2), 1);
	cfg_wr(t, 1, PCI_BAR0, 4, lo);
	assert_true(fake_mmio_claimed(&t->f, t->bar, 4));

	/* Memory decoding off: the BAR disappears from the bus. */
	cfg_wr(t, 1, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	assert_false(fake_mmio_claimed(&t->f, t->bar, 4));
	assert_int_equal(rd(t, C_NUM_QUEUES, 2), 0xffff);
	cfg_wr(t, 1, PCI_COMMAND, 2, PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
	assert_int_equal(rd(t, C_NUM_QUEUES, 2), 1);
}

static void test_features(void **state)
{
	struct t *t = *state;
	uint64_t offered = device_features(t), back;

	assert_true(offered & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_true(offered & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	assert_true(offered & VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	assert_int_equal(offered & 0xffffff, 0); /* virtio-rng has no device features */
	wr(t, C_DFSELECT, 4, 7);
	assert_int_equal(rd(t, C_DF, 4), 0);

	/* Reset reads back 0 (2.4). */
	wr(t, C_STATUS, 1, S_ACK);
	assert_int_equal(status(t), S_ACK);
	wr(t, C_STATUS, 1, 0);
	assert_int_equal(status(t), 0);

	/* A bit the device did not offer: FEATURES_OK does not stick (3.1.1 step 6). */
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | 1), S_ACK | S_DRV);
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(40)),
			 S_ACK | S_DRV);
	/* A legacy driver (no VERSION_1) is refused. */
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)), S_ACK | S_DRV);
	assert_int_equal(negotiate(t, 0), S_ACK | S_DRV);
	/* A subset of the offer is accepted and reads back. */
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
					      VIRTIO_BIT(VIRTIO_F_EVENT_IDX)),
			 S_ACK | S_DRV | S_FOK);
	wr(t, C_GFSELECT, 4, 0);
	back = rd(t, C_GF, 4);
	wr(t, C_GFSELECT, 4, 1);
	back |= rd(t, C_GF, 4) << 32;
	assert_int_equal(back, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	assert_int_equal(t->vd->driver_features, back);
	/* After FEATURES_OK the features are fixed. */
	set_features(t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	assert_int_equal(t->vd->driver_features, back);
	/* Dropping FEATURES_OK does not reopen them: only a reset clears status bits (2.1.2). */
	wr(t, C_STATUS, 1, S_ACK | S_DRV);
	assert_int_equal(status(t), S_ACK | S_DRV | S_FOK);
	set_features(t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	assert_int_equal(t->vd->driver_features, back);
	/* DRIVER_OK without accepted features does not stick (3.1.1). */
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(40)),
			 S_ACK | S_DRV);
	wr(t, C_STATUS, 1, S_ACK | S_DRV | S_DOK);
	assert_int_equal(status(t), S_ACK | S_DRV);
	/* Reset forgets them. */
	wr(t, C_STATUS, 1, 0);
	assert_int_equal(t->vd->driver_features, 0);
}

static void test_queue_setup(void **state)
{
	struct t *t = *state;

	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1)), S_ACK | S_DRV | S_FOK);
	wr(t, C_Q_SELECT, 2, 0);
	assert_int_equal(rd(t, C_Q_SIZE, 2), 256);
	assert_int_equal(rd(t, C_Q_NOTIFY_OFF, 2), 0);
	assert_int_equal(rd(t, C_Q_ENABLE, 2), 0);
	assert_int_equal(rd(t, C_Q_MSIX, 2), 0xffff);
	/* Sizes: powers of two up to the maximum only. */
	wr(t, C_Q_SIZE, 2, 100);
	assert_int_equal(rd(t, C_Q_SIZE, 2), 256);
	wr(t, C_Q_SIZE, 2, 512);
	assert_int_equal(rd(t, C_Q_SIZE, 2), 256);
	wr(t, C_Q_SIZE, 2, 0);
	assert_int_equal(rd(t, C_Q_SIZE, 2), 256);
	wr(t, C_Q_SIZE, 2, 64);
	assert_int_equal(rd(t, C_Q_SIZE, 2), 64);
	/* Addresses read back, 64-bit in two halves. */
	queue_addrs(t, 0x123456789000ULL, AVAIL, USED);
	assert_int_equal(rd(t, C_Q_DESC, 4), 0x56789000);
	assert_int_equal(rd(t, C_Q_DESC + 4, 4), 0x1234);
	/* A queue outside RAM is refused: NEEDS_RESET, queue not enabled. */
	wr(t, C_Q_ENABLE, 2, 1);
	assert_int_equal(rd(t, C_Q_ENABLE, 2), 0);
	assert_true(status(t) & S_NR);
	/* Driver status writes keep NEEDS_RESET; only a reset clears it. */
	wr(t, C_STATUS, 1, S_ACK | S_DRV | S_FOK | S_DOK);
	assert_true(status(t) & S_NR);
	wr(t, C_STATUS, 1, 0);
	assert_int_equal(status(t), 0);
	assert_int_equal(rd(t, C_Q_SIZE, 2), 256);
	assert_int_equal(rd(t, C_Q_DESC, 4), 0);

	/* Rings straddling the end of RAM, and the used ring in the PCI hole. */
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1)), S_ACK | S_DRV | S_FOK);
	queue_addrs(t, RAM - 16, AVAIL, USED);
	wr(t, C_Q_ENABLE, 2, 1);
	assert_true(status(t) & S_NR);
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1)), S_ACK | S_DRV | S_FOK);
	queue_addrs(t, DESC, AVAIL, X86_PCI_MMIO_START);
	wr(t, C_Q_ENABLE, 2, 1);
	assert_true(status(t) & S_NR);
	/* Good rings do not restart a device that needs a reset (2.1.2). */
	queue_addrs(t, DESC, AVAIL, USED);
	wr(t, C_Q_ENABLE, 2, 1);
	assert_int_equal(rd(t, C_Q_ENABLE, 2), 0);

	/* In RAM: enabled; then the queue registers are frozen. */
	assert_int_equal(negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1)), S_ACK | S_DRV | S_FOK);
	wr(t, C_Q_SIZE, 2, 64);
	queue_addrs(t, DESC, AVAIL, USED);
	wr(t, C_Q_ENABLE, 2, 1);
	assert_int_equal(rd(t, C_Q_ENABLE, 2), 1);
	assert_int_equal(status(t), S_ACK | S_DRV | S_FOK);
	queue_addrs(t, 0x200000, 0x201000, 0x202000);
	wr(t, C_Q_SIZE, 2, 32);
	assert_int_equal(rd(t, C_Q_DESC, 4), DESC);
	assert_int_equal(rd(t, C_Q_USED, 4), USED);
	assert_int_equal(rd(t, C_Q_SIZE, 2), 64);
	/* Out-of-range queue_select reads as absent and ignores writes. */
	wr(t, C_Q_SELECT, 2, 5);
	assert_int_equal(rd(t, C_Q_SIZE, 2), 0);
	assert_int_equal(rd(t, C_Q_MSIX, 2), 0xffff);
	wr(t, C_Q_ENABLE, 2, 1);
	wr(t, C_Q_SIZE, 2, 16);
	assert_int_equal(rd(t, C_Q_ENABLE, 2), 0);
	assert_false(status(t) & S_NR);
	wr(t, C_STATUS, 1, S_ACK | S_DRV | S_FOK | S_DOK);
	assert_int_equal(status(t), S_ACK | S_DRV | S_FOK | S_DOK);
}

static void test_rng_request(void **state)
{
	struct t *t = *state;
	uint8_t *buf = fake_gpa(&t->f, BUFS, 256), zero[64] = { 0 };
	uint32_t id, len;
	uint16_t h1, h2;

	start(t, 16);
	memset(buf, 0, 256);
	h1 = post(t, BUFS, 64, true);
	assert_true(used(t, &id, &len));
	assert_int_equal(id, h1);
	assert_int_equal(len, 64);
	assert_memory_not_equal(buf, zero, 64);
	assert_memory_equal(buf + 64, zero, 64); /* nothing past the buffer */
	assert_false(used(t, &id, &len));
	assert_int_equal(t->vd->stats.requests, 1);
	assert_int_equal(t->vd->stats.bytes_in, 64);

	/* Two published before one kick: both served in order. */
	h1 = post(t, BUFS + 128, 32, false);
	h2 = post(t, BUFS + 192, 16, true);
	assert_true(used(t, &id, &len));
	assert_int_equal(id, h1);
	assert_int_equal(len, 32);
	assert_true(used(t, &id, &len));
	assert_int_equal(id, h2);
	assert_int_equal(len, 16);
	assert_int_equal(used_idx(t), 3);

	/* A kick of a queue that does not exist, and notify reads, are harmless. */
	wr(t, NOTIFY + 4, 2, 1);
	wr(t, NOTIFY + 60, 2, 15);
	assert_int_equal(rd(t, NOTIFY, 2), 0);
	assert_int_equal(used_idx(t), 3);
	/* A device-readable buffer gets nothing written (len 0). */
	{
		uint8_t *d = fake_gpa(&t->f, DESC + 16ULL * t->next_desc, 16);
		uint16_t flags = 0;

		post(t, BUFS, 64, false);
		memcpy(d + 12, &flags, 2);
		memset(buf, 0x5a, 64);
		wr(t, NOTIFY, 2, 0);
		assert_true(used(t, &id, &len));
		assert_int_equal(len, 0);
		assert_int_equal(buf[0], 0x5a);
	}
	assert_false(status(t) & S_NR);
}

static void test_intx(void **state)
{
	struct t *t = *state;
	uint16_t *avail;
	uint32_t id, len;

	start(t, 16);
	assert_false(t->f.level[t->line]);
	post(t, BUFS, 8, true);
	assert_true(used(t, &id, &len));
	/* Used-buffer notification: ISR bit 0, line high, PCI status interrupt bit. */
	assert_true(t->f.level[t->line]);
	assert_int_equal(t->f.raised[t->line], 1);
	assert_true(cfg_rd(t, 1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* A second completion while pending: still one edge. */
	post(t, BUFS, 8, true);
	assert_int_equal(t->f.raised[t->line], 1);
	/* Reading ISR returns and clears it, and lowers the line (4.1.4.5.1). */
	assert_int_equal(rd(t, ISR, 1), 1);
	assert_false(t->f.level[t->line]);
	assert_false(cfg_rd(t, 1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	assert_int_equal(rd(t, ISR, 1), 0);

	/* Interrupt Line is the OS's note: rewriting it does not move the device's INTx. */
	cfg_wr(t, 1, PCI_INTERRUPT_LINE, 1, 5);
	post(t, BUFS, 8, true);
	assert_true(used(t, &id, &len));
	assert_true(t->f.level[t->line]);
	assert_false(t->f.level[5]);
	assert_int_equal(rd(t, ISR, 1), 1);
	assert_false(t->f.level[t->line]);
	cfg_wr(t, 1, PCI_INTERRUPT_LINE, 1, t->line);

	/* The driver asks for no interrupts: none comes. */
	avail = fake_gpa(&t->f, AVAIL, 4);
	avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	post(t, BUFS, 8, true);
	assert_true(used(t, &id, &len));
	assert_false(t->f.level[t->line]);
	avail[0] = 0;

	/* INTx disabled in the command register: ISR still set, line stays low. */
	cfg_wr(t, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
					     PCI_COMMAND_INTX_DISABLE);
	post(t, BUFS, 8, true);
	assert_false(t->f.level[t->line]);
	assert_int_equal(rd(t, ISR, 1), 1);
	cfg_wr(t, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

	/* Configuration change (NEEDS_RESET after a bad chain): ISR bit 1. */
	{
		uint8_t *d = fake_gpa(&t->f, DESC + 16ULL * t->next_desc, 16);
		uint16_t flags = VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next;

		post(t, BUFS, 8, false);
		next = (uint16_t)(t->next_desc + 15) % 16; /* points at itself */
		memcpy(d + 12, &flags, 2);
		memcpy(d + 14, &next, 2);
		wr(t, NOTIFY, 2, 0);
	}
	assert_true(status(t) & S_NR);
	assert_true(t->f.level[t->line]);
	assert_int_equal(rd(t, ISR, 1), 2);
	assert_false(t->f.level[t->line]);
	/* Reset, and the device works again. */
	start(t, 16);
	post(t, BUFS, 8, true);
	assert_true(used(t, &id, &len));
	assert_int_equal(len, 8);
	assert_int_equal(rd(t, ISR, 1), 1);
	/* Reset lowers a pending line. */
	post(t, BUFS, 8, true);
	assert_true(t->f.level[t->line]);
	wr(t, C_STATUS, 1, 0);
	assert_false(t->f.level[t->line]);
}

/*
 * Setting Interrupt Disable deasserts a pending INTx; clearing it while the
 * ISR is still set asserts it again (PCI 3.0, 6.2.2). Linux sets the bit when
 * it switches a device to MSI-X: a line left high would keep interrupting.
 */
static void test_intx_disable(void **state)
{
	struct t *t = *state;
	uint32_t id, len;

	start(t, 16);
	post(t, BUFS, 8, true);
	assert_true(used(t, &id, &len));
	assert_true(t->f.level[t->line]);
	cfg_wr(t, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
					     PCI_COMMAND_INTX_DISABLE);
	assert_false(t->f.level[t->line]);
	cfg_wr(t, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_true(t->f.level[t->line]);
	assert_int_equal(rd(t, ISR, 1), 1);
	assert_false(t->f.level[t->line]);
}

static void test_msix(void **state)
{
	struct t *t = *state;
	const struct fake_msi_route *m;
	uint32_t id, len;
	int gsi;

	start(t, 16);
	/* Vectors: 2 in the table; beyond that reads back NO_VECTOR. */
	wr(t, C_Q_SELECT, 2, 0);
	wr(t, C_Q_MSIX, 2, 5);
	assert_int_equal(rd(t, C_Q_MSIX, 2), 0xffff);
	wr(t, C_Q_MSIX, 2, 1);
	assert_int_equal(rd(t, C_Q_MSIX, 2), 1);
	wr(t, C_MSIX_CONFIG, 2, 0);
	assert_int_equal(rd(t, C_MSIX_CONFIG, 2), 0);
	/* The table starts masked; entries outside it read all-ones. */
	assert_int_equal(rd(t, MSIX_TABLE + 12, 4), 1);
	assert_int_equal(rd(t, MSIX_TABLE + 32, 4), 0xffffffffu);
	msix_entry(t, 1, MSI_ADDR, 0x4041, 1);
	msix_entry(t, 0, MSI_ADDR, 0x4042, 1);
	assert_int_equal(rd(t, MSIX_TABLE + 16 + 8, 4), 0x4041);
	msix_control(t, 0x8000);
	assert_int_equal(cfg_rd(t, 1, t->msix_cap + 2, 2) & 0xc000, 0x8000);

	/* Masked vector: the interrupt is remembered in the PBA, nothing is routed. */
	post(t, BUFS, 8, true);
	assert_true(used(t, &id, &len));
	assert_int_equal(rd(t, MSIX_PBA, 8), 2);
	assert_int_equal(fake_msi_calls(&t->f), 0);
	assert_false(t->f.level[t->line]); /* never INTx with MSI-X on */
	assert_int_equal(rd(t, ISR, 1), 0);

	/* Unmask: routed, irqfd attached and written once, PBA clear (PCI 3.0, 6.8.2.9). */
	wr(t, MSIX_TABLE + 16 + 12, 4, 0);
	gsi = fake_msi_find(&t->f, MSI_ADDR, 0x4041);
	assert_true(gsi >= FAKE_GSIS);
	m = fake_msi_get(&t->f, gsi);
	assert_non_null(m);
	assert_true(m->irqfd >= 0);
	assert_int_equal(fake_msi_fired(&t->f, gsi), 1);
	assert_int_equal(rd(t, MSIX_PBA, 8), 0);

	/* Unmasked: delivered at once, same GSI, no new route. */
	post(t, BUFS, 8, true);
	assert_int_equal(fake_msi_fired(&t->f, gsi), 2);
	assert_int_equal(m->routes, 1);

	/* Function mask: pending again, delivered when lifted. */
	msix_control(t, 0xc000);
	post(t, BUFS, 8, true);
	assert_int_equal(fake_msi_fired(&t->f, gsi), 2);
	assert_int_equal(rd(t, MSIX_PBA, 1), 2);
	msix_control(t, 0x8000);
	assert_int_equal(fake_msi_fired(&t->f, gsi), 3);
	assert_int_equal(rd(t, MSIX_PBA, 1), 0);

	/* The driver moves the vector: the GSI follows on the next interrupt. */
	wr(t, MSIX_TABLE + 16 + 8, 4, 0x4051);
	post(t, BUFS, 8, true);
	assert_int_equal(m->data, 0x4051);
	assert_int_equal(m->routes, 2);
	assert_int_equal(fake_msi_fired(&t->f, gsi), 4);

	/* No vector for the queue: nothing at all. */
	wr(t, C_Q_MSIX, 2, 0xffff);
	post(t, BUFS, 8, true);
	assert_int_equal(fake_msi_fired(&t->f, gsi), 4);
	assert_int_equal(rd(t, MSIX_PBA, 1), 0);

	/* MSI-X off again: back to INTx. */
	msix_control(t, 0);
	post(t, BUFS, 8, true);
	assert_true(t->f.level[t->line]);
	assert_int_equal(rd(t, ISR, 1), 1);
	while (used(t, &id, &len))
		;
	assert_int_equal(used_idx(t), 6);
}

static void test_pci_cfg_window(void **state)
{
	struct t *t = *state;
	unsigned p;

	for (p = cfg_rd(t, 1, PCI_CAPABILITY_LIST, 1); p; p = cfg_rd(t, 1, p + 1, 1))
		if (cfg_rd(t, 1, p, 1) == PCI_CAP_ID_VNDR && cfg_rd(t, 1, p + 3, 1) == 5)
			break;
	assert_true(p);
	/* Read num_queues (common cfg 0x12, 2 bytes) through the window (4.1.4.9). */
	cfg_wr(t, 1, p + 4, 1, 0);
	cfg_wr(t, 1, p + 8, 4, C_NUM_QUEUES);
	cfg_wr(t, 1, p + 12, 4, 2);
	assert_int_equal(cfg_rd(t, 1, p + 16, 2), 1);
	/* Write device_status through it. */
	cfg_wr(t, 1, p + 8, 4, C_STATUS);
	cfg_wr(t, 1, p + 12, 4, 1);
	cfg_wr(t, 1, p + 16, 1, S_ACK);
	assert_int_equal(status(t), S_ACK);
	assert_int_equal(cfg_rd(t, 1, p + 16, 1), S_ACK);
	/* Bad windows read zero and write nothing. */
	cfg_wr(t, 1, p + 12, 4, 3);
	assert_int_equal(cfg_rd(t, 1, p + 16, 4), 0);
	cfg_wr(t, 1, p + 12, 4, 1);
	cfg_wr(t, 1, p + 8, 4, 0x10000);
	cfg_wr(t, 1, p + 16, 1, 0);
	assert_int_equal(status(t), S_ACK);
	cfg_wr(t, 1, p + 4, 1, 3);
	cfg_wr(t, 1, p + 8, 4, C_STATUS);
	cfg_wr(t, 1, p + 16, 1, 0);
	assert_int_equal(status(t), S_ACK);
}

static void test_bad_accesses(void **state)
{
	struct t *t = *state;

	start(t, 16);
	/* Misaligned or 8-byte common-config accesses are ignored and read all-ones. */
	assert_int_equal(rd(t, C_NUM_QUEUES + 1, 2), 0xffff);
	assert_int_equal(rd(t, C_Q_DESC, 8), UINT64_MAX);
	wr(t, C_STATUS - 1, 2, 0);
	assert_int_equal(status(t), S_ACK | S_DRV | S_FOK | S_DOK);
	wr(t, C_Q_DESC, 8, 0);
	assert_int_equal(rd(t, C_Q_DESC, 4), DESC);
	/* Read-only registers stay put. */
	wr(t, C_NUM_QUEUES, 2, 9);
	wr(t, C_Q_NOTIFY_OFF, 2, 9);
	assert_int_equal(rd(t, C_NUM_QUEUES, 2), 1);
	assert_int_equal(rd(t, C_Q_NOTIFY_OFF, 2), 0);
	/* virtio-rng has no device configuration; holes read all-ones. */
	assert_int_equal(rd(t, 0x2000, 4), 0xffffffffu);
	wr(t, 0x2000, 4, 0);
	assert_int_equal(rd(t, 0x7ff8, 4), 0xffffffffu);
	wr(t, 0x7ff8, 4, 0);
	assert_int_equal(rd(t, MSIX_TABLE + 2, 2), 0xffff); /* sub-dword table access */
	wr(t, MSIX_TABLE + 12, 2, 0);
	assert_int_equal(rd(t, MSIX_TABLE + 12, 4), 1);
	assert_int_equal(status(t), S_ACK | S_DRV | S_FOK | S_DOK);
	/* The generation counter reads. */
	(void)rd(t, C_GENERATION, 1);
}

/*
 * ISR is read-to-clear at its status byte only (4.1.4.5): a read of bytes 1-3
 * of the ISR region sees 0 and must not swallow a pending interrupt.
 */
static void test_isr_offsets(void **state)
{
	struct t *t = *state;
	uint32_t id, len;

	start(t, 16);
	post(t, BUFS, 8, true);
	assert_true(used(t, &id, &len));
	assert_true(t->f.level[t->line]);
	for (unsigned off = 1; off < 4; off++) {
		assert_int_equal(rd(t, ISR + off, 1), 0);
		assert_true(t->f.level[t->line]);
	}
	assert_int_equal(rd(t, ISR + 2, 2), 0);
	assert_true(t->f.level[t->line]);
	assert_true(cfg_rd(t, 1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* A wider read covering offset 0 returns the status in its low byte and clears it. */
	assert_int_equal(rd(t, ISR, 4), 1);
	assert_false(t->f.level[t->line]);
	assert_int_equal(rd(t, ISR, 1), 0);
	/* Writes are ignored. */
	post(t, BUFS, 8, true);
	assert_true(used(t, &id, &len));
	wr(t, ISR, 1, 0);
	wr(t, ISR + 1, 1, 0);
	assert_true(t->f.level[t->line]);
	assert_int_equal(rd(t, ISR, 1), 1);
}

/* ioeventfd registrations seen by the fake, and whether vd->lock was held for each. */
#define IOE_MAX 16
struct ioe_log {
	struct virtio_dev *vd;
	unsigned n, unlocked;
	struct {
		int fd;
		uint64_t addr;
		bool assign;
	} e[IOE_MAX];
};
static struct ioe_log ioe;

static int fake_ioeventfd(void *opaque, int fd, uint64_t addr, uint32_t len, bool assign)
{
	(void)opaque;
	assert_int_equal(len, 2);
	/* Single-threaded test: a held lock can only be the transport's own. */
	if (ioe.vd && pthread_mutex_trylock(&ioe.vd->lock) == 0) {
		ioe.unlocked++;
		pthread_mutex_unlock(&ioe.vd->lock);
	}
	if (ioe.n < IOE_MAX)
		ioe.e[ioe.n] = (typeof(ioe.e[0])){ fd, addr, assign };
	ioe.n++;
	return 0;
}

/*
 * A BAR move re-registers the notify ioeventfds, including the one handed to an
 * in-kernel backend, under vd->lock: the event loop changes that hand-off under
 * the same lock. (A race test is impractical here; the fake checks that the
 * lock is held during each registration, and that they follow the BAR.)
 */
static void test_bar_move_ioeventfd(void **state)
{
	struct t *t = *state;
	uint64_t moved = 0xd0000000ULL;
	int fd;

	/* The transport copies its context at creation: a new device with ioeventfds. */
	virtio_pci_destroy(t->vd);
	t->vd = NULL;
	t->f.ctx.ioeventfd = fake_ioeventfd;
	{
		struct err e = { { 0 } };

		assert_int_equal(virtio_rng_create(&t->f.ctx, &t->vd, &e), 0);
	}
	t->bar = (cfg_rd(t, 1, 0x10, 4) & ~0xfULL) | (uint64_t)cfg_rd(t, 1, 0x14, 4) << 32;
	start(t, 16);
	memset(&ioe, 0, sizeof(ioe));
	ioe.vd = t->vd;
	pthread_mutex_lock(&t->vd->lock);
	fd = virtio_queue_kick_fd(t->vd, 0);
	pthread_mutex_unlock(&t->vd->lock);
	assert_true(fd >= 0);
	assert_int_equal(ioe.n, 1);
	assert_int_equal(ioe.e[0].addr, t->bar + NOTIFY);

	/* Move BAR0 (low dword of the 64-bit BAR): the backend's fd follows it. */
	ioe.n = ioe.unlocked = 0;
	cfg_wr(t, 1, PCI_BAR0, 4, (uint32_t)moved);
	assert_int_equal(ioe.n, 2);
	assert_int_equal(ioe.e[0].fd, fd);
	assert_false(ioe.e[0].assign);
	assert_int_equal(ioe.e[0].addr, t->bar + NOTIFY);
	assert_int_equal(ioe.e[1].fd, fd);
	assert_true(ioe.e[1].assign);
	assert_int_equal(ioe.e[1].addr, moved + NOTIFY);
	assert_int_equal(ioe.unlocked, 0);
	/* Memory decoding off and on again: unregistered, then back, still locked. */
	cfg_wr(t, 1, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	cfg_wr(t, 1, PCI_COMMAND, 2, PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
	assert_int_equal(ioe.n, 4);
	assert_false(ioe.e[2].assign);
	assert_true(ioe.e[3].assign);
	assert_int_equal(ioe.e[3].addr, moved + NOTIFY);
	assert_int_equal(ioe.unlocked, 0);

	/* Handed back: the fd leaves the new address. */
	ioe.n = 0;
	pthread_mutex_lock(&t->vd->lock);
	virtio_queue_kick_release(t->vd, 0);
	pthread_mutex_unlock(&t->vd->lock);
	assert_int_equal(ioe.n, 1);
	assert_false(ioe.e[0].assign);
	assert_int_equal(ioe.e[0].addr, moved + NOTIFY);
	ioe.vd = NULL;
}

static void test_save_load(void **state)
{
	struct t *t = *state, *u = calloc(1, sizeof(*u));
	struct sbuf sb = { 0 };
	uint32_t id, len;
	int gsi;

	assert_non_null(u);
	start(t, 32);
	msix_entry(t, 1, MSI_ADDR, 0x4061, 0);
	wr(t, C_Q_MSIX, 2, 1);
	wr(t, C_MSIX_CONFIG, 2, 0);
	msix_control(t, 0x8000);
	post(t, BUFS, 16, true);
	post(t, BUFS, 16, true);
	assert_true(used(t, &id, &len));
	assert_true(used(t, &id, &len));
	/* Vector 0 masked with an interrupt pending. */
	msix_entry(t, 0, MSI_ADDR, 0x4062, 1);
	virtio_config_interrupt(t->vd);
	assert_int_equal(rd(t, MSIX_PBA, 1), 1);
	assert_int_equal(virtio_save(t->vd, &sb), 0);

	/* A new VM with the same devices. */
	assert_int_equal(t_init(u), 0);
	/* The host bridge keeps its own record; the function's config comes with the device. */
	cfg_wr(u, 1, u->msix_cap + 2, 2, 0);
	assert_int_equal(virtio_load(u->vd, sb.data, sb.len), 0);
	assert_int_equal(status(u), S_ACK | S_DRV | S_FOK | S_DOK);
	assert_int_equal(u->vd->driver_features, t->vd->driver_features);
	wr(u, C_Q_SELECT, 2, 0);
	assert_int_equal(rd(u, C_Q_SIZE, 2), 32);
	assert_int_equal(rd(u, C_Q_ENABLE, 2), 1);
	assert_int_equal(rd(u, C_Q_DESC, 4), DESC);
	assert_int_equal(rd(u, C_Q_AVAIL, 4), AVAIL);
	assert_int_equal(rd(u, C_Q_USED, 4), USED);
	assert_int_equal(rd(u, C_Q_MSIX, 2), 1);
	assert_int_equal(rd(u, C_MSIX_CONFIG, 2), 0);
	assert_int_equal(rd(u, MSIX_TABLE + 16 + 8, 4), 0x4061);
	assert_int_equal(rd(u, MSIX_TABLE + 12, 4), 1);
	assert_int_equal(rd(u, MSIX_PBA, 1), 1);
	assert_int_equal(cfg_rd(u, 1, u->msix_cap + 2, 2) & 0xc000, 0x8000);

	/* Guest RAM travels separately: copy it, then the queue continues where it was. */
	memcpy(fake_gpa(&u->f, 0, RAM), fake_gpa(&t->f, 0, RAM), RAM);
	u->qsize = t->qsize;
	u->avail_idx = t->avail_idx;
	u->used_seen = t->used_seen;
	u->next_desc = t->next_desc;
	post(u, BUFS, 16, true);
	assert_true(used(u, &id, &len));
	assert_int_equal(used_idx(u), 3);
	gsi = fake_msi_find(&u->f, MSI_ADDR, 0x4061);
	assert_true(gsi >= 0);
	assert_int_equal(fake_msi_fired(&u->f, gsi), 1);
	/* The pending config interrupt fires when vector 0 is unmasked. */
	wr(u, MSIX_TABLE + 12, 4, 0);
	gsi = fake_msi_find(&u->f, MSI_ADDR, 0x4062);
	assert_true(gsi >= 0);
	assert_int_equal(fake_msi_fired(&u->f, gsi), 1);

	/* Records of a wrong version or length are refused. */
	assert_int_equal(virtio_load(u->vd, sb.data, sb.len - 1), -EINVAL);
	assert_int_equal(virtio_load(u->vd, sb.data, 10), -EINVAL);
	sb.data[0] ^= 0xff;
	assert_int_equal(virtio_load(u->vd, sb.data, sb.len), -EINVAL);
	sbuf_free(&sb);
	t_fini(u);
	free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_enumerate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capabilities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_setup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rng_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx_disable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_cfg_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_isr_offsets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_move_ioeventfd, setup, teardown),
	};

	return cmocka_run_group_tests_name("virtio_pci", tests, NULL, NULL);
}
