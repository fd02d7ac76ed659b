// SPDX-License-Identifier: MIT
/* test_virtio_console.c: device tests for virtio-console through virtio-pci on a fake bus and fake guest RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/sbuf.h"
#include "vdrv.h"
#include "virtio/devices.h"

#define RXQ 0
#define TXQ 1
#define F_EMERG_WRITE 2
#define CFG 0x2000

static int setup(void **state)
{
	struct vdrv *d = vdrv_setup(state);
	struct virtio_dev *vd;
	struct err e = { { 0 } };

	if (!d || virtio_console_create(&d->f.ctx, &vd, &e))
		return -1;
	vdrv_attach(d, vd);
	return 0;
}

static void test_identity(void **state)
{
	struct vdrv *d = *state;

	assert_int_equal(vdrv_cfg_read(d, 0), 0x1af4u | (0x1040u + 3) << 16);
	/* num_queues, max_nr_ports */
	assert_int_equal(vdrv_rd(d, 0x12, 2), 2);
	assert_int_equal(vdrv_rd(d, CFG + 4, 4), 1);
	assert_int_equal(vdrv_start(d, VIRTIO_BIT(F_EMERG_WRITE), 2, 16) &
			 VIRTIO_STATUS_FEATURES_OK, VIRTIO_STATUS_FEATURES_OK);
	/* Multiport (bit 1) is not offered: FEATURES_OK is refused. */
	assert_int_equal(vdrv_start(d, VIRTIO_BIT(1), 2, 16) & VIRTIO_STATUS_FEATURES_OK, 0);
}

static void test_transmit(void **state)
{
	struct vdrv *d = *state;
	uint64_t a = vdrv_alloc(d, 64), b = vdrv_alloc(d, 64);
	uint8_t out[64];
	uint32_t id, len;
	unsigned irqs;

	assert_true(vdrv_start(d, 0, 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	memcpy(vdrv_ptr(d, a, 6), "hello ", 6);
	memcpy(vdrv_ptr(d, b, 6), "world\n", 6);
	/* One chain of two readable descriptors, then a second single buffer. */
	struct vdrv_buf c1[2] = { { a, 3, false }, { a + 3, 3, false } };
	struct vdrv_buf c2[1] = { { b, 6, false } };
	uint16_t h1 = vdrv_add(d, TXQ, c1, 2);
	uint16_t h2 = vdrv_add(d, TXQ, c2, 1);

	irqs = vdrv_irqs(d);
	vdrv_kick(d, TXQ);
	assert_true(vdrv_used(d, TXQ, &id, &len));
	assert_int_equal(id, h1);
	assert_int_equal(len, 0);
	assert_true(vdrv_used(d, TXQ, &id, &len));
	assert_int_equal(id, h2);
	assert_false(vdrv_used(d, TXQ, &id, &len));
	assert_int_equal(vdrv_irqs(d), irqs + 1);
	assert_int_equal(vdrv_isr(d) & 1, 1);
	assert_int_equal(fake_output(&d->f, out, sizeof(out)), 12);
	assert_memory_equal(out, "hello world\n", 12);
	assert_int_equal(d->vd->stats.bytes_out, 12);
}

static void test_receive(void **state)
{
	struct vdrv *d = *state;
	uint64_t a = vdrv_alloc(d, 4), b = vdrv_alloc(d, 4);
	uint32_t id, len;

	/* Before DRIVER_OK nothing is accepted; the VM's queue keeps the input. */
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"x", 1), 0);
	vdrv_start(d, 0, 2, 16);
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"x", 1), 0);

	struct vdrv_buf r1 = { a, 4, true }, r2 = { b, 4, true };
	uint16_t h1 = vdrv_add(d, RXQ, &r1, 1);
	uint16_t h2 = vdrv_add(d, RXQ, &r2, 1);

	vdrv_kick(d, RXQ);
	assert_false(vdrv_used(d, RXQ, &id, &len)); /* no input yet: buffers stay posted */
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"abcdefghij", 10), 8);
	assert_true(vdrv_used(d, RXQ, &id, &len));
	assert_int_equal(id, h1);
	assert_int_equal(len, 4);
	assert_true(vdrv_used(d, RXQ, &id, &len));
	assert_int_equal(id, h2);
	assert_int_equal(len, 4);
	assert_memory_equal(vdrv_ptr(d, a, 4), "abcd", 4);
	assert_memory_equal(vdrv_ptr(d, b, 4), "efgh", 4);
	assert_true(vdrv_irqs(d) >= 1);
	/* Buffers used up: the rest waits. */
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"ij", 2), 0);

	/* A partly filled buffer reports the bytes written. */
	vdrv_add(d, RXQ, &r1, 1);
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"ij", 2), 2);
	assert_true(vdrv_used(d, RXQ, &id, &len));
	assert_int_equal(len, 2);
}

static void test_emergency_write(void **state)
{
	struct vdrv *d = *state;
	uint8_t out[4];

	/* Ignored unless negotiated. */
	vdrv_start(d, 0, 2, 16);
	vdrv_wr(d, CFG + 8, 4, 'A');
	assert_int_equal(fake_output(&d->f, out, sizeof(out)), 0);
	vdrv_start(d, VIRTIO_BIT(F_EMERG_WRITE), 2, 16);
	vdrv_wr(d, CFG + 8, 4, 'Z');
	assert_int_equal(fake_output(&d->f, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'Z');
}

static void test_hostile_chains(void **state)
{
	struct vdrv *d = *state;
	uint64_t a = vdrv_alloc(d, 16);
	uint8_t out[16];
	uint32_t id, len;

	/* A descriptor loop on the transmit queue: NEEDS_RESET, no output, no crash. */
	vdrv_start(d, 0, 2, 16);
	vdrv_set_desc(d, TXQ, 0, a, 4, VIRTQ_DESC_F_NEXT, 1);
	vdrv_set_desc(d, TXQ, 1, a, 4, VIRTQ_DESC_F_NEXT, 0);
	vdrv_publish(d, TXQ, 0);
	vdrv_kick(d, TXQ);
	assert_true(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	assert_false(vdrv_used(d, TXQ, &id, &len));
	assert_int_equal(fake_output(&d->f, out, sizeof(out)), 0);
	/* Further kicks and input are ignored until reset. */
	vdrv_kick(d, TXQ);
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"a", 1), 0);

	/* After a reset the device works again; a buffer outside RAM breaks it again. */
	vdrv_start(d, 0, 2, 16);
	assert_false(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
	struct vdrv_buf bad = { VDRV_MEM - 2, 4, false };
	vdrv_add(d, TXQ, &bad, 1);
	vdrv_kick(d, TXQ);
	assert_true(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);

	/* Receive chain with a readable descriptor after a writable one: rejected. */
	vdrv_start(d, 0, 2, 16);
	struct vdrv_buf mixed[2] = { { a, 4, true }, { a + 4, 4, false } };
	vdrv_add(d, RXQ, mixed, 2);
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"abc", 3), 0);
	assert_true(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);

	/* A receive buffer with no writable part is returned empty; input goes to the next. */
	vdrv_start(d, 0, 2, 16);
	struct vdrv_buf ro = { a, 4, false }, rw = { a + 8, 4, true };
	vdrv_add(d, RXQ, &ro, 1);
	vdrv_add(d, RXQ, &rw, 1);
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"abc", 3), 3);
	assert_true(vdrv_used(d, RXQ, &id, &len));
	assert_int_equal(len, 0);
	assert_true(vdrv_used(d, RXQ, &id, &len));
	assert_int_equal(len, 3);
	assert_false(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_save_load(void **state)
{
	struct vdrv *d = *state;
	struct sbuf s = { 0 };
	uint64_t a = vdrv_alloc(d, 8);
	uint32_t id, len;

	vdrv_start(d, 0, 2, 16);
	struct vdrv_buf r = { a, 8, true };
	vdrv_add(d, RXQ, &r, 1);
	assert_int_equal(virtio_save(d->vd, &s), 0);
	/* Reset, then restore: the posted buffer is still there for input. */
	vdrv_wr(d, 0x14, 1, 0);
	assert_int_equal(virtio_load(d->vd, s.data, s.len), 0);
	assert_true(vdrv_status(d) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(virtio_console_receive(d->vd, (const uint8_t *)"hi", 2), 2);
	assert_true(vdrv_used(d, RXQ, &id, &len));
	assert_int_equal(len, 2);
	/* Truncated records are refused. */
	assert_int_not_equal(virtio_load(d->vd, s.data, s.len - 1), 0);
	sbuf_free(&s);
}

/* The device on a fake event loop (kicks and output readiness are served by fake_pump). */
static int setup_loop(void **state)
{
	struct vdrv *d = vdrv_setup(state);
	struct virtio_dev *vd;
	struct err e = { { 0 } };

	if (!d)
		return -1;
	fake_loop(&d->f);
	if (virtio_console_create(&d->f.ctx, &vd, &e))
		return -1;
	vdrv_attach(d, vd);
	return 0;
}

static int teardown_loop(void **state)
{
	struct vdrv *d = *state;

	virtio_pci_destroy(d->vd);
	d->vd = NULL;
	fake_ext_fini(&d->f);
	return vdrv_teardown(state);
}

/* As setup_loop, with a blocking pipe as the output (as the VMM's stdout usually is). */
static int setup_blocking(void **state)
{
	struct vdrv *d = vdrv_setup(state);
	struct virtio_dev *vd;
	struct err e = { { 0 } };
	int p[2];

	if (!d || pipe2(p, O_CLOEXEC))
		return -1;
	close(d->f.out_rd);
	close(d->f.ctx.console_out_fd);
	/* Only our read end is non-blocking (its own file description). */
	if (fcntl(p[0], F_SETFL, O_NONBLOCK))
		return -1;
	d->f.out_rd = p[0];
	d->f.ctx.console_out_fd = p[1];
	fake_loop(&d->f);
	if (virtio_console_create(&d->f.ctx, &vd, &e))
		return -1;
	vdrv_attach(d, vd);
	return 0;
}

#define SLOW_BUFS 12
#define SLOW_LEN 8192

/*
 * Transmit into an output whose reader does not read: the kick returns at once,
 * up to 64 KiB are taken and the rest of the buffers wait on the ring; once the
 * reader drains, every byte arrives, in order, and every buffer is returned.
 */
static void slow_output(struct vdrv *d)
{
	uint8_t *want = malloc(SLOW_BUFS * SLOW_LEN), *got = malloc(SLOW_BUFS * SLOW_LEN + 1);
	uint64_t a = vdrv_alloc(d, SLOW_BUFS * SLOW_LEN);
	unsigned used = 0;
	size_t have = 0;
	uint32_t id, len;

	assert_non_null(want);
	assert_non_null(got);
	/* The smallest pipe (one page), so a few buffers fill it. */
	assert_true(fcntl(d->f.ctx.console_out_fd, F_SETPIPE_SZ, 4096) >= 4096);
	assert_true(vdrv_start(d, 0, 2, 16) & VIRTIO_STATUS_DRIVER_OK);
	for (unsigned i = 0; i < SLOW_BUFS * SLOW_LEN; i++)
		want[i] = (uint8_t)(i * 31 + (i >> 12));
	memcpy(vdrv_ptr(d, a, SLOW_BUFS * SLOW_LEN), want, SLOW_BUFS * SLOW_LEN);
	for (unsigned i = 0; i < SLOW_BUFS; i++) {
		struct vdrv_buf b = { a + (uint64_t)i * SLOW_LEN, SLOW_LEN, false };

		vdrv_add(d, TXQ, &b, 1);
	}
	vdrv_kick(d, TXQ);
	for (int i = 0; i < 5; i++)
		fake_pump(&d->f, 2);
	while (vdrv_used(d, TXQ, &id, &len))
		used++;
	/* 96 KiB offered: one page in the pipe, 64 KiB kept, the rest left on the ring. */
	assert_true(used >= 4 && used < SLOW_BUFS);
	assert_false(vdrv_status(d) & VIRTIO_STATUS_NEEDS_RESET);

	/* The reader catches up: the loop sees the output writable and goes on. */
	for (int i = 0; i < 2000 && (have < SLOW_BUFS * SLOW_LEN || used < SLOW_BUFS); i++) {
		have += fake_output(&d->f, got + have, SLOW_BUFS * SLOW_LEN + 1 - have);
		fake_pump(&d->f, 1);
		while (vdrv_used(d, TXQ, &id, &len))
			used++;
	}
	have += fake_output(&d->f, got + have, SLOW_BUFS * SLOW_LEN + 1 - have);
	assert_int_equal(used, SLOW_BUFS);
	assert_int_equal(have, SLOW_BUFS * SLOW_LEN);
	assert_memory_equal(got, want, SLOW_BUFS * SLOW_LEN);
	assert_int_equal(d->vd->stats.errors, 0);
	assert_int_equal(d->vd->stats.bytes_out, SLOW_BUFS * SLOW_LEN);
	free(want);
	free(got);
}

static void test_slow_output(void **state)
{
	slow_output(*state);
}

/* The same on a blocking output fd: the device must not block on it (the alarm fails the test). */
static void test_slow_output_blocking_fd(void **state)
{
	signal(SIGALRM, SIG_DFL);
	alarm(20);
	slow_output(*state);
	alarm(0);
}

/* Bytes taken but not yet written travel in the device's record. */
static void test_save_pending(void **state)
{
	struct vdrv *d = *state;
	uint64_t a = vdrv_alloc(d, 3 * SLOW_LEN);
	uint8_t *out = malloc(3 * SLOW_LEN + 1);
	struct sbuf s = { 0 };
	uint32_t id, len;
	size_t have = 0;

	assert_non_null(out);
	assert_true(fcntl(d->f.ctx.console_out_fd, F_SETPIPE_SZ, 4096) >= 4096);
	vdrv_start(d, 0, 2, 16);
	memset(vdrv_ptr(d, a, 3 * SLOW_LEN), 'q', 3 * SLOW_LEN);
	struct vdrv_buf b = { a, 3 * SLOW_LEN, false };
	vdrv_add(d, TXQ, &b, 1);
	vdrv_kick(d, TXQ);
	fake_pump(&d->f, 2);
	assert_true(vdrv_used(d, TXQ, &id, &len));
	assert_int_equal(virtio_save(d->vd, &s), 0);
	/* The reader drains everything: one page in the pipe, the rest taken and kept. */
	for (int i = 0; i < 200 && have < 3 * SLOW_LEN; i++) {
		have += fake_output(&d->f, out + have, 3 * SLOW_LEN + 1 - have);
		fake_pump(&d->f, 1);
	}
	assert_int_equal(have, 3 * SLOW_LEN);
	/* Restoring the record writes what was still pending at the save once more. */
	have = 0;
	assert_int_equal(virtio_load(d->vd, s.data, s.len), 0);
	for (int i = 0; i < 200 && have < 3 * SLOW_LEN - 4096; i++) {
		fake_pump(&d->f, 1);
		have += fake_output(&d->f, out + have, 3 * SLOW_LEN + 1 - have);
	}
	assert_int_equal(have, 3 * SLOW_LEN - 4096);
	assert_memory_equal(out, vdrv_ptr(d, a, have), have);
	assert_int_not_equal(virtio_load(d->vd, s.data, s.len - 1), 0);
	sbuf_free(&s);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_transmit, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_receive, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_emergency_write, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_chains, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_save_load, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_slow_output, setup_loop, teardown_loop),
		cmocka_unit_test_setup_teardown(test_slow_output_blocking_fd, setup_blocking,
						teardown_loop),
		cmocka_unit_test_setup_teardown(test_save_pending, setup_loop, teardown_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
