// SPDX-License-Identifier: MIT
/* ctl.c: kvmm verbs that reach a running VM by name through its control socket. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "cli/cli.h"
#include "vmm/control.h"

/* Connect to a VM's socket: 0, -ENOENT (no such VM) or -ECONNREFUSED (stale, removed). */
static int ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int en = errno;

		close(fd);
		/* Nobody listens: the VM died without cleaning up. Only ever remove a socket. */
		if (en == ECONNREFUSED && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
		return -en;
	}
	return fd;
}

/* Send one request (steals req), read one response line. Caller frees the result. */
static json_t *ctl_request_obj(int fd, json_t *req, struct err *e)
{
	char buf[CONTROL_MAX_LINE], *line = json_dumps(req, JSON_COMPACT);
	size_t len = 0;
	json_error_t jerr;
	json_t *resp;
	int r;

	json_decref(req);
	if (!line) {
		err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	r = write_all(fd, line, strlen(line));
	if (!r)
		r = write_all(fd, "\n", 1);
	free(line);
	if (r) {
		err_set(e, EIO, "cannot send the request: %s", strerror(-r));
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_set(e, EIO, "the VM closed the connection without answering");
			return NULL;
		}
		len += (size_t)n;
		if (memchr(buf, '\n', len))
			break;
		if (len == sizeof(buf) - 1) {
			err_set(e, EIO, "answer too long");
			return NULL;
		}
	}
	resp = json_loadb(buf, (size_t)((char *)memchr(buf, '\n', len) - buf), 0, &jerr);
	if (!resp)
		err_set(e, EIO, "unreadable answer: %s", jerr.text);
	return resp;
}

static json_t *ctl_request(int fd, const char *cmd, struct err *e)
{
	return ctl_request_obj(fd, json_pack("{s:s}", "cmd", cmd), e);
}

static int ctl_open_vm(const char *name, struct err *e)
{
	char path[256];
	int fd;

	if (control_socket_path(name, path, sizeof(path), e))
		return -EINVAL;
	fd = ctl_connect(path);
	if (fd == -ENOENT || fd == -ECONNREFUSED)
		return err_set(e, ENOENT, "no running VM named '%s'", name);
	if (fd < 0)
		return err_set(e, -fd, "%s: %s", path, strerror(-fd));
	return fd;
}

static void print_stats(json_t *r)
{
	json_t *v;
	size_t i;

	printf("%-6s %12s %12s %12s %12s %14s\n", "vCPU", "exits", "io", "mmio", "other",
	       "run ms");
	json_array_foreach(json_object_get(r, "vcpus"), i, v)
		printf("%-6lld %12lld %12lld %12lld %12lld %14.1f\n",
		       (long long)json_integer_value(json_object_get(v, "id")),
		       (long long)json_integer_value(json_object_get(v, "exits")),
		       (long long)json_integer_value(json_object_get(v, "io")),
		       (long long)json_integer_value(json_object_get(v, "mmio")),
		       (long long)json_integer_value(json_object_get(v, "other")),
		       (double)json_integer_value(json_object_get(v, "run_ns")) / 1e6);
	if (json_array_size(json_object_get(r, "devices")))
		printf("\n%-14s %10s %12s %12s %8s %10s %10s\n", "device", "requests", "bytes in",
		       "bytes out", "errors", "kicks", "irqs");
	json_array_foreach(json_object_get(r, "devices"), i, v)
		printf("%-14s %10lld %12lld %12lld %8lld %10lld %10lld\n",
		       json_string_value(json_object_get(v, "name")) ?: "?",
		       (long long)json_integer_value(json_object_get(v, "requests")),
		       (long long)json_integer_value(json_object_get(v, "bytes_in")),
		       (long long)json_integer_value(json_object_get(v, "bytes_out")),
		       (long long)json_integer_value(json_object_get(v, "errors")),
		       (long long)json_integer_value(json_object_get(v, "kicks")),
		       (long long)json_integer_value(json_object_get(v, "interrupts")));
}

static void print_object(json_t *r)
{
	const char *k;
	json_t *v;

	json_object_foreach(r, k, v) {
		char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		printf("%-10s %s\n", k, s ? s : json_string_value(v));
		free(s);
	}
}

/* kvmm VERB [--json] NAME (snapshot takes a directory after NAME) */
int cmd_ctl(int argc, char **argv)
{
	const char *verb = argv[0], *name = NULL, *arg = NULL;
	bool wants_arg = !strcmp(verb, "snapshot");
	const char *disks = NULL;
	char abs[4096];
	bool as_json = false;
	struct err e = { "" };
	json_t *resp, *res;
	int i, fd, status = EXIT_OK;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "--output=json"))
			as_json = true;
		else if (wants_arg && !strcmp(argv[i], "--disks") && i + 1 < argc)
			disks = argv[++i];
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: kvmm %s [--json] NAME\n", verb);
			return EXIT_OK;
		} else if (argv[i][0] == '-' || (name && (!wants_arg || arg))) {
			fprintf(stderr, "kvmm %s: unexpected argument '%s' (usage: kvmm %s [--json] NAME%s)\n",
				verb, argv[i], verb, wants_arg ? " DIR" : "");
			return EXIT_USAGE;
		} else if (!name) {
			name = argv[i];
		} else {
			arg = argv[i];
		}
	}
	if (wants_arg && name && !arg) {
		fprintf(stderr, "kvmm %s: where to? (usage: kvmm %s NAME DIR)\n", verb, verb);
		return EXIT_USAGE;
	}
	if (arg) {
		/* The VM process has its own working directory: send an absolute path. */
		if (arg[0] == '/')
			snprintf(abs, sizeof(abs), "%s", arg);
		else if (!getcwd(abs, sizeof(abs)) ||
			 strlen(abs) + strlen(arg) + 2 > sizeof(abs)) {
			fprintf(stderr, "kvmm %s: path too long\n", verb);
			return EXIT_USAGE;
		} else {
			strcat(abs, "/");
			strcat(abs, arg);
		}
	}
	if (!name) {
		fprintf(stderr, "kvmm %s: which VM? (usage: kvmm %s [--json] NAME; see kvmm list)\n",
			verb, verb);
		return EXIT_USAGE;
	}
	fd = ctl_open_vm(name, &e);
	if (fd < 0) {
		fprintf(stderr, "kvmm %s: %s\n", verb, e.msg);
		return EXIT_ERR;
	}
	if (arg)
		resp = ctl_request_obj(fd, json_pack("{s:s, s:s, s:s?}", "cmd", verb, "path", abs,
						     "disks", disks), &e);
	else
		resp = ctl_request(fd, verb, &e);
	close(fd);
	if (!resp) {
		fprintf(stderr, "kvmm %s %s: %s\n", verb, name, e.msg);
		return EXIT_ERR;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "kvmm %s %s: %s\n", verb, name,
			json_string_value(json_object_get(resp, "error")) ?: "failed");
		json_decref(resp);
		return EXIT_ERR;
	}
	res = json_object_get(resp, "result");
	if (as_json) {
		char *s = json_dumps(res, JSON_INDENT(2));

		printf("%s\n", s ? s : "{}");
		free(s);
	} else if (!strcmp(verb, "stats")) {
		print_stats(res);
	} else if (json_object_size(res)) {
		print_object(res);
	}
	json_decref(resp);
	return status;
}

/* kvmm list [--json]: every VM with a live control socket; stale sockets are removed. */
int cmd_list(int argc, char **argv)
{
	bool as_json = argc > 1 && (!strcmp(argv[1], "--json") || !strcmp(argv[1], "--output=json"));
	json_t *all = json_array(), *v;
	char dir[256], path[512];
	struct dirent *de;
	struct err e;
	DIR *d;
	size_t i;

	if (argc > 1 && !as_json) {
		fprintf(stderr, "kvmm list: unexpected argument '%s' (usage: kvmm list [--json])\n",
			argv[1]);
		json_decref(all);
		return EXIT_USAGE;
	}
	control_runtime_dir(dir, sizeof(dir));
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		json_t *resp;
		int fd;

		if (n < 6 || strcmp(de->d_name + n - 5, ".sock"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = ctl_connect(path);
		if (fd < 0)
			continue;
		resp = ctl_request(fd, "status", &e);
		close(fd);
		if (resp && json_is_true(json_object_get(resp, "ok")))
			json_array_append(all, json_object_get(resp, "result"));
		json_decref(resp);
	}
	if (d)
		closedir(d);
	if (as_json) {
		char *s = json_dumps(all, JSON_INDENT(2));

		printf("%s\n", s);
		free(s);
	} else {
		printf("%-20s %-8s %8s %6s %10s %12s\n", "NAME", "STATE", "PID", "CPUS", "MEMORY",
		       "UPTIME");
		json_array_foreach(all, i, v)
			printf("%-20s %-8s %8lld %6lld %9lldM %11.1fs\n",
			       json_string_value(json_object_get(v, "name")) ?: "?",
			       json_string_value(json_object_get(v, "state")) ?: "?",
			       (long long)json_integer_value(json_object_get(v, "pid")),
			       (long long)json_integer_value(json_object_get(v, "cpus")),
			       (long long)(json_integer_value(json_object_get(v, "memory")) >> 20),
			       (double)json_integer_value(json_object_get(v, "uptime_ms")) / 1000);
	}
	json_decref(all);
	return EXIT_OK;
}

/* kvmm migrate NAME tcp:HOST:PORT [--downtime MS] [--bandwidth MB/s] [--no-auto-converge] [--wait] */
int cmd_migrate(int argc, char **argv)
{
	const char *name = NULL, *uri = NULL;
	long long downtime = 0, bw = 0;
	bool wait = false, converge = true;
	struct err e = { "" };
	json_t *req, *resp;
	int i, fd, status = EXIT_OK;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--wait"))
			wait = true;
		else if (!strcmp(argv[i], "--no-auto-converge"))
			converge = false;
		else if ((!strcmp(argv[i], "--downtime") || !strcmp(argv[i], "--bandwidth")) &&
			 i + 1 < argc) {
			uint64_t v;

			/* --bandwidth is in MB/s and is sent as bytes/s: keep that in range. */
			if (parse_u64(argv[i + 1], 1, INT64_MAX / 1000000, &v)) {
				fprintf(stderr, "kvmm migrate: %s '%s': give a positive number\n", argv[i],
					argv[i + 1]);
				return EXIT_USAGE;
			}
			if (!strcmp(argv[i], "--downtime"))
				downtime = (long long)v;
			else
				bw = (long long)v;
			i++;
		} else if (argv[i][0] == '-' || (name && uri)) {
			fprintf(stderr, "kvmm migrate: unexpected argument '%s' (usage: kvmm migrate NAME "
				"tcp:HOST:PORT [--downtime MS] [--bandwidth MB/s] [--no-auto-converge] "
				"[--wait])\n", argv[i]);
			return EXIT_USAGE;
		} else if (!name) {
			name = argv[i];
		} else {
			uri = argv[i];
		}
	}
	if (!name || !uri) {
		fprintf(stderr, "kvmm migrate: usage: kvmm migrate NAME tcp:HOST:PORT [--wait]\n");
		return EXIT_USAGE;
	}
	fd = ctl_open_vm(name, &e);
	if (fd < 0) {
		fprintf(stderr, "kvmm migrate: %s\n", e.msg);
		return EXIT_ERR;
	}
	req = json_pack("{s:s, s:s, s:b}", "cmd", "migrate", "uri", uri, "auto_converge", converge);
	if (downtime)
		json_object_set_new(req, "downtime_ms", json_integer(downtime));
	if (bw)
		json_object_set_new(req, "bandwidth", json_integer(bw * 1000000));
	resp = ctl_request_obj(fd, req, &e);
	if (!resp || !json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "kvmm migrate %s: %s\n", name,
			resp ? json_string_value(json_object_get(resp, "error")) ?: "failed" : e.msg);
		json_decref(resp);
		close(fd);
		return EXIT_ERR;
	}
	json_decref(resp);
	while (wait) {
		json_t *r;
		const char *state;

		usleep(200 * 1000);
		resp = ctl_request(fd, "migrate-status", &e);
		if (!resp) {
			/* The source exits once the destination took over. */
			printf("migrated: the source VM has stopped\n");
			break;
		}
		r = json_object_get(resp, "result");
		state = json_string_value(json_object_get(r, "state"));
		if (state && strcmp(state, "active")) {
			printf("migration %s: %lld rounds, %lld pages, downtime %lld ms, total %lld ms%s%s\n",
			       state, (long long)json_integer_value(json_object_get(r, "rounds")),
			       (long long)json_integer_value(json_object_get(r, "pages_sent")),
			       (long long)json_integer_value(json_object_get(r, "downtime_ms")),
			       (long long)json_integer_value(json_object_get(r, "total_ms")),
			       strcmp(state, "completed") ? ": " : "",
			       strcmp(state, "completed") ?
				       json_string_value(json_object_get(r, "error")) ?: "" : "");
			if (strcmp(state, "completed"))
				status = EXIT_ERR;
			json_decref(resp);
			break;
		}
		if (isatty(1))
			fprintf(stdout, "\rround %lld, %lld MiB sent, %lld dirty pages, throttle %lld%%   ",
				(long long)json_integer_value(json_object_get(r, "rounds")),
				(long long)json_integer_value(json_object_get(r, "bytes_sent")) >> 20,
				(long long)json_integer_value(json_object_get(r, "dirty_pages")),
				(long long)json_integer_value(json_object_get(r, "throttle_pct")));
		fflush(stdout);
		json_decref(resp);
	}
	close(fd);
	return status;
}
