// SPDX-License-Identifier: MIT
/* ctl.c: kvmm verbs that reach a running VM by name through its control socket. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
		/* Nobody listens: the VM died without cleaning up. */
		if (en == ECONNREFUSED)
			unlink(path);
		return -en;
	}
	return fd;
}

/* Send one request, read one response line. Caller frees the result. */
static json_t *ctl_request(int fd, const char *cmd, struct err *e)
{
	char req[128], buf[CONTROL_MAX_LINE];
	size_t len = 0;
	json_error_t jerr;
	json_t *resp;

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}\n", cmd);
	if (write_all(fd, req, strlen(req))) {
		err_set(e, EIO, "cannot send the request: %s", strerror(errno));
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
		       json_string_value(json_object_get(v, "name")),
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

/* kvmm VERB [--json] NAME */
int cmd_ctl(int argc, char **argv)
{
	const char *verb = argv[0], *name = NULL;
	bool as_json = false;
	struct err e = { "" };
	json_t *resp, *res;
	int i, fd, status = EXIT_OK;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "--output=json"))
			as_json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: kvmm %s [--json] NAME\n", verb);
			return EXIT_OK;
		} else if (argv[i][0] == '-' || name) {
			fprintf(stderr, "kvmm %s: unexpected argument '%s' (usage: kvmm %s [--json] NAME)\n",
				verb, argv[i], verb);
			return EXIT_USAGE;
		} else
			name = argv[i];
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
			       json_string_value(json_object_get(v, "name")),
			       json_string_value(json_object_get(v, "state")),
			       (long long)json_integer_value(json_object_get(v, "pid")),
			       (long long)json_integer_value(json_object_get(v, "cpus")),
			       (long long)(json_integer_value(json_object_get(v, "memory")) >> 20),
			       (double)json_integer_value(json_object_get(v, "uptime_ms")) / 1000);
	}
	json_decref(all);
	return EXIT_OK;
}
