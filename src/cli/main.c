// SPDX-License-Identifier: MIT
/* main.c: the kvmm command: a table of subcommands, git style. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("kvmm 0.1.0\n");
	return EXIT_OK;
}

static int cmd_help(int argc, char **argv);

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "run", cmd_run, "boot a VM: kvmm run --kernel bzImage [--initrd F] [--cmdline S] ..." },
	{ "img", cmd_img, "disk images: create, info, check, convert, ..." },
	{ "list", cmd_list, "list running VMs (--json)" },
	{ "status", cmd_ctl, "state of a VM: kvmm status NAME" },
	{ "info", cmd_ctl, "a VM's configuration" },
	{ "stats", cmd_ctl, "per-vCPU exit counts and per-device counters" },
	{ "pause", cmd_ctl, "stop a VM's vCPUs (its clock stands still)" },
	{ "resume", cmd_ctl, "continue a paused VM" },
	{ "powerbutton", cmd_ctl, "press the ACPI power button (clean guest shutdown)" },
	{ "reset", cmd_ctl, "reset a VM (restarts it)" },
	{ "migrate", cmd_migrate, "live-migrate: kvmm migrate NAME tcp:HOST:PORT [--wait]" },
	{ "migrate-status", cmd_ctl, "progress of a VM's migration" },
	{ "migrate-cancel", cmd_ctl, "cancel a migration (the VM keeps running here)" },
	{ "snapshot", cmd_ctl, "full snapshot: kvmm snapshot NAME DIR [--disks internal|overlay|none]" },
	{ "stop", cmd_ctl, "stop a VM at once (kvmm exits 0)" },
	{ "version", cmd_version, "print the version" },
	{ "help", cmd_help, "list the commands" },
};

static int cmd_help(int argc, char **argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	printf("usage: kvmm COMMAND [OPTIONS]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-8s %s\n", commands[i].name, commands[i].summary);
	printf("\n'kvmm COMMAND --help' describes a command's options.\n");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	size_t i;

	/* A peer that went away is an error return, never a silent death. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		cmd_help(0, NULL);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(0, NULL);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "kvmm: unknown command '%s' (try 'kvmm help')\n", argv[1]);
	return EXIT_USAGE;
}
