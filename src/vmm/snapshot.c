// SPDX-License-Identifier: MIT
/* snapshot.c: the snapshot directory: vm.json (configuration), state.bin (checksummed sections), memory.bin. */
#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/err.h"
#include "base/util.h"
#include "vmm/vm.h"

struct snap_header {
	char magic[8];
	uint32_t version;
	uint32_t nsections;
	uint64_t mem_size;
};

struct snap_sec_hdr {
	uint32_t type;
	uint32_t index;
	uint64_t len;
	uint32_t crc;
	uint32_t reserved;
};

#define SNAP_MAX_SECTIONS 1024

/* dir/name into path; false when it does not fit. */
static bool join(char *path, size_t len, const char *dir, const char *name)
{
	int n = snprintf(path, len, "%s/%s", dir, name);

	return n >= 0 && (size_t)n < len;
}
#define SNAP_MAX_STATE (256 * MiB)

int snap_add(struct sbuf *out, uint32_t type, uint32_t index, const void *data, uint64_t len)
{
	struct snap_sec_hdr h = {
		.type = type,
		.index = index,
		.len = len,
		.crc = (uint32_t)crc32(0, data, (uInt)len),
	};
	int r = sbuf_put(out, &h, sizeof(h));

	return r ? r : sbuf_put(out, data, len);
}

static int write_file(const char *dir, const char *name, const void *a, size_t alen, const void *b,
		      size_t blen, struct err *e)
{
	char path[PATH_MAX];
	int fd, r;

	if (!join(path, sizeof(path), dir, name))
		return err_set(e, ENAMETOOLONG, "snapshot path too long");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, errno, "%s: %s", path, strerror(errno));
	r = write_all(fd, a, alen);
	if (!r && blen)
		r = write_all(fd, b, blen);
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r ? err_set(e, -r, "%s: %s", path, strerror(-r)) : 0;
}

/* Guest RAM, leaving holes for all-zero pages (most of a fresh guest). */
static int write_memory(const char *dir, const uint8_t *ram, uint64_t size, struct err *e)
{
	static const uint8_t zero[4096];
	char path[PATH_MAX];
	uint64_t off;
	int fd, r = 0;

	if (!join(path, sizeof(path), dir, "memory.bin"))
		return err_set(e, ENAMETOOLONG, "snapshot path too long");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, errno, "%s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	for (off = 0; !r && off < size; off += 4096) {
		size_t n = (size_t)MIN(4096, size - off);

		if (!memcmp(ram + off, zero, n))
			continue;
		if (pwrite(fd, ram + off, n, (off_t)off) != (ssize_t)n)
			r = errno ? -errno : -EIO;
	}
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r ? err_set(e, -r, "%s: %s", path, strerror(-r)) : 0;
}

static void remove_dir(const char *dir)
{
	static const char *const names[] = { "vm.json", "state.bin", "memory.bin" };
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (join(path, sizeof(path), dir, names[i]))
			unlink(path);
	rmdir(dir);
}

int snap_encode_state(const struct sbuf *sections, uint64_t mem_size, struct sbuf *all)
{
	struct snap_sec_hdr end = { .type = SNAP_SEC_END };
	struct snap_header h;
	const uint8_t *p = sections->data;
	size_t off;
	uint32_t n = 0;
	int r;

	for (off = 0; off + sizeof(struct snap_sec_hdr) <= sections->len; n++) {
		struct snap_sec_hdr sh;

		memcpy(&sh, p + off, sizeof(sh));
		off += sizeof(sh) + sh.len;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = SNAP_VERSION;
	h.nsections = n + 1;
	h.mem_size = mem_size;
	/* The END section's checksum covers the header and every section before it. */
	r = sbuf_put(all, &h, sizeof(h));
	if (!r)
		r = sbuf_put(all, sections->data, sections->len);
	if (!r) {
		end.crc = (uint32_t)crc32(0, all->data, (uInt)all->len);
		r = sbuf_put(all, &end, sizeof(end));
	}
	return r;
}

int snap_write_dir(const char *dir, const char *config_json, const struct sbuf *sections,
		   const uint8_t *ram, uint64_t ram_size, struct err *e)
{
	char tmp[PATH_MAX];
	struct sbuf all = { 0 };
	int r;

	if (access(dir, F_OK) == 0)
		return err_set(e, EEXIST, "snapshot %s already exists", dir);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", dir, (int)getpid()) >= (int)sizeof(tmp))
		return err_set(e, ENAMETOOLONG, "snapshot path too long");
	if (mkdir(tmp, 0700) < 0)
		return err_set(e, errno, "cannot create %s: %s", tmp, strerror(errno));
	r = snap_encode_state(sections, ram_size, &all);
	if (r) {
		r = err_set(e, -r, "out of memory");
		goto fail;
	}
	/* state.bin last: a directory without it is never taken for a snapshot. */
	r = write_file(tmp, "vm.json", config_json, strlen(config_json), NULL, 0, e);
	if (!r)
		r = write_memory(tmp, ram, ram_size, e);
	if (!r)
		r = write_file(tmp, "state.bin", all.data, all.len, NULL, 0, e);
	if (r)
		goto fail;
	if (rename(tmp, dir) < 0) {
		r = err_set(e, errno, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
		goto fail;
	}
	sbuf_free(&all);
	return 0;
fail:
	sbuf_free(&all);
	remove_dir(tmp);
	return r;
}

int snap_read_state(const char *dir, struct snap_state *st, struct err *e)
{
	char path[PATH_MAX];
	uint8_t *buf;
	size_t len;
	int r;

	memset(st, 0, sizeof(*st));
	if (!join(path, sizeof(path), dir, "state.bin"))
		return err_set(e, ENAMETOOLONG, "snapshot path too long");
	r = read_file(path, SNAP_MAX_STATE, &buf, &len);
	if (r)
		return err_set(e, -r, "snapshot %s: cannot read state.bin: %s", dir,
			       r == -ENOENT ? "missing (incomplete snapshot?)" : strerror(-r));
	r = snap_parse_state(buf, len, st, e);
	if (r)
		return err_prefix(e, r, "snapshot %s", dir);
	return 0;
}

int snap_parse_state(uint8_t *buf, size_t len, struct snap_state *st, struct err *e)
{
	struct snap_header h;
	size_t off;
	unsigned i;
	int r;

	memset(st, 0, sizeof(*st));
	st->buf = buf;
	st->len = len;
	if (st->len < sizeof(h)) {
		r = err_set(e, EINVAL, "state is truncated");
		goto fail;
	}
	memcpy(&h, st->buf, sizeof(h));
	if (memcmp(h.magic, SNAP_MAGIC, 8)) {
		r = err_set(e, EINVAL, "not a kvmm state record");
		goto fail;
	}
	if (h.version != SNAP_VERSION) {
		r = err_set(e, EINVAL, "format version %u, this kvmm reads %u", h.version,
			    SNAP_VERSION);
		goto fail;
	}
	if (h.nsections == 0 || h.nsections > SNAP_MAX_SECTIONS) {
		r = err_set(e, EINVAL, "damaged (section count %u)", h.nsections);
		goto fail;
	}
	st->sec = calloc(h.nsections, sizeof(*st->sec));
	if (!st->sec) {
		r = err_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	st->mem_size = h.mem_size;
	for (off = sizeof(h), i = 0; i < h.nsections; i++) {
		struct snap_sec_hdr sh;

		if (!range_ok(off, sizeof(sh), st->len)) {
			r = err_set(e, EINVAL, "state is truncated");
			goto fail;
		}
		memcpy(&sh, st->buf + off, sizeof(sh));
		if (sh.type == SNAP_SEC_END) {
			/* The END header's own fields are fixed: any other value is damage. */
			if (sh.index || sh.len || sh.reserved ||
			    sh.crc != (uint32_t)crc32(0, st->buf, (uInt)off) ||
			    off + sizeof(sh) != st->len || i + 1 != h.nsections) {
				r = err_set(e, EINVAL, "damaged (checksum mismatch)");
				goto fail;
			}
			st->n = i;
			return 0;
		}
		off += sizeof(sh);
		if (sh.reserved || !range_ok(off, sh.len, st->len) ||
		    sh.crc != (uint32_t)crc32(0, st->buf + off, (uInt)sh.len)) {
			r = err_set(e, EINVAL, "damaged (section %u)", i);
			goto fail;
		}
		st->sec[i] = (struct snap_section_view){ sh.type, sh.index, st->buf + off, sh.len };
		off += sh.len;
	}
	r = err_set(e, EINVAL, "damaged (no end marker)");
fail:
	snap_state_free(st);
	return r;
}

void snap_state_free(struct snap_state *st)
{
	free(st->buf);
	free(st->sec);
	memset(st, 0, sizeof(*st));
}

const struct snap_section_view *snap_find(const struct snap_state *st, uint32_t type,
					  uint32_t index)
{
	unsigned i;

	for (i = 0; i < st->n; i++)
		if (st->sec[i].type == type && st->sec[i].index == index)
			return &st->sec[i];
	return NULL;
}

char *snap_config_json(const struct vm_config *cfg)
{
	json_t *disks = json_array(), *nets = json_array(), *root;
	char *s;
	unsigned i;

	for (i = 0; i < cfg->ndisks; i++)
		json_array_append_new(disks, json_pack("{s:s, s:b, s:s?, s:s?, s:i, s:s?, s:s?}",
						       "path", cfg->disks[i].path, "readonly",
						       cfg->disks[i].read_only, "format",
						       cfg->disks[i].format, "serial",
						       cfg->disks[i].serial, "queues",
						       (int)cfg->disks[i].queues, "snapshot",
						       cfg->disks[i].snap_mode, "snapshot_name",
						       cfg->disks[i].snap_name));
	for (i = 0; i < cfg->nnets; i++) {
		const struct net_opts *n = &cfg->nets[i];
		uint8_t mac[6];
		char macs[18];

		if (n->has_mac)
			memcpy(mac, n->mac, 6);
		else
			virtio_net_default_mac(n->index, mac);
		snprintf(macs, sizeof(macs), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
			 mac[3], mac[4], mac[5]);
		json_array_append_new(nets, json_pack("{s:s?, s:b, s:s, s:s}", "tap", n->tap, "fd",
						      n->has_fd, "mac", macs, "vhost",
						      n->vhost == NET_VHOST_ON ? "on" :
						      n->vhost == NET_VHOST_OFF ? "off" : "auto"));
	}
	root = json_pack("{s:s, s:i, s:i, s:I, s:o, s:b, s:s?, s:s?, s:s?, s:o, s:b, s:i}",
			 "format", "kvmm-snapshot", "version", SNAP_VERSION, "cpus", (int)cfg->ncpus,
			 "memory", (json_int_t)cfg->mem.size, "disks", disks, "rng", cfg->rng,
			 "kernel", cfg->boot.kernel, "initrd", cfg->boot.initrd, "cmdline",
			 cfg->boot.cmdline, "nets", nets, "virtio_console", cfg->virtio_console,
			 "vsock_cid", (int)cfg->vsock_cid);
	if (cfg->balloon)
		json_object_set_new(root, "balloon",
				    json_pack("{s:I, s:i, s:b, s:b}", "target",
					      (json_int_t)cfg->balloon_opts.target, "stats_period",
					      (int)cfg->balloon_opts.stats_period, "reporting",
					      !cfg->balloon_opts.no_reporting, "deflate_on_oom",
					      cfg->balloon_opts.deflate_on_oom));
	s = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	return s;
}

static int snap_config_from_json(json_t *root, const char *dir, struct vm_config *cfg,
				 struct err *e);

static const char *keep(struct vm_config *cfg, json_t *v);

/* NICs from vm.json; a NIC that was an inherited fd needs --net on restore. */
static int snap_nets_from_json(json_t *root, const char *dir, struct vm_config *cfg,
			       struct err *e)
{
	json_t *nets = json_object_get(root, "nets"), *n;
	size_t i;

	cfg->nnets = 0;
	if (!nets)
		return 0;
	if (!json_is_array(nets) || json_array_size(nets) > VM_MAX_NETS)
		return err_set(e, EINVAL, "snapshot %s: vm.json: bad nets", dir);
	json_array_foreach(nets, i, n) {
		struct net_opts *o = &cfg->nets[cfg->nnets];
		const char *mac = json_string_value(json_object_get(n, "mac"));
		const char *vh = json_string_value(json_object_get(n, "vhost"));
		unsigned b[6];

		memset(o, 0, sizeof(*o));
		o->index = cfg->nnets++;
		o->tap = keep(cfg, json_object_get(n, "tap"));
		o->fd = -1;
		/* The same rule as --net tap=NAME: an interface name, 1 to 15 characters. */
		if (o->tap && (!*o->tap || strlen(o->tap) >= 16 || strchr(o->tap, '/')))
			return err_set(e, EINVAL, "snapshot %s: vm.json: bad tap name", dir);
		if (mac && sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4],
				  &b[5]) == 6) {
			for (unsigned k = 0; k < 6; k++)
				o->mac[k] = (uint8_t)b[k];
			o->has_mac = true;
		}
		o->vhost = vh && !strcmp(vh, "on") ? NET_VHOST_ON :
			   vh && !strcmp(vh, "off") ? NET_VHOST_OFF : NET_VHOST_AUTO;
		if (!o->tap && json_is_true(json_object_get(n, "fd"))) {
			/* Marked for the caller: an fd cannot be restored, --net must replace it. */
			o->has_fd = true;
		}
	}
	return 0;
}

/* Strings from vm.json belong to the configuration's string pool. */
static const char *keep(struct vm_config *cfg, json_t *v)
{
	return strpool_dup(cfg->strings, json_string_value(v));
}

int snap_read_config(const char *dir, struct vm_config *cfg, struct err *e)
{
	char path[PATH_MAX];
	json_error_t jerr;
	json_t *root;

	if (!join(path, sizeof(path), dir, "vm.json"))
		return err_set(e, ENAMETOOLONG, "snapshot path too long");
	root = json_load_file(path, 0, &jerr);
	if (!root)
		return err_set(e, EINVAL, "snapshot %s: vm.json: %s", dir, jerr.text);
	return snap_config_from_json(root, dir, cfg, e);
}

int snap_parse_config(const char *text, size_t len, struct vm_config *cfg, struct err *e)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, 0, &jerr);

	if (!root)
		return err_set(e, EINVAL, "VM configuration: %s", jerr.text);
	return snap_config_from_json(root, "stream", cfg, e);
}

/* Fill cfg from a parsed vm.json (consumes root). */
static int snap_config_from_json(json_t *root, const char *dir, struct vm_config *cfg,
				 struct err *e)
{
	json_t *disks, *d;
	json_int_t cpus, mem, cid;
	size_t i;

	if (strcmp(json_string_value(json_object_get(root, "format")) ?: "", "kvmm-snapshot") ||
	    json_integer_value(json_object_get(root, "version")) != SNAP_VERSION) {
		json_decref(root);
		return err_set(e, EINVAL, "snapshot %s: vm.json is not a version %d kvmm snapshot",
			       dir, SNAP_VERSION);
	}
	cpus = json_integer_value(json_object_get(root, "cpus"));
	mem = json_integer_value(json_object_get(root, "memory"));
	disks = json_object_get(root, "disks");
	if (cpus < 1 || cpus > X86_MAX_VCPUS || mem < (json_int_t)MEM_SIZE_MIN ||
	    mem > (json_int_t)MEM_SIZE_MAX || mem % 4096 ||
	    !json_is_array(disks) || json_array_size(disks) > VM_MAX_DISKS) {
		json_decref(root);
		return err_set(e, EINVAL, "snapshot %s: vm.json has invalid values", dir);
	}
	cfg->ncpus = (unsigned)cpus;
	cfg->mem.size = (uint64_t)mem;
	cfg->rng = json_is_true(json_object_get(root, "rng"));
	/* Used only if the guest later reboots: then it boots these files afresh. */
	cfg->boot.cmdline = keep(cfg, json_object_get(root, "cmdline"));
	cfg->boot.kernel = keep(cfg, json_object_get(root, "kernel"));
	cfg->boot.initrd = keep(cfg, json_object_get(root, "initrd"));
	cfg->ndisks = 0;
	json_array_foreach(disks, i, d) {
		struct blk_opts *b = &cfg->disks[cfg->ndisks++];
		json_int_t q = json_integer_value(json_object_get(d, "queues"));

		memset(b, 0, sizeof(*b));
		b->path = keep(cfg, json_object_get(d, "path"));
		b->format = keep(cfg, json_object_get(d, "format"));
		b->serial = keep(cfg, json_object_get(d, "serial"));
		b->read_only = json_is_true(json_object_get(d, "readonly"));
		b->snap_mode = keep(cfg, json_object_get(d, "snapshot"));
		b->snap_name = keep(cfg, json_object_get(d, "snapshot_name"));
		if (b->snap_mode && strcmp(b->snap_mode, "none") && strcmp(b->snap_mode, "internal") &&
		    strcmp(b->snap_mode, "overlay")) {
			json_decref(root);
			return err_set(e, EINVAL, "snapshot %s: vm.json: unknown disk snapshot mode", dir);
		}
		b->queues = q >= 1 && q <= 16 ? (unsigned)q : 1;
		if (!b->path) {
			json_decref(root);
			return err_set(e, EINVAL, "snapshot %s: vm.json: a disk has no path", dir);
		}
	}
	if (snap_nets_from_json(root, dir, cfg, e)) {
		json_decref(root);
		return -EINVAL;
	}
	cfg->virtio_console = json_is_true(json_object_get(root, "virtio_console"));
	/* 0 is no vsock; 1 and 2 are reserved, UINT32_MAX is VMADDR_CID_ANY (as for --vsock). */
	cid = json_integer_value(json_object_get(root, "vsock_cid"));
	if (cid && (cid < 3 || cid >= (json_int_t)UINT32_MAX)) {
		json_decref(root);
		return err_set(e, EINVAL, "snapshot %s: vm.json: bad vsock_cid", dir);
	}
	cfg->vsock_cid = (uint32_t)cid;
	d = json_object_get(root, "balloon");
	cfg->balloon = json_is_object(d);
	if (cfg->balloon) {
		json_int_t t = json_integer_value(json_object_get(d, "target"));
		json_int_t p = json_integer_value(json_object_get(d, "stats_period"));

		cfg->balloon_opts.target = t > 0 && (uint64_t)t < cfg->mem.size ? (uint64_t)t : 0;
		cfg->balloon_opts.stats_period = p > 0 && p < 3600 ? (unsigned)p : 0;
		cfg->balloon_opts.no_reporting = !json_is_true(json_object_get(d, "reporting"));
		cfg->balloon_opts.deflate_on_oom = json_is_true(json_object_get(d, "deflate_on_oom"));
	}
	json_decref(root);
	return 0;
}
