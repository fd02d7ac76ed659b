/* SPDX-License-Identifier: MIT */
/* cli.h: kvmm subcommands. Each returns the process exit status. */
#ifndef KVMM_CLI_CLI_H
#define KVMM_CLI_CLI_H

/* Exit statuses shared by every subcommand. */
#define EXIT_OK 0
#define EXIT_ERR 1
#define EXIT_USAGE 2
#define EXIT_GUEST_CRASH 3
#define EXIT_GUEST_RESET 4

int cmd_run(int argc, char **argv);
/* status, info, stats, pause, resume, powerbutton, reset, stop: argv[0] is the verb. */
int cmd_ctl(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_img(int argc, char **argv);

#endif
