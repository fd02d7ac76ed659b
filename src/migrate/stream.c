// SPDX-License-Identifier: MIT
/* stream.c: migration stream framing and TCP endpoints. */
#include "migrate/stream.h"

#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "base/err.h"
#include "base/util.h"

struct mig_file_hdr {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
};

int mig_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mig_send_header(int fd)
{
	struct mig_file_hdr h = { .version = MIG_VERSION, .page_size = MIG_PAGE };

	memcpy(h.magic, MIG_MAGIC, 8);
	return write_all(fd, &h, sizeof(h));
}

int mig_recv_header(int fd, struct err *e)
{
	struct mig_file_hdr h;
	int r = mig_read_full(fd, &h, sizeof(h));

	if (r)
		return err_set(e, -r, "migration stream: %s", strerror(-r));
	if (memcmp(h.magic, MIG_MAGIC, 8))
		return err_set(e, EPROTO, "migration stream: not a kvmm migration");
	if (h.version != MIG_VERSION || h.page_size != MIG_PAGE)
		return err_set(e, EPROTO, "migration stream: version %u (page size %u), this kvmm "
			       "speaks version %u", h.version, h.page_size, MIG_VERSION);
	return 0;
}

int mig_send(int fd, uint32_t type, const void *data, size_t len)
{
	struct mig_msg_hdr h = {
		.type = type,
		.crc = (uint32_t)crc32(0, data, (uInt)len),
		.len = len,
	};
	int r = write_all(fd, &h, sizeof(h));

	return r || !len ? r : write_all(fd, data, len);
}

int mig_recv(int fd, uint32_t *type, uint8_t **buf, size_t *len, struct err *e)
{
	struct mig_msg_hdr h;
	uint8_t *p = NULL;
	int r;

	*buf = NULL;
	r = mig_read_full(fd, &h, sizeof(h));
	if (r)
		return err_set(e, -r, "migration stream: %s",
			       r == -ECONNRESET ? "connection closed" : strerror(-r));
	if (h.len > MIG_MAX_MSG || h.type < MIG_MSG_CONFIG || h.type > MIG_MSG_NACK)
		return err_set(e, EPROTO, "migration stream: bad message (type %u, %llu bytes)",
			       h.type, (unsigned long long)h.len);
	if (h.len) {
		p = malloc(h.len);
		if (!p)
			return err_set(e, ENOMEM, "out of memory");
		r = mig_read_full(fd, p, h.len);
		if (r) {
			free(p);
			return err_set(e, -r, "migration stream: %s", strerror(-r));
		}
	}
	if ((uint32_t)crc32(0, p, (uInt)h.len) != h.crc) {
		free(p);
		return err_set(e, EPROTO, "migration stream: checksum mismatch (corrupted stream)");
	}
	*type = h.type;
	*buf = p;
	*len = h.len;
	return 0;
}

/* Split "tcp:HOST:PORT" (HOST may be empty, or [v6]). */
static int parse_uri(const char *uri, char *host, size_t hlen, char *port, size_t plen)
{
	const char *h, *colon;

	if (strncmp(uri, "tcp:", 4))
		return -EINVAL;
	h = uri + 4;
	colon = strrchr(h, ':');
	if (!colon || !colon[1] || (size_t)(colon - h) >= hlen || strlen(colon + 1) >= plen)
		return -EINVAL;
	if (h[0] == '[' && colon > h && colon[-1] == ']') {
		memcpy(host, h + 1, (size_t)(colon - h - 2));
		host[colon - h - 2] = '\0';
	} else {
		memcpy(host, h, (size_t)(colon - h));
		host[colon - h] = '\0';
	}
	strcpy(port, colon + 1);
	return 0;
}

static int resolve(const char *uri, bool passive, struct addrinfo **res, struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0 };
	char host[256], port[16];
	int r;

	if (parse_uri(uri, host, sizeof(host), port, sizeof(port)))
		return err_set(e, EINVAL, "migration URI '%s': use tcp:HOST:PORT", uri);
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
	if (r)
		return err_set(e, EINVAL, "migration URI '%s': %s", uri, gai_strerror(r));
	return 0;
}

/* Connect fd to ai, or (passive) bind it there and listen: 0, or -1 with errno set. */
static int attach(int fd, const struct addrinfo *ai, bool passive)
{
	int one = 1;

	if (!passive)
		return connect(fd, ai->ai_addr, ai->ai_addrlen);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen))
		return -1;
	return listen(fd, 1);
}

/* A socket on the first of uri's addresses that takes it: connected, or listening. */
static int open_uri(const char *uri, bool passive, struct err *e)
{
	struct addrinfo *res, *ai;
	int fd = -1, en = passive ? EADDRNOTAVAIL : ECONNREFUSED;

	if (resolve(uri, passive, &res, e))
		return -EINVAL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (attach(fd, ai, passive) == 0)
			break;
		en = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err_set(e, en, passive ? "cannot listen on %s: %s" : "cannot connect to %s: %s",
			       uri, strerror(en));
	return fd;
}

int mig_connect(const char *uri, struct err *e)
{
	int fd = open_uri(uri, false, e), one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int mig_listen(const char *uri, struct err *e)
{
	return open_uri(uri, true, e);
}
