/*
 * replicafs: the admin CLI.  One subcommand per file (cmd_<name>.c); this file
 * only dispatches.  Exit codes scripts rely on: 0 healthy/ok, 1 degraded or
 * mismatch found, 2 error (usage, unreadable volume file, no brick reached).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/auth.h"
#include "common/config.h"

static const struct cli_cmd cmds[] = {
    {"keygen", "print a new volume secret (hex) to stdout", cmd_keygen},
    {"status", "show bricks, their state and the volume's health", cmd_status},
    {"heal", "heal what bricks missed (--list: the backlog)", cmd_heal},
    {"split-brain", "list or resolve files in split-brain", cmd_splitbrain},
    {"verify", "compare replicas: attrs and block checksums", cmd_verify},
    {"rebuild", "refill a replaced, empty brick from the others", cmd_rebuild},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: replicafs COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\n'replicafs COMMAND --help' describes one command.\n");
}

int cli_load_volume(const char *cmd, const char *volfile,
                    struct vol_config *vol)
{
    char err[512];

    if (auth_init() < 0) {
        fprintf(stderr, "replicafs %s: cannot initialise libsodium\n", cmd);
        return -1;
    }
    if (vol_config_load(volfile, vol, err, sizeof(err)) < 0) {
        fprintf(stderr, "replicafs %s: %s\n", cmd, err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_ERROR;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].run(argc - 1, argv + 1);
    fprintf(stderr, "replicafs: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_ERROR;
}
