// SPDX-License-Identifier: MIT
/* fuzz_devices.c: libFuzzer harness driving every legacy device on one pio bus with guest-chosen port accesses. */
/*
 * The input is a sequence of operations, each starting with one op byte:
 *   op & 7 == 0, 1   port write / read: a port byte (index into the device
 *                    ports below, or with op bit 3 a raw 16-bit port), width
 *                    1/2/4/8 from op bits 4-5, then the value bytes (writes)
 *   op & 7 == 2      host console input: a length byte, then that many bytes
 *                    for serial_receive
 *   op & 7 == 3      save a device's state, flip up to 8 bytes, load it back
 *   op & 7 == 4      ACPI power button / GPE raise
 *   op & 7 == 5..7   a port write to one of the device ports with a value byte
 * A fresh set of devices serves each input, so every run is reproducible.
 * Devices must not crash, hang, leak, trip ASan/UBSan, drive a GSI that does
 * not exist or refuse their own freshly saved state.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/layout.h"
#include "base/err.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "dev/acpi_pm.h"
#include "dev/legacy.h"
#include "input.h"
#include "vmm/bus.h"

#define MAX_OPS 4096
#define NUM_GSIS 24

static const uint16_t ports[] = {
	X86_PORT_COM1, X86_PORT_COM1 + 1, X86_PORT_COM1 + 2, X86_PORT_COM1 + 3,
	X86_PORT_COM1 + 4, X86_PORT_COM1 + 5, X86_PORT_COM1 + 6, X86_PORT_COM1 + 7,
	X86_PORT_I8042_DATA, X86_PORT_I8042_CMD,
	X86_PORT_RTC, X86_PORT_RTC + 1,
	X86_PORT_PCI_CONFIG, X86_PORT_PCI_CONFIG + 1, X86_PORT_PCI_CONFIG + 2,
	X86_PORT_PCI_CONFIG + 3, X86_PORT_PCI_CONFIG + 4, X86_PORT_PCI_CONFIG + 5,
	X86_PORT_PCI_CONFIG + 6, X86_PORT_PCI_CONFIG + 7,
	X86_PORT_PM1A_EVT, X86_PORT_PM1A_EVT + 2, X86_PORT_PM1A_CNT, X86_PORT_PM1A_CNT + 1,
	X86_PORT_PM_TMR, X86_PORT_GPE0, X86_PORT_GPE0 + 2,
};

/* In creation order; pio ranges must not clash. */
static const struct dev_desc *const devices[] = {
	&serial_desc, &i8042_desc, &rtc_desc, &pci_host_desc, &acpi_pm_desc,
};
#define NDEV (sizeof(devices) / sizeof(devices[0]))

struct fuzz_vm {
	unsigned requests;
	bool level[NUM_GSIS];
};

static int fz_irq_set(void *opaque, uint32_t gsi, bool level)
{
	struct fuzz_vm *vm = opaque;

	if (gsi >= NUM_GSIS) {
		fprintf(stderr, "device drove GSI %u, which does not exist\n", gsi);
		abort();
	}
	vm->level[gsi] = level;
	return 0;
}

static void fz_request(void *opaque, enum vm_request req)
{
	struct fuzz_vm *vm = opaque;

	if (req != VM_REQ_RESET && req != VM_REQ_POWEROFF)
		abort();
	vm->requests++;
}

static void port_access(struct bus *pio, struct input *in, uint8_t op)
{
	static const uint32_t widths[] = { 1, 2, 4, 8 };
	uint32_t len = widths[(op >> 4) & 3];
	uint8_t data[8];
	uint16_t port;
	bool is_write = (op & 7) == 0;

	if (op & 8) {
		port = next(in);
		port = (uint16_t)(port | (uint16_t)(next(in) << 8));
	} else {
		port = ports[next(in) % (sizeof(ports) / sizeof(ports[0]))];
	}
	memset(data, 0xcc, sizeof(data));
	if (is_write)
		for (uint32_t i = 0; i < len; i++)
			data[i] = next(in);
	bus_access(pio, port, data, len, is_write);
}

static void save_load(void *const priv[NDEV], struct input *in)
{
	unsigned k = next(in) % NDEV, flips = next(in) % 9;
	const struct dev_desc *d = devices[k];
	struct sbuf s = { 0 };

	if (!d->save || !d->load)
		return;
	if (d->save(priv[k], &s)) {
		sbuf_free(&s);
		return;
	}
	/* A device must take back what it just saved. */
	if (d->load(priv[k], s.data, s.len)) {
		fprintf(stderr, "%s refused its own saved state\n", d->name);
		abort();
	}
	for (unsigned i = 0; i < flips && s.len; i++) {
		size_t at = next(in);

		at = (at | (size_t)next(in) << 8) % s.len;
		s.data[at] ^= next(in);
	}
	/* Truncated records are refused (length is part of the format). */
	if (s.len && !d->load(priv[k], s.data, s.len - 1)) {
		fprintf(stderr, "%s accepted a truncated state record\n", d->name);
		abort();
	}
	d->load(priv[k], s.data, s.len);
	sbuf_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int null_fd = -2;
	struct input in = { data, size };
	struct fuzz_vm vm = { 0 };
	struct dev_ctx ctx;
	void *priv[NDEV] = { 0 };
	unsigned ops = 0;
	size_t i;

	if (null_fd == -2) {
		/* Console output and log lines go to /dev/null: the write paths still run. */
		null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null_fd >= 0)
			log_set_fd(null_fd);
		log_set_level(LOG_DEBUG);
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.pio = bus_create("pio");
	ctx.mmio = bus_create("mmio");
	if (!ctx.pio || !ctx.mmio)
		abort();
	ctx.irq_set = fz_irq_set;
	ctx.irq_opaque = &vm;
	ctx.request = fz_request;
	ctx.request_opaque = &vm;
	ctx.console_in_fd = -1;
	ctx.console_out_fd = null_fd;

	for (i = 0; i < NDEV; i++) {
		struct err e;

		if (devices[i]->create(&ctx, &priv[i], &e)) {
			fprintf(stderr, "creating %s: %s\n", devices[i]->name, e.msg);
			abort();
		}
	}

	while (in.n && ops++ < MAX_OPS) {
		uint8_t op = next(&in);

		switch (op & 7) {
		case 0:
		case 1:
			port_access(ctx.pio, &in, op);
			break;
		case 2: {
			uint8_t buf[256];
			size_t n = next(&in), got;

			n = n < in.n ? n : in.n;
			memcpy(buf, in.p, n);
			in.p += n;
			in.n -= n;
			got = serial_receive(priv[0], buf, n);
			if (got > n)
				abort();
			break;
		}
		case 3:
			save_load(priv, &in);
			break;
		case 4:
			if (op & 8)
				acpi_pm_power_button(priv[4]);
			else
				acpi_pm_gpe_raise(priv[4], next(&in) % 16);
			break;
		default: {
			uint8_t v = next(&in);

			bus_access(ctx.pio, ports[(op >> 3) % (sizeof(ports) / sizeof(ports[0]))], &v, 1,
				   true);
			break;
		}
		}
	}

	for (i = NDEV; i-- > 0;)
		devices[i]->destroy(priv[i]);
	bus_destroy(ctx.pio);
	bus_destroy(ctx.mmio);
	return 0;
}
