// SPDX-License-Identifier: MIT
/* test_rtc.c: device tests for the CMOS RTC: BCD/binary, 24h/12h, guest-set clock, NVRAM, save/load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch/x86/layout.h"
#include "dev/legacy.h"
#include "fake.h"
#include "vmm/bus.h"

#define IDX X86_PORT_RTC
#define DAT (X86_PORT_RTC + 1)

#define R_SEC 0x00
#define R_MIN 0x02
#define R_HOUR 0x04
#define R_WDAY 0x06
#define R_MDAY 0x07
#define R_MON 0x08
#define R_YEAR 0x09
#define R_A 0x0a
#define R_B 0x0b
#define R_C 0x0c
#define R_D 0x0d
#define R_CENT 0x32

#define B_DM 0x04
#define B_24H 0x02

static int setup(void **state)
{
	return fake_dev_setup(state, &rtc_desc, false);
}

static uint8_t rd(struct fake_dev *t, uint8_t idx)
{
	fake_outb(&t->f, IDX, idx);
	return fake_inb(&t->f, DAT);
}

static void wr(struct fake_dev *t, uint8_t idx, uint8_t v)
{
	fake_outb(&t->f, IDX, idx);
	fake_outb(&t->f, DAT, v);
}

static int bcd(uint8_t v)
{
	/* Both digits must be decimal. */
	assert_true((v & 0x0f) <= 9);
	assert_true((v >> 4) <= 9);
	return (v >> 4) * 10 + (v & 0x0f);
}

/* The time the guest reads, as a struct tm in 24-hour form, read so that no second boundary is crossed. */
static void read_clock(struct fake_dev *t, struct tm *tm, int *wday)
{
	uint8_t b = rd(t, R_B), s0, v[8];
	bool bin = b & B_DM, h24 = b & B_24H;
	int hour;

	do {
		s0 = rd(t, R_SEC);
		v[0] = rd(t, R_MIN);
		v[1] = rd(t, R_HOUR);
		v[2] = rd(t, R_MDAY);
		v[3] = rd(t, R_MON);
		v[4] = rd(t, R_YEAR);
		v[5] = rd(t, R_CENT);
		v[6] = rd(t, R_WDAY);
		v[7] = rd(t, R_SEC);
	} while (s0 != v[7]);

	memset(tm, 0, sizeof(*tm));
	if (bin) {
		tm->tm_sec = s0;
		tm->tm_min = v[0];
		hour = v[1] & (h24 ? 0xff : 0x7f);
		tm->tm_mday = v[2];
		tm->tm_mon = v[3] - 1;
		tm->tm_year = v[5] * 100 + v[4] - 1900;
		*wday = v[6];
	} else {
		tm->tm_sec = bcd(s0);
		tm->tm_min = bcd(v[0]);
		hour = bcd(v[1] & (h24 ? 0xff : 0x7f));
		tm->tm_mday = bcd(v[2]);
		tm->tm_mon = bcd(v[3]) - 1;
		tm->tm_year = bcd(v[5]) * 100 + bcd(v[4]) - 1900;
		*wday = bcd(v[6]);
	}
	if (!h24) {
		assert_true(hour >= 1 && hour <= 12);
		hour = hour % 12 + ((v[1] & 0x80) ? 12 : 0);
	}
	tm->tm_hour = hour;
}

/* The guest clock must equal host UTC + offset at some moment during the read. */
static void check_clock(struct fake_dev *t, int64_t offset)
{
	struct tm tm, host;
	time_t t0, t1, g;
	int wday;

	t0 = time(NULL);
	read_clock(t, &tm, &wday);
	t1 = time(NULL);
	g = timegm(&tm);
	if (g < t0 + offset || g > t1 + offset)
		fail_msg("guest clock %04d-%02d-%02d %02d:%02d:%02d is not host time + %lld",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (long long)offset);
	/* Day of week, 1 = Sunday. */
	gmtime_r(&g, &host);
	assert_int_equal(wday, host.tm_wday + 1);
}

static void test_ports(void **state)
{
	struct fake_dev *t = *state;
	uint8_t d[2];

	assert_true(fake_claimed(&t->f, IDX, 1));
	assert_true(fake_claimed(&t->f, DAT, 1));
	assert_true(fake_claimed(&t->f, IDX, 2));
	assert_false(fake_claimed(&t->f, IDX + 2, 1));
	assert_false(fake_claimed(&t->f, DAT, 2));
	/* The index register reads as 0xff; a 2-byte read returns it and the data. */
	fake_outb(&t->f, IDX, R_D);
	assert_int_equal(fake_inb(&t->f, IDX), 0xff);
	assert_true(bus_access(t->f.ctx.pio, IDX, d, 2, false));
	assert_int_equal(d[0], 0xff);
	assert_int_equal(d[1], 0x80);
	/* A 2-byte write sets index and data at once. */
	d[0] = 0x20;
	d[1] = 0x77;
	assert_true(bus_access(t->f.ctx.pio, IDX, d, 2, true));
	assert_int_equal(rd(t, 0x20), 0x77);
}

static void test_bcd_24h(void **state)
{
	struct fake_dev *t = *state;

	assert_int_equal(rd(t, R_B), B_24H);
	check_clock(t, 0);
}

static void test_binary(void **state)
{
	struct fake_dev *t = *state;
	struct tm tm;
	int wday;

	wr(t, R_B, B_DM | B_24H);
	assert_int_equal(rd(t, R_B), B_DM | B_24H);
	check_clock(t, 0);
	/* A known value in both encodings: set 37 minutes in binary, read it as BCD. */
	wr(t, R_MIN, 37);
	assert_int_equal(rd(t, R_MIN), 37);
	wr(t, R_B, B_24H);
	assert_int_equal(rd(t, R_MIN), 0x37);
	read_clock(t, &tm, &wday);
	assert_int_equal(tm.tm_min, 37);
}

/* The host's time, read in 12-hour mode, BCD and binary. */
static void test_12h(void **state)
{
	struct fake_dev *t = *state;

	wr(t, R_B, 0x00);
	check_clock(t, 0);
	wr(t, R_B, B_DM);
	check_clock(t, 0);
}

static void test_12h_values(void **state)
{
	struct fake_dev *t = *state;
	static const struct {
		uint8_t h24, h12;
	} map[] = {
		{ 0x00, 0x12 }, /* midnight: 12 AM */
		{ 0x01, 0x01 }, { 0x11, 0x11 },
		{ 0x12, 0x92 }, /* noon: 12 PM */
		{ 0x13, 0x81 }, { 0x23, 0x91 },
	};

	wr(t, R_SEC, 0x00);
	wr(t, R_MIN, 0x10);
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		/* Written in 24h mode, read in 12h mode ... */
		wr(t, R_B, B_24H);
		wr(t, R_HOUR, map[i].h24);
		wr(t, R_B, 0x00);
		assert_int_equal(rd(t, R_HOUR), map[i].h12);
		/* ... and the other way round. */
		wr(t, R_HOUR, 0x05);
		wr(t, R_HOUR, map[i].h12);
		wr(t, R_B, B_24H);
		assert_int_equal(rd(t, R_HOUR), map[i].h24);
	}
	/* 12h binary: 9 PM. */
	wr(t, R_B, B_DM);
	wr(t, R_HOUR, 0x80 | 9);
	assert_int_equal(rd(t, R_HOUR), 0x80 | 9);
	wr(t, R_B, B_DM | B_24H);
	assert_int_equal(rd(t, R_HOUR), 21);
}

static void test_status_registers(void **state)
{
	struct fake_dev *t = *state;

	/* D: valid RAM and time, whatever is written. */
	assert_int_equal(rd(t, R_D), 0x80);
	wr(t, R_D, 0x00);
	assert_int_equal(rd(t, R_D), 0x80);
	/* A: the update-in-progress bit never reads as set. */
	assert_int_equal(rd(t, R_A), 0x26);
	wr(t, R_A, 0xa6);
	assert_int_equal(rd(t, R_A), 0x26);
	/* B: periodic, alarm and update interrupt enables stay off. */
	wr(t, R_B, 0x7e);
	assert_int_equal(rd(t, R_B), 0x0e);
	wr(t, R_B, 0x82);
	assert_int_equal(rd(t, R_B), 0x82);
	wr(t, R_B, B_24H);
	/* C: no interrupt flags, writes ignored. */
	wr(t, R_C, 0xff);
	assert_int_equal(rd(t, R_C), 0x00);
	/* Writing the day of week does not move the clock. */
	wr(t, R_WDAY, 0x07);
	check_clock(t, 0);
	/* No interrupt was ever raised. */
	assert_int_equal(t->f.raised[X86_IRQ_RTC], 0);
}

/* Bit 7 of the index port is the NMI mask, not part of the register index. */
static void test_nmi_bit(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, IDX, 0x80 | R_D);
	assert_int_equal(fake_inb(&t->f, DAT), 0x80);
	fake_outb(&t->f, IDX, 0x80 | 0x40);
	fake_outb(&t->f, DAT, 0x5a);
	fake_outb(&t->f, IDX, 0x40);
	assert_int_equal(fake_inb(&t->f, DAT), 0x5a);
	fake_outb(&t->f, IDX, 0xff);
	fake_outb(&t->f, DAT, 0x11);
	assert_int_equal(rd(t, 0x7f), 0x11);
}

static bool is_time_reg(unsigned i)
{
	return i <= R_YEAR || i == R_CENT || (i >= R_A && i <= R_D);
}

static void test_nvram(void **state)
{
	struct fake_dev *t = *state;

	for (unsigned i = 0; i < 128; i++)
		if (!is_time_reg(i))
			wr(t, (uint8_t)i, (uint8_t)(i * 3 + 1));
	for (unsigned i = 0; i < 128; i++)
		if (!is_time_reg(i))
			assert_int_equal(rd(t, (uint8_t)i), (uint8_t)(i * 3 + 1));
	/* The writes did not disturb the clock. */
	check_clock(t, 0);
}

static int64_t years(int n)
{
	return (int64_t)n * 365 * 86400;
}

static void test_set_year(void **state)
{
	struct fake_dev *t = *state, *u;
	struct tm now;
	time_t h = time(NULL);
	uint8_t cent;
	struct sbuf s = { 0 };

	gmtime_r(&h, &now);
	cent = rd(t, R_CENT);
	assert_int_equal(bcd(cent), (now.tm_year + 1900) / 100);
	wr(t, R_YEAR, 0x99);
	assert_int_equal(rd(t, R_YEAR), 0x99);
	assert_int_equal(rd(t, R_CENT), cent);
	/* The rest of the clock still runs from host time, about (99 - yy) years ahead. */
	{
		struct tm tm;
		int wday;
		time_t g;

		read_clock(t, &tm, &wday);
		g = timegm(&tm);
		assert_true(g - h > years(99 - now.tm_year % 100) - 86400 * 30);
		assert_true(g - h < years(99 - now.tm_year % 100) + 86400 * 30);
	}
	wr(t, 0x40, 0xab);

	/* A saved and loaded RTC keeps the guest's clock and its NVRAM. */
	assert_int_equal(rtc_desc.save(t->dev, &s), 0);
	assert_int_equal(setup((void **)&u), 0);
	check_clock(u, 0); /* a new RTC follows the host */
	assert_int_equal(rtc_desc.load(u->dev, s.data, s.len), 0);
	assert_int_equal(rd(u, R_YEAR), 0x99);
	assert_int_equal(rd(u, 0x40), 0xab);
	fake_dev_teardown((void **)&u);
	sbuf_free(&s);

	/* The century moves the clock by whole centuries. */
	wr(t, R_CENT, 0x21);
	assert_int_equal(rd(t, R_CENT), 0x21);
	assert_int_equal(rd(t, R_YEAR), 0x99);
}

static void test_set_date(void **state)
{
	struct fake_dev *t = *state;

	wr(t, R_MDAY, 0x15);
	wr(t, R_MON, 0x06);
	wr(t, R_YEAR, 0x30);
	wr(t, R_CENT, 0x20);
	assert_int_equal(rd(t, R_MDAY), 0x15);
	assert_int_equal(rd(t, R_MON), 0x06);
	assert_int_equal(rd(t, R_YEAR), 0x30);
	/* 15 June 2030 is a Saturday (day 7). */
	assert_int_equal(rd(t, R_WDAY), 0x07);
	wr(t, R_SEC, 0x00);
	wr(t, R_MIN, 0x20);
	wr(t, R_HOUR, 0x08);
	assert_int_equal(rd(t, R_HOUR), 0x08);
	assert_int_equal(rd(t, R_MIN), 0x20);
	assert_true(rd(t, R_SEC) <= 0x05);
}

/* Impossible values are ignored; the clock stays where it was. */
static void test_bad_values(void **state)
{
	struct fake_dev *t = *state;
	static const struct {
		uint8_t reg, v;
	} bad[] = {
		{ R_SEC, 0x60 }, { R_MIN, 0x60 }, { R_HOUR, 0x24 }, { R_MDAY, 0x00 },
		{ R_MDAY, 0x32 }, { R_MON, 0x00 }, { R_MON, 0x13 }, { R_CENT, 0x18 },
		{ R_SEC, 0xff }, { R_MIN, 0x9a },
	};

	wr(t, R_MIN, 0x30);
	wr(t, R_HOUR, 0x10);
	wr(t, R_MDAY, 0x10);
	wr(t, R_MON, 0x05);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wr(t, bad[i].reg, bad[i].v);
		assert_int_equal(rd(t, R_MIN), 0x30);
		assert_int_equal(rd(t, R_HOUR), 0x10);
		assert_int_equal(rd(t, R_MDAY), 0x10);
		assert_int_equal(rd(t, R_MON), 0x05);
	}
}

/* Where in the state record the clock offset lives, found by diffing two records. */
static void state_diff(const struct sbuf *a, const struct sbuf *b, size_t *lo, size_t *hi)
{
	*lo = SIZE_MAX;
	*hi = 0;
	assert_int_equal(a->len, b->len);
	for (size_t i = 0; i < a->len; i++)
		if (a->data[i] != b->data[i]) {
			if (i < *lo)
				*lo = i;
			*hi = i;
		}
	assert_true(*lo != SIZE_MAX);
}

static void test_load_rejects(void **state)
{
	struct fake_dev *t = *state;
	struct sbuf s0 = { 0 }, s1 = { 0 };
	size_t lo, hi;

	/* The index byte. */
	fake_outb(&t->f, IDX, 0x05);
	assert_int_equal(rtc_desc.save(t->dev, &s0), 0);
	fake_outb(&t->f, IDX, 0x06);
	assert_int_equal(rtc_desc.save(t->dev, &s1), 0);
	state_diff(&s0, &s1, &lo, &hi);
	assert_int_equal(lo, hi);
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), 0);
	s1.data[lo] = 0x80;
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), -EINVAL);
	s1.data[lo] = 0x7f;
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), 0);
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len - 1), -EINVAL);
	assert_int_equal(rtc_desc.load(t->dev, s1.data, 0), -EINVAL);
	s1.data[0] ^= 0x01;
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), -EINVAL);
	sbuf_free(&s0);
	sbuf_free(&s1);
}

/*
 * A state record comes from a file or the network: an absurd clock offset
 * must be refused, not turned into signed overflow and garbage times.
 */
static void test_load_offset_bounds(void **state)
{
	struct fake_dev *t = *state;
	struct sbuf s0 = { 0 }, s1 = { 0 };
	size_t lo, hi;
	int64_t off;

	fake_outb(&t->f, IDX, R_YEAR);
	assert_int_equal(rtc_desc.save(t->dev, &s0), 0);
	wr(t, R_CENT, 0x19); /* a century back: a negative offset changes its top byte */
	fake_outb(&t->f, IDX, R_YEAR);
	assert_int_equal(rtc_desc.save(t->dev, &s1), 0);
	state_diff(&s0, &s1, &lo, &hi);
	/* The offset is the 64-bit field at the end of the record. */
	assert_int_equal(hi, s1.len - 1);
	assert_true(lo >= s1.len - 8);
	memcpy(&off, s1.data + s1.len - 8, 8);
	assert_true(off < years(-99) && off > years(-101));

	/* Far future and past that no guest can set: refused, the device unchanged. */
	{
		static const int64_t absurd[] = { INT64_MAX, INT64_MIN, INT64_MAX / 2,
						  -(INT64_MAX / 2), (int64_t)1 << 50 };

		for (size_t i = 0; i < sizeof(absurd) / sizeof(absurd[0]); i++) {
			memcpy(s1.data + s1.len - 8, &absurd[i], 8);
			if (rtc_desc.load(t->dev, s1.data, s1.len) != -EINVAL)
				fail_msg("offset %lld accepted", (long long)absurd[i]);
		}
	}
	assert_int_equal(rd(t, R_CENT), 0x19);
	/* A plausible offset loads fine. */
	off = years(100);
	memcpy(s1.data + s1.len - 8, &off, 8);
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), 0);
	assert_int_equal(rd(t, R_CENT), 0x21);
	/* So does the farthest clock a guest can set: century 255 in binary mode. */
	wr(t, R_B, B_DM | B_24H);
	wr(t, R_CENT, 255);
	assert_int_equal(rd(t, R_CENT), 255);
	sbuf_free(&s1);
	assert_int_equal(rtc_desc.save(t->dev, &s1), 0);
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), 0);
	assert_int_equal(rd(t, R_CENT), 255);
	/*
	 * Found by fuzz_devices: binary year values above 99 carried into the century,
	 * so repeated writes pushed the clock past what load accepts. Whatever the
	 * guest writes, its state must load back.
	 */
	for (int i = 0; i < 200; i++)
		wr(t, R_YEAR, 255);
	sbuf_free(&s1);
	assert_int_equal(rtc_desc.save(t->dev, &s1), 0);
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), 0);
	/* The largest offset load takes, then the guest moves to the end of that year. */
	off = (int64_t)1 << 40;
	memcpy(s1.data + s1.len - 8, &off, 8);
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), 0);
	wr(t, R_MON, 12);
	wr(t, R_MDAY, 31);
	wr(t, R_HOUR, 23);
	sbuf_free(&s1);
	assert_int_equal(rtc_desc.save(t->dev, &s1), 0);
	assert_int_equal(rtc_desc.load(t->dev, s1.data, s1.len), 0);
	sbuf_free(&s0);
	sbuf_free(&s1);
}

/*
 * A clock before 1900 (a loaded offset, or a guest at 1900-01-01 whose host
 * clock steps back) must not produce negative fields: it reads as 1900-01-01.
 */
static void test_before_1900(void **state)
{
	struct fake_dev *t = *state;
	struct sbuf s = { 0 };
	int64_t off = -((int64_t)time(NULL) + 2208988800LL + 10 * 86400);
	static const uint8_t regs[] = { R_SEC, R_MIN, R_HOUR, R_WDAY, R_MDAY, R_MON, R_YEAR, R_CENT };

	fake_outb(&t->f, IDX, R_YEAR);
	assert_int_equal(rtc_desc.save(t->dev, &s), 0);
	memcpy(s.data + s.len - 8, &off, 8);
	assert_int_equal(rtc_desc.load(t->dev, s.data, s.len), 0);
	for (size_t i = 0; i < sizeof(regs); i++)
		bcd(rd(t, regs[i])); /* valid BCD digits */
	assert_int_equal(rd(t, R_CENT), 0x19);
	assert_int_equal(rd(t, R_YEAR), 0x00);
	assert_int_equal(rd(t, R_MON), 0x01);
	assert_int_equal(rd(t, R_MDAY), 0x01);
	/* Binary mode too. */
	wr(t, R_B, B_DM | B_24H);
	assert_int_equal(rd(t, R_CENT), 19);
	assert_int_equal(rd(t, R_YEAR), 0);
	/* The guest can set the clock forward from there. */
	wr(t, R_YEAR, 70);
	assert_int_equal(rd(t, R_YEAR), 70);
	assert_int_equal(rd(t, R_CENT), 19);
	sbuf_free(&s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fake_dev_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ports),
		T(test_bcd_24h),
		T(test_binary),
		T(test_12h),
		T(test_12h_values),
		T(test_status_registers),
		T(test_nmi_bit),
		T(test_nvram),
		T(test_set_year),
		T(test_set_date),
		T(test_bad_values),
		T(test_load_rejects),
		T(test_load_offset_bounds),
		T(test_before_1900),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
