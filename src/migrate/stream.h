/* SPDX-License-Identifier: MIT */
/* stream.h: the migration stream's framing: a versioned header and CRC-checked messages. */
#ifndef KVMM_MIGRATE_STREAM_H
#define KVMM_MIGRATE_STREAM_H

#include <stddef.h>
#include <stdint.h>

struct err;

#define MIG_MAGIC "KVMMMIG\0"
#define MIG_VERSION 1
#define MIG_MAX_MSG (64u << 20)
#define MIG_PAGE 4096u

enum mig_msg_type {
	MIG_MSG_CONFIG = 1, /* vm.json text */
	MIG_MSG_PAGES = 2,  /* { u64 page index; u8 data[4096] } * n */
	MIG_MSG_STATE = 3,  /* the snapshot state record (sections, checksummed) */
	MIG_MSG_DONE = 4,   /* source: nothing more; destination answers ACK */
	MIG_MSG_ACK = 5,    /* destination: state applied, it takes over */
	MIG_MSG_NACK = 6,   /* destination: refused (text says why) */
};

struct mig_msg_hdr {
	uint32_t type;
	uint32_t crc; /* crc32 of the payload */
	uint64_t len;
};

int mig_send_header(int fd);
int mig_recv_header(int fd, struct err *e);
int mig_send(int fd, uint32_t type, const void *data, size_t len);
/* Receive one message: *buf is malloc'ed (NULL for len 0); -EPROTO on a bad frame. */
int mig_recv(int fd, uint32_t *type, uint8_t **buf, size_t *len, struct err *e);
int mig_read_full(int fd, void *buf, size_t len);
/* "tcp:HOST:PORT" -> connected or listening socket. */
int mig_connect(const char *uri, struct err *e);
int mig_listen(const char *uri, struct err *e);

#endif
