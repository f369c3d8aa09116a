/*
 * shouwen-bus: operator commands for the durable bus.
 *
 *   shouwen-bus parked [CONSUMER]   list parked (dead-letter) events
 *   shouwen-bus replay ID...        ask the owning consumer to run its
 *                                   handler on these parked events again
 *   shouwen-bus cursors             where every consumer group stands
 *
 * Reads SHOUWEN_DATABASE_URL.  Exit 0 on success, 1 on failure, 2 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cfg.h"
#include "svc.h"

static const struct cfg_def settings[] = {SVC_COMMON_SETTINGS};

static int usage(void)
{
    fprintf(stderr, "usage: shouwen-bus parked [CONSUMER] | replay ID... | cursors | --help\n");
    return 2;
}

static int print_result(PGresult *r)
{
    int n = PQntuples(r), nf = PQnfields(r);
    for (int f = 0; f < nf; f++)
        printf("%s%s", f ? "\t" : "", PQfname(r, f));
    printf("\n");
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < nf; f++)
            printf("%s%s", f ? "\t" : "", PQgetisnull(r, i, f) ? "-" : PQgetvalue(r, i, f));
        printf("\n");
    }
    printf("(%d rows)\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    char err[1024];
    int code = 1;
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "--help") == 0) {
        usage();
        cfg_help(stdout, settings, sizeof(settings) / sizeof(settings[0]));
        return 0;
    }
    if (cfg_load(&cfg, settings, sizeof(settings) / sizeof(settings[0]), err, sizeof(err)) !=
        SW_OK) {
        fprintf(stderr, "shouwen-bus: %s\n", err);
        return 1;
    }
    PGconn *c = PQconnectdb(cfg_str(&cfg, "SHOUWEN_DATABASE_URL"));
    PGresult *r = NULL;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "shouwen-bus: could not connect: %s", PQerrorMessage(c));
        goto out;
    }
    if (strcmp(argv[1], "parked") == 0 && argc <= 3) {
        const char *v[] = {argc == 3 ? argv[2] : NULL};
        r = PQexecParams(c,
                         "SELECT id, consumer, partition, seq, event_id, attempts, parked_at, "
                         "CASE WHEN replayed_at IS NOT NULL THEN 'replayed ' || replayed_at "
                         "WHEN replay_requested_at IS NOT NULL THEN 'requested' ELSE 'parked' "
                         "END AS state, left(last_error, 120) AS last_error "
                         "FROM bus.dead_letters WHERE $1::text IS NULL OR consumer = $1 "
                         "ORDER BY id",
                         1, NULL, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            goto dberr;
        code = print_result(r);
    } else if (strcmp(argv[1], "replay") == 0 && argc >= 3) {
        int asked = 0;
        for (int i = 2; i < argc; i++) {
            if (strspn(argv[i], "0123456789") != strlen(argv[i]) || strlen(argv[i]) > 18) {
                fprintf(stderr,
                        "shouwen-bus: bad id \"%s\": expected a number from "
                        "`shouwen-bus parked`\n",
                        argv[i]);
                goto out;
            }
            const char *v[] = {argv[i]};
            PQclear(r);
            r = PQexecParams(c,
                             "UPDATE bus.dead_letters SET replay_requested_at = now() "
                             "WHERE id = $1::bigint AND replayed_at IS NULL",
                             1, NULL, v, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                goto dberr;
            if (strcmp(PQcmdTuples(r), "1") == 0)
                asked++;
            else
                fprintf(stderr, "shouwen-bus: no parked event %s waiting for replay\n", argv[i]);
        }
        printf("replay requested for %d event(s); the owning consumer runs them within seconds\n",
               asked);
        code = asked == argc - 2 ? 0 : 1;
    } else if (strcmp(argv[1], "cursors") == 0 && argc == 2) {
        r = PQexec(c, "SELECT consumer, partition, window_floor, window_top, last_seq, "
                      "updated_at FROM bus.cursors ORDER BY consumer, partition");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            goto dberr;
        code = print_result(r);
    } else {
        code = usage();
    }
    goto out;
dberr:
    fprintf(stderr, "shouwen-bus: %s", PQerrorMessage(c));
    code = 1;
out:
    PQclear(r);
    PQfinish(c);
    cfg_fini(&cfg);
    return code;
}
