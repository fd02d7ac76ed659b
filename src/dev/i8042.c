// SPDX-License-Identifier: MIT
/* i8042.c: the PS/2 controller, enough for Linux's probe and for reset through command 0xfe. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "dev/legacy.h"
#include "vmm/bus.h"

#define STS_OBF 0x01 /* output buffer full */
#define STS_SYS 0x04 /* system flag: self test passed */
#define STS_CMD 0x08 /* last write was a command */
#define STS_AUX 0x20 /* output byte is from the aux port */

#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40

#define IRQ_KBD 1
#define IRQ_AUX 12

struct i8042_regs {
	uint8_t ctr;      /* controller command byte */
	uint8_t status;
	uint8_t out;      /* output buffer */
	uint8_t pending;  /* command waiting for its data byte (0: none) */
	uint8_t outport;
};

struct i8042 {
	pthread_mutex_t lock;
	struct dev_ctx ctx;
	struct i8042_regs r;
};

static void i8042_update_irq(struct i8042 *k)
{
	bool full = k->r.status & STS_OBF, aux = k->r.status & STS_AUX;

	dev_irq_set(&k->ctx, IRQ_KBD, full && !aux && (k->r.ctr & CTR_KBDINT));
	dev_irq_set(&k->ctx, IRQ_AUX, full && aux && (k->r.ctr & CTR_AUXINT));
}

static void i8042_output(struct i8042 *k, uint8_t v, bool aux)
{
	k->r.out = v;
	k->r.status |= STS_OBF;
	if (aux)
		k->r.status |= STS_AUX;
	else
		k->r.status &= ~STS_AUX;
}

static bool i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->r.status |= STS_CMD;
	switch (cmd) {
	case 0x20: /* read command byte */
		i8042_output(k, k->r.ctr, false);
		break;
	case 0x60: /* write command byte: data follows */
	case 0xd1: /* write output port */
	case 0xd2: /* write keyboard output buffer */
	case 0xd3: /* write aux output buffer */
	case 0xd4: /* write to aux device */
		k->r.pending = cmd;
		break;
	case 0xa7: k->r.ctr |= CTR_AUXDIS; break;
	case 0xa8: k->r.ctr &= ~CTR_AUXDIS; break;
	case 0xa9: i8042_output(k, 0x00, false); break; /* aux interface test: OK */
	case 0xaa: i8042_output(k, 0x55, false); k->r.status |= STS_SYS; break;
	case 0xab: i8042_output(k, 0x00, false); break; /* kbd interface test: OK */
	case 0xad: k->r.ctr |= CTR_KBDDIS; break;
	case 0xae: k->r.ctr &= ~CTR_KBDDIS; break;
	case 0xd0: i8042_output(k, k->r.outport, false); break;
	case 0xfe: /* pulse output line 0: CPU reset */
		return true;
	default:
		break;
	}
	return false;
}

static void i8042_read(void *opaque, bool is_data, uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;

	pthread_mutex_lock(&k->lock);
	if (is_data) {
		data[0] = k->r.out;
		k->r.status &= ~(STS_OBF | STS_AUX);
	} else {
		data[0] = k->r.status;
	}
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (len > 1)
		memset(data + 1, 0xff, len - 1);
}

static void i8042_write(void *opaque, bool is_data, const uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;
	bool reset = false;
	uint8_t v = data[0];

	pthread_mutex_lock(&k->lock);
	if (is_data) {
		k->r.status &= ~STS_CMD;
		switch (k->r.pending) {
		case 0x60:
			k->r.ctr = v;
			break;
		case 0xd1:
			k->r.outport = v;
			reset = !(v & 0x01); /* bit 0 low holds the CPU in reset */
			break;
		case 0xd2:
			i8042_output(k, v, false);
			break;
		case 0xd3:
			i8042_output(k, v, true);
			break;
		case 0xd4:
			/* No mouse attached: aux commands time out (no answer). */
			break;
		default:
			/* A keyboard command: no keyboard, but ACK so probes finish fast. */
			i8042_output(k, 0xfa, false);
			break;
		}
		k->r.pending = 0;
	} else {
		reset = i8042_command(k, v);
	}
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		k->ctx.request(k->ctx.request_opaque, VM_REQ_RESET);
}

static void i8042_data_read(void *o, uint64_t off, uint8_t *d, uint32_t len)
{
	i8042_read(o, true, d, len);
}

static void i8042_data_write(void *o, uint64_t off, const uint8_t *d, uint32_t len)
{
	i8042_write(o, true, d, len);
}

static void i8042_cmd_read(void *o, uint64_t off, uint8_t *d, uint32_t len)
{
	i8042_read(o, false, d, len);
}

static void i8042_cmd_write(void *o, uint64_t off, const uint8_t *d, uint32_t len)
{
	i8042_write(o, false, d, len);
}

/* Data at 0x60 and status/command at 0x64 are separate one-byte ranges. */
static const struct bus_ops i8042_data_ops = { .read = i8042_data_read, .write = i8042_data_write };
static const struct bus_ops i8042_cmd_ops = { .read = i8042_cmd_read, .write = i8042_cmd_write };

static int i8042_create(const struct dev_ctx *ctx, void **priv, struct err *e)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int r;

	if (!k)
		return err_set(e, ENOMEM, "out of memory");
	pthread_mutex_init(&k->lock, NULL);
	k->ctx = *ctx;
	k->r.ctr = CTR_KBDINT | CTR_SYS | CTR_XLATE;
	k->r.status = STS_SYS;
	k->r.outport = 0x01;
	r = bus_register(ctx->pio, X86_PORT_I8042_DATA, 1, &i8042_data_ops, k);
	if (!r) {
		r = bus_register(ctx->pio, X86_PORT_I8042_CMD, 1, &i8042_cmd_ops, k);
		if (r)
			bus_unregister(ctx->pio, X86_PORT_I8042_DATA);
	}
	if (r) {
		free(k);
		return err_set(e, -r, "i8042: cannot claim ports 0x60/0x64");
	}
	*priv = k;
	return 0;
}

static void i8042_destroy(void *priv)
{
	struct i8042 *k = priv;

	bus_unregister(k->ctx.pio, X86_PORT_I8042_DATA);
	bus_unregister(k->ctx.pio, X86_PORT_I8042_CMD);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static int i8042_save(void *priv, struct sbuf *out)
{
	struct i8042 *k = priv;
	uint8_t ver = 1;
	int r;

	pthread_mutex_lock(&k->lock);
	r = sbuf_put(out, &ver, 1);
	if (!r)
		r = sbuf_put(out, &k->r, sizeof(k->r));
	pthread_mutex_unlock(&k->lock);
	return r;
}

static int i8042_load(void *priv, const uint8_t *buf, size_t len)
{
	struct i8042 *k = priv;

	if (len != 1 + sizeof(k->r) || buf[0] != 1)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	memcpy(&k->r, buf + 1, sizeof(k->r));
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

const struct dev_desc i8042_desc = {
	.name = "i8042",
	.create = i8042_create,
	.destroy = i8042_destroy,
	.save = i8042_save,
	.load = i8042_load,
};
