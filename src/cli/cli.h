/* Shared by the CLI's subcommands. */
#ifndef RFS_CLI_H
#define RFS_CLI_H

enum cli_exit {
    CLI_EXIT_OK = 0,       /* healthy, or the command did what was asked */
    CLI_EXIT_DEGRADED = 1, /* degraded, mismatch or split-brain found */
    CLI_EXIT_ERROR = 2,    /* usage, configuration or connection error */
};

struct cli_cmd {
    const char *name;
    const char *help;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

struct vol_config;

/*
 * What every volume command does first: libsodium up, the volume file
 * loaded into vol.  0, or -1 after saying why on stderr as "replicafs
 * CMD: ...".
 */
int cli_load_volume(const char *cmd, const char *volfile,
                    struct vol_config *vol);

int cmd_keygen(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_heal(int argc, char **argv);
int cmd_splitbrain(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_rebuild(int argc, char **argv);

#endif
