/* SPDX-License-Identifier: MIT */
/* snapshot.h: the on-disk snapshot format (docs/snapshot-format.md) and its reader/writer. */
#ifndef KVMM_VMM_SNAPSHOT_H
#define KVMM_VMM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

struct err;
struct vm_config;

#define SNAP_MAGIC "KVMMSNAP"
#define SNAP_VERSION 1

enum snap_section {
	SNAP_SEC_VM = 1,      /* KVM VM state: irqchip, PIT, clock */
	SNAP_SEC_VCPU = 2,    /* index = vCPU */
	SNAP_SEC_DEVICE = 3,  /* index = legacy device table position */
	SNAP_SEC_VIRTIO = 4,  /* index = virtio device position */
	SNAP_SEC_END = 0xffff,
};

struct snap_section_view {
	uint32_t type, index;
	const uint8_t *data;
	uint64_t len;
};

/* A parsed, checksum-verified state.bin held in memory. */
struct snap_state {
	uint8_t *buf;
	size_t len;
	unsigned n;
	struct snap_section_view *sec;
	uint64_t mem_size;
};

/* Writer: sections are appended to a buffer, then written with the memory into DIR. */
int snap_add(struct sbuf *out, uint32_t type, uint32_t index, const void *data, uint64_t len);
/*
 * Write DIR atomically: DIR.tmp-PID gets vm.json, memory.bin and state.bin
 * (fsynced), then is renamed to DIR. On any failure nothing named DIR appears.
 */
int snap_write_dir(const char *dir, const char *config_json, const struct sbuf *sections,
		   const uint8_t *ram, uint64_t ram_size, struct err *e);

/* The state record (header, sections, checksummed END) as written to state.bin. */
int snap_encode_state(const struct sbuf *sections, uint64_t mem_size, struct sbuf *all);
/* Verify a state record; st takes ownership of buf (malloc'ed) even on failure. */
int snap_parse_state(uint8_t *buf, size_t len, struct snap_state *st, struct err *e);
int snap_parse_config(const char *text, size_t len, struct vm_config *cfg, struct err *e);

/* Reader: verify and load DIR/state.bin; fill cfg from DIR/vm.json. */
int snap_read_state(const char *dir, struct snap_state *st, struct err *e);
void snap_state_free(struct snap_state *st);
const struct snap_section_view *snap_find(const struct snap_state *st, uint32_t type,
					  uint32_t index);
int snap_read_config(const char *dir, struct vm_config *cfg, struct err *e);
/* The VM configuration as the JSON that vm.json holds (caller frees). */
char *snap_config_json(const struct vm_config *cfg);

#endif
