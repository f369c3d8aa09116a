/*
 * reviews.c - at each site's local review hour (09:00 by default) the
 * supervisor is asked to review yesterday's log, and on the weekly day
 * (Monday) the manager last week's.  escalation.reviews keeps one row per
 * site, kind and local date, written with the event: each review is asked
 * for once, however many replicas look and whenever they restart.  A
 * service that was down at 09:00 asks when it comes back, that same day.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escalation.h"
#include "log.h"

#define EV(x)         SHOUWEN__V1__ENVELOPE__EVENT_##x
#define REVIEWERS_MAX 32

sw_err esc_reviews(PGconn *tx, struct bus_outbox *ob, int hour, int weekday, size_t *made,
                   char *err, size_t errlen)
{
    char h[8], wd[8];
    snprintf(h, sizeof(h), "%d", hour);
    snprintf(wd, sizeof(wd), "%d", weekday);
    const char *v[] = {h, wd};
    *made = 0;
    PGresult *r = PQexecParams(
        tx,
        "WITH l AS (SELECT s.id, s.code, s.time_zone AS tz, now() AT TIME ZONE s.time_zone AS lt "
        "FROM core.sites s WHERE s.active), d AS (SELECT id, code, tz, lt::date AS today, "
        "extract(isodow FROM lt) AS dow FROM l WHERE extract(hour FROM lt) >= $1::int), want AS "
        "(SELECT id, code, tz, today, 'daily' AS kind, 1 AS days FROM d UNION ALL SELECT id, "
        "code, tz, today, 'weekly', 7 FROM d WHERE dow = $2::int), ins AS (INSERT INTO "
        "escalation.reviews (site_id, kind, local_date, event_id) SELECT id, kind, today, "
        "gen_random_uuid() FROM want ON CONFLICT DO NOTHING RETURNING site_id, kind, "
        "local_date, event_id) SELECT ins.event_id::text, w.code, ins.kind, "
        "ins.local_date::text, (extract(epoch FROM (ins.local_date - w.days)::timestamp AT TIME "
        "ZONE w.tz) * 1000000)::bigint, (extract(epoch FROM ins.local_date::timestamp AT TIME "
        "ZONE w.tz) * 1000000)::bigint, array_to_string(ARRAY(SELECT st.code FROM core.staff st "
        "WHERE st.site_id = ins.site_id AND st.active AND st.role = CASE ins.kind WHEN 'daily' "
        "THEN 'supervisor' ELSE 'manager' END ORDER BY st.code), ',') FROM ins JOIN want w ON "
        "w.id = ins.site_id AND w.kind = ins.kind",
        2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(tx, r, "ask for the reviews due", err, errlen);
        PQclear(r);
        return rv;
    }
    sw_err rv = SW_OK;
    for (int i = 0; rv == SW_OK && i < PQntuples(r); i++) {
        Shouwen__V1__ReviewRequested rq = SHOUWEN__V1__REVIEW_REQUESTED__INIT;
        Shouwen__V1__Actor actor = SHOUWEN__V1__ACTOR__INIT;
        Shouwen__V1__Envelope env = SHOUWEN__V1__ENVELOPE__INIT;
        char list[REVIEWERS_MAX * WF_CODE_SIZE];
        char *people[REVIEWERS_MAX];
        size_t np = 0;
        snprintf(list, sizeof(list), "%s", PQgetvalue(r, i, 6));
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL && np < REVIEWERS_MAX;
             t = strtok_r(NULL, ",", &save))
            people[np++] = t;
        bool daily = strcmp(PQgetvalue(r, i, 2), "daily") == 0;
        rq.kind = daily ? SHOUWEN__V1__REVIEW_KIND__REVIEW_KIND_DAILY
                        : SHOUWEN__V1__REVIEW_KIND__REVIEW_KIND_WEEKLY;
        rq.local_date = PQgetvalue(r, i, 3);
        rq.period_start = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        rq.period_end = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        rq.n_reviewers = np;
        rq.reviewers = people;
        actor.role = SHOUWEN__V1__ROLE__ROLE_SYSTEM;
        actor.external_system = (char *)"escalation";
        env.event_id = PQgetvalue(r, i, 0);
        env.type = (char *)"review.requested";
        env.site = PQgetvalue(r, i, 1);
        env.actor = &actor;
        env.event_case = EV(REVIEW_REQUESTED);
        env.review_requested = &rq;
        if ((rv = bus_outbox_add(ob, &env)) != SW_OK) {
            snprintf(err, errlen, "could not stage review.requested");
            break;
        }
        (*made)++;
        LOG(LOG_INFO, "ESCALATION-REVIEW", "site %s: the %s review of %s is asked for (%zu %s)",
            env.site, daily ? "daily" : "weekly", rq.local_date, np,
            daily ? "supervisors" : "managers");
    }
    PQclear(r);
    return rv;
}
