// SPDX-License-Identifier: MIT
/* vsock-peer.c: a one-shot AF_VSOCK peer for the rig (busybox has none): listen, or connect and send a line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, 1);

		if (r <= 0)
			break;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return (int)n;
}

/* listen PORT: accept one connection, read a line, answer "pong:LINE", print "got LINE". */
static int do_listen(unsigned port)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
	char line[256], reply[300];
	int s = socket(AF_VSOCK, SOCK_STREAM, 0), c;

	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1)) {
		printf("vsock-peer: listen %u: %s\n", port, strerror(errno));
		return 1;
	}
	printf("listening %u\n", port);
	fflush(stdout);
	c = accept(s, NULL, NULL);
	if (c < 0) {
		printf("vsock-peer: accept: %s\n", strerror(errno));
		return 1;
	}
	read_line(c, line, sizeof(line));
	snprintf(reply, sizeof(reply), "pong:%s\n", line);
	if (write(c, reply, strlen(reply)) < 0)
		return 1;
	printf("got %s\n", line);
	close(c);
	close(s);
	return 0;
}

/* connect CID PORT MSG: retry for up to 60 s (the peer may not listen yet), send MSG, print the reply. */
static int do_connect(unsigned cid, unsigned port, const char *msg)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	char line[256];
	int s = -1, tries;

	for (tries = 0; tries < 120; tries++) {
		s = socket(AF_VSOCK, SOCK_STREAM, 0);
		if (s < 0) {
			printf("vsock-peer: socket: %s\n", strerror(errno));
			return 1;
		}
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		close(s);
		s = -1;
		usleep(500000);
	}
	if (s < 0) {
		printf("vsock-peer: connect %u:%u: %s\n", cid, port, strerror(errno));
		return 1;
	}
	if (write(s, msg, strlen(msg)) < 0 || write(s, "\n", 1) < 0)
		return 1;
	read_line(s, line, sizeof(line));
	printf("reply %s\n", line);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "listen"))
		return do_listen((unsigned)strtoul(argv[2], NULL, 0));
	if (argc == 5 && !strcmp(argv[1], "connect"))
		return do_connect((unsigned)strtoul(argv[2], NULL, 0),
				  (unsigned)strtoul(argv[3], NULL, 0), argv[4]);
	fprintf(stderr, "usage: vsock-peer listen PORT | connect CID PORT MESSAGE\n");
	return 2;
}
