// SPDX-License-Identifier: MIT
/* test_i8042.c: device tests for the PS/2 controller: self test, command byte, reset requests, IRQs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "dev/legacy.h"
#include "fake.h"

#define DATA X86_PORT_I8042_DATA
#define CMD X86_PORT_I8042_CMD
#define STS CMD

#define OBF 0x01
#define SYS 0x04
#define CMDF 0x08
#define AUXF 0x20
#define IRQ_KBD 1
#define IRQ_AUX 12

static int setup(void **state)
{
	return fake_dev_setup(state, &i8042_desc, false);
}

static unsigned resets(struct fake_dev *t)
{
	return t->f.requests[VM_REQ_RESET];
}

static void test_ports(void **state)
{
	struct fake_dev *t = *state;

	assert_true(fake_claimed(&t->f, DATA, 1));
	assert_true(fake_claimed(&t->f, CMD, 1));
	for (uint16_t p = DATA + 1; p < CMD; p++)
		assert_false(fake_claimed(&t->f, p, 1));
	assert_false(fake_claimed(&t->f, DATA, 2));
	assert_false(fake_claimed(&t->f, CMD, 4));
	i8042_desc.destroy(t->dev);
	assert_false(fake_claimed(&t->f, DATA, 1));
	assert_false(fake_claimed(&t->f, CMD, 1));
	t->dev = fake_create(&t->f, &i8042_desc);
}

static void test_self_test(void **state)
{
	struct fake_dev *t = *state;

	assert_int_equal(fake_inb(&t->f, STS), SYS);
	fake_outb(&t->f, CMD, 0xaa);
	assert_int_equal(fake_inb(&t->f, STS), OBF | SYS | CMDF);
	assert_int_equal(fake_inb(&t->f, DATA), 0x55);
	assert_int_equal(fake_inb(&t->f, STS) & OBF, 0);
	/* Interface tests answer 0 (no error). */
	fake_outb(&t->f, CMD, 0xab);
	assert_int_equal(fake_inb(&t->f, DATA), 0x00);
	fake_outb(&t->f, CMD, 0xa9);
	assert_true(fake_inb(&t->f, STS) & OBF);
	assert_int_equal(fake_inb(&t->f, DATA), 0x00);
	assert_int_equal(resets(t), 0);
}

static void test_command_byte(void **state)
{
	struct fake_dev *t = *state;

	/* Reset value: keyboard interrupt, system flag, translation. */
	fake_outb(&t->f, CMD, 0x20);
	assert_int_equal(fake_inb(&t->f, DATA), 0x45);
	fake_outb(&t->f, CMD, 0x60);
	assert_int_equal(fake_inb(&t->f, STS) & OBF, 0);
	fake_outb(&t->f, DATA, 0x47);
	/* A data write clears the "last write was a command" flag. */
	assert_int_equal(fake_inb(&t->f, STS) & CMDF, 0);
	fake_outb(&t->f, CMD, 0x20);
	assert_int_equal(fake_inb(&t->f, DATA), 0x47);

	/* Disable and enable the ports: bits 5 (aux) and 4 (keyboard). */
	fake_outb(&t->f, CMD, 0xa7);
	fake_outb(&t->f, CMD, 0xad);
	fake_outb(&t->f, CMD, 0x20);
	assert_int_equal(fake_inb(&t->f, DATA), 0x47 | 0x30);
	fake_outb(&t->f, CMD, 0xa8);
	fake_outb(&t->f, CMD, 0x20);
	assert_int_equal(fake_inb(&t->f, DATA), 0x47 | 0x10);
	fake_outb(&t->f, CMD, 0xae);
	fake_outb(&t->f, CMD, 0x20);
	assert_int_equal(fake_inb(&t->f, DATA), 0x47);
}

/* With no command pending, data goes to the keyboard, which ACKs. */
static void test_keyboard_ack(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, DATA, 0xff);
	assert_true(fake_inb(&t->f, STS) & OBF);
	assert_int_equal(fake_inb(&t->f, DATA), 0xfa);
	/* After a 0x60 command consumed its byte, the next byte is a keyboard command again. */
	fake_outb(&t->f, CMD, 0x60);
	fake_outb(&t->f, DATA, 0x45);
	assert_int_equal(fake_inb(&t->f, STS) & OBF, 0);
	fake_outb(&t->f, DATA, 0xf4);
	assert_int_equal(fake_inb(&t->f, DATA), 0xfa);
	/* Aux device writes get no answer (no mouse). */
	fake_outb(&t->f, CMD, 0xd4);
	fake_outb(&t->f, DATA, 0xff);
	assert_int_equal(fake_inb(&t->f, STS) & OBF, 0);
}

static void test_kbd_irq(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, CMD, 0xd2); /* write keyboard output buffer */
	fake_outb(&t->f, DATA, 0x1c);
	assert_true(t->f.level[IRQ_KBD]);
	assert_false(t->f.level[IRQ_AUX]);
	assert_int_equal(fake_inb(&t->f, STS) & (OBF | AUXF), OBF);
	assert_int_equal(fake_inb(&t->f, DATA), 0x1c);
	assert_false(t->f.level[IRQ_KBD]);
	assert_int_equal(t->f.raised[IRQ_KBD], 1);

	/* With the keyboard interrupt off in the command byte, no IRQ 1. */
	fake_outb(&t->f, CMD, 0x60);
	fake_outb(&t->f, DATA, 0x44);
	fake_outb(&t->f, CMD, 0xaa);
	assert_true(fake_inb(&t->f, STS) & OBF);
	assert_false(t->f.level[IRQ_KBD]);
	assert_int_equal(t->f.raised[IRQ_KBD], 1);
	assert_int_equal(fake_inb(&t->f, DATA), 0x55);
}

static void test_aux_irq(void **state)
{
	struct fake_dev *t = *state;

	/* Aux interrupt disabled (reset value): aux data waits without IRQ 12. */
	fake_outb(&t->f, CMD, 0xd3);
	fake_outb(&t->f, DATA, 0x99);
	assert_int_equal(fake_inb(&t->f, STS) & (OBF | AUXF), OBF | AUXF);
	assert_false(t->f.level[IRQ_AUX]);
	assert_false(t->f.level[IRQ_KBD]);
	assert_int_equal(fake_inb(&t->f, DATA), 0x99);
	assert_int_equal(fake_inb(&t->f, STS) & (OBF | AUXF), 0);

	fake_outb(&t->f, CMD, 0x60);
	fake_outb(&t->f, DATA, 0x47); /* KBDINT | AUXINT | SYS | XLATE */
	fake_outb(&t->f, CMD, 0xd3);
	fake_outb(&t->f, DATA, 0x42);
	assert_true(t->f.level[IRQ_AUX]);
	assert_false(t->f.level[IRQ_KBD]);
	assert_int_equal(fake_inb(&t->f, DATA), 0x42);
	assert_false(t->f.level[IRQ_AUX]);
	/* Keyboard data after aux data: the AUX flag goes away. */
	fake_outb(&t->f, CMD, 0xd2);
	fake_outb(&t->f, DATA, 0x43);
	assert_int_equal(fake_inb(&t->f, STS) & (OBF | AUXF), OBF);
	assert_true(t->f.level[IRQ_KBD]);
	assert_false(t->f.level[IRQ_AUX]);
}

static void test_reset_fe(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, CMD, 0xfe);
	assert_int_equal(resets(t), 1);
	assert_int_equal(t->f.requests[VM_REQ_POWEROFF], 0);
	/* Each pulse is one request; other commands are not. */
	fake_outb(&t->f, CMD, 0x20);
	fake_inb(&t->f, DATA);
	assert_int_equal(resets(t), 1);
	fake_outb(&t->f, CMD, 0xfe);
	assert_int_equal(resets(t), 2);
	/* 0xfe as a data byte is no reset. */
	fake_outb(&t->f, DATA, 0xfe);
	assert_int_equal(resets(t), 2);
}

static void test_output_port(void **state)
{
	struct fake_dev *t = *state;

	fake_outb(&t->f, CMD, 0xd0);
	assert_int_equal(fake_inb(&t->f, DATA), 0x01);
	/* Bit 0 set: the CPU keeps running. */
	fake_outb(&t->f, CMD, 0xd1);
	fake_outb(&t->f, DATA, 0x03);
	assert_int_equal(resets(t), 0);
	fake_outb(&t->f, CMD, 0xd0);
	assert_int_equal(fake_inb(&t->f, DATA), 0x03);
	/* Bit 0 clear holds the CPU in reset: exactly one request. */
	fake_outb(&t->f, CMD, 0xd1);
	assert_int_equal(resets(t), 0);
	fake_outb(&t->f, DATA, 0x02);
	assert_int_equal(resets(t), 1);
	fake_outb(&t->f, CMD, 0xd0);
	assert_int_equal(fake_inb(&t->f, DATA), 0x02);
	assert_int_equal(resets(t), 1);
}

static void test_unknown_commands(void **state)
{
	struct fake_dev *t = *state;

	for (unsigned c = 0; c < 256; c++) {
		if (c == 0xfe || c == 0xd1 || c == 0x60 || c == 0xd2 || c == 0xd3 || c == 0xd4)
			continue;
		fake_outb(&t->f, CMD, (uint8_t)c);
		fake_inb(&t->f, DATA);
	}
	assert_int_equal(resets(t), 0);
	assert_true(fake_inb(&t->f, STS) & SYS);
}

static void test_save_load(void **state)
{
	struct fake_dev *t = *state, *u;
	struct sbuf s = { 0 }, s2 = { 0 };

	fake_outb(&t->f, CMD, 0x60);
	fake_outb(&t->f, DATA, 0x47);
	fake_outb(&t->f, CMD, 0xd1);
	fake_outb(&t->f, DATA, 0x03);
	fake_outb(&t->f, CMD, 0xd2);
	fake_outb(&t->f, DATA, 0x2a);
	fake_outb(&t->f, CMD, 0x60); /* a command waiting for its byte */
	assert_int_equal(i8042_desc.save(t->dev, &s), 0);

	assert_int_equal(setup((void **)&u), 0);
	assert_int_equal(i8042_desc.load(u->dev, s.data, s.len), 0);
	assert_true(u->f.level[IRQ_KBD]); /* the pending output byte */
	assert_int_equal(i8042_desc.save(u->dev, &s2), 0);
	assert_int_equal(s2.len, s.len);
	assert_memory_equal(s2.data, s.data, s.len);
	/* The pending 0x60 takes the next byte. */
	fake_outb(&u->f, DATA, 0x65);
	assert_int_equal(fake_inb(&u->f, DATA), 0x2a);
	fake_outb(&u->f, CMD, 0x20);
	assert_int_equal(fake_inb(&u->f, DATA), 0x65);
	fake_outb(&u->f, CMD, 0xd0);
	assert_int_equal(fake_inb(&u->f, DATA), 0x03);

	/* Wrong length or version. */
	assert_int_equal(i8042_desc.load(u->dev, s.data, s.len - 1), -EINVAL);
	assert_int_equal(i8042_desc.load(u->dev, s.data, 0), -EINVAL);
	s.data[0] ^= 0x80;
	assert_int_equal(i8042_desc.load(u->dev, s.data, s.len), -EINVAL);
	assert_int_equal(resets(u), 0);
	fake_dev_teardown((void **)&u);
	sbuf_free(&s);
	sbuf_free(&s2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fake_dev_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ports),
		T(test_self_test),
		T(test_command_byte),
		T(test_keyboard_ack),
		T(test_kbd_irq),
		T(test_aux_irq),
		T(test_reset_fe),
		T(test_output_port),
		T(test_unknown_commands),
		T(test_save_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
