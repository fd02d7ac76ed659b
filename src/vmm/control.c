// SPDX-License-Identifier: MIT
/* control.c: serving the control socket: accept clients, parse JSON requests, act on the VM. */
#include "vmm/control.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "migrate/migrate.h"
#include "vmm/vm.h"

#define MAX_CLIENTS 16

struct client {
	struct control *ctl;
	int fd;
	size_t len;
	char buf[CONTROL_MAX_LINE];
};

struct control {
	char name[65];
	char path[108];
	int listen_fd;
	struct vm *vm;
	struct client *clients[MAX_CLIENTS];
	struct migration *mig; /* the last migration started, until the next one */
};

int control_runtime_dir(char *buf, size_t len)
{
	const char *env = getenv("KVMM_RUNTIME_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/kvmm");
	else if (xdg && *xdg)
		n = snprintf(buf, len, "%s/kvmm", xdg);
	else
		n = snprintf(buf, len, "/tmp/kvmm-%u", (unsigned)geteuid());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int control_check_name(const char *name, struct err *e)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.')
		return err_set(e, EINVAL, "VM name '%s': use 1 to 64 characters, not starting with '.'",
			       name);
	for (i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return err_set(e, EINVAL, "VM name '%s': only letters, digits, '.', '_' and "
				       "'-' are allowed", name);
	}
	return 0;
}

int control_socket_path(const char *name, char *buf, size_t len, struct err *e)
{
	char dir[256];
	int n;

	if (control_check_name(name, e))
		return -EINVAL;
	if (control_runtime_dir(dir, sizeof(dir)))
		return err_set(e, ENAMETOOLONG, "runtime directory path too long");
	n = snprintf(buf, len, "%s/%s.sock", dir, name);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return err_set(e, ENAMETOOLONG, "control socket path too long: %s/%s.sock", dir, name);
	return 0;
}

int control_open(const char *name, struct control **out, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *c;
	struct stat st;
	char dir[256];
	int fd, r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, ENOMEM, "out of memory");
	c->listen_fd = -1;
	r = control_socket_path(name, c->path, sizeof(c->path), e);
	if (r)
		goto fail;
	snprintf(c->name, sizeof(c->name), "%s", name);
	control_runtime_dir(dir, sizeof(dir));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = err_set(e, errno, "cannot create %s: %s", dir, strerror(errno));
		goto fail;
	}
	strcpy(sa.sun_path, c->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = err_set(e, errno, "control socket: %s", strerror(errno));
		goto fail;
	}
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	if (r == -EADDRINUSE) {
		/* Someone's socket file: live VM, or left behind by a dead one? */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			close(fd);
			r = err_set(e, EEXIST, "a VM named '%s' is already running (%s)", name,
				    c->path);
			goto fail;
		}
		if (probe >= 0)
			close(probe);
		/* Replace only a dead VM's socket, never a file or link someone put there. */
		if (lstat(c->path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			close(fd);
			r = err_set(e, EEXIST, "%s exists and is not a socket; not touching it",
				    c->path);
			goto fail;
		}
		unlink(c->path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			r = err_set(e, errno, "control socket %s: %s", c->path, strerror(errno));
			close(fd);
			goto fail;
		}
	} else if (r) {
		r = err_set(e, -r, "control socket %s: %s", c->path, strerror(-r));
		close(fd);
		goto fail;
	}
	if (listen(fd, 8) < 0) {
		r = err_set(e, errno, "control socket %s: listen: %s", c->path, strerror(errno));
		close(fd);
		unlink(c->path);
		goto fail;
	}
	c->listen_fd = fd;
	*out = c;
	return 0;
fail:
	free(c);
	return r;
}

static void client_close(struct control *c, struct client *cl)
{
	unsigned i;

	for (i = 0; i < MAX_CLIENTS; i++)
		if (c->clients[i] == cl)
			c->clients[i] = NULL;
	if (c->vm)
		vm_unwatch(c->vm, cl->fd);
	close(cl->fd);
	free(cl);
}

void control_close(struct control *c)
{
	unsigned i;

	if (!c)
		return;
	for (i = 0; i < MAX_CLIENTS; i++)
		if (c->clients[i])
			client_close(c, c->clients[i]);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	migrate_free(c->mig);
	free(c);
}

static json_t *result_status(struct control *c)
{
	const struct vm_config *cfg = vm_get_config(c->vm);

	return json_pack("{s:s, s:s, s:i, s:I, s:I, s:i}", "name", c->name, "state",
			 vm_paused(c->vm) ? "paused" : "running", "pid", (int)getpid(),
			 "uptime_ms", (json_int_t)vm_uptime_ms(c->vm), "memory",
			 (json_int_t)cfg->mem.size, "cpus", (int)cfg->ncpus);
}

static json_t *result_info(struct control *c)
{
	const struct vm_config *cfg = vm_get_config(c->vm);
	json_t *devs = json_array(), *disks = json_array();
	unsigned i;

	for (i = 0; i < vm_ndevices(c->vm); i++)
		json_array_append_new(devs, json_string(vm_device_name(c->vm, i)));
	for (i = 0; i < cfg->ndisks; i++)
		json_array_append_new(disks, json_pack("{s:s, s:b}", "path", cfg->disks[i].path,
						       "readonly", cfg->disks[i].read_only));
	return json_pack("{s:s, s:i, s:I, s:s, s:s?, s:s?, s:o, s:o, s:s}", "name", c->name,
			 "cpus", (int)cfg->ncpus, "memory", (json_int_t)cfg->mem.size, "kernel",
			 cfg->boot.kernel, "initrd", cfg->boot.initrd, "cmdline", cfg->boot.cmdline,
			 "devices", devs, "disks", disks, "reboot",
			 cfg->reboot == REBOOT_EXIT ? "exit" : "restart");
}

static json_t *result_migrate_status(struct control *c)
{
	struct migrate_status st = { .state = MIG_NONE };

	if (c->mig)
		migrate_get_status(c->mig, &st);
	return json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:b}", "state",
			 migrate_state_name(st.state), "error", st.error, "rounds", (int)st.rounds,
			 "pages_sent", (json_int_t)st.pages_sent, "bytes_sent",
			 (json_int_t)st.bytes_sent, "dirty_pages", (json_int_t)st.dirty_pages,
			 "dirty_rate", (json_int_t)st.dirty_rate, "expected_downtime_ms",
			 (json_int_t)st.expected_downtime_ms, "downtime_ms",
			 (json_int_t)st.downtime_ms, "total_ms", (json_int_t)st.total_ms,
			 "throughput", (json_int_t)st.throughput, "throttle_pct", st.throttle_pct,
			 "downtime_exceeded", st.downtime_exceeded);
}

/* Field key of req, when present: an integer in [min, max] into *out; false when it is not. */
static bool opt_count(json_t *req, const char *key, json_int_t min, json_int_t max, uint64_t *out)
{
	json_t *v = json_object_get(req, key);

	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static json_t *start_migration(struct control *c, json_t *req)
{
	struct migrate_params p = { .auto_converge = true };
	uint64_t rounds = 0;
	const char *uri = json_string_value(json_object_get(req, "uri"));
	json_t *v;
	struct err e = { "" };

	if (!uri || strlen(uri) >= sizeof(p.uri))
		return json_pack("{s:b, s:s}", "ok", 0, "error", "migrate needs a \"uri\" (tcp:HOST:PORT)");
	strcpy(p.uri, uri);
	/* Absent means the default; present must be an integer in range (bandwidth 0: unlimited). */
	if (!opt_count(req, "downtime_ms", 1, 3600000, &p.downtime_ms) ||
	    !opt_count(req, "bandwidth", 0, INT64_MAX, &p.bandwidth) ||
	    !opt_count(req, "max_rounds", 1, 10000, &rounds))
		return json_pack("{s:b, s:s}", "ok", 0, "error",
				 "downtime_ms (1-3600000), bandwidth (bytes/s, 0 = unlimited) and "
				 "max_rounds (1-10000) must be integers in range");
	p.max_rounds = (unsigned)rounds;
	if ((v = json_object_get(req, "auto_converge"))) {
		if (!json_is_boolean(v))
			return json_pack("{s:b, s:s}", "ok", 0, "error", "auto_converge must be true or false");
		p.auto_converge = json_is_true(v);
	}
	/* The previous migration's thread has ended (control_handle refuses one while it runs). */
	migrate_free(c->mig);
	c->mig = NULL;
	if (migrate_start(c->vm, &p, &c->mig, &e))
		return json_pack("{s:b, s:s}", "ok", 0, "error", e.msg);
	return json_pack("{s:b, s:{s:s}}", "ok", 1, "result", "state", "active");
}

static void add_kvm_stat(void *arg, const char *name, uint64_t v)
{
	json_object_set_new(arg, name, json_integer((json_int_t)v));
}

static json_t *result_stats(struct control *c)
{
	json_t *vcpus = json_array(), *devs = json_array(), *kvm = json_object();
	unsigned i;

	for (i = 0; i < vm_nvcpus(c->vm); i++) {
		struct vcpu_stats st;
		json_t *kv = json_object();

		vm_vcpu_stats(c->vm, i, &st);
		/* KVM's own counters when the kernel has binary stats (5.14+). */
		vm_kvm_stats(c->vm, (int)i, add_kvm_stat, kv);
		json_array_append_new(vcpus, json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:o}", "id",
						       (int)i, "exits", (json_int_t)st.exits, "io",
						       (json_int_t)st.io, "mmio", (json_int_t)st.mmio,
						       "other", (json_int_t)st.other, "run_ns",
						       (json_int_t)st.run_ns, "kvm", kv));
	}
	vm_kvm_stats(c->vm, -1, add_kvm_stat, kvm);
	for (i = 0; i < vm_ndevices(c->vm); i++) {
		uint64_t s[6];

		if (vm_device_stats(c->vm, i, s))
			continue;
		json_array_append_new(devs, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "name",
						      vm_device_name(c->vm, i), "requests",
						      (json_int_t)s[0], "bytes_in", (json_int_t)s[1],
						      "bytes_out", (json_int_t)s[2], "errors",
						      (json_int_t)s[3], "kicks", (json_int_t)s[4],
						      "interrupts", (json_int_t)s[5]));
	}
	return json_pack("{s:o, s:o, s:o}", "vcpus", vcpus, "devices", devs, "kvm", kvm);
}

/* One request object in, one response object out. */
static json_t *control_handle(struct control *c, json_t *req)
{
	const char *cmd;
	json_t *res = NULL;
	const char *errmsg = NULL;
	int r;

	if (!json_is_object(req) || !(cmd = json_string_value(json_object_get(req, "cmd"))))
		return json_pack("{s:b, s:s}", "ok", 0, "error",
				 "a request is a JSON object with a \"cmd\" string");
	/* While migrating, only observation and cancel are allowed. */
	if (vm_migrating(c->vm) && strcmp(cmd, "version") && strcmp(cmd, "status") &&
	    strcmp(cmd, "info") && strcmp(cmd, "stats") && strcmp(cmd, "migrate-status") &&
	    strcmp(cmd, "migrate-cancel"))
		return json_pack("{s:b, s:s+}", "ok", 0, "error", cmd,
				 ": refused while a migration is running (migrate-cancel first)");
	if (!strcmp(cmd, "migrate"))
		return start_migration(c, req);
	if (!strcmp(cmd, "migrate-status")) {
		res = result_migrate_status(c);
	} else if (!strcmp(cmd, "migrate-cancel")) {
		if (!c->mig || !vm_migrating(c->vm))
			errmsg = "no migration is running";
		else
			migrate_cancel(c->mig);
	} else if (!strcmp(cmd, "version")) {
		res = json_pack("{s:i, s:s}", "protocol", CONTROL_PROTOCOL_VERSION, "kvmm", "0.1.0");
	} else if (!strcmp(cmd, "status")) {
		res = result_status(c);
	} else if (!strcmp(cmd, "info")) {
		res = result_info(c);
	} else if (!strcmp(cmd, "stats")) {
		res = result_stats(c);
	} else if (!strcmp(cmd, "pause")) {
		r = vm_pause(c->vm);
		if (r == -EALREADY)
			errmsg = "the VM is already paused";
	} else if (!strcmp(cmd, "resume")) {
		r = vm_resume(c->vm);
		if (r)
			errmsg = "the VM is not paused";
	} else if (!strcmp(cmd, "powerbutton")) {
		if (vm_paused(c->vm))
			errmsg = "the VM is paused: resume it first";
		else
			vm_power_button(c->vm);
	} else if (!strcmp(cmd, "snapshot")) {
		const char *dir = json_string_value(json_object_get(req, "path"));
		bool was_running = !vm_paused(c->vm);
		struct err e = { "" };

		if (!dir || dir[0] != '/')
			return json_pack("{s:b, s:s}", "ok", 0, "error",
					 "snapshot needs an absolute \"path\"");
		/* A consistent point: pause if needed, and leave the VM as it was. */
		if (was_running)
			vm_pause(c->vm);
		r = vm_snapshot(c->vm, dir, json_string_value(json_object_get(req, "disks")), &e);
		if (was_running)
			vm_resume(c->vm);
		if (r)
			return json_pack("{s:b, s:s}", "ok", 0, "error", e.msg);
		res = json_pack("{s:s}", "path", dir);
	} else if (!strcmp(cmd, "reset")) {
		vm_reset(c->vm);
	} else if (!strcmp(cmd, "stop")) {
		vm_stop(c->vm, "stopped through the control socket");
	} else {
		return json_pack("{s:b, s:s+}", "ok", 0, "error", "unknown command: ", cmd);
	}
	if (errmsg) {
		json_decref(res);
		return json_pack("{s:b, s:s}", "ok", 0, "error", errmsg);
	}
	return json_pack("{s:b, s:o}", "ok", 1, "result", res ? res : json_object());
}

/*
 * Write all of buf to the non-blocking client socket, waiting for room while
 * the client reads, for REPLY_WAIT_MS at most: a client that stopped reading
 * loses its answer, and the main loop is not held for longer than that.
 */
#define REPLY_WAIT_MS 2000

static int reply_write(int fd, const char *buf, size_t len)
{
	uint64_t deadline = time_ns() + REPLY_WAIT_MS * 1000000ULL;

	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			uint64_t now = time_ns();

			if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000 + 1)) <= 0)
				return -ETIMEDOUT;
		} else if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

static void client_reply(struct client *cl, json_t *resp)
{
	char *s = json_dumps(resp, JSON_COMPACT);

	if (s) {
		size_t n = strlen(s);

		/* The line and its newline go out in one write. */
		char *line = realloc(s, n + 2);

		if (line) {
			line[n] = '\n';
			line[n + 1] = '\0';
			if (reply_write(cl->fd, line, n + 1))
				log_debug("control: a client did not take its reply");
			s = line;
		}
		free(s);
	}
	json_decref(resp);
}

static void client_cb(void *arg)
{
	struct client *cl = arg;
	struct control *c = cl->ctl;
	ssize_t n;
	char *nl;

	n = read(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_close(c, cl);
		return;
	}
	cl->len += (size_t)n;
	cl->buf[cl->len] = '\0';
	while ((nl = memchr(cl->buf, '\n', cl->len))) {
		json_error_t jerr;
		json_t *req;
		size_t line = (size_t)(nl - cl->buf);

		*nl = '\0';
		req = json_loadb(cl->buf, line, 0, &jerr);
		if (!req)
			client_reply(cl, json_pack("{s:b, s:s+}", "ok", 0, "error",
						   "invalid JSON: ", jerr.text));
		else
			client_reply(cl, control_handle(c, req));
		json_decref(req);
		memmove(cl->buf, nl + 1, cl->len - line - 1);
		cl->len -= line + 1;
	}
	if (cl->len == sizeof(cl->buf) - 1) {
		client_reply(cl, json_pack("{s:b, s:s}", "ok", 0, "error", "request line too long"));
		client_close(c, cl);
	}
}

static void accept_cb(void *arg)
{
	struct control *c = arg;
	struct client *cl;
	unsigned i;
	int fd;

	fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (i = 0; i < MAX_CLIENTS && c->clients[i]; i++)
		;
	cl = i < MAX_CLIENTS ? calloc(1, sizeof(*cl)) : NULL;
	if (!cl) {
		static const char busy[] = "{\"ok\":false,\"error\":\"too many clients\"}\n";

		write_all(fd, busy, sizeof(busy) - 1);
		close(fd);
		return;
	}
	cl->ctl = c;
	cl->fd = fd;
	if (vm_watch(c->vm, fd, client_cb, cl)) {
		close(fd);
		free(cl);
		return;
	}
	c->clients[i] = cl;
}

int control_attach(struct control *c, struct vm *vm)
{
	c->vm = vm;
	return vm_watch(vm, c->listen_fd, accept_cb, c);
}

void control_detach(struct control *c, struct vm *vm)
{
	unsigned i;

	for (i = 0; i < MAX_CLIENTS; i++)
		if (c->clients[i])
			client_close(c, c->clients[i]);
	vm_unwatch(vm, c->listen_fd);
	c->vm = NULL;
}
