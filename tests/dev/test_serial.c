// SPDX-License-Identifier: MIT
/* test_serial.c: device tests for the 16550A UART on a real pio bus and a fake context. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/log.h"
#include "dev/legacy.h"
#include "fake.h"
#include "vmm/bus.h"
#include "vmm/console.h"

#define COM1 X86_PORT_COM1
#define RBR (COM1 + 0)
#define THR (COM1 + 0)
#define DLL (COM1 + 0)
#define IER (COM1 + 1)
#define DLM (COM1 + 1)
#define IIR (COM1 + 2)
#define FCR (COM1 + 2)
#define LCR (COM1 + 3)
#define MCR (COM1 + 4)
#define LSR (COM1 + 5)
#define MSR (COM1 + 6)
#define SCR (COM1 + 7)
#define IRQ X86_IRQ_COM1

#define OUT2 0x08
#define LOOP 0x10

static int setup(void **state)
{
	return fake_dev_setup(state, &serial_desc, true);
}

static void test_ports_claimed(void **state)
{
	struct fake_dev *t = *state;

	for (unsigned p = COM1; p < COM1 + 8; p++)
		assert_true(fake_claimed(&t->f, (uint16_t)p, 1));
	assert_false(fake_claimed(&t->f, COM1 - 1, 1));
	assert_false(fake_claimed(&t->f, COM1 + 8, 1));
	assert_false(fake_claimed(&t->f, COM1 + 7, 2));
	/* A second UART at the same ports is refused. */
	{
		struct err e = { { 0 } };
		void *priv = NULL;

		assert_int_equal(serial_desc.create(&t->f.ctx, &priv, &e), -EEXIST);
		assert_null(priv);
		assert_true(strlen(e.msg) > 0);
	}
	serial_desc.destroy(t->dev);
	assert_false(fake_claimed(&t->f, COM1, 1));
	assert_int_equal(fake_inb(&t->f, LSR), 0xff);
	t->dev = fake_create(&t->f, &serial_desc);
}

static void test_thr_to_console(void **state)
{
	struct fake_dev *t = *state;
	uint8_t out[64];

	assert_int_equal(fake_output(&t->f, out, sizeof(out)), 0);
	for (const char *p = "Hello\r\n"; *p; p++) {
		/* The transmitter is always ready. */
		assert_int_equal(fake_inb(&t->f, LSR) & 0x60, 0x60);
		fake_outb(&t->f, THR, (uint8_t)*p);
	}
	assert_int_equal(fake_output(&t->f, out, sizeof(out)), 7);
	assert_memory_equal(out, "Hello\r\n", 7);
	/* Every byte value goes out unchanged. */
	for (int i = 0; i < 256; i++)
		fake_outb(&t->f, THR, (uint8_t)i);
	assert_int_equal(fake_output(&t->f, out, 64), 64);
	for (int i = 0; i < 64; i++)
		assert_int_equal(out[i], i);
	assert_int_equal(fake_output(&t->f, out, 64), 64);
	assert_int_equal(out[0], 64);
	/* Nothing was received. */
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);
	assert_int_equal(t->f.raised[IRQ], 0);
}

/* A vanished console reader: output is dropped, reported once, the guest carries on. */
static void test_console_gone(void **state)
{
	struct fake_dev *t = *state;
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	int p[2];
	char buf[1024];
	ssize_t n;

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	log_set_fd(p[1]);
	close(t->f.out_rd);
	t->f.out_rd = -1;
	for (int i = 0; i < 100; i++)
		fake_outb(&t->f, THR, 'x');
	assert_int_equal(fake_inb(&t->f, LSR) & 0x60, 0x60);
	n = read(p[0], buf, sizeof(buf) - 1);
	log_set_fd(2);
	signal(SIGPIPE, old);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "serial"));
	/* Exactly one line for 100 failed bytes. */
	assert_non_null(strchr(buf, '\n'));
	assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
	close(p[0]);
	close(p[1]);
}

static void test_no_console(void **state)
{
	struct fake f;
	void *dev;

	assert_int_equal(fake_init(&f, false), 0);
	dev = fake_create(&f, &serial_desc);
	fake_outb(&f, THR, 'a');
	assert_int_equal(fake_inb(&f, LSR) & 0x61, 0x60);
	serial_desc.destroy(dev);
	fake_fini(&f);
}

static void test_reset_values(void **state)
{
	struct fake_dev *t = *state;

	assert_int_equal(fake_inb(&t->f, IER), 0);
	assert_int_equal(fake_inb(&t->f, IIR), 0x01);
	assert_int_equal(fake_inb(&t->f, LCR), 0);
	assert_int_equal(fake_inb(&t->f, MCR), 0);
	assert_int_equal(fake_inb(&t->f, LSR), 0x60);
	assert_int_equal(fake_inb(&t->f, MSR), 0xb0); /* DCD, DSR, CTS: a terminal is attached */
	/* Firmware leaves 9600 baud: divisor 12. */
	fake_outb(&t->f, LCR, 0x80);
	assert_int_equal(fake_inb(&t->f, DLL), 0x0c);
	assert_int_equal(fake_inb(&t->f, DLM), 0x00);
}

static void test_register_masks(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, IER, 0xff);
	assert_int_equal(fake_inb(&t->f, IER), 0x0f);
	fake_outb(&t->f, MCR, 0xff);
	assert_int_equal(fake_inb(&t->f, MCR), 0x1f);
	fake_outb(&t->f, SCR, 0xa5);
	assert_int_equal(fake_inb(&t->f, SCR), 0xa5);
	fake_outb(&t->f, LCR, 0x1b);
	assert_int_equal(fake_inb(&t->f, LCR), 0x1b);
	/* LSR and MSR are read-only. */
	fake_outb(&t->f, MCR, 0);
	fake_outb(&t->f, LSR, 0x00);
	fake_outb(&t->f, MSR, 0x00);
	assert_int_equal(fake_inb(&t->f, LSR), 0x60);
	assert_int_equal(fake_inb(&t->f, MSR), 0xb0);
	/* FIFO enable shows in IIR[7:6]. */
	fake_outb(&t->f, IER, 0);
	fake_outb(&t->f, FCR, 0x01);
	assert_int_equal(fake_inb(&t->f, IIR), 0xc1);
	fake_outb(&t->f, FCR, 0x00);
	assert_int_equal(fake_inb(&t->f, IIR), 0x01);
}

static void test_dlab(void **state)
{
	struct fake_dev *t = *state;
	uint8_t out[8];

	fake_outb(&t->f, IER, 0x05);
	fake_outb(&t->f, LCR, 0x83);
	fake_outb(&t->f, DLL, 0x01);
	fake_outb(&t->f, DLM, 0x02);
	assert_int_equal(fake_inb(&t->f, DLL), 0x01);
	assert_int_equal(fake_inb(&t->f, DLM), 0x02);
	/* The divisor write did not go to the console nor to IER. */
	assert_int_equal(fake_output(&t->f, out, sizeof(out)), 0);
	fake_outb(&t->f, LCR, 0x03);
	assert_int_equal(fake_inb(&t->f, IER), 0x05);
	fake_outb(&t->f, THR, 'k');
	assert_int_equal(fake_output(&t->f, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'k');
	/* The divisor is kept while DLAB is off. */
	fake_outb(&t->f, LCR, 0x83);
	assert_int_equal(fake_inb(&t->f, DLL), 0x01);
	assert_int_equal(fake_inb(&t->f, DLM), 0x02);
	/* Received data is not consumed by a DLL read. */
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"z", 1), 1);
	assert_int_equal(fake_inb(&t->f, DLL), 0x01);
	fake_outb(&t->f, LCR, 0x03);
	assert_int_equal(fake_inb(&t->f, RBR), 'z');
}

static void test_thri(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, MCR, OUT2);
	assert_false(t->f.level[IRQ]);
	/* Enabling THRI while THR is empty raises it at once. */
	fake_outb(&t->f, IER, 0x02);
	assert_true(t->f.level[IRQ]);
	assert_int_equal(t->f.raised[IRQ], 1);
	/* Reading IIR reports it and clears it. */
	assert_int_equal(fake_inb(&t->f, IIR), 0x02);
	assert_false(t->f.level[IRQ]);
	assert_int_equal(fake_inb(&t->f, IIR), 0x01);
	/* Rewriting IER with THRI still set does not raise it again. */
	fake_outb(&t->f, IER, 0x02);
	assert_false(t->f.level[IRQ]);
	/* Each transmitted byte empties THR again and raises it. */
	fake_outb(&t->f, THR, 'a');
	assert_true(t->f.level[IRQ]);
	assert_int_equal(t->f.raised[IRQ], 2);
	assert_int_equal(fake_inb(&t->f, IIR), 0x02);
	assert_false(t->f.level[IRQ]);
	/* Disabling THRI drops the line even with the condition pending. */
	fake_outb(&t->f, THR, 'b');
	assert_true(t->f.level[IRQ]);
	fake_outb(&t->f, IER, 0x00);
	assert_false(t->f.level[IRQ]);
	assert_int_equal(fake_inb(&t->f, IIR), 0x01);
}

/* Without OUT2 the PC's interrupt line stays low, whatever the UART wants. */
static void test_out2_gates_irq(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, IER, 0x03);
	assert_int_equal(fake_inb(&t->f, IIR), 0x02); /* pending inside the UART */
	fake_outb(&t->f, THR, 'a');
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"q", 1), 1);
	assert_int_equal(fake_inb(&t->f, IIR), 0x04);
	assert_int_equal(t->f.raised[IRQ], 0);
	assert_false(t->f.level[IRQ]);
	fake_outb(&t->f, MCR, OUT2);
	assert_true(t->f.level[IRQ]);
	fake_outb(&t->f, MCR, 0);
	assert_false(t->f.level[IRQ]);
}

static void test_rx_irq(void **state)
{
	struct fake_dev *t = *state;

	/* OUT2 but RDI disabled: data waits without an interrupt. */
	fake_outb(&t->f, MCR, OUT2);
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0x01);
	assert_int_equal(t->f.raised[IRQ], 0);
	assert_int_equal(fake_inb(&t->f, IIR), 0x01);
	/* Enabling RDI with data present raises it. */
	fake_outb(&t->f, IER, 0x01);
	assert_true(t->f.level[IRQ]);
	assert_int_equal(fake_inb(&t->f, IIR), 0x04);
	/* Reading IIR does not clear a receive interrupt; draining the FIFO does. */
	assert_true(t->f.level[IRQ]);
	assert_int_equal(fake_inb(&t->f, RBR), 'a');
	assert_true(t->f.level[IRQ]);
	assert_int_equal(fake_inb(&t->f, RBR), 'b');
	assert_false(t->f.level[IRQ]);
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);
	assert_int_equal(fake_inb(&t->f, IIR), 0x01);
	/* An empty FIFO reads 0. */
	assert_int_equal(fake_inb(&t->f, RBR), 0);
	/* New data raises it again. */
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"c", 1), 1);
	assert_true(t->f.level[IRQ]);
	assert_int_equal(t->f.raised[IRQ], 2);
}

/* Receive data outranks THR empty (PC16550D table 4); the THR interrupt survives an IIR read then. */
static void test_iir_priority(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, MCR, OUT2);
	fake_outb(&t->f, IER, 0x03);
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"x", 1), 1);
	assert_int_equal(fake_inb(&t->f, IIR), 0x04);
	assert_int_equal(fake_inb(&t->f, IIR), 0x04);
	assert_int_equal(fake_inb(&t->f, RBR), 'x');
	assert_true(t->f.level[IRQ]);
	assert_int_equal(fake_inb(&t->f, IIR), 0x02);
	assert_int_equal(fake_inb(&t->f, IIR), 0x01);
	assert_false(t->f.level[IRQ]);
	/* With FIFOs on, the identification keeps the FIFO bits. */
	fake_outb(&t->f, FCR, 0x01);
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"y", 1), 1);
	assert_int_equal(fake_inb(&t->f, IIR), 0xc4);
}

static void test_rx_fifo_full(void **state)
{
	struct fake_dev *t = *state;
	uint8_t in[100];

	for (int i = 0; i < 100; i++)
		in[i] = (uint8_t)(i + 1);
	assert_int_equal(serial_receive(t->dev, in, sizeof(in)), 64);
	assert_int_equal(serial_receive(t->dev, in, 1), 0);
	assert_int_equal(serial_receive(t->dev, in, 0), 0);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0x01);
		assert_int_equal(fake_inb(&t->f, RBR), i + 1);
	}
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);
	/* Wrap around the ring: 40 in, 30 out, 50 in. */
	assert_int_equal(serial_receive(t->dev, in, 40), 40);
	for (int i = 0; i < 30; i++)
		assert_int_equal(fake_inb(&t->f, RBR), i + 1);
	assert_int_equal(serial_receive(t->dev, in + 40, 60), 54);
	for (int i = 30; i < 94; i++)
		assert_int_equal(fake_inb(&t->f, RBR), i + 1);
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);
}

static void test_fcr_clear_rx(void **state)
{
	struct fake_dev *t = *state;

	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"abc", 3), 3);
	fake_outb(&t->f, FCR, 0x03);
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"d", 1), 1);
	assert_int_equal(fake_inb(&t->f, RBR), 'd');
}

static void test_loopback(void **state)
{
	struct fake_dev *t = *state;
	uint8_t out[8];

	/* Linux's 8250 probe: MCR = LOOP | OUT2 | RTS expects MSR[7:4] = DCD | CTS. */
	fake_outb(&t->f, MCR, 0x1a);
	assert_int_equal(fake_inb(&t->f, MSR) & 0xf0, 0x90);
	fake_outb(&t->f, MCR, LOOP);
	assert_int_equal(fake_inb(&t->f, MSR) & 0xf0, 0x00);
	fake_outb(&t->f, MCR, 0x1f);
	assert_int_equal(fake_inb(&t->f, MSR) & 0xf0, 0xf0);
	fake_outb(&t->f, MCR, LOOP | 0x01);
	assert_int_equal(fake_inb(&t->f, MSR) & 0xf0, 0x20); /* DTR -> DSR */
	fake_outb(&t->f, MCR, LOOP | 0x04);
	assert_int_equal(fake_inb(&t->f, MSR) & 0xf0, 0x40); /* OUT1 -> RI */

	/* Transmitted bytes come back as received ones, not to the console. */
	fake_outb(&t->f, MCR, LOOP);
	fake_outb(&t->f, THR, 0x5a);
	fake_outb(&t->f, THR, 0xa5);
	assert_int_equal(fake_output(&t->f, out, sizeof(out)), 0);
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0x01);
	assert_int_equal(fake_inb(&t->f, RBR), 0x5a);
	assert_int_equal(fake_inb(&t->f, RBR), 0xa5);
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);
	/* Leaving loopback restores the console and the modem lines. */
	fake_outb(&t->f, MCR, 0x0b);
	assert_int_equal(fake_inb(&t->f, MSR) & 0xf0, 0xb0);
	fake_outb(&t->f, THR, 'o');
	assert_int_equal(fake_output(&t->f, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'o');
}

/* Wide accesses are split into byte registers in order. */
static void test_wide_access(void **state)
{
	struct fake_dev *t = *state;
	uint8_t d[8];

	fake_outb(&t->f, SCR, 0x77);
	assert_true(bus_access(t->f.ctx.pio, COM1 + 4, d, 4, false));
	assert_int_equal(d[0], 0x00); /* MCR */
	assert_int_equal(d[1], 0x60); /* LSR */
	assert_int_equal(d[2], 0xb0); /* MSR */
	assert_int_equal(d[3], 0x77); /* SCR */
	memcpy(d, "\x03\x08", 2);
	assert_true(bus_access(t->f.ctx.pio, LCR, d, 2, true));
	assert_int_equal(fake_inb(&t->f, LCR), 0x03);
	assert_int_equal(fake_inb(&t->f, MCR), 0x08);
	assert_true(bus_access(t->f.ctx.pio, COM1, d, 8, false));
}

/* The host console queue feeds the UART as its FIFO drains. */
static void test_console_flush(void **state)
{
	struct fake_dev *t = *state;
	static struct console con;
	uint8_t in[100];

	for (int i = 0; i < 100; i++)
		in[i] = (uint8_t)(0x80 + i);
	console_init(&con, -1, true);
	console_queue(&con, in, sizeof(in));
	console_flush(&con, serial_receive, t->dev);
	assert_int_equal(con.qlen, 36);
	for (int i = 0; i < 50; i++)
		assert_int_equal(fake_inb(&t->f, RBR), 0x80 + i);
	console_flush(&con, serial_receive, t->dev);
	assert_false(console_pending(&con));
	for (int i = 50; i < 100; i++)
		assert_int_equal(fake_inb(&t->f, RBR), 0x80 + i);
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);
}

/* ---- save / load ---- */

static void save(struct fake_dev *t, struct sbuf *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(serial_desc.save(t->dev, s), 0);
	assert_true(s->len > 1);
}

static void test_save_load(void **state)
{
	struct fake_dev *t = *state, *u;
	struct sbuf s;

	fake_outb(&t->f, LCR, 0x83);
	fake_outb(&t->f, DLL, 0x03);
	fake_outb(&t->f, DLM, 0x01);
	fake_outb(&t->f, LCR, 0x03);
	fake_outb(&t->f, IER, 0x01);
	fake_outb(&t->f, MCR, 0x0b);
	fake_outb(&t->f, SCR, 0x42);
	fake_outb(&t->f, FCR, 0x01);
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"hello", 5), 5);
	assert_int_equal(fake_inb(&t->f, RBR), 'h');
	assert_true(t->f.level[IRQ]);
	save(t, &s);

	assert_int_equal(setup((void **)&u), 0);
	assert_false(u->f.level[IRQ]);
	assert_int_equal(serial_desc.load(u->dev, s.data, s.len), 0);
	/* The interrupt line follows the loaded state. */
	assert_true(u->f.level[IRQ]);
	assert_int_equal(fake_inb(&u->f, IER), 0x01);
	assert_int_equal(fake_inb(&u->f, LCR), 0x03);
	assert_int_equal(fake_inb(&u->f, MCR), 0x0b);
	assert_int_equal(fake_inb(&u->f, SCR), 0x42);
	assert_int_equal(fake_inb(&u->f, IIR), 0xc4);
	for (const char *p = "ello"; *p; p++)
		assert_int_equal(fake_inb(&u->f, RBR), *p);
	assert_false(u->f.level[IRQ]);
	fake_outb(&u->f, LCR, 0x83);
	assert_int_equal(fake_inb(&u->f, DLL), 0x03);
	assert_int_equal(fake_inb(&u->f, DLM), 0x01);

	/* Saving the loaded device gives back the same bytes. */
	{
		struct sbuf s2;

		fake_outb(&u->f, LCR, 0x03);
		assert_int_equal(serial_desc.load(u->dev, s.data, s.len), 0);
		save(u, &s2);
		assert_int_equal(s2.len, s.len);
		assert_memory_equal(s2.data, s.data, s.len);
		sbuf_free(&s2);
	}
	fake_dev_teardown((void **)&u);
	sbuf_free(&s);
}

/* Loading into a device whose line is up must drop the line when the loaded state has no interrupt. */
static void test_load_lowers_irq(void **state)
{
	struct fake_dev *t = *state;
	struct sbuf quiet;

	save(t, &quiet); /* reset state: no interrupt */
	fake_outb(&t->f, MCR, OUT2);
	fake_outb(&t->f, IER, 0x02);
	assert_true(t->f.level[IRQ]);
	assert_int_equal(serial_desc.load(t->dev, quiet.data, quiet.len), 0);
	assert_int_equal(fake_inb(&t->f, IIR), 0x01);
	assert_false(t->f.level[IRQ]);
	/* And the line works normally afterwards. */
	fake_outb(&t->f, MCR, OUT2);
	fake_outb(&t->f, IER, 0x02);
	assert_true(t->f.level[IRQ]);
	sbuf_free(&quiet);
}

/* Finds which byte of the state record a change touches (no knowledge of the private layout). */
static size_t diff_at(const struct sbuf *a, const struct sbuf *b)
{
	size_t at = SIZE_MAX, n = 0;

	assert_int_equal(a->len, b->len);
	for (size_t i = 0; i < a->len; i++)
		if (a->data[i] != b->data[i]) {
			at = i;
			n++;
		}
	assert_int_equal(n, 1);
	return at;
}

static void test_load_rejects(void **state)
{
	struct fake_dev *t = *state;
	struct sbuf s0, s1, s2;
	size_t len_at, head_at;
	uint8_t *bad;

	/* Locate the FIFO length and head: receive a 0 byte, then read it. */
	save(t, &s0);
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"\0", 1), 1);
	save(t, &s1);
	len_at = diff_at(&s0, &s1);
	assert_int_equal(fake_inb(&t->f, RBR), 0);
	save(t, &s2);
	head_at = diff_at(&s0, &s2);
	assert_int_equal(s1.data[len_at], 1);
	assert_int_equal(s2.data[head_at], 1);

	bad = malloc(s0.len + 1);
	assert_non_null(bad);
	memcpy(bad, s0.data, s0.len);
	/* Length off by one either way, empty. */
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len - 1), -EINVAL);
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len + 1), -EINVAL);
	assert_int_equal(serial_desc.load(t->dev, bad, 0), -EINVAL);
	/* Unknown version. */
	bad[0] ^= 0xff;
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len), -EINVAL);
	bad[0] = s0.data[0];
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len), 0);
	/* FIFO head outside the ring, FIFO longer than the ring. */
	bad[head_at] = 64;
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len), -EINVAL);
	bad[head_at] = 255;
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len), -EINVAL);
	bad[head_at] = 0;
	bad[len_at] = 65;
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len), -EINVAL);
	bad[len_at] = 255;
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len), -EINVAL);
	/* A rejected record left the device as it was. */
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);

	/* The extremes are valid: a full ring starting at its last slot wraps cleanly. */
	bad[head_at] = 63;
	bad[len_at] = 64;
	assert_int_equal(serial_desc.load(t->dev, bad, s0.len), 0);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0x01);
		assert_int_equal(fake_inb(&t->f, RBR), 0);
	}
	assert_int_equal(fake_inb(&t->f, LSR) & 0x01, 0);
	assert_int_equal(serial_receive(t->dev, (const uint8_t *)"ok", 2), 2);
	assert_int_equal(fake_inb(&t->f, RBR), 'o');
	assert_int_equal(fake_inb(&t->f, RBR), 'k');

	free(bad);
	sbuf_free(&s0);
	sbuf_free(&s1);
	sbuf_free(&s2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fake_dev_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ports_claimed),
		T(test_thr_to_console),
		T(test_console_gone),
		cmocka_unit_test(test_no_console),
		T(test_reset_values),
		T(test_register_masks),
		T(test_dlab),
		T(test_thri),
		T(test_out2_gates_irq),
		T(test_rx_irq),
		T(test_iir_priority),
		T(test_rx_fifo_full),
		T(test_fcr_clear_rx),
		T(test_loopback),
		T(test_wide_access),
		T(test_console_flush),
		T(test_save_load),
		T(test_load_lowers_irq),
		T(test_load_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
