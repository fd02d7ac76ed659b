// SPDX-License-Identifier: MIT
/* fuzz_migrate.c: libFuzzer harness: an incoming migration stream, as a hostile or broken source could send it, read through mig_recv_header()/mig_recv() from a socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "base/err.h"
#include "config.h"
#include "migrate/stream.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

/*
 * Input: byte 0 is a mode, the rest is the stream.
 *   bit 0 set: every message's crc32 is recomputed before sending, so the fuzzer gets past
 *     the checksum to the message handling below; clear: the bytes go as they are.
 *   bit 1 set: the stream starts with a valid header (the fuzzer spends no effort on it).
 * The receiver below is the destination's loop (migrate_incoming_receive) without a VM:
 * pages go into a small RAM buffer, the configuration and the state record through their
 * parsers. Whatever it reads, every frame it accepts must be consistent, and a refusal
 * must say why.
 */

#define RAM_PAGES 64
#define HDR_LEN 16 /* magic[8], u32 version, u32 page_size */
#define MSG_HDR 16 /* u32 type, u32 crc, u64 len */

static void fix_crcs(uint8_t *b, size_t len, size_t off)
{
	while (off + MSG_HDR <= len) {
		uint64_t n;
		uint32_t crc;

		memcpy(&n, b + off + 8, 8);
		if (n > len - off - MSG_HDR)
			return;
		crc = (uint32_t)crc32(0, b + off + MSG_HDR, (uInt)n);
		memcpy(b + off + 4, &crc, 4);
		off += MSG_HDR + n;
	}
}

/* The destination's checks on one message; 0 to go on, -1 when it would refuse. */
static int handle(uint32_t type, uint8_t *buf, size_t len, uint8_t *ram, int *have_config,
		  int *have_state)
{
	static struct vm_config cfg;
	struct snap_state st;
	struct err e = { "" };
	const size_t rec = 8 + MIG_PAGE;
	size_t i;

	if (!*have_config) {
		if (type != MIG_MSG_CONFIG)
			return -1;
		memset(&cfg, 0, sizeof(cfg));
		i = snap_parse_config((const char *)buf, len, &cfg, &e) ? 1 : 0;
		free_config(&cfg);
		*have_config = 1;
		return i ? -1 : 0;
	}
	switch (type) {
	case MIG_MSG_PAGES:
		if (len % rec)
			return -1;
		for (i = 0; i < len / rec; i++) {
			uint64_t pg;

			memcpy(&pg, buf + i * rec, 8);
			if (pg >= RAM_PAGES)
				return -1;
			memcpy(ram + pg * MIG_PAGE, buf + i * rec + 8, MIG_PAGE);
		}
		return 0;
	case MIG_MSG_STATE: {
		uint8_t *copy;

		if (*have_state)
			return -1;
		copy = malloc(len ? len : 1);
		if (!copy)
			return -1;
		if (len)
			memcpy(copy, buf, len);
		if (snap_parse_state(copy, len, &st, &e)) /* owns copy */
			return e.msg[0] ? -1 : (abort(), -1);
		snap_state_free(&st);
		*have_state = 1;
		return 0;
	}
	case MIG_MSG_DONE:
		return *have_state ? 1 : -1;
	default:
		return -1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t ram[RAM_PAGES * MIG_PAGE];
	static const uint8_t good_hdr[HDR_LEN] = { 'K', 'V', 'M', 'M', 'M', 'I', 'G', 0,
						   1, 0, 0, 0, 0, 0x10, 0, 0 };
	int sv[2], have_config = 0, have_state = 0, r;
	size_t len, pre;
	uint8_t *stream, mode;
	struct err e = { "" };

	if (size < 1 || size > 1 << 20)
		return 0;
	mode = data[0];
	data++;
	size--;
	pre = mode & 2 ? HDR_LEN : 0;
	len = pre + size;
	stream = malloc(len ? len : 1);
	if (!stream)
		return 0;
	memcpy(stream, good_hdr, pre);
	memcpy(stream + pre, data, size);
	if (mode & 1)
		fix_crcs(stream, len, HDR_LEN);

	/* The whole stream goes in first (the socket buffer is made big enough), then EOF. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	r = (int)len + 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &r, sizeof(r));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &r, sizeof(r));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(sv[0], stream + off, len - off);

		if (n <= 0)
			break; /* buffer full: the reader sees a truncated stream, which is fine */
		off += (size_t)n;
	}
	close(sv[0]);
	free(stream);

	if (mig_recv_header(sv[1], &e)) {
		if (!e.msg[0])
			abort();
		close(sv[1]);
		return 0;
	}
	for (;;) {
		uint32_t type = 0;
		uint8_t *buf = NULL;
		size_t n = 0;

		e.msg[0] = '\0';
		if (mig_recv(sv[1], &type, &buf, &n, &e)) {
			if (!e.msg[0] || buf)
				abort(); /* a refusal says why and hands out nothing */
			break;
		}
		/* An accepted frame: a known type, a bounded length, a buffer iff a payload. */
		if (type < MIG_MSG_CONFIG || type > MIG_MSG_NACK || n > MIG_MAX_MSG ||
		    (n && !buf) || (!n && buf))
			abort();
		r = handle(type, buf, n, ram, &have_config, &have_state);
		free(buf);
		if (r)
			break;
	}
	close(sv[1]);
	return 0;
}
