/* SPDX-License-Identifier: MIT */
/* migrate.h: live migration over TCP: pre-copy with dirty logging, throttling, cancel (docs/migration.md). */
#ifndef KVMM_MIGRATE_MIGRATE_H
#define KVMM_MIGRATE_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

struct err;
struct vm;
struct vm_config;
struct migration;

struct migrate_params {
	char uri[256];          /* tcp:HOST:PORT */
	uint64_t downtime_ms;   /* stop-and-copy when the rest fits in this (default 300) */
	uint64_t bandwidth;     /* bytes/s, 0 = unlimited */
	bool auto_converge;     /* throttle vCPUs when the guest dirties faster than the link */
	unsigned max_rounds;    /* then stop-and-copy anyway (default 30) */
};

enum migrate_state { MIG_NONE, MIG_ACTIVE, MIG_COMPLETED, MIG_FAILED, MIG_CANCELLED };

struct migrate_status {
	enum migrate_state state;
	char error[256];
	unsigned rounds;
	uint64_t pages_sent, bytes_sent, dirty_pages, dirty_rate; /* pages/s */
	uint64_t expected_downtime_ms, downtime_ms, total_ms, throughput; /* bytes/s */
	int throttle_pct;
	bool downtime_exceeded; /* max_rounds reached before the dirty set fit the limit */
};

/* Source: start migrating vm in a thread; the VM keeps running; on success it stops. */
int migrate_start(struct vm *vm, const struct migrate_params *p, struct migration **out,
		  struct err *e);
void migrate_get_status(struct migration *m, struct migrate_status *st);
/* Ask the thread to stop; the source VM keeps running as before. */
void migrate_cancel(struct migration *m);
/* Join and free a finished migration (blocks until the thread ends). */
void migrate_free(struct migration *m);
const char *migrate_state_name(enum migrate_state s);

/* Destination: accept one connection on uri and read the VM configuration from it. */
int migrate_incoming_accept(const char *uri, int *fd, struct vm_config *cfg, struct err *e);
/* Receive memory and state into a VM created from that configuration, then acknowledge. */
int migrate_incoming_receive(int fd, struct vm *vm, struct err *e);

#endif
