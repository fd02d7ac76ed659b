/* SPDX-License-Identifier: MIT */
/* img_int.h: what the `kvmm img` subcommand files (src/cli/img*.c) share; private to them. */
#ifndef KVMM_CLI_IMG_INT_H
#define KVMM_CLI_IMG_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "block/block.h"
#include "block/qcow2.h"
#include "cli/cli.h"

/* `kvmm img check` exit statuses, as qemu-img's. */
#define IMG_EXIT_CORRUPT 2
#define IMG_EXIT_LEAKS 3

/* The subcommands: argv[0] is the subcommand's name; each returns the exit status. */
int img_create(int argc, char **argv);
int img_resize(int argc, char **argv);
int img_info(int argc, char **argv);
int img_check(int argc, char **argv);
int img_map(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_snapshot(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_rebase(int argc, char **argv);

/* "kvmm img: <message>" on stderr; returns EXIT_ERR. */
int img_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --output human|json: 0, or EXIT_ERR after saying why. */
int img_parse_output(const char *arg, bool *json);

/*
 * The options of info and map ([-f fmt] [-U] [--output human|json] FILE): -1 with
 * the file at argv[optind], or the exit status to return (help, a usage error).
 */
int img_file_opts(int argc, char **argv, const char *name, const char **fmt, bool *json);

/* Opens path (fmt NULL: probe); 0, or EXIT_ERR after saying why. */
int img_open(const char *path, const char *fmt, bool rw, bool no_backing, struct image **img);

/* -o key=value,... for qcow2 creation (create, convert); modifies s. 0, or EXIT_ERR. */
int img_parse_create_opts(char *s, struct image_create_opts *co);

/* "1.5 GiB", as qemu-img prints sizes. */
void img_size_human(uint64_t n, char *out, size_t len);

/* The snapshot table as `qemu-img snapshot -l` prints it (info and snapshot -l). */
void img_print_snapshots_human(const struct qcow2 *q);

/* A block status that was read as allocated: does the range read as zeroes? */
static inline bool img_st_zero(const struct image_status *st)
{
	return (st->flags & IMAGE_ST_ZERO) && !(st->flags & IMAGE_ST_DATA);
}

/* Progress on stderr, only on a terminal, in qemu-img's format. */
struct img_progress {
	bool on;
	int last;
};

void img_progress_init(struct img_progress *p, bool want);
void img_progress_show(struct img_progress *p, uint64_t done, uint64_t total);
void img_progress_end(struct img_progress *p);
/* For callbacks taking (opaque, done, total): opaque is a struct img_progress. */
void img_progress_cb(void *opaque, uint64_t done, uint64_t total);

/* JSON output (jansson). Strings that are not UTF-8 get U+FFFD for each bad byte, as
 * QEMU's JSON writer does; NULL only when out of memory. */
json_t *img_json_string(const char *s);
/* jansson integers are signed 64-bit: a value past INT64_MAX (only a crafted image has one)
 * becomes the nearest real. */
json_t *img_json_u64(uint64_t v);
/* Writes v (NULL: out of memory) to stdout with flags, then a newline; drops the reference.
 * 0, or EXIT_ERR after saying why. */
int img_json_print(json_t *v, size_t flags);

#endif
