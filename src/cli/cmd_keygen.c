/* replicafs keygen: a new 256-bit volume secret, as hex, on stdout. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/auth.h"
#include "common/config.h"

int cmd_keygen(int argc, char **argv)
{
    char hex[2 * RFS_KEY_SIZE + 2];

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: replicafs keygen > upload.key\n"
               "Prints a new random volume secret.  Copy the file to every\n"
               "storage and web node, readable by root only (chmod 600).\n");
        return CLI_EXIT_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "replicafs keygen: takes no arguments\n");
        return CLI_EXIT_ERROR;
    }
    if (auth_init() < 0) {
        fprintf(stderr, "replicafs keygen: cannot initialise libsodium\n");
        return CLI_EXIT_ERROR;
    }
    rfs_key_generate_hex(hex);
    if (fputs(hex, stdout) == EOF || fflush(stdout) == EOF) {
        perror("replicafs keygen: stdout");
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}
