// SPDX-License-Identifier: MIT
/* test_virtio_vsock.c: virtio-vsock creation errors (no vhost-vsock, bad CIDs); the data path is vhost's (rig). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdrv.h"
#include "virtio/devices.h"

static int setup(void **state)
{
	return vdrv_setup(state) ? 0 : -1;
}

static void test_no_vhost(void **state)
{
	struct vdrv *d = *state;
	struct vsock_opts o = { .cid = 3, .vhost_path = "/nonexistent/vhost-vsock" };
	struct virtio_dev *vd = NULL;
	struct err e = { { 0 } };

	assert_int_equal(virtio_vsock_create(&d->f.ctx, &o, &vd, &e), -ENOENT);
	assert_null(vd);
	assert_string_equal(e.msg, "vsock needs /nonexistent/vhost-vsock (modprobe vhost_vsock)");
	/* Not a vhost device: VHOST_SET_OWNER fails and says so. */
	o.vhost_path = "/dev/null";
	assert_true(virtio_vsock_create(&d->f.ctx, &o, &vd, &e) < 0);
	assert_null(vd);
	assert_non_null(strstr(e.msg, "vsock"));
	assert_non_null(strstr(e.msg, "/dev/null"));
	/* Nothing was plugged into the bus. */
	assert_int_equal(vdrv_cfg_read(d, 0) & 0xffff, 0xffff);
}

static void test_bad_cid(void **state)
{
	struct vdrv *d = *state;
	uint64_t bad[] = { 0, 1, 2, 0xffffffffULL, 1ULL << 40 };
	struct virtio_dev *vd = NULL;
	struct err e = { { 0 } };

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vsock_opts o = { .cid = bad[i] };

		assert_int_equal(virtio_vsock_create(&d->f.ctx, &o, &vd, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "cid"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_vhost, setup, vdrv_teardown),
		cmocka_unit_test_setup_teardown(test_bad_cid, setup, vdrv_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
