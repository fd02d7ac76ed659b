/* SPDX-License-Identifier: MIT */
/* log.h: leveled logging to stderr, and a rate limiter for guest-triggered messages. */
#ifndef KVMM_BASE_LOG_H
#define KVMM_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Send log lines to fd (default 2). */
void log_set_fd(int fd);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * Rate limit: at most `burst` messages per `interval_ms`; the owner keeps one
 * per message site (guest misbehaviour must not flood the log).
 */
struct ratelimit {
	uint64_t interval_ms;
	unsigned burst;
	uint64_t window_start_ms;
	unsigned printed;
	unsigned suppressed;
};
#define RATELIMIT_INIT(ms, n) { .interval_ms = (ms), .burst = (n) }
bool ratelimit_ok(struct ratelimit *rl);

#endif
