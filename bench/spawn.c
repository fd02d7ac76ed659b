/* SPDX-License-Identifier: MIT */
/* spawn.c: runs one VMM command and times it from exec: first output byte, a marker's
 * first byte, exit or kill, and the child's CPU time (wait4), for the bench/ scripts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUT_MAX (1 << 20)
#define CHUNKS_MAX 65536

struct spawn_opts {
	const char *mark; /* -f: timestamp the arrival of its first byte */
	const char *goal; /* -g: timestamp the arrival of its last byte */
	const char *stop; /* -k: once seen, stop the child (SIGKILL, after -x) */
	const char *hook; /* -x: shell command run with the child SIGSTOPped */
	const char *out_path; /* -o: keep the child's stdout here */
	const char *err_path; /* -e: the child's stderr (default /dev/null) */
	double delay_s; /* -d: stop the child this long after exec, without a marker */
	double timeout_s; /* -t: kill the child past this */
	char **argv;
};

/* Output received so far, with the time each read() ended, so that a marker's first
 * byte can be dated even when it arrived in an earlier read than its last byte. */
struct capture {
	char *buf;
	size_t len;
	size_t chunk_end[CHUNKS_MAX];
	double chunk_t[CHUNKS_MAX];
	size_t nchunks;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: spawn [-f MARK] [-g GOAL] [-k STOP] [-x HOOK] [-d SEC] [-t SEC] [-o FILE] [-e FILE]"
		" -- COMMAND [ARGS...]\n"
		"  -f MARK  report mark_ms: when the first byte of MARK arrived on stdout\n"
		"  -g GOAL  report goal_ms: when the last byte of GOAL arrived\n"
		"  -k STOP  once STOP was printed, stop the child (run -x first, then SIGKILL)\n"
		"  -d SEC   stop the child SEC seconds after exec (instead of or besides -k)\n"
		"  -x HOOK  with the child SIGSTOPped, run 'sh -c HOOK' with BENCH_PID set\n"
		"  -t SEC   SIGKILL the child past SEC seconds (default 120)\n"
		"Prints one line: wall_ms first_ms mark_ms goal_ms stop_ms user_ms sys_ms cpu_ms status.\n");
}

static int parse_args(int argc, char **argv, struct spawn_opts *o)
{
	int c;
	o->timeout_s = 120;
	o->err_path = "/dev/null";
	while ((c = getopt(argc, argv, "+f:g:k:x:o:e:d:t:h")) != -1) {
		switch (c) {
		case 'f': o->mark = optarg; break;
		case 'g': o->goal = optarg; break;
		case 'k': o->stop = optarg; break;
		case 'x': o->hook = optarg; break;
		case 'o': o->out_path = optarg; break;
		case 'e': o->err_path = optarg; break;
		case 'd': o->delay_s = atof(optarg); break;
		case 't': o->timeout_s = atof(optarg); break;
		default: return -1;
		}
	}
	if (optind >= argc)
		return -1;
	o->argv = argv + optind;
	return 0;
}

/* Time at which byte OFF arrived. */
static double byte_time(const struct capture *c, size_t off)
{
	for (size_t i = 0; i < c->nchunks; i++)
		if (off < c->chunk_end[i])
			return c->chunk_t[i];
	return c->nchunks ? c->chunk_t[c->nchunks - 1] : 0;
}

static pid_t start_child(char **argv, int out_fd, const char *err_path)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int in = open("/dev/null", O_RDONLY);
	int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (in < 0 || err < 0)
		_exit(126);
	dup2(in, 0);
	dup2(out_fd, 1);
	dup2(err, 2);
	execvp(argv[0], argv);
	fprintf(stderr, "spawn: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* SIGSTOP the child, run the hook against it, then SIGKILL it. */
static void stop_child(pid_t pid, const char *hook)
{
	if (hook) {
		char pidbuf[32];
		int st;
		kill(pid, SIGSTOP);
		waitpid(pid, &st, WUNTRACED);
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
		setenv("BENCH_PID", pidbuf, 1);
		pid_t h = fork();
		if (h == 0) {
			dup2(2, 1); /* our stdout carries only the result line... */
			execl("/bin/sh", "sh", "-c", hook, (char *)NULL);
			_exit(127);
		}
		if (h > 0)
			waitpid(h, &st, 0);
	}
	kill(pid, SIGKILL);
}

int main(int argc, char **argv)
{
	struct spawn_opts o = { 0 };
	static struct capture cap;
	double t0, first = -1, mark = -1, goal = -1, stopped = -1, end;
	int p[2], status = 0, timed_out = 0;
	struct rusage ru;

	if (parse_args(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	cap.buf = malloc(OUT_MAX + 1);
	if (!cap.buf || pipe2(p, O_CLOEXEC) < 0) {
		perror("spawn");
		return 1;
	}
	t0 = now_s();
	pid_t pid = start_child(o.argv, p[1], o.err_path);
	if (pid < 0) {
		perror("spawn: fork");
		return 1;
	}
	close(p[1]);

	/* Read until EOF (the child exited) or until we stop it. */
	for (;;) {
		double t = now_s();
		double until = t0 + o.timeout_s;
		if (o.delay_s > 0 && stopped < 0 && o.delay_s < o.timeout_s)
			until = t0 + o.delay_s;
		int ms = until > t ? (int)((until - t) * 1000) + 1 : 0;
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		int r = poll(&pf, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			if (o.delay_s > 0 && stopped < 0 && o.delay_s < o.timeout_s) {
				stopped = now_s() - t0;
				stop_child(pid, o.hook);
				continue;
			}
			timed_out = 1;
			kill(pid, SIGKILL);
			break;
		}
		size_t room = OUT_MAX - cap.len;
		char scratch[4096];
		ssize_t n = read(p[0], room ? cap.buf + cap.len : scratch, room ? room : sizeof(scratch));
		t = now_s();
		if (n <= 0)
			break;
		if (!room)
			continue;
		if (first < 0)
			first = t - t0;
		size_t prev = cap.len;
		cap.len += (size_t)n;
		cap.buf[cap.len] = 0;
		if (cap.nchunks < CHUNKS_MAX) {
			cap.chunk_end[cap.nchunks] = cap.len;
			cap.chunk_t[cap.nchunks++] = t;
		}
		if (o.mark && mark < 0) {
			char *m = strstr(cap.buf, o.mark);
			if (m)
				mark = byte_time(&cap, (size_t)(m - cap.buf)) - t0;
		}
		/* Search only where a new match can end: in this read. */
		if (o.goal && goal < 0) {
			size_t gl = strlen(o.goal);
			if (strstr(cap.buf + (prev > gl ? prev - gl : 0), o.goal))
				goal = t - t0;
		}
		if (o.stop && stopped < 0) {
			size_t sl = strlen(o.stop);
			if (strstr(cap.buf + (prev > sl ? prev - sl : 0), o.stop)) {
				stopped = t - t0;
				stop_child(pid, o.hook);
			}
		}
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("spawn: wait4");
		return 1;
	}
	end = now_s() - t0;
	if (o.out_path) {
		FILE *f = fopen(o.out_path, "w");
		if (f) {
			fwrite(cap.buf, 1, cap.len, f);
			fclose(f);
		}
	}
	double user = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec * 1e-3;
	double sys = ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec * 1e-3;
	char st[32];
	if (timed_out)
		snprintf(st, sizeof(st), "timeout");
	else if (stopped >= 0)
		snprintf(st, sizeof(st), "stopped");
	else if (WIFEXITED(status))
		snprintf(st, sizeof(st), "exit%d", WEXITSTATUS(status));
	else
		snprintf(st, sizeof(st), "signal%d", WTERMSIG(status));
	printf("wall_ms=%.3f first_ms=%.3f mark_ms=%.3f goal_ms=%.3f stop_ms=%.3f user_ms=%.3f "
	       "sys_ms=%.3f cpu_ms=%.3f status=%s\n",
	       end * 1e3, first * 1e3, mark * 1e3, goal * 1e3, stopped * 1e3, user, sys, user + sys,
	       st);
	return 0;
}
