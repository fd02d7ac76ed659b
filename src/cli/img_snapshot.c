// SPDX-License-Identifier: MIT
/* img_snapshot.c: `kvmm img snapshot` (internal qcow2 snapshots) and the snapshot list it and info print. */
#include <inttypes.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "cli/img_int.h"

static void fmt_date(uint32_t sec, char *out, size_t len)
{
	time_t t = sec;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
}

void img_print_snapshots_human(const struct qcow2 *q)
{
	printf("ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\n");
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		const struct qcow2_snapshot *s = &q->snaps[i];
		char date[32], vms[32];
		uint64_t ns = s->vm_clock_nsec;

		fmt_date(s->date_sec, date, sizeof(date));
		img_size_human(s->vm_state_size, vms, sizeof(vms));
		printf("%-9s %-17s %7s %s %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64 " %10u\n",
		       s->id, s->name, vms, date, (uint64_t)(ns / 3600000000000ull),
		       (uint64_t)(ns / 60000000000ull % 60), (uint64_t)(ns / 1000000000ull % 60),
		       (uint64_t)(ns / 1000000ull % 1000), 0);
	}
}

int img_snapshot(int argc, char **argv)
{
	const char *name = NULL;
	char op = 'l';
	struct image *img;
	struct err e = { { 0 } };
	int c, ret = 0;

	optind = 1;
	while ((c = getopt(argc, argv, "c:a:d:lqUh")) != -1) {
		switch (c) {
		case 'c': case 'a': case 'd': op = (char)c; name = optarg; break;
		case 'l': op = 'l'; break;
		case 'q': case 'U': break;
		case 'h': printf("usage: kvmm img snapshot [-l | -c NAME | -a NAME | -d NAME] FILE\n"); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return img_fail("snapshot: missing file name"), EXIT_USAGE;
	if (img_open(argv[optind], NULL, op != 'l', true, &img))
		return EXIT_ERR;
	if (!qcow2_of(img)) {
		image_close(img);
		return img_fail("%s: snapshots need a qcow2 image", argv[optind]);
	}
	switch (op) {
	case 'l':
		if (qcow2_of(img)->nb_snapshots) {
			printf("Snapshot list:\n");
			img_print_snapshots_human(qcow2_of(img));
		}
		break;
	case 'c': ret = qcow2_snapshot_create(img, name, &e); break;
	case 'a': ret = qcow2_snapshot_apply(img, name, &e); break;
	case 'd': ret = qcow2_snapshot_delete(img, name, &e); break;
	}
	image_close(img);
	if (ret < 0)
		return img_fail("%s", e.msg);
	return EXIT_OK;
}

