// SPDX-License-Identifier: MIT
/* migrate.c: live migration: the source's pre-copy thread and the destination's receiver. */
#include "migrate/migrate.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "base/util.h"
#include "migrate/stream.h"
#include "vmm/mem.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define BATCH_PAGES 256
#define ACK_TIMEOUT_MS 30000
#define THROTTLE_SLICE_NS (10 * 1000000ULL)

struct migration {
	struct vm *vm;
	struct migrate_params p;
	pthread_t thread;
	int fd;
	atomic_bool cancel;
	pthread_mutex_t lock;
	struct migrate_status st;
	uint64_t last_kick;
};

const char *migrate_state_name(enum migrate_state s)
{
	static const char *const names[] = { "none", "active", "completed", "failed", "cancelled" };

	return s <= MIG_CANCELLED ? names[s] : "?";
}

static void set_status(struct migration *m, void (*fn)(struct migrate_status *, void *), void *arg)
{
	pthread_mutex_lock(&m->lock);
	fn(&m->st, arg);
	pthread_mutex_unlock(&m->lock);
}

static void st_fail(struct migrate_status *st, void *msg)
{
	if (st->state == MIG_ACTIVE) {
		st->state = MIG_FAILED;
		snprintf(st->error, sizeof(st->error), "%s", (const char *)msg);
	}
}

/* While throttling, kick the vCPUs each slice so they pass through the throttle. */
static void maybe_kick(struct migration *m)
{
	uint64_t now = time_ns();

	if (m->st.throttle_pct > 0 && now - m->last_kick >= THROTTLE_SLICE_NS) {
		vm_kick_vcpus(m->vm);
		m->last_kick = now;
	}
}

/* Send the pages whose bits are set in bm, in batches; clears nothing. */
static int send_pages(struct migration *m, const uint64_t *bm, uint64_t npages, bool skip_zero,
		      uint64_t *sent)
{
	struct guest_mem *gm = vm_memory(m->vm);
	static const uint8_t zero[MIG_PAGE];
	size_t rec = 8 + MIG_PAGE;
	uint8_t *buf = malloc(BATCH_PAGES * rec);
	uint64_t pg, t0 = time_ns(), bytes = 0;
	unsigned n = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	*sent = 0;
	for (pg = 0; pg < npages && !r; pg++) {
		const uint8_t *src = gm->host + pg * MIG_PAGE;

		if (!(bm[pg / 64] & (1ULL << (pg % 64))))
			continue;
		if (skip_zero && !memcmp(src, zero, MIG_PAGE))
			continue;
		memcpy(buf + n * rec, &pg, 8);
		memcpy(buf + n * rec + 8, src, MIG_PAGE);
		if (++n == BATCH_PAGES || pg + 1 == npages) {
			r = mig_send(m->fd, MIG_MSG_PAGES, buf, n * rec);
			bytes += n * rec;
			*sent += n;
			n = 0;
			if (atomic_load(&m->cancel))
				r = -ECANCELED;
			/* Bandwidth limit: never ahead of bytes/bandwidth seconds. */
			if (!r && m->p.bandwidth) {
				uint64_t due = t0 + bytes * 1000000000ULL / m->p.bandwidth, now;

				/* Sleep in slices so throttled vCPUs keep being kicked. */
				while ((now = time_ns()) < due) {
					usleep((useconds_t)(MIN(due - now, THROTTLE_SLICE_NS) / 1000));
					maybe_kick(m);
				}
			}
			maybe_kick(m);
		}
	}
	if (!r && n) {
		r = mig_send(m->fd, MIG_MSG_PAGES, buf, n * rec);
		bytes += n * rec;
		*sent += n;
	}
	free(buf);
	pthread_mutex_lock(&m->lock);
	m->st.pages_sent += *sent;
	m->st.bytes_sent += bytes;
	pthread_mutex_unlock(&m->lock);
	return r;
}

static uint64_t count_bits(const uint64_t *bm, size_t words)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(bm[i]);
	return n;
}

/* Wait for the destination's verdict on the final state. */
static int wait_ack(struct migration *m, char *why, size_t len)
{
	struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
	struct err e = { "" };
	uint32_t type;
	uint8_t *buf;
	size_t n;

	if (poll(&pfd, 1, ACK_TIMEOUT_MS) <= 0) {
		snprintf(why, len, "no answer from the destination");
		return -ETIMEDOUT;
	}
	if (mig_recv(m->fd, &type, &buf, &n, &e)) {
		snprintf(why, len, "%s", e.msg);
		return -EPROTO;
	}
	if (type != MIG_MSG_ACK) {
		snprintf(why, len, "destination refused: %.*s", (int)MIN(n, 200), buf ? (char *)buf : "");
		free(buf);
		return -EPROTO;
	}
	free(buf);
	return 0;
}

static void *migrate_thread(void *arg)
{
	struct migration *m = arg;
	struct vm *vm = m->vm;
	struct guest_mem *gm = vm_memory(vm);
	uint64_t npages = gm->size / MIG_PAGE, sent, dirty = 0, prev_dirty = UINT64_MAX, t_start,
		 t_pause = 0;
	size_t words = (size_t)((npages + 63) / 64);
	uint64_t *bm = calloc(words, sizeof(uint64_t));
	struct sbuf secs = { 0 }, all = { 0 };
	char why[600] = "";
	struct err e = { "" };
	bool paused = false, logging = false;
	char *json = NULL;
	int r;

	t_start = time_ns();
	if (!bm) {
		snprintf(why, sizeof(why), "out of memory");
		goto fail;
	}
	json = snap_config_json(vm_get_config(vm));
	r = json ? mig_send_header(m->fd) : -ENOMEM;
	if (!r)
		r = mig_send(m->fd, MIG_MSG_CONFIG, json, strlen(json));
	if (r) {
		snprintf(why, sizeof(why), "cannot send to the destination: %s", strerror(-r));
		goto fail;
	}
	if (vm_dirty_start(vm, &e)) {
		snprintf(why, sizeof(why), "%s", e.msg);
		goto fail;
	}
	logging = true;

	/* Round 0: everything that is not zero (the destination's RAM starts zeroed). */
	memset(bm, 0xff, words * sizeof(uint64_t));
	for (;;) {
		uint64_t t0 = time_ns(), elapsed, thr;

		r = send_pages(m, bm, npages, m->st.rounds == 0, &sent);
		if (r) {
			snprintf(why, sizeof(why), r == -ECANCELED ? "cancelled" :
				 "sending memory failed: %s", strerror(-r));
			goto fail;
		}
		elapsed = MAX(time_ns() - t0, 1000ULL);
		memset(bm, 0, words * sizeof(uint64_t));
		if (vm_dirty_collect(vm, bm)) {
			snprintf(why, sizeof(why), "cannot read the dirty log");
			goto fail;
		}
		dirty = count_bits(bm, words);
		thr = sent ? sent * MIG_PAGE * 1000000000ULL / elapsed : 0;
		pthread_mutex_lock(&m->lock);
		m->st.rounds++;
		if (thr)
			m->st.throughput = thr;
		m->st.dirty_pages = dirty;
		m->st.dirty_rate = dirty * 1000000000ULL / elapsed;
		m->st.expected_downtime_ms = m->st.throughput ?
			dirty * MIG_PAGE * 1000 / m->st.throughput : 0;
		pthread_mutex_unlock(&m->lock);
		if (m->st.throughput && m->st.expected_downtime_ms <= m->p.downtime_ms)
			break;
		if (m->st.rounds >= m->p.max_rounds) {
			/* Stop-and-copy anyway, but say that the limit will not hold. */
			log_warn("migration: %u rounds without converging; expected downtime %llu ms "
				 "exceeds the %llu ms limit", m->st.rounds,
				 (unsigned long long)m->st.expected_downtime_ms,
				 (unsigned long long)m->p.downtime_ms);
			pthread_mutex_lock(&m->lock);
			m->st.downtime_exceeded = true;
			pthread_mutex_unlock(&m->lock);
			break;
		}
		/* Not converging: slow the vCPUs down, more each round (auto-converge). */
		if (m->p.auto_converge && m->st.rounds >= 2 && dirty * 10 >= prev_dirty * 9) {
			pthread_mutex_lock(&m->lock);
			m->st.throttle_pct = MIN(m->st.throttle_pct ? m->st.throttle_pct + 20 : 30, 99);
			pthread_mutex_unlock(&m->lock);
			vm_set_throttle(vm, m->st.throttle_pct);
		}
		prev_dirty = dirty;
		if (atomic_load(&m->cancel)) {
			snprintf(why, sizeof(why), "cancelled");
			goto fail;
		}
	}

	/* Stop-and-copy: the guest is paused from here until the destination answers. */
	t_pause = time_ns();
	vm_pause(vm);
	paused = true;
	vm_set_throttle(vm, 0);
	vm_drain_devices(vm);
	r = vm_dirty_collect(vm, bm);
	if (!r)
		r = send_pages(m, bm, npages, false, &sent);
	if (!r && vm_save_sections(vm, &secs, &e) == 0) {
		r = snap_encode_state(&secs, gm->size, &all);
		if (!r)
			r = mig_send(m->fd, MIG_MSG_STATE, all.data, all.len);
		if (!r)
			r = mig_send(m->fd, MIG_MSG_DONE, NULL, 0);
	} else if (!r) {
		snprintf(why, sizeof(why), "%s", e.msg);
		goto fail;
	}
	if (r) {
		snprintf(why, sizeof(why), r == -ECANCELED ? "cancelled" : "sending the final state "
			 "failed: %s", strerror(-r));
		goto fail;
	}
	if (wait_ack(m, why, sizeof(why)))
		goto fail;

	pthread_mutex_lock(&m->lock);
	m->st.state = MIG_COMPLETED;
	m->st.downtime_ms = (time_ns() - t_pause) / 1000000;
	m->st.total_ms = (time_ns() - t_start) / 1000000;
	pthread_mutex_unlock(&m->lock);
	log_info("migrated to %s: %u rounds, %llu pages, downtime %llu ms", m->p.uri, m->st.rounds,
		 (unsigned long long)m->st.pages_sent, (unsigned long long)m->st.downtime_ms);
	vm_migrated(vm, "migrated to the destination");
	goto out;
fail:
	/* Whatever went wrong, the source goes on exactly as before. */
	vm_set_throttle(vm, 0);
	if (logging)
		vm_dirty_stop(vm);
	if (paused)
		vm_resume(vm);
	pthread_mutex_lock(&m->lock);
	if (atomic_load(&m->cancel) && m->st.state == MIG_ACTIVE) {
		m->st.state = MIG_CANCELLED;
		snprintf(m->st.error, sizeof(m->st.error), "cancelled");
	}
	m->st.total_ms = (time_ns() - t_start) / 1000000;
	pthread_mutex_unlock(&m->lock);
	set_status(m, st_fail, why);
	log_warn("migration to %s failed: %s; the VM keeps running here", m->p.uri, why);
out:
	vm_set_migrating(vm, false);
	shutdown(m->fd, SHUT_RDWR);
	free(json);
	free(bm);
	sbuf_free(&secs);
	sbuf_free(&all);
	return NULL;
}

int migrate_start(struct vm *vm, const struct migrate_params *p, struct migration **out,
		  struct err *e)
{
	struct migration *m;
	int fd;

	if (vm_migrating(vm))
		return err_set(e, EBUSY, "a migration is already running");
	if (vm_paused(vm))
		return err_set(e, EBUSY, "the VM is paused: resume it first");
	fd = mig_connect(p->uri, e);
	if (fd < 0)
		return fd;
	m = calloc(1, sizeof(*m));
	if (!m) {
		close(fd);
		return err_set(e, ENOMEM, "out of memory");
	}
	m->vm = vm;
	m->p = *p;
	if (!m->p.downtime_ms)
		m->p.downtime_ms = 300;
	if (!m->p.max_rounds)
		m->p.max_rounds = 30;
	m->fd = fd;
	m->st.state = MIG_ACTIVE;
	pthread_mutex_init(&m->lock, NULL);
	vm_set_migrating(vm, true);
	if (pthread_create(&m->thread, NULL, migrate_thread, m)) {
		vm_set_migrating(vm, false);
		close(fd);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return err_set(e, EAGAIN, "cannot start the migration thread");
	}
	*out = m;
	return 0;
}

void migrate_get_status(struct migration *m, struct migrate_status *st)
{
	pthread_mutex_lock(&m->lock);
	*st = m->st;
	pthread_mutex_unlock(&m->lock);
}

void migrate_cancel(struct migration *m)
{
	atomic_store(&m->cancel, true);
	/* Unblock a send stuck on a dead link. */
	shutdown(m->fd, SHUT_RDWR);
}

void migrate_free(struct migration *m)
{
	if (!m)
		return;
	pthread_join(m->thread, NULL);
	close(m->fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* --- destination --- */

int migrate_incoming_accept(const char *uri, int *fdp, struct vm_config *cfg, struct err *e)
{
	uint32_t type;
	uint8_t *buf;
	size_t len;
	int ls, fd, r;

	ls = mig_listen(uri, e);
	if (ls < 0)
		return ls;
	log_info("waiting for an incoming migration on %s", uri);
	do {
		fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	close(ls);
	if (fd < 0)
		return err_set(e, errno, "accept on %s: %s", uri, strerror(errno));
	r = mig_recv_header(fd, e);
	if (!r)
		r = mig_recv(fd, &type, &buf, &len, e);
	if (!r && type != MIG_MSG_CONFIG) {
		free(buf);
		r = err_set(e, EPROTO, "migration stream: configuration expected first");
	}
	if (!r) {
		r = snap_parse_config((const char *)buf, len, cfg, e);
		free(buf);
	}
	if (r) {
		close(fd);
		return r;
	}
	*fdp = fd;
	return 0;
}

int migrate_incoming_receive(int fd, struct vm *vm, struct err *e)
{
	struct guest_mem *gm = vm_memory(vm);
	uint64_t npages = gm->size / MIG_PAGE;
	struct snap_state st = { 0 };
	bool have_state = false;
	const size_t rec = 8 + MIG_PAGE;
	int r = 0;

	for (;;) {
		uint32_t type;
		uint8_t *buf;
		size_t len, i;

		r = mig_recv(fd, &type, &buf, &len, e);
		if (r)
			break;
		if (type == MIG_MSG_PAGES) {
			if (len % rec) {
				free(buf);
				r = err_set(e, EPROTO, "migration stream: malformed page batch");
				break;
			}
			for (i = 0; i < len / rec; i++) {
				uint64_t pg;

				memcpy(&pg, buf + i * rec, 8);
				if (pg >= npages) {
					r = err_set(e, EPROTO, "migration stream: page %llu beyond guest RAM",
						    (unsigned long long)pg);
					break;
				}
				memcpy(gm->host + pg * MIG_PAGE, buf + i * rec + 8, MIG_PAGE);
			}
			free(buf);
			if (r)
				break;
		} else if (type == MIG_MSG_STATE && !have_state) {
			/* st owns buf from here. */
			r = snap_parse_state(buf, len, &st, e);
			if (!r && st.mem_size != gm->size)
				r = err_set(e, EPROTO, "migration stream: memory size mismatch");
			if (!r)
				r = vm_load_sections(vm, &st, e);
			if (r)
				break;
			have_state = true;
		} else if (type == MIG_MSG_DONE && have_state) {
			free(buf);
			r = mig_send(fd, MIG_MSG_ACK, NULL, 0);
			if (r)
				err_set(e, -r, "cannot acknowledge the migration: %s", strerror(-r));
			break;
		} else {
			free(buf);
			r = err_set(e, EPROTO, "migration stream: unexpected message %u", type);
			break;
		}
	}
	if (r && e->msg[0])
		mig_send(fd, MIG_MSG_NACK, e->msg, strlen(e->msg));
	snap_state_free(&st);
	return r;
}
