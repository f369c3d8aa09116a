/*
 * shouwen-migrate: applies the pending SQL migrations to the database of
 * SHOUWEN_DATABASE_URL, each in its own transaction.  Safe to run again:
 * a second run changes nothing.  Exit 0 when the schema is up to date,
 * 1 on any failure (the message names the file and line), 2 on usage.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cfg.h"
#include "migrate.h"
#include "svc.h"

#ifndef SHOUWEN_DEFAULT_MIGRATIONS_DIR
#define SHOUWEN_DEFAULT_MIGRATIONS_DIR "/usr/share/shouwen/migrations"
#endif

static const struct cfg_def settings[] = {
    SVC_COMMON_SETTINGS,
    {"SHOUWEN_MIGRATIONS_DIR", CFG_STRING, 1, 1024, SHOUWEN_DEFAULT_MIGRATIONS_DIR, NULL,
     "Folder of NNNN_description.sql migration files"},
    {"SHOUWEN_MIGRATE_WAIT", CFG_DURATION, 0, 600000, "10s", NULL,
     "How long to keep trying to reach a database that is still starting"},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

int main(int argc, char **argv)
{
    struct cfg cfg;
    char err[2048];
    PGconn *c = NULL;
    int code = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: shouwen-migrate [--help]\n\nApplies the pending migrations in "
                   "SHOUWEN_MIGRATIONS_DIR, each in one transaction.\n\n");
            cfg_help(stdout, settings, NSETTINGS);
            return 0;
        }
        fprintf(stderr, "shouwen-migrate: unknown argument \"%s\" (try --help)\n", argv[i]);
        return 2;
    }
    if (cfg_load(&cfg, settings, NSETTINGS, err, sizeof(err)) != SW_OK) {
        fprintf(stderr, "shouwen-migrate: %s\n", err);
        return 1;
    }
    long long waited = 0, wait = cfg_ms(&cfg, "SHOUWEN_MIGRATE_WAIT");
    for (;;) {
        const char *keys[] = {"application_name", "dbname", NULL};
        const char *vals[] = {"shouwen-migrate", cfg_str(&cfg, "SHOUWEN_DATABASE_URL"), NULL};
        c = PQconnectdbParams(keys, vals, 1);
        if (c != NULL && PQstatus(c) == CONNECTION_OK)
            break;
        if (waited >= wait) {
            fprintf(stderr, "shouwen-migrate: could not connect to the database: %s",
                    c ? PQerrorMessage(c) : "out of memory\n");
            goto out;
        }
        PQfinish(c);
        c = NULL;
        usleep(250000);
        waited += 250;
    }
    if (migrate_run(c, cfg_str(&cfg, "SHOUWEN_MIGRATIONS_DIR"), stdout, err, sizeof(err)) !=
        SW_OK) {
        fprintf(stderr, "shouwen-migrate: %s\n", err);
        goto out;
    }
    code = 0;
out:
    PQfinish(c);
    cfg_fini(&cfg);
    return code;
}
