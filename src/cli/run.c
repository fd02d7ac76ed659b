// SPDX-License-Identifier: MIT
/* run.c: `kvmm run`: parse options, build the VM, run it, map the outcome to an exit status. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "arch/x86/cpu.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "cli/cli.h"
#include "vmm/console.h"
#include "vmm/control.h"
#include "vmm/snapshot.h"
#include "migrate/migrate.h"
#include "vmm/vm.h"

static const char run_usage[] =
	"usage: kvmm run --kernel PATH [options]\n"
	"\n"
	"  --kernel PATH        bzImage, vmlinux ELF or PVH ELF to boot\n"
	"  --initrd PATH        initial ramdisk\n"
	"  --cmdline STRING     kernel command line\n"
	"  --cpus N             vCPUs (default 1)\n"
	"  --memory SIZE        guest RAM, e.g. 512M, 2G (default 256M)\n"
	"  --console KIND       stdio (default), file:PATH, socket:PATH (waits for a\n"
	"                       client), none\n"
	"  --reboot ACTION      on guest reset: restart (default) or exit (status 4)\n"
	"  --boot PROTOCOL      auto (default), linux64, pvh\n"
	"  --decompress         decompress a bzImage on the host and boot the ELF inside\n"
	"  --hugepages KIND     auto (default: transparent huge pages when the host\n"
	"                       offers them), none, thp, hugetlbfs\n"
	"  --ksm                let KSM merge guest pages (MADV_MERGEABLE)\n"
	"  --prefault           populate guest RAM up front\n"
	"  --cpu-features LIST  e.g. -avx512f,+x2apic\n"
	"  --disk SPEC          a virtio-blk disk (repeatable): path=FILE[,readonly=on]\n"
	"                       [,format=raw|qcow2][,serial=ID][,queues=N]\n"
	"  --net SPEC           a virtio-net NIC (repeatable, 8 at most): tap=NAME or fd=N\n"
	"                       [,mac=52:54:00:12:34:56][,vhost=auto|on|off]\n"
	"  --rng                a virtio-rng device fed by the host's getrandom()\n"
	"  --virtio-console     the console is a virtio-console port (guest: console=hvc0);\n"
	"                       the serial port's output is then discarded\n"
	"  --balloon [SPEC]     a virtio-balloon: [target=SIZE][,stats=SECONDS]\n"
	"                       [,reporting=on|off][,deflate_on_oom=on|off]; target is the\n"
	"                       memory the balloon takes from the guest (default 0)\n"
	"  --vsock SPEC         a virtio-vsock (vhost-vsock): cid=N (3 or more)\n"
	"  --restore DIR        resume the VM saved by 'kvmm snapshot' (its memory is\n"
	"                       read lazily; --restore-eager reads it all first)\n"
	"  --incoming URI       wait for a live migration on tcp:HOST:PORT (--net given\n"
	"                       with --incoming or --restore replaces the VM's NICs)\n"
	"  --name NAME          the VM's name for kvmm list/pause/... (default vm-PID)\n"
	"  --log-level LEVEL    error, warn (default), info, debug\n"
	"  --kvm PATH           KVM device (default /dev/kvm)\n"
	"\n"
	"The console escape is Ctrl-a x. Exit status: 0 guest powered off or stopped,\n"
	"1 error, 2 bad usage, 3 guest crashed, 4 guest reset with --reboot=exit.\n";

enum {
	OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_MEMORY, OPT_CONSOLE, OPT_REBOOT,
	OPT_BOOT, OPT_DECOMPRESS, OPT_HUGE, OPT_KSM, OPT_PREFAULT, OPT_CPUFEAT, OPT_LOGLEVEL,
	OPT_KVM, OPT_RNG, OPT_DISK, OPT_VCONSOLE, OPT_BALLOON, OPT_VSOCK, OPT_NET, OPT_NAME, OPT_RESTORE, OPT_RESTORE_EAGER, OPT_INCOMING, OPT_HELP,
};

static const struct option run_opts[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "console", required_argument, NULL, OPT_CONSOLE },
	{ "reboot", required_argument, NULL, OPT_REBOOT },
	{ "boot", required_argument, NULL, OPT_BOOT },
	{ "decompress", no_argument, NULL, OPT_DECOMPRESS },
	{ "hugepages", required_argument, NULL, OPT_HUGE },
	{ "ksm", no_argument, NULL, OPT_KSM },
	{ "prefault", no_argument, NULL, OPT_PREFAULT },
	{ "cpu-features", required_argument, NULL, OPT_CPUFEAT },
	{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
	{ "kvm", required_argument, NULL, OPT_KVM },
	{ "rng", no_argument, NULL, OPT_RNG },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "virtio-console", no_argument, NULL, OPT_VCONSOLE },
	{ "balloon", optional_argument, NULL, OPT_BALLOON },
	{ "vsock", required_argument, NULL, OPT_VSOCK },
	{ "net", required_argument, NULL, OPT_NET },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "restore-eager", no_argument, NULL, OPT_RESTORE_EAGER },
	{ "incoming", required_argument, NULL, OPT_INCOMING },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kvmm run: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'kvmm run --help')\n");
	return EXIT_USAGE;
}

static void fatal_signal(int sig)
{
	/* Leave the user's terminal usable even when we crash. */
	console_tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Listen on a Unix socket and wait for one client: it becomes the console. */
static int console_socket(const char *path, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ls, cs;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(e, ENAMETOOLONG, "console socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0)
		return err_set(e, errno, "console socket: %s", strerror(errno));
	unlink(path);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0) {
		int en = errno;

		close(ls);
		return err_set(e, en, "console socket %s: %s", path, strerror(en));
	}
	log_info("waiting for a console client on %s", path);
	do {
		cs = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	} while (cs < 0 && errno == EINTR);
	close(ls);
	unlink(path);
	if (cs < 0)
		return err_set(e, errno, "console socket %s: accept: %s", path, strerror(errno));
	return cs;
}

static int parse_onoff(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* "path=F,readonly=on,format=qcow2,serial=S,queues=N"; a bare first item is the path. */
static int parse_disk(char *spec, struct blk_opts *d, struct err *e)
{
	char *save = NULL, *item;
	uint64_t v;

	memset(d, 0, sizeof(*d));
	for (item = strtok_r(spec, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		const char *key = item, *val;

		if (!eq) {
			if (d->path)
				return err_set(e, EINVAL, "--disk: '%s' is not key=value", item);
			d->path = item;
			continue;
		}
		*eq = '\0';
		val = eq + 1;
		if (!strcmp(key, "path") || !strcmp(key, "file")) {
			d->path = val;
		} else if (!strcmp(key, "readonly") || !strcmp(key, "ro")) {
			if (parse_onoff(val, &d->read_only))
				return err_set(e, EINVAL, "--disk: readonly=%s: use on or off", val);
		} else if (!strcmp(key, "format")) {
			if (strcmp(val, "raw") && strcmp(val, "qcow2"))
				return err_set(e, EINVAL, "--disk: format=%s: use raw or qcow2", val);
			d->format = val;
		} else if (!strcmp(key, "serial")) {
			if (strlen(val) > 20)
				return err_set(e, EINVAL, "--disk: serial=%s: 20 characters at most", val);
			d->serial = val;
		} else if (!strcmp(key, "queues")) {
			if (parse_u64(val, 1, 16, &v))
				return err_set(e, EINVAL, "--disk: queues=%s: give 1 to 16", val);
			d->queues = (unsigned)v;
		} else {
			return err_set(e, EINVAL, "--disk: unknown key '%s' (path, readonly, format, "
				       "serial, queues)", key);
		}
	}
	if (!d->path || !*d->path)
		return err_set(e, EINVAL, "--disk: path=FILE is required");
	return 0;
}

/* Six hex pairs separated by ':'; a unicast address (the multicast bit clear), not all zero. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned i, v[6];
	char end;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
				      &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[3 * i]) || !isxdigit((unsigned char)s[3 * i + 1]))
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	return 0;
}

/* "tap=NAME,mac=M,vhost=auto|on|off" or "fd=N,..."; a bare first item is the tap name. */
static int parse_net(char *spec, struct net_opts *n, struct err *e)
{
	char *save = NULL, *item;
	uint64_t v;

	memset(n, 0, sizeof(*n));
	for (item = strtok_r(spec, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		const char *key = item, *val;

		if (!eq) {
			if (n->tap)
				return err_set(e, EINVAL, "--net: '%s' is not key=value", item);
			n->tap = item;
			continue;
		}
		*eq = '\0';
		val = eq + 1;
		if (!strcmp(key, "tap") || !strcmp(key, "ifname")) {
			if (!*val || strlen(val) >= 16 || strchr(val, '/'))
				return err_set(e, EINVAL, "--net: tap=%s: give an interface name of 1 "
					       "to 15 characters", val);
			n->tap = val;
		} else if (!strcmp(key, "fd")) {
			if (parse_u64(val, 0, INT32_MAX, &v))
				return err_set(e, EINVAL, "--net: fd=%s: give an open file descriptor "
					       "number", val);
			n->has_fd = true;
			n->fd = (int)v;
		} else if (!strcmp(key, "mac")) {
			if (parse_mac(val, n->mac))
				return err_set(e, EINVAL, "--net: mac=%s: give a unicast address like "
					       "52:54:00:12:34:56", val);
			n->has_mac = true;
		} else if (!strcmp(key, "vhost")) {
			bool on;

			if (!strcmp(val, "auto"))
				n->vhost = NET_VHOST_AUTO;
			else if (!parse_onoff(val, &on))
				n->vhost = on ? NET_VHOST_ON : NET_VHOST_OFF;
			else
				return err_set(e, EINVAL, "--net: vhost=%s: use auto, on or off", val);
		} else {
			return err_set(e, EINVAL, "--net: unknown key '%s' (tap, fd, mac, vhost)", key);
		}
	}
	if (!n->tap == !n->has_fd)
		return err_set(e, EINVAL, "--net: give exactly one of tap=NAME and fd=N");
	return 0;
}

/* "target=SIZE,stats=SECONDS,reporting=on|off,deflate_on_oom=on|off" (all optional). */
static int parse_balloon(char *spec, struct balloon_opts *b, struct err *e)
{
	char *save = NULL, *item;
	uint64_t v;
	bool on;

	memset(b, 0, sizeof(*b));
	b->stats_period = 5;
	for (item = spec ? strtok_r(spec, ",", &save) : NULL; item;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		const char *key = item, *val;

		if (!eq)
			return err_set(e, EINVAL, "--balloon: '%s' is not key=value", item);
		*eq = '\0';
		val = eq + 1;
		if (!strcmp(key, "target")) {
			if (parse_size(val, &v) || v % (4 * KiB))
				return err_set(e, EINVAL, "--balloon: target=%s: give a multiple of 4K "
					       "smaller than --memory", val);
			b->target = v;
		} else if (!strcmp(key, "stats")) {
			if (parse_u64(val, 0, 3600, &v))
				return err_set(e, EINVAL, "--balloon: stats=%s: give seconds from 0 "
					       "(off) to 3600", val);
			b->stats_period = (unsigned)v;
		} else if (!strcmp(key, "reporting")) {
			if (parse_onoff(val, &on))
				return err_set(e, EINVAL, "--balloon: reporting=%s: use on or off", val);
			b->no_reporting = !on;
		} else if (!strcmp(key, "deflate_on_oom")) {
			if (parse_onoff(val, &b->deflate_on_oom))
				return err_set(e, EINVAL, "--balloon: deflate_on_oom=%s: use on or off",
					       val);
		} else {
			return err_set(e, EINVAL, "--balloon: unknown key '%s' (target, stats, "
				       "reporting, deflate_on_oom)", key);
		}
	}
	return 0;
}

/* "cid=N"; a bare number is the CID. CIDs 0-2 are reserved (host, hypervisor, local). */
static int parse_vsock(char *spec, uint32_t *cid, struct err *e)
{
	const char *val = spec;
	uint64_t v;

	if (!strncmp(spec, "cid=", 4))
		val = spec + 4;
	if (parse_u64(val, 3, UINT32_MAX - 1, &v))
		return err_set(e, EINVAL, "--vsock: '%s': give cid=N with N from 3 to 4294967294",
			       spec);
	*cid = (uint32_t)v;
	return 0;
}

/*
 * The NICs of a VM whose configuration came from elsewhere (a snapshot, a
 * migration source): --net options, if any, replace them one for one; a NIC
 * that was an inherited fd cannot come across and needs one. what names the
 * source in messages. 0, or -EINVAL after telling the user.
 */
static int replace_nets(struct vm_config *cfg, const struct net_opts *user, unsigned nuser,
			const char *what)
{
	unsigned i;

	if (nuser && nuser != cfg->nnets) {
		fprintf(stderr, "kvmm: the %s has %u NICs: give %u --net options or none\n", what,
			cfg->nnets, cfg->nnets);
		return -EINVAL;
	}
	for (i = 0; i < nuser; i++)
		cfg->nets[i] = user[i];
	for (i = 0; i < cfg->nnets; i++) {
		if (cfg->nets[i].has_fd && cfg->nets[i].fd < 0) {
			fprintf(stderr, "kvmm: the %s's NIC %u used an inherited fd: give --net for it\n",
				what, i);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_run_opts(int argc, char **argv, struct vm_config *cfg, const char **console,
			  const char **incoming, struct err *e)
{
	uint64_t v;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", run_opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL: cfg->boot.kernel = optarg; break;
		case OPT_INITRD: cfg->boot.initrd = optarg; break;
		case OPT_CMDLINE: cfg->boot.cmdline = optarg; break;
		case OPT_CPUS:
			if (parse_u64(optarg, 1, X86_MAX_VCPUS, &v))
				return usage_error("--cpus '%s': give a number from 1 to 254", optarg);
			cfg->ncpus = (unsigned)v;
			break;
		case OPT_MEMORY:
			if (parse_size(optarg, &v) || v < MEM_SIZE_MIN || v > MEM_SIZE_MAX)
				return usage_error("--memory '%s': give a size from 16M to 1T, "
						   "e.g. 512M or 2G", optarg);
			if (v % (4 * KiB))
				return usage_error("--memory '%s': must be a multiple of 4K", optarg);
			cfg->mem.size = v;
			break;
		case OPT_CONSOLE:
			if (strcmp(optarg, "stdio") && strcmp(optarg, "none") &&
			    strncmp(optarg, "file:", 5) && strncmp(optarg, "socket:", 7))
				return usage_error("--console '%s': use stdio, none, file:PATH or "
						   "socket:PATH", optarg);
			if ((!strncmp(optarg, "file:", 5) && !optarg[5]) ||
			    (!strncmp(optarg, "socket:", 7) && !optarg[7]))
				return usage_error("--console '%s': the path is missing", optarg);
			*console = optarg;
			break;
		case OPT_REBOOT:
			if (!strcmp(optarg, "restart"))
				cfg->reboot = REBOOT_RESTART;
			else if (!strcmp(optarg, "exit"))
				cfg->reboot = REBOOT_EXIT;
			else
				return usage_error("--reboot '%s': use restart or exit", optarg);
			break;
		case OPT_BOOT:
			if (!strcmp(optarg, "auto"))
				cfg->boot.pref = BOOT_PREF_AUTO;
			else if (!strcmp(optarg, "linux64"))
				cfg->boot.pref = BOOT_PREF_LINUX64;
			else if (!strcmp(optarg, "pvh"))
				cfg->boot.pref = BOOT_PREF_PVH;
			else
				return usage_error("--boot '%s': use auto, linux64 or pvh", optarg);
			break;
		case OPT_DECOMPRESS: cfg->boot.decompress = true; break;
		case OPT_HUGE:
			if (!strcmp(optarg, "auto"))
				cfg->mem.huge = MEM_HUGE_AUTO;
			else if (!strcmp(optarg, "none"))
				cfg->mem.huge = MEM_HUGE_NONE;
			else if (!strcmp(optarg, "thp"))
				cfg->mem.huge = MEM_HUGE_THP;
			else if (!strcmp(optarg, "hugetlbfs"))
				cfg->mem.huge = MEM_HUGE_HUGETLBFS;
			else
				return usage_error("--hugepages '%s': use auto, none, thp or hugetlbfs",
						   optarg);
			break;
		case OPT_KSM: cfg->mem.merge = true; break;
		case OPT_PREFAULT: cfg->mem.prefault = true; break;
		case OPT_CPUFEAT:
			if (cpuid_parse_features(optarg, &cfg->cpu, e)) {
				fprintf(stderr, "kvmm run: %s\n", e->msg);
				return EXIT_USAGE;
			}
			break;
		case OPT_LOGLEVEL:
			if (!strcmp(optarg, "error"))
				log_set_level(LOG_ERROR);
			else if (!strcmp(optarg, "warn"))
				log_set_level(LOG_WARN);
			else if (!strcmp(optarg, "info"))
				log_set_level(LOG_INFO);
			else if (!strcmp(optarg, "debug"))
				log_set_level(LOG_DEBUG);
			else
				return usage_error("--log-level '%s': use error, warn, info or debug",
						   optarg);
			break;
		case OPT_KVM: cfg->kvm_path = optarg; break;
		case OPT_RNG: cfg->rng = true; break;
		case OPT_RESTORE: cfg->restore_dir = optarg; break;
		case OPT_RESTORE_EAGER: cfg->restore_eager = true; break;
		case OPT_INCOMING: *incoming = optarg; break;
		case OPT_NAME:
			if (control_check_name(optarg, e)) {
				fprintf(stderr, "kvmm run: --name: %s\n", e->msg);
				return EXIT_USAGE;
			}
			cfg->name = optarg;
			break;
		case OPT_DISK:
			if (cfg->ndisks == VM_MAX_DISKS)
				return usage_error("--disk: at most %d disks", VM_MAX_DISKS);
			if (parse_disk(optarg, &cfg->disks[cfg->ndisks], e)) {
				fprintf(stderr, "kvmm run: %s (see 'kvmm run --help')\n", e->msg);
				return EXIT_USAGE;
			}
			cfg->ndisks++;
			break;
		case OPT_NET:
			if (cfg->nnets == VM_MAX_NETS)
				return usage_error("--net: at most %d NICs", VM_MAX_NETS);
			if (parse_net(optarg, &cfg->nets[cfg->nnets], e)) {
				fprintf(stderr, "kvmm run: %s (see 'kvmm run --help')\n", e->msg);
				return EXIT_USAGE;
			}
			cfg->nets[cfg->nnets].index = cfg->nnets;
			cfg->nnets++;
			break;
		case OPT_VCONSOLE: cfg->virtio_console = true; break;
		case OPT_BALLOON:
			/* --balloon alone, or --balloon=SPEC / --balloon SPEC */
			if (!optarg && optind < argc && argv[optind][0] != '-')
				optarg = argv[optind++];
			if (parse_balloon(optarg, &cfg->balloon_opts, e)) {
				fprintf(stderr, "kvmm run: %s (see 'kvmm run --help')\n", e->msg);
				return EXIT_USAGE;
			}
			cfg->balloon = true;
			break;
		case OPT_VSOCK:
			if (parse_vsock(optarg, &cfg->vsock_cid, e)) {
				fprintf(stderr, "kvmm run: %s (see 'kvmm run --help')\n", e->msg);
				return EXIT_USAGE;
			}
			break;
		case OPT_HELP:
			fputs(run_usage, stdout);
			return -1;
		case ':':
			return usage_error("option %s needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (*incoming) {
		if (cfg->restore_dir || cfg->boot.kernel || cfg->boot.initrd || cfg->ndisks || cfg->rng)
			return usage_error("%s", "--incoming takes the VM's configuration from the "
					   "source: drop --kernel/--initrd/--disk/--rng/--restore");
		if (strncmp(*incoming, "tcp:", 4))
			return usage_error("--incoming '%s': use tcp:HOST:PORT", *incoming);
		return 0;
	}
	if (cfg->restore_dir) {
		/* The machine comes from the snapshot; only host-side options may be given. */
		if (cfg->boot.kernel || cfg->boot.initrd || cfg->ndisks || cfg->rng || *incoming)
			return usage_error("%s", "--restore takes the VM's configuration from the "
					   "snapshot: drop --kernel/--initrd/--disk/--rng");
		{
			/* --net on restore replaces the snapshot's NICs (clones: own tap, new MAC). */
			struct net_opts user_nets[VM_MAX_NETS];
			unsigned user_nnets = cfg->nnets;

			memcpy(user_nets, cfg->nets, sizeof(user_nets));
			if (snap_read_config(cfg->restore_dir, cfg, e)) {
				fprintf(stderr, "kvmm: %s\n", e->msg);
				return EXIT_ERR;
			}
			if (replace_nets(cfg, user_nets, user_nnets, "snapshot"))
				return EXIT_USAGE;
		}
		return 0;
	}
	if (cfg->restore_eager)
		return usage_error("%s", "--restore-eager goes with --restore");
	if (!cfg->boot.kernel)
		return usage_error("%s", "--kernel is required");
	if (cfg->mem.huge == MEM_HUGE_HUGETLBFS && cfg->mem.size % (2 * MiB))
		return usage_error("%s", "--memory must be a multiple of 2M with --hugepages=hugetlbfs");
	if (cfg->balloon && cfg->balloon_opts.target >= cfg->mem.size)
		return usage_error("%s", "--balloon: target must be smaller than --memory");
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct vm_config cfg = {
		.ncpus = 1,
		.mem = { .size = 256 * MiB },
		.reboot = REBOOT_RESTART,
		.console_in_fd = 0,
		.console_out_fd = 1,
	};
	const char *console = "stdio", *incoming = NULL;
	struct strpool strings = { 0 };
	int mig_fd = -1;
	char reason[256], dump[4096], defname[32] = "";
	enum vm_exit ex;
	struct err e = { "" };
	sigset_t block;
	int r, status, con_fd = -1;
	bool raw = false;

	cfg.strings = &strings;
	r = parse_run_opts(argc, argv, &cfg, &console, &incoming, &e);
	if (r) {
		strpool_free(&strings);
		return r < 0 ? EXIT_OK : r;
	}

	if (!strcmp(console, "none")) {
		cfg.console_in_fd = cfg.console_out_fd = -1;
	} else if (!strncmp(console, "file:", 5)) {
		con_fd = open(console + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (con_fd < 0) {
			fprintf(stderr, "kvmm: console file %s: %s\n", console + 5, strerror(errno));
			status = EXIT_ERR;
			goto out;
		}
		cfg.console_in_fd = -1;
		cfg.console_out_fd = con_fd;
	}

	/* The source sends the configuration first: accept before building anything. */
	if (incoming) {
		/* --net here replaces the source's NICs one for one (this host's taps). */
		struct net_opts user_nets[VM_MAX_NETS];
		unsigned user_nnets = cfg.nnets;

		memcpy(user_nets, cfg.nets, sizeof(user_nets));
		if (migrate_incoming_accept(incoming, &mig_fd, &cfg, &e)) {
			fprintf(stderr, "kvmm: %s\n", e.msg);
			status = EXIT_ERR;
			goto out;
		}
		if (replace_nets(&cfg, user_nets, user_nnets, "incoming VM")) {
			status = EXIT_ERR;
			goto out;
		}
		cfg.incoming = true;
	}

	/* Stop signals go to the event loop's signalfd; kicks only to vCPU threads. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, VM_SIG_KICK);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!strncmp(console, "socket:", 7)) {
		con_fd = console_socket(console + 7, &e);
		if (con_fd < 0) {
			fprintf(stderr, "kvmm: %s\n", e.msg);
			status = EXIT_ERR;
			goto out;
		}
		cfg.console_in_fd = cfg.console_out_fd = con_fd;
	}
	/* The control socket outlives VM restarts: it belongs to the process. */
	if (!cfg.name) {
		snprintf(defname, sizeof(defname), "vm-%d", (int)getpid());
		cfg.name = defname;
	}
	if (control_open(cfg.name, &cfg.control, &e)) {
		if (cfg.name != defname) {
			fprintf(stderr, "kvmm: %s\n", e.msg);
			status = EXIT_ERR;
			goto out;
		}
		log_warn("%s; running without a control socket", e.msg);
		cfg.control = NULL;
	}
	if (!strcmp(console, "stdio") && console_tty_raw(0) == 0) {
		raw = true;
		cfg.console_escape = true;
		signal(SIGSEGV, fatal_signal);
		signal(SIGBUS, fatal_signal);
		signal(SIGABRT, fatal_signal);
		signal(SIGFPE, fatal_signal);
		atexit(console_tty_restore);
	}

	for (;;) {
		struct vm *vm = vm_create(&cfg, &e);

		if (!vm) {
			if (raw)
				console_tty_restore();
			fprintf(stderr, "kvmm: %s\n", e.msg);
			status = EXIT_ERR;
			break;
		}
		if (mig_fd >= 0) {
			r = migrate_incoming_receive(mig_fd, vm, &e);
			close(mig_fd);
			mig_fd = -1;
			cfg.incoming = false;
			if (r) {
				vm_destroy(vm);
				if (raw)
					console_tty_restore();
				fprintf(stderr, "kvmm: incoming migration failed: %s\n", e.msg);
				status = EXIT_ERR;
				break;
			}
			log_info("incoming migration complete: running");
		}
		/* A later guest reboot boots the kernel afresh. */
		cfg.restore_dir = NULL;
		dump[0] = '\0';
		ex = vm_run(vm, reason, sizeof(reason), dump, sizeof(dump));
		vm_destroy(vm);
		if (ex == VM_EXIT_RESTART ||
		    (ex == VM_EXIT_RESET && cfg.reboot == REBOOT_RESTART)) {
			log_info("guest reset: restarting the VM");
			continue;
		}
		if (raw)
			console_tty_restore();
		switch (ex) {
		case VM_EXIT_POWEROFF:
			log_info("%s", reason);
			status = EXIT_OK;
			break;
		case VM_EXIT_RESET:
			log_info("%s; exiting (--reboot=exit)", reason);
			status = EXIT_GUEST_RESET;
			break;
		case VM_EXIT_CRASH:
			fprintf(stderr, "kvmm: guest crashed: %s\n%s", reason, dump);
			status = EXIT_GUEST_CRASH;
			break;
		default:
			fprintf(stderr, "kvmm: %s\n", reason);
			status = EXIT_ERR;
			break;
		}
		break;
	}
out:
	if (con_fd >= 0)
		close(con_fd);
	if (mig_fd >= 0)
		close(mig_fd);
	control_close(cfg.control);
	strpool_free(&strings);
	return status;
}
