// SPDX-License-Identifier: MIT
/* acpi_pm.c: ACPI fixed hardware: PM1a event and control blocks, the PM timer, GPE0 and the SCI. */
#include "dev/acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "vmm/bus.h"

/* PM1 status and enable bits (ACPI 6.x section 4.8.3.1, tables 4.16 and 4.17). */
#define PM1_TMR (1u << 0)
#define PM1_GBL (1u << 5)
#define PM1_PWRBTN (1u << 8)
#define PM1_SLPBTN (1u << 9)
#define PM1_RTC (1u << 10)
#define PM1_WAK (1u << 15)
#define PM1_STS_MASK (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | PM1_WAK)
#define PM1_EN_MASK (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC)

/* PM1 control bits (section 4.8.3.2.1, table 4.18). */
#define PM1_CNT_SCI_EN (1u << 0)
#define PM1_CNT_BM_RLD (1u << 1)
#define PM1_CNT_GBL_RLS (1u << 2) /* write-only */
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP (7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN (1u << 13) /* write-only */
/* Bits that keep what is written; SCI_EN is fixed at 1 (SMI_CMD is 0). */
#define PM1_CNT_RW_MASK (PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP)

/* The PM timer (section 4.8.3.3): 3.579545 MHz, 24 bits (FADT TMR_VAL_EXT clear). */
#define PM_TMR_HZ 3579545ULL
#define PM_TMR_MASK 0xffffffu
#define PM_TMR_MSB_SHIFT 23

#define ACPI_PM_STATE_VERSION 1

/* The saved state: a packed, little-endian record. */
struct acpi_pm_state {
	uint8_t version;
	uint8_t reserved;
	uint16_t pm1_sts;
	uint16_t pm1_en;
	uint16_t pm1_cnt;
	uint16_t gpe0_sts;
	uint16_t gpe0_en;
	uint32_t tmr; /* the 24-bit counter at save time */
} __attribute__((packed));

struct acpi_pm {
	pthread_mutex_t lock;
	struct dev_ctx ctx;
	uint16_t pm1_sts; /* latched status bits (TMR_STS folded in lazily) */
	uint16_t pm1_en;
	uint16_t pm1_cnt; /* PM1_CNT_RW_MASK bits only */
	uint16_t gpe0_sts;
	uint16_t gpe0_en;
	/* Counter = host monotonic time in PM timer ticks + tmr_offset (mod 2^64). */
	uint64_t tmr_offset;
	/* Counter >> 23 when TMR_STS was last latched: bit 23 toggles set it. */
	uint64_t tmr_epoch;
	bool sci; /* level last driven */
	struct ratelimit slp_rl;
};

static uint64_t acpi_pm_ticks(const struct acpi_pm *pm)
{
	unsigned __int128 t = (unsigned __int128)time_ns() * PM_TMR_HZ / 1000000000u;

	return (uint64_t)t + pm->tmr_offset;
}

/*
 * TMR_STS is set whenever bit 23 of the counter changes. Nothing runs
 * between accesses, so it is latched when the guest looks. No SCI comes
 * from TMR_EN (that would need a host timer); OSes use the counter only.
 */
static void acpi_pm_latch_tmr(struct acpi_pm *pm)
{
	uint64_t epoch = acpi_pm_ticks(pm) >> PM_TMR_MSB_SHIFT;

	if (epoch != pm->tmr_epoch) {
		pm->tmr_epoch = epoch;
		pm->pm1_sts |= PM1_TMR;
	}
}

/*
 * The SCI is a level (section 5.2.9: shareable, level, active high per the
 * MADT override): asserted while an enabled status bit is set.
 */
static void acpi_pm_update_sci(struct acpi_pm *pm, bool force)
{
	bool level = (pm->pm1_sts & pm->pm1_en & ~PM1_TMR) || (pm->gpe0_sts & pm->gpe0_en);

	if (level == pm->sci && !force)
		return;
	pm->sci = level;
	dev_irq_set(&pm->ctx, X86_IRQ_SCI, level);
}

/*
 * Accesses may have any width and offset within a block: reads return the
 * bytes of the block's registers, bytes past the block read 0xff.
 */
static void acpi_pm_read_bytes(const uint8_t *img, size_t size, uint64_t off, uint8_t *data,
			       uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		data[i] = off + i < size ? img[off + i] : 0xff;
}

/*
 * The part of a write that lands on the 16-bit register at reg_off: the
 * written bits and the mask of the bytes written. False when none does.
 */
static bool acpi_pm_gather16(uint64_t off, const uint8_t *data, uint32_t len, unsigned reg_off,
			     uint16_t *val, uint16_t *mask)
{
	*val = 0;
	*mask = 0;
	for (uint32_t i = 0; i < len; i++) {
		if (off + i < reg_off || off + i >= reg_off + 2u)
			continue;
		*val |= (uint16_t)(data[i] << ((off + i - reg_off) * 8));
		*mask |= (uint16_t)(0xff << ((off + i - reg_off) * 8));
	}
	return *mask != 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* PM1a_EVT_BLK: PM1_STS at 0, PM1_EN at 2 (section 4.8.3.1). */
static void acpi_pm_evt_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint8_t img[X86_PM1_EVT_LEN];

	pthread_mutex_lock(&pm->lock);
	acpi_pm_latch_tmr(pm);
	put16(img, pm->pm1_sts);
	put16(img + 2, pm->pm1_en);
	pthread_mutex_unlock(&pm->lock);
	acpi_pm_read_bytes(img, sizeof(img), off, data, len);
}

static void acpi_pm_evt_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint16_t val, mask;

	pthread_mutex_lock(&pm->lock);
	if (acpi_pm_gather16(off, data, len, 0, &val, &mask)) {
		/* Status bits are cleared by writing 1 (section 4.8.3.1.1). */
		acpi_pm_latch_tmr(pm);
		pm->pm1_sts &= (uint16_t)~(val & mask);
	}
	if (acpi_pm_gather16(off, data, len, 2, &val, &mask))
		pm->pm1_en = (uint16_t)((pm->pm1_en & ~mask) | (val & mask & PM1_EN_MASK));
	acpi_pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

/* PM1a_CNT_BLK (section 4.8.3.2.1). */
static void acpi_pm_cnt_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint8_t img[X86_PM1_CNT_LEN];

	pthread_mutex_lock(&pm->lock);
	put16(img, (uint16_t)(pm->pm1_cnt | PM1_CNT_SCI_EN));
	pthread_mutex_unlock(&pm->lock);
	acpi_pm_read_bytes(img, sizeof(img), off, data, len);
}

static void acpi_pm_cnt_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	bool poweroff = false;
	uint16_t val, mask;
	unsigned typ;

	if (!acpi_pm_gather16(off, data, len, 0, &val, &mask))
		return;
	pthread_mutex_lock(&pm->lock);
	pm->pm1_cnt = (uint16_t)((pm->pm1_cnt & ~mask) | (val & mask & PM1_CNT_RW_MASK));
	/* SLP_EN starts the transition to the state SLP_TYP names (section 7.4.2). */
	if (val & mask & PM1_CNT_SLP_EN) {
		typ = (pm->pm1_cnt & PM1_CNT_SLP_TYP) >> PM1_CNT_SLP_TYP_SHIFT;
		if (typ == X86_SLP_TYP_S5)
			poweroff = true;
		else if (ratelimit_ok(&pm->slp_rl))
			log_warn("acpi_pm: guest asked for sleep type %u, only S5 (%u) is supported",
				 typ, X86_SLP_TYP_S5);
	}
	acpi_pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
	/* Outside the lock: the VM may stop devices while handling it. */
	if (poweroff && pm->ctx.request)
		pm->ctx.request(pm->ctx.request_opaque, VM_REQ_POWEROFF);
}

/* PM_TMR_BLK: read-only (section 4.8.3.3). */
static void acpi_pm_tmr_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint8_t img[X86_PM_TMR_LEN];
	uint32_t v;

	pthread_mutex_lock(&pm->lock);
	v = (uint32_t)acpi_pm_ticks(pm) & PM_TMR_MASK;
	pthread_mutex_unlock(&pm->lock);
	put16(img, (uint16_t)v);
	put16(img + 2, (uint16_t)(v >> 16));
	acpi_pm_read_bytes(img, sizeof(img), off, data, len);
}

/* GPE0_BLK: GPE0_STS in the first half, GPE0_EN in the second (section 4.8.4.1). */
static void acpi_pm_gpe_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint8_t img[X86_GPE0_LEN];

	pthread_mutex_lock(&pm->lock);
	put16(img, pm->gpe0_sts);
	put16(img + 2, pm->gpe0_en);
	pthread_mutex_unlock(&pm->lock);
	acpi_pm_read_bytes(img, sizeof(img), off, data, len);
}

static void acpi_pm_gpe_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct acpi_pm *pm = opaque;
	uint16_t val, mask;

	pthread_mutex_lock(&pm->lock);
	if (acpi_pm_gather16(off, data, len, 0, &val, &mask))
		pm->gpe0_sts &= (uint16_t)~(val & mask);
	if (acpi_pm_gather16(off, data, len, 2, &val, &mask))
		pm->gpe0_en = (uint16_t)((pm->gpe0_en & ~mask) | (val & mask));
	acpi_pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

static const struct bus_ops acpi_pm_evt_ops = { .read = acpi_pm_evt_read,
						.write = acpi_pm_evt_write };
static const struct bus_ops acpi_pm_cnt_ops = { .read = acpi_pm_cnt_read,
						.write = acpi_pm_cnt_write };
static const struct bus_ops acpi_pm_tmr_ops = { .read = acpi_pm_tmr_read };
static const struct bus_ops acpi_pm_gpe_ops = { .read = acpi_pm_gpe_read,
						.write = acpi_pm_gpe_write };

static const struct {
	uint64_t port;
	uint64_t len;
	const struct bus_ops *ops;
} acpi_pm_ranges[] = {
	{ X86_PORT_PM1A_EVT, X86_PM1_EVT_LEN, &acpi_pm_evt_ops },
	{ X86_PORT_PM1A_CNT, X86_PM1_CNT_LEN, &acpi_pm_cnt_ops },
	{ X86_PORT_PM_TMR, X86_PM_TMR_LEN, &acpi_pm_tmr_ops },
	{ X86_PORT_GPE0, X86_GPE0_LEN, &acpi_pm_gpe_ops },
};

void acpi_pm_power_button(void *priv)
{
	struct acpi_pm *pm = priv;

	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts |= PM1_PWRBTN;
	acpi_pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_gpe_raise(void *priv, unsigned bit)
{
	struct acpi_pm *pm = priv;

	if (bit >= 16)
		return;
	pthread_mutex_lock(&pm->lock);
	pm->gpe0_sts |= (uint16_t)(1u << bit);
	acpi_pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

static int acpi_pm_create(const struct dev_ctx *ctx, void **priv, struct err *e)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));
	size_t i;
	int r;

	if (!pm)
		return err_set(e, ENOMEM, "acpi_pm: out of memory");
	pthread_mutex_init(&pm->lock, NULL);
	pm->ctx = *ctx;
	pm->slp_rl = (struct ratelimit)RATELIMIT_INIT(10000, 3);
	pm->tmr_epoch = acpi_pm_ticks(pm) >> PM_TMR_MSB_SHIFT;
	for (i = 0; i < ARRAY_SIZE(acpi_pm_ranges); i++) {
		r = bus_register(ctx->pio, acpi_pm_ranges[i].port, acpi_pm_ranges[i].len,
				 acpi_pm_ranges[i].ops, pm);
		if (r) {
			err_set(e, -r, "acpi_pm: cannot claim ports 0x%llx-0x%llx",
				(unsigned long long)acpi_pm_ranges[i].port,
				(unsigned long long)(acpi_pm_ranges[i].port +
						     acpi_pm_ranges[i].len - 1));
			while (i--)
				bus_unregister(ctx->pio, acpi_pm_ranges[i].port);
			pthread_mutex_destroy(&pm->lock);
			free(pm);
			return r;
		}
	}
	*priv = pm;
	return 0;
}

static void acpi_pm_destroy(void *priv)
{
	struct acpi_pm *pm = priv;

	if (!pm)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(acpi_pm_ranges); i++)
		bus_unregister(pm->ctx.pio, acpi_pm_ranges[i].port);
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

static int acpi_pm_save(void *priv, struct sbuf *out)
{
	struct acpi_pm *pm = priv;
	struct acpi_pm_state st = { .version = ACPI_PM_STATE_VERSION };

	pthread_mutex_lock(&pm->lock);
	acpi_pm_latch_tmr(pm);
	st.pm1_sts = pm->pm1_sts;
	st.pm1_en = pm->pm1_en;
	st.pm1_cnt = pm->pm1_cnt;
	st.gpe0_sts = pm->gpe0_sts;
	st.gpe0_en = pm->gpe0_en;
	st.tmr = (uint32_t)acpi_pm_ticks(pm) & PM_TMR_MASK;
	pthread_mutex_unlock(&pm->lock);
	return sbuf_put(out, &st, sizeof(st));
}

static int acpi_pm_load(void *priv, const uint8_t *buf, size_t len)
{
	struct acpi_pm *pm = priv;
	struct acpi_pm_state st;
	uint64_t now;

	if (len != sizeof(st))
		return -EINVAL;
	memcpy(&st, buf, sizeof(st));
	/* A record with bits no register can hold is corrupt, not ours. */
	if (st.version != ACPI_PM_STATE_VERSION || st.reserved || st.pm1_sts & ~PM1_STS_MASK ||
	    st.pm1_en & ~PM1_EN_MASK || st.pm1_cnt & ~PM1_CNT_RW_MASK || st.tmr & ~PM_TMR_MASK)
		return -EINVAL;
	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts = st.pm1_sts;
	pm->pm1_en = st.pm1_en;
	pm->pm1_cnt = st.pm1_cnt;
	pm->gpe0_sts = st.gpe0_sts;
	pm->gpe0_en = st.gpe0_en;
	/* The counter goes on from the saved value. */
	pm->tmr_offset = 0;
	now = acpi_pm_ticks(pm);
	pm->tmr_offset = (uint64_t)st.tmr - (now & PM_TMR_MASK);
	/* Keep the saved value's bit 23 phase: no spurious TMR_STS on load. */
	pm->tmr_epoch = acpi_pm_ticks(pm) >> PM_TMR_MSB_SHIFT;
	acpi_pm_update_sci(pm, true);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

const struct dev_desc acpi_pm_desc = {
	.name = "acpi_pm",
	.create = acpi_pm_create,
	.destroy = acpi_pm_destroy,
	.save = acpi_pm_save,
	.load = acpi_pm_load,
};
