// SPDX-License-Identifier: MIT
/* rtc.c: the MC146818 CMOS real-time clock and its NVRAM, following the host's UTC clock. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "dev/legacy.h"
#include "vmm/bus.h"

/* Register indexes (MC146818A datasheet). */
#define RTC_SEC 0x00
#define RTC_MIN 0x02
#define RTC_HOUR 0x04
#define RTC_WDAY 0x06
#define RTC_MDAY 0x07
#define RTC_MON 0x08
#define RTC_YEAR 0x09
#define RTC_A 0x0a
#define RTC_B 0x0b
#define RTC_C 0x0c
#define RTC_D 0x0d
#define RTC_CENTURY 0x32 /* ACPI FADT century index */

#define B_SET 0x80
#define B_DM 0x04 /* binary mode */
#define B_24H 0x02
#define D_VRT 0x80

/* Largest clock offset from the host's, in seconds (~34,800 years: past century 255). */
#define RTC_OFFSET_MAX (1LL << 40)

struct rtc_regs {
	uint8_t index;
	uint8_t cmos[128];
	int64_t offset; /* guest time - host UTC, seconds (the guest may set its clock) */
};

struct rtc {
	pthread_mutex_t lock;
	struct dev_ctx ctx;
	struct rtc_regs r;
};

static uint8_t to_bcd(const struct rtc *c, int v)
{
	if (c->r.cmos[RTC_B] & B_DM)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static int from_bcd(const struct rtc *c, uint8_t v)
{
	if (c->r.cmos[RTC_B] & B_DM)
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

static void rtc_now(const struct rtc *c, struct tm *tm)
{
	time_t t = time(NULL) + (time_t)c->r.offset;

	/* Never before 1900 (no guest can set that; a host clock stepping back could): fields stay >= 0. */
	if (t < -2208988800LL)
		t = -2208988800LL;
	gmtime_r(&t, tm);
}

static uint8_t rtc_time_reg(const struct rtc *c, unsigned idx)
{
	struct tm tm;
	int h;

	rtc_now(c, &tm);
	switch (idx) {
	case RTC_SEC: return to_bcd(c, tm.tm_sec);
	case RTC_MIN: return to_bcd(c, tm.tm_min);
	case RTC_HOUR:
		if (c->r.cmos[RTC_B] & B_24H)
			return to_bcd(c, tm.tm_hour);
		h = tm.tm_hour % 12;
		return (uint8_t)(to_bcd(c, h ? h : 12) | (tm.tm_hour >= 12 ? 0x80 : 0));
	case RTC_WDAY: return to_bcd(c, tm.tm_wday + 1);
	case RTC_MDAY: return to_bcd(c, tm.tm_mday);
	case RTC_MON: return to_bcd(c, tm.tm_mon + 1);
	case RTC_YEAR: return to_bcd(c, tm.tm_year % 100);
	default: return to_bcd(c, (tm.tm_year + 1900) / 100); /* century */
	}
}

/* A guest writing a time field moves its clock: keep the difference from UTC. */
static void rtc_set_field(struct rtc *c, unsigned idx, uint8_t v)
{
	struct tm tm;
	int val = from_bcd(c, v & (idx == RTC_HOUR ? 0x7f : 0xff));
	time_t now, want;

	rtc_now(c, &tm);
	switch (idx) {
	case RTC_SEC: tm.tm_sec = val; break;
	case RTC_MIN: tm.tm_min = val; break;
	case RTC_HOUR:
		if (!(c->r.cmos[RTC_B] & B_24H))
			val = (val % 12) + ((v & 0x80) ? 12 : 0);
		tm.tm_hour = val;
		break;
	case RTC_MDAY: tm.tm_mday = val; break;
	case RTC_MON: tm.tm_mon = val - 1; break;
	case RTC_YEAR:
		/* 0-99 within the century: a larger binary value would carry into it, and
		 * repeated writes would push the clock past what a saved state may hold. */
		if (val > 99)
			return;
		tm.tm_year = (tm.tm_year / 100) * 100 + val;
		break;
	case RTC_CENTURY: tm.tm_year = (val - 19) * 100 + tm.tm_year % 100; break;
	default: return;
	}
	if (tm.tm_sec > 59 || tm.tm_min > 59 || tm.tm_hour > 23 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_year < 0)
		return;
	want = timegm(&tm);
	now = time(NULL);
	/* Within what rtc_load accepts, so every state the guest reaches can be restored. */
	if (want != (time_t)-1 && want - now <= RTC_OFFSET_MAX && want - now >= -RTC_OFFSET_MAX)
		c->r.offset = (int64_t)(want - now);
}

static uint8_t rtc_read_reg(struct rtc *c, unsigned idx)
{
	uint8_t v;

	switch (idx) {
	case RTC_SEC: case RTC_MIN: case RTC_HOUR: case RTC_WDAY:
	case RTC_MDAY: case RTC_MON: case RTC_YEAR: case RTC_CENTURY:
		return rtc_time_reg(c, idx);
	case RTC_A:
		return c->r.cmos[RTC_A] & 0x7f; /* never "update in progress" */
	case RTC_C:
		v = c->r.cmos[RTC_C];
		c->r.cmos[RTC_C] = 0; /* read clears the flags */
		return v;
	case RTC_D:
		return D_VRT;
	default:
		return c->r.cmos[idx];
	}
}

static void rtc_write_reg(struct rtc *c, unsigned idx, uint8_t v)
{
	switch (idx) {
	case RTC_SEC: case RTC_MIN: case RTC_HOUR: case RTC_MDAY:
	case RTC_MON: case RTC_YEAR: case RTC_CENTURY:
		rtc_set_field(c, idx, v);
		return;
	case RTC_WDAY:
		return;
	case RTC_C: case RTC_D:
		return; /* read-only */
	case RTC_B:
		/* Periodic, alarm and update interrupts are not emulated: keep their enables off. */
		c->r.cmos[RTC_B] = v & ~0x70;
		return;
	default:
		c->r.cmos[idx] = v;
	}
}

static void rtc_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct rtc *c = opaque;
	uint32_t i;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < len; i++)
		data[i] = (off + i == 1) ? rtc_read_reg(c, c->r.index) : 0xff;
	pthread_mutex_unlock(&c->lock);
}

static void rtc_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct rtc *c = opaque;
	uint32_t i;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < len; i++) {
		if (off + i == 0)
			c->r.index = data[i] & 0x7f; /* bit 7 is the NMI mask */
		else if (off + i == 1)
			rtc_write_reg(c, c->r.index, data[i]);
	}
	pthread_mutex_unlock(&c->lock);
}

static const struct bus_ops rtc_ops = { .read = rtc_read, .write = rtc_write };

static int rtc_create(const struct dev_ctx *ctx, void **priv, struct err *e)
{
	struct rtc *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return err_set(e, ENOMEM, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	c->ctx = *ctx;
	c->r.cmos[RTC_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	c->r.cmos[RTC_B] = B_24H;
	r = bus_register(ctx->pio, X86_PORT_RTC, 2, &rtc_ops, c);
	if (r) {
		free(c);
		return err_set(e, -r, "rtc: cannot claim ports 0x70-0x71");
	}
	*priv = c;
	return 0;
}

static void rtc_destroy(void *priv)
{
	struct rtc *c = priv;

	bus_unregister(c->ctx.pio, X86_PORT_RTC);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int rtc_save(void *priv, struct sbuf *out)
{
	struct rtc *c = priv;
	uint8_t ver = 1;
	int r;

	pthread_mutex_lock(&c->lock);
	r = sbuf_put(out, &ver, 1);
	if (!r)
		r = sbuf_put(out, &c->r, sizeof(c->r));
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int rtc_load(void *priv, const uint8_t *buf, size_t len)
{
	struct rtc *c = priv;
	struct rtc_regs r;

	if (len != 1 + sizeof(r) || buf[0] != 1)
		return -EINVAL;
	memcpy(&r, buf + 1, sizeof(r));
	if (r.index > 127 || r.offset > RTC_OFFSET_MAX || r.offset < -RTC_OFFSET_MAX)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	c->r = r;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

const struct dev_desc rtc_desc = {
	.name = "rtc",
	.create = rtc_create,
	.destroy = rtc_destroy,
	.save = rtc_save,
	.load = rtc_load,
};
