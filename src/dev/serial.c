// SPDX-License-Identifier: MIT
/* serial.c: a 16550A UART (COM1) whose transmitter writes to the console backend. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "dev/legacy.h"
#include "vmm/bus.h"

/* Register offsets and bits (PC16550D datasheet). */
#define UART_RBR 0 /* read, DLAB=0 */
#define UART_THR 0 /* write, DLAB=0 */
#define UART_IER 1
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

#define RX_FIFO 64

struct serial_regs {
	uint8_t ier, lcr, mcr, lsr, msr, scr, fcr, dll, dlm;
	uint8_t thr_ipending; /* THR-empty interrupt pending until IIR read or THR written */
	uint8_t rx_head, rx_len;
	uint8_t rx[RX_FIFO];
};

struct serial {
	pthread_mutex_t lock;
	struct dev_ctx ctx;
	struct serial_regs r;
	bool irq_level;
};

static uint8_t serial_iir(const struct serial *s)
{
	uint8_t fifo = (s->r.fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((s->r.ier & IER_RDI) && s->r.rx_len)
		return IIR_RDI | fifo;
	if ((s->r.ier & IER_THRI) && s->r.thr_ipending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

/* The PC wires the UART's interrupt through OUT2 (MCR bit 3). */
static void serial_update_irq(struct serial *s)
{
	bool level = !(serial_iir(s) & IIR_NO_INT) && (s->r.mcr & MCR_OUT2);

	if (level != s->irq_level) {
		s->irq_level = level;
		dev_irq_set(&s->ctx, X86_IRQ_COM1, level);
	}
}

static void serial_rx_push(struct serial *s, uint8_t c)
{
	if (s->r.rx_len < RX_FIFO) {
		s->r.rx[(s->r.rx_head + s->r.rx_len) % RX_FIFO] = c;
		s->r.rx_len++;
	}
}

static void serial_tx(struct serial *s, uint8_t c)
{
	if (s->r.mcr & MCR_LOOP) {
		serial_rx_push(s, c);
		return;
	}
	if (s->ctx.console_out_fd < 0)
		return;
	if (write_all(s->ctx.console_out_fd, &c, 1) < 0) {
		/* The reader went away (EPIPE) or the disk is full: drop output from now on. */
		log_warn("serial: console output failed (%s); further output is discarded",
			 strerror(errno));
		s->ctx.console_out_fd = -1;
	}
}

static uint8_t serial_msr(const struct serial *s)
{
	uint8_t m = s->r.mcr;

	/* Loopback connects the modem outputs to the inputs (datasheet 8.6.4). */
	if (m & MCR_LOOP)
		return (uint8_t)(((m & MCR_RTS) ? MSR_CTS : 0) | ((m & MCR_DTR) ? MSR_DSR : 0) |
				 ((m & MCR_OUT1) ? MSR_RI : 0) | ((m & MCR_OUT2) ? MSR_DCD : 0));
	return MSR_DCD | MSR_DSR | MSR_CTS;
}

static uint8_t serial_read_reg(struct serial *s, unsigned off)
{
	uint8_t v = 0;

	switch (off) {
	case UART_RBR:
		if (s->r.lcr & LCR_DLAB)
			return s->r.dll;
		if (s->r.rx_len) {
			v = s->r.rx[s->r.rx_head];
			s->r.rx_head = (s->r.rx_head + 1) % RX_FIFO;
			s->r.rx_len--;
		}
		return v;
	case UART_IER:
		return (s->r.lcr & LCR_DLAB) ? s->r.dlm : s->r.ier;
	case UART_IIR:
		v = serial_iir(s);
		if ((v & 0x0f) == IIR_THRI)
			s->r.thr_ipending = 0;
		return v;
	case UART_LCR:
		return s->r.lcr;
	case UART_MCR:
		return s->r.mcr;
	case UART_LSR:
		return LSR_THRE | LSR_TEMT | (s->r.rx_len ? LSR_DR : 0);
	case UART_MSR:
		return serial_msr(s);
	default:
		return s->r.scr;
	}
}

static void serial_write_reg(struct serial *s, unsigned off, uint8_t v)
{
	switch (off) {
	case UART_THR:
		if (s->r.lcr & LCR_DLAB) {
			s->r.dll = v;
			return;
		}
		serial_tx(s, v);
		/* Transmission is instantaneous: THR is empty again at once. */
		s->r.thr_ipending = 1;
		return;
	case UART_IER:
		if (s->r.lcr & LCR_DLAB) {
			s->r.dlm = v;
			return;
		}
		/* Enabling THRI while THR is empty raises the interrupt (8250 behaviour). */
		if (!(s->r.ier & IER_THRI) && (v & IER_THRI))
			s->r.thr_ipending = 1;
		s->r.ier = v & 0x0f;
		return;
	case UART_FCR:
		if (v & FCR_CLEAR_RX)
			s->r.rx_len = 0;
		s->r.fcr = v & 0xc9;
		return;
	case UART_LCR:
		s->r.lcr = v;
		return;
	case UART_MCR:
		s->r.mcr = v & 0x1f;
		return;
	case UART_SCR:
		s->r.scr = v;
		return;
	default:
		return; /* LSR, MSR: writes ignored */
	}
}

static void serial_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	struct serial *s = opaque;
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < len; i++)
		data[i] = off + i < 8 ? serial_read_reg(s, (unsigned)(off + i)) : 0xff;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	struct serial *s = opaque;
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < len; i++)
		if (off + i < 8)
			serial_write_reg(s, (unsigned)(off + i), data[i]);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_ops serial_ops = { .read = serial_read, .write = serial_write };

size_t serial_receive(void *priv, const uint8_t *buf, size_t n)
{
	struct serial *s = priv;
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < n && s->r.rx_len < RX_FIFO; i++)
		serial_rx_push(s, buf[i]);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return i;
}

static int serial_create(const struct dev_ctx *ctx, void **priv, struct err *e)
{
	struct serial *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return err_set(e, ENOMEM, "out of memory");
	pthread_mutex_init(&s->lock, NULL);
	s->ctx = *ctx;
	s->r.dll = 0x0c; /* 9600 baud, as firmware leaves it */
	r = bus_register(ctx->pio, X86_PORT_COM1, 8, &serial_ops, s);
	if (r) {
		free(s);
		return err_set(e, -r, "serial: cannot claim ports 0x%x-0x%x", X86_PORT_COM1,
			       X86_PORT_COM1 + 7);
	}
	*priv = s;
	return 0;
}

static void serial_destroy(void *priv)
{
	struct serial *s = priv;

	bus_unregister(s->ctx.pio, X86_PORT_COM1);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

#define SERIAL_STATE_V1 1

static int serial_save(void *priv, struct sbuf *out)
{
	struct serial *s = priv;
	uint8_t ver = SERIAL_STATE_V1;
	int r;

	pthread_mutex_lock(&s->lock);
	r = sbuf_put(out, &ver, 1);
	if (!r)
		r = sbuf_put(out, &s->r, sizeof(s->r));
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int serial_load(void *priv, const uint8_t *buf, size_t len)
{
	struct serial *s = priv;
	struct serial_regs r;

	if (len != 1 + sizeof(r) || buf[0] != SERIAL_STATE_V1)
		return -EINVAL;
	memcpy(&r, buf + 1, sizeof(r));
	if (r.rx_head >= RX_FIFO || r.rx_len > RX_FIFO)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	s->r = r;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

const struct dev_desc serial_desc = {
	.name = "serial",
	.create = serial_create,
	.destroy = serial_destroy,
	.save = serial_save,
	.load = serial_load,
};
