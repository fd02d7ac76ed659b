/* SPDX-License-Identifier: MIT */
/* control.h: the per-VM control socket (newline-delimited JSON, docs/control-protocol.md). */
#ifndef KVMM_VMM_CONTROL_H
#define KVMM_VMM_CONTROL_H

#include <stddef.h>

struct err;
struct vm;
struct control;

#define CONTROL_PROTOCOL_VERSION 1
#define CONTROL_MAX_LINE 65536

/* Where sockets live: $KVMM_RUNTIME_DIR, /run/kvmm (root), $XDG_RUNTIME_DIR/kvmm, /tmp/kvmm-UID. */
int control_runtime_dir(char *buf, size_t len);
/* Names: 1-64 characters of [A-Za-z0-9._-], not starting with '.'. */
int control_check_name(const char *name, struct err *e);
int control_socket_path(const char *name, char *buf, size_t len, struct err *e);

/*
 * Create the listening socket for VM `name` (refused when a live VM already
 * has it; a stale socket of a dead VM is replaced).
 */
int control_open(const char *name, struct control **out, struct err *e);
/* Close every connection and remove the socket. */
void control_close(struct control *c);
/* Serve requests for vm from its event loop (vm_run calls these). */
int control_attach(struct control *c, struct vm *vm);
void control_detach(struct control *c, struct vm *vm);

#endif
