/*
 * on_event.c - events become deliveries.
 *
 * For a transaction's events at once: each event's site subscriptions for
 * its type are matched (urgency, department); each audience is resolved to
 * people (or to the channel itself); each (recipient, channel) gets its
 * message rendered now and one row in notification.deliveries, keyed by
 * (event, recipient, channel), so an event handled again makes nothing
 * new.  Group channels (webhooks, chat robots) get one message per event
 * naming everyone it is for; personal channels (mail, SMS) one per person
 * at the address the staff directory holds.
 *
 * Quiet hours: a message for people that is not an emergency, made
 * outside the site's working time, waits for the next working period.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "db.h"
#include "log.h"
#include "notification.h"
#include "workflow.h"

#define EV(x)          SHOUWEN__V1__ENVELOPE__EVENT_##x
#define RECIPIENTS_MAX 64
#define ARRAY_MAX      (1u << 28)

void ntf_delivery_free(struct ntf_delivery *d)
{
    free(d->address);
    free(d->subject);
    free(d->body);
    d->address = d->subject = d->body = NULL;
}

/* ---- audiences ------------------------------------------------------------------------- */

struct who {
    const char *code[RECIPIENTS_MAX];
    size_t n;
};

static void add(struct who *w, const char *code)
{
    if (code == NULL || code[0] == '\0' || w->n == RECIPIENTS_MAX)
        return;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->code[i], code) == 0)
            return;
    w->code[w->n++] = code;
}

static void add_role(struct who *w, const struct ntf_site *s, const char *role, const char *dept)
{
    for (size_t i = 0; i < s->nstaff; i++) {
        const struct ntf_staff *p = &s->staff[i];
        if (p->active && strcmp(p->role, role) == 0 && (dept == NULL || strcmp(p->dept, dept) == 0))
            add(w, p->code);
    }
}

static const Shouwen__V1__Handoff *handoff_of(const Shouwen__V1__Envelope *e)
{
    switch (e->event_case) {
    case EV(ASSIGNED):
        return e->assigned ? e->assigned->handoff : NULL;
    case EV(TRANSFERRED):
        return e->transferred ? e->transferred->handoff : NULL;
    case EV(RETURNED):
        return e->returned ? e->returned->handoff : NULL;
    case EV(FORWARDED):
        return e->forwarded ? e->forwarded->handoff : NULL;
    default:
        return NULL;
    }
}

/* The department an event is about: where a handoff went, else the case's. */
static const char *dept_of(const Shouwen__V1__Envelope *e, const struct ntf_case *c)
{
    const Shouwen__V1__Handoff *h = handoff_of(e);
    if (h != NULL && h->to_department[0] != '\0')
        return h->to_department;
    if (e->event_case == EV(LEAD_DESIGNATED) && e->lead_designated != NULL)
        return e->lead_designated->lead_department;
    if (e->event_case == EV(ACCEPTED) && e->accepted != NULL && e->accepted->department[0])
        return e->accepted->department;
    return c != NULL ? c->dept : "";
}

static void resolve(struct who *w, const struct ntf_site *s, const char *audience,
                    const Shouwen__V1__Envelope *e, const struct ntf_case *c)
{
    const Shouwen__V1__Handoff *h = handoff_of(e);
    if (strcmp(audience, "receiving_head") == 0) {
        if (h != NULL && h->to_staff[0] != '\0' && e->event_case == EV(ASSIGNED)) {
            add(w, h->to_staff);
        } else if (e->event_case == EV(LEAD_DESIGNATED) && e->lead_designated != NULL) {
            add_role(w, s, "department_head", e->lead_designated->lead_department);
            for (size_t i = 0; i < e->lead_designated->n_assisting_departments; i++)
                add_role(w, s, "department_head", e->lead_designated->assisting_departments[i]);
        } else {
            const char *d = dept_of(e, c);
            if (d[0] != '\0')
                add_role(w, s, "department_head", d);
        }
    } else if (strcmp(audience, "handler") == 0) {
        if (e->event_case == EV(ACCEPTED) && e->accepted != NULL)
            add(w, e->accepted->handler);
        else if (c != NULL)
            add(w, c->owner);
    } else if (strcmp(audience, "owner") == 0) {
        if (e->event_case == EV(ESCALATED) && e->escalated != NULL)
            add(w, e->escalated->to_staff);
        else if (e->event_case == EV(DEADLINE_BREACHED) && e->deadline_breached != NULL)
            add(w, e->deadline_breached->responsible_staff);
        else if (e->event_case == EV(VIOLATION_RECORDED) && e->violation_recorded != NULL)
            add(w, e->violation_recorded->staff);
        if (w->n == 0 && h != NULL)
            add(w, h->to_staff);
        if (w->n == 0 && c != NULL)
            add(w, c->owner);
    } else if (strcmp(audience, "first_responder") == 0) {
        if (c != NULL)
            add(w, c->first_responder);
    } else if (strcmp(audience, "qa") == 0) {
        /* a transfer tells QA only of complaints */
        bool transfer = e->event_case == EV(TRANSFERRED) || e->event_case == EV(FORWARDED);
        bool complaint = c != NULL && strcmp(c->type, "complaint") == 0;
        if (e->event_case == EV(TRANSFERRED) && e->transferred != NULL &&
            e->transferred->copied_to_qa)
            complaint = true;
        if (transfer && !complaint)
            return;
        add_role(w, s, "qa", NULL);
        for (size_t i = 0; i < s->ndepts; i++)
            if (s->depts[i].is_qa)
                add_role(w, s, "department_head", s->depts[i].code);
    } else if (strcmp(audience, "ladder") == 0) {
        if (e->event_case == EV(EMERGENCY_ALERTED) && e->emergency_alerted != NULL) {
            for (size_t i = 0; i < e->emergency_alerted->n_notified_staff; i++)
                add(w, e->emergency_alerted->notified_staff[i]);
        } else {
            if (c != NULL) {
                add(w, c->first_responder);
                add(w, c->owner);
            }
            add_role(w, s, "supervisor", NULL);
        }
    } else if (strcmp(audience, "reviewers") == 0) {
        if (e->event_case == EV(REVIEW_REQUESTED) && e->review_requested != NULL)
            for (size_t i = 0; i < e->review_requested->n_reviewers; i++)
                add(w, e->review_requested->reviewers[i]);
    } else if (strcmp(audience, "leader") == 0 && e->event_case == EV(LEADER_CALLBACK_REQUESTED) &&
               e->leader_callback_requested != NULL) {
        add(w, e->leader_callback_requested->leader); /* the leader asked for, no other */
    } else if (strcmp(audience, "supervisor") == 0 || strcmp(audience, "manager") == 0 ||
               strcmp(audience, "leader") == 0) {
        add_role(w, s, audience, NULL);
    }
    /* "customer" is not a staff member: see make() */
}

/* ---- the batch ------------------------------------------------------------------------- */

static int urgency_rank(const char *u)
{
    return strcmp(u, "emergency") == 0 ? 3 : strcmp(u, "urgent") == 0 ? 2 : 1;
}

struct cases {
    struct ntf_case *v;
    size_t n;
};

static const struct ntf_case *case_find(const struct cases *cs, const char *id)
{
    for (size_t i = 0; i < cs->n; i++)
        if (strcmp(cs->v[i].id, id) == 0)
            return &cs->v[i];
    return NULL;
}

static void cpy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/*
 * The batch's cases, each probed by its key (driven from the array, so
 * that only cases_pkey serves the join) and guarded (db_exec_guarded).
 * Planned freely, as `c.id = ANY($1)`, the plan was made for whatever
 * core.cases held when notification first ran it: on a site's first few
 * cases, analyzed, a sequential scan is the cheaper plan, kept until the
 * table is analyzed again, and in make bench it read every case for every
 * batch (23 ms a batch on average over a 20 s run of 31,000 cases).  The
 * guards alone would not do: with the scan forbidden, the planner read the
 * whole table through another index, filtering on the id.
 */
static sw_err load_cases(PGconn *tx, const char *ids, struct cases *cs, char *err, size_t errlen)
{
    const char *v[] = {ids};
    PGresult *r = db_exec_guarded(
        tx,
        "SELECT c.id::text, c.number, c.subject, c.type, c.urgency, c.status, coalesce(d.code, "
        "''), coalesce(o.code, ''), coalesce(f.code, ''), coalesce(c.customer_name, ''), "
        "coalesce(c.customer_phone, ''), concat_ws(' ', c.customer_address, c.customer_room), "
        "coalesce(c.customer_email, ''), c.customer_consent "
        "FROM (SELECT DISTINCT id FROM unnest($1::uuid[]) AS u(id)) k "
        "JOIN core.cases c ON c.id = k.id LEFT JOIN core.departments d ON d.id = c.department_id "
        "LEFT JOIN core.staff o ON o.id = c.owner_id "
        "LEFT JOIN core.staff f ON f.id = c.first_responder_id",
        1, v);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(tx, r, "read the cases", err, errlen);
        PQclear(r);
        return rv;
    }
    int n = PQntuples(r);
    cs->v = calloc((size_t)n + 1, sizeof(*cs->v));
    if (cs->v == NULL) {
        PQclear(r);
        return SW_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        struct ntf_case *c = &cs->v[i];
        cpy(c->id, sizeof(c->id), r, i, 0);
        cpy(c->number, sizeof(c->number), r, i, 1);
        cpy(c->subject, sizeof(c->subject), r, i, 2);
        cpy(c->type, sizeof(c->type), r, i, 3);
        cpy(c->urgency, sizeof(c->urgency), r, i, 4);
        cpy(c->status, sizeof(c->status), r, i, 5);
        cpy(c->dept, sizeof(c->dept), r, i, 6);
        cpy(c->owner, sizeof(c->owner), r, i, 7);
        cpy(c->first_responder, sizeof(c->first_responder), r, i, 8);
        cpy(c->customer_name, sizeof(c->customer_name), r, i, 9);
        cpy(c->customer_phone, sizeof(c->customer_phone), r, i, 10);
        cpy(c->room, sizeof(c->room), r, i, 11);
        cpy(c->customer_email, sizeof(c->customer_email), r, i, 12);
        c->consent = PQgetvalue(r, i, 13)[0] == 't';
    }
    cs->n = (size_t)n;
    PQclear(r);
    return SW_OK;
}

/* The rows to insert, as arrays of text for one INSERT ... SELECT FROM unnest. */
#define COLS 13
struct rows {
    struct buf col[COLS];
    size_t n;
};

static sw_err row_add(struct rows *w, const char *const v[COLS])
{
    sw_err rv = SW_OK;
    for (int k = 0; rv == SW_OK && k < COLS; k++)
        rv = buf_pg_elem(&w->col[k], w->n == 0, v[k]);
    w->n++;
    return rv;
}

static bool staged_grow(struct notification *nt)
{
    if (nt->nstaged < nt->capstaged)
        return true;
    size_t cap = nt->capstaged ? nt->capstaged * 2 : 256;
    struct ntf_delivery *p = realloc(nt->staged, cap * sizeof(*p));
    if (p == NULL)
        return false;
    nt->staged = p;
    nt->capstaged = cap;
    return true;
}

static void iso_time(int64_t t_us, char *out, size_t outlen)
{
    time_t t = (time_t)(t_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n > 0 && n < outlen)
        snprintf(out + n, outlen - n, ".%06dZ", (int)(t_us % 1000000));
}

/* The JSON a generic webhook receives (Standard Webhooks' type, timestamp, data). */
static sw_err webhook_body(struct buf *b, const Shouwen__V1__Envelope *e, const struct ntf_case *c,
                           const struct ntf_site *s, const struct who *w, const char *subject,
                           const char *text)
{
    char ts[40];
    iso_time(e->time, ts, sizeof(ts));
    sw_err rv = buf_puts(b, "{\"type\":");
    rv = rv ? rv : buf_json_string(b, e->type);
    rv = rv ? rv
            : buf_printf(b, ",\"timestamp\":\"%s\",\"data\":{\"event_id\":\"%s\",\"site\":", ts,
                         e->event_id);
    rv = rv ? rv : buf_json_string(b, s->code);
    if (c != NULL) {
        rv = rv ? rv : buf_printf(b, ",\"case_id\":\"%s\",\"case_number\":", c->id);
        rv = rv ? rv : buf_json_string(b, c->number);
        rv = rv ? rv
                : buf_printf(b, ",\"case_type\":\"%s\",\"urgency\":\"%s\",\"status\":\"%s\"",
                             c->type, c->urgency, c->status);
    }
    rv = rv ? rv : buf_puts(b, ",\"recipients\":[");
    for (size_t i = 0; rv == SW_OK && w != NULL && i < w->n; i++) {
        const struct ntf_staff *p = ntf_staff_find(s, w->code[i]);
        rv = buf_printf(b, "%s{\"staff\":", i ? "," : "");
        rv = rv ? rv : buf_json_string(b, w->code[i]);
        rv = rv ? rv : buf_puts(b, ",\"name\":");
        rv = rv ? rv : buf_json_string(b, p != NULL ? p->name : w->code[i]);
        rv = rv ? rv : buf_puts(b, ",\"role\":");
        rv = rv ? rv : buf_json_string(b, p != NULL ? p->role : "");
        rv = rv ? rv : buf_puts(b, "}");
    }
    rv = rv ? rv : buf_puts(b, "],\"title\":");
    rv = rv ? rv : buf_json_string(b, subject);
    rv = rv ? rv : buf_puts(b, ",\"text\":");
    rv = rv ? rv : buf_json_string(b, text);
    return rv ? rv : buf_puts(b, "}}");
}

/* Quiet hours: when a message for people made at `now` may go (now, or the next working period). */
static int64_t not_before(const struct ntf_site *s, bool for_people, bool emergency, int64_t now)
{
    if (!s->quiet_hours || !for_people || emergency)
        return now;
    int64_t t;
    if (cal_add_working(&s->cal, now, 1, &t) != SW_OK)
        return now;
    return t - 1 > now ? t - 1 : now;
}

struct batch {
    struct notification *nt;
    struct rows rows;
    struct buf scratch;
    int64_t now;
};

/* One delivery: rendered, staged for the sender, and a row for the INSERT. */
static sw_err make(struct batch *bt, const struct ntf_site *s, const Shouwen__V1__Envelope *e,
                   const struct ntf_case *c, const struct ntf_channel *ch, const char *recipient,
                   const struct who *group, bool emergency)
{
    bool customer = strcmp(recipient, "customer") == 0;
    const struct ntf_staff *p = recipient[0] && !customer ? ntf_staff_find(s, recipient) : NULL;
    const char *address = NULL;
    if (customer)
        address = ch->kind == NTF_EMAIL ? c->customer_email : c->customer_phone;
    else if (ch->kind == NTF_EMAIL)
        address = p != NULL ? p->email : NULL;
    else if (ch->kind == NTF_SMS)
        address = p != NULL ? p->phone : NULL;
    if (NTF_PERSONAL(ch->kind) && (address == NULL || address[0] == '\0')) {
        metric_add(bt->nt->m_no_address, 1);
        LOG(LOG_WARN, "NOTIFICATION-ADDRESS",
            "event %s: %s has no %s address in the staff directory: not sent over %s", e->event_id,
            recipient, ch->kind == NTF_EMAIL ? "email" : "phone", ch->name);
        return SW_OK;
    }
    const char *subject_t, *body_t;
    if (customer)
        (void)ntf_customer_words(s, e->type, ch->kind, ch->locale, &subject_t, &body_t);
    else
        ntf_words(s, e->type, ch->kind, ch->locale, &subject_t, &body_t);
    char scratch[6][160];
    const char *vals[NTF_VARS];
    ntf_vars(s, e, c, p, strcmp(ch->locale, "en") != 0, scratch, vals);
    if (customer) { /* the customer's own details, and no staff member's name */
        vals[NTF_CUSTOMER_NAME] = c->customer_name;
        vals[NTF_CUSTOMER_PHONE] = c->customer_phone;
        vals[NTF_RECIPIENT] = c->customer_name;
    }
    struct buf subj, text;
    buf_init(&subj, 4096);
    buf_init(&text, 65536);
    sw_err rv = ntf_render(&subj, subject_t, vals);
    if (rv == SW_OK && group != NULL && group->n > 0 && ch->kind != NTF_WEBHOOK) {
        for (size_t i = 0; rv == SW_OK && i < group->n; i++) {
            const struct ntf_staff *g = ntf_staff_find(s, group->code[i]);
            rv = buf_printf(&text, "@%s ", g != NULL ? g->name : group->code[i]);
        }
    }
    rv = rv ? rv : ntf_render(&text, body_t, vals);
    struct ntf_delivery d = {0};
    if (rv == SW_OK && ch->kind == NTF_WEBHOOK) {
        struct buf json;
        buf_init(&json, 1 << 20);
        rv = webhook_body(&json, e, c, s, group, buf_cstr(&subj), buf_cstr(&text));
        d.body = rv == SW_OK ? strdup(buf_cstr(&json)) : NULL;
        buf_free(&json);
    } else if (rv == SW_OK) {
        d.body = strdup(buf_cstr(&text));
    }
    d.subject = rv == SW_OK ? strdup(buf_cstr(&subj)) : NULL;
    d.address = address != NULL ? strdup(address) : NULL;
    buf_free(&subj);
    buf_free(&text);
    if (rv != SW_OK || d.body == NULL || d.subject == NULL || (address != NULL && !d.address) ||
        !staged_grow(bt->nt)) {
        ntf_delivery_free(&d);
        return rv != SW_OK ? rv : SW_ENOMEM;
    }
    /*
     * The same (event, recipient, channel) always gets the same message id,
     * and its unique key is the one that refuses a second delivery of them
     * (migration 0021): the id must stay a function of exactly those three.
     */
    uint8_t h[32];
    buf_reset(&bt->scratch);
    rv = buf_printf(&bt->scratch, "%s|%s|%s", e->event_id, recipient, ch->id);
    crypto_sha256(bt->scratch.data, bt->scratch.len, h);
    memcpy(d.message_id, "msg_", 4);
    crypto_hex(h, 16, d.message_id + 4);
    /* quiet hours are for staff; a customer hears at once what they just asked about */
    bool for_people = recipient[0] != '\0' && !customer;
    d.due_us = not_before(s, for_people, emergency, bt->now);
    d.created_us = bt->now;
    d.emergency = emergency;
    snprintf(d.site, sizeof(d.site), "%s", s->code);
    snprintf(d.case_id, sizeof(d.case_id), "%s", e->case_id);
    snprintf(d.event_id, sizeof(d.event_id), "%s", e->event_id);
    snprintf(d.event_type, sizeof(d.event_type), "%s", e->type);
    snprintf(d.channel_id, sizeof(d.channel_id), "%s", ch->id);
    snprintf(d.recipient, sizeof(d.recipient), "%s", recipient);
    char part[16], due[24], emg[2] = {emergency ? 't' : 'f', 0};
    snprintf(part, sizeof(part), "%u", e->partition);
    snprintf(due, sizeof(due), "%" PRId64, d.due_us);
    const char *v[COLS] = {s->id,  part,      e->event_id, e->type,      c ? c->id : NULL,
                           ch->id, recipient, d.address,   d.message_id, d.subject,
                           d.body, emg,       due};
    if (rv == SW_OK)
        rv = row_add(&bt->rows, v);
    if (rv != SW_OK) {
        ntf_delivery_free(&d);
        return rv;
    }
    if (d.due_us > bt->now)
        metric_add(bt->nt->m_held, 1);
    bt->nt->staged[bt->nt->nstaged++] = d;
    return SW_OK;
}

static sw_err handle_event(struct batch *bt, PGconn *tx, const Shouwen__V1__Envelope *e,
                           const struct cases *cs, char *err, size_t errlen)
{
    struct ntf_site *s = NULL;
    sw_err rv = ntf_site_get(&bt->nt->cache, tx, e->site, &s, err, errlen);
    if (rv == SW_ENOTFOUND)
        return SW_OK; /* intake accepts no event of an unknown site; nothing to tell */
    if (rv != SW_OK)
        return rv;
    const struct ntf_case *c = e->case_id[0] ? case_find(cs, e->case_id) : NULL;
    bool emergency = e->event_case == EV(EMERGENCY_ALERTED) ||
                     (c != NULL && strcmp(c->urgency, "emergency") == 0);
    const char *dept = dept_of(e, c);
    /* each channel once per event: group channels gather their audiences */
    struct ntf_channel *done[64];
    size_t ndone = 0;
    for (size_t i = 0; rv == SW_OK && i < s->nsubs; i++) {
        const struct ntf_sub *b = &s->subs[i];
        if (strcmp(b->event_type, e->type) != 0 || !b->channel->active)
            continue;
        if (c != NULL && urgency_rank(c->urgency) < b->min_urgency)
            continue;
        if (b->dept[0] != '\0' && strcmp(b->dept, dept) != 0)
            continue;
        bool seen = false;
        for (size_t k = 0; k < ndone; k++)
            seen = seen || done[k] == b->channel;
        if (seen || ndone == 64)
            continue;
        done[ndone++] = b->channel;
        /* every subscription of this event to this channel */
        struct who w = {0};
        bool to_channel = false, to_customer = false;
        for (size_t j = i; j < s->nsubs; j++) {
            const struct ntf_sub *o = &s->subs[j];
            if (o->channel != b->channel || strcmp(o->event_type, e->type) != 0)
                continue;
            if ((c != NULL && urgency_rank(c->urgency) < o->min_urgency) ||
                (o->dept[0] != '\0' && strcmp(o->dept, dept) != 0))
                continue;
            if (strcmp(o->audience, "channel") == 0)
                to_channel = true;
            else if (strcmp(o->audience, "customer") == 0)
                /* only where the site sends them, the customer consented, and the event is
                 * one customers are told of */
                to_customer = to_customer || (s->customer_notices && c != NULL && c->consent &&
                                              ntf_customer_event(e->type));
            else
                resolve(&w, s, o->audience, e, c);
        }
        if (NTF_PERSONAL(b->channel->kind)) {
            for (size_t k = 0; rv == SW_OK && k < w.n; k++)
                rv = make(bt, s, e, c, b->channel, w.code[k], NULL, emergency);
            if (rv == SW_OK && to_customer)
                rv = make(bt, s, e, c, b->channel, "customer", NULL, emergency);
        } else if (to_channel || w.n > 0) {
            rv = make(bt, s, e, c, b->channel, to_channel && w.n == 0 ? "" : "*", &w, emergency);
        }
    }
    if (rv != SW_OK && err[0] == '\0')
        snprintf(err, errlen, "event %s: could not make its messages (%s)", e->event_id,
                 sw_strerror(rv));
    return rv;
}

static sw_err insert(struct batch *bt, PGconn *tx, char *err, size_t errlen, size_t first)
{
    if (bt->rows.n == 0)
        return SW_OK;
    const char *v[COLS];
    for (int k = 0; k < COLS; k++) {
        if (buf_puts(&bt->rows.col[k], "}") != SW_OK) {
            snprintf(err, errlen, "too many deliveries at once");
            return SW_ETOOBIG;
        }
        v[k] = buf_cstr(&bt->rows.col[k]);
    }
    PGresult *r = db_exec_prepared(
        tx, "ntf_insert",
        "INSERT INTO notification.deliveries (site_id, partition, event_id, event_type, case_id, "
        "channel_id, recipient, address, message_id, subject, body, emergency, next_attempt_at, "
        "held) SELECT u.s, u.p, u.e, u.t, u.c, u.ch, u.r, u.a, u.m, u.sj, u.b, u.em, "
        "timestamptz 'epoch' + u.due * interval '1 microsecond', u.due > "
        "(extract(epoch FROM now()) * 1000000)::bigint FROM unnest($1::uuid[], $2::int[], "
        "$3::uuid[], $4::text[], $5::uuid[], $6::uuid[], $7::text[], $8::text[], $9::text[], "
        "$10::text[], $11::text[], $12::bool[], $13::bigint[]) AS u(s, p, e, t, c, ch, r, a, m, "
        "sj, b, em, due) ON CONFLICT (message_id) DO NOTHING RETURNING message_id, id",
        COLS, v, NULL, NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sw_err rv = db_fail(tx, r, "write the deliveries", err, errlen);
        PQclear(r);
        return rv;
    }
    /* rows that existed already (the event was handled before) are not the sender's again */
    size_t kept = first;
    int n = PQntuples(r);
    for (size_t i = first; i < bt->nt->nstaged; i++) {
        struct ntf_delivery *d = &bt->nt->staged[i];
        int64_t id = 0;
        for (int k = 0; k < n && id == 0; k++)
            if (strcmp(PQgetvalue(r, k, 0), d->message_id) == 0)
                id = strtoll(PQgetvalue(r, k, 1), NULL, 10);
        if (id == 0) {
            ntf_delivery_free(d);
            continue;
        }
        d->id = id;
        bt->nt->staged[kept++] = *d;
    }
    bt->nt->nstaged = kept;
    metric_add(bt->nt->m_made, n);
    PQclear(r);
    return SW_OK;
}

sw_err ntf_batch(PGconn *tx, const Shouwen__V1__Envelope *const *envs, size_t n, void *arg,
                 size_t *failed, char *err, size_t errlen)
{
    struct notification *nt = arg;
    struct batch bt = {.nt = nt, .now = ntf_now_us()};
    *failed = 0;
    bool changed;
    sw_err rv = ntf_cache_check(&nt->cache, tx, &changed, err, errlen);
    if (rv != SW_OK)
        return rv;
    if (changed)
        ntf_sender_recheck(__atomic_load_n(&nt->sender, __ATOMIC_ACQUIRE));
    /* the cases of the events someone subscribed to */
    struct buf ids;
    buf_init(&ids, ARRAY_MAX);
    size_t m = 0;
    rv = buf_puts(&ids, "{");
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        struct ntf_site *s = NULL;
        sw_err r = ntf_site_get(&nt->cache, tx, envs[i]->site, &s, err, errlen);
        if (r == SW_ENOTFOUND) {
            err[0] = '\0';
            continue;
        }
        if (r != SW_OK) {
            *failed = i;
            rv = r;
            break;
        }
        bool wanted = false;
        for (size_t k = 0; k < s->nsubs && !wanted; k++)
            wanted = strcmp(s->subs[k].event_type, envs[i]->type) == 0;
        if (wanted && envs[i]->case_id[0] != '\0')
            rv = buf_printf(&ids, "%s%s", m++ ? "," : "", envs[i]->case_id);
    }
    rv = rv ? rv : buf_puts(&ids, "}");
    struct cases cs = {0};
    if (rv == SW_OK && m > 0)
        rv = load_cases(tx, buf_cstr(&ids), &cs, err, errlen);
    buf_free(&ids);
    for (int k = 0; k < COLS; k++) {
        buf_init(&bt.rows.col[k], ARRAY_MAX);
        rv = rv ? rv : buf_puts(&bt.rows.col[k], "{");
    }
    buf_init(&bt.scratch, 4096);
    size_t first = nt->nstaged;
    for (size_t i = 0; rv == SW_OK && i < n; i++) {
        rv = handle_event(&bt, tx, envs[i], &cs, err, errlen);
        if (rv != SW_OK)
            *failed = i;
    }
    if (rv == SW_OK)
        rv = insert(&bt, tx, err, errlen, first);
    for (int k = 0; k < COLS; k++)
        buf_free(&bt.rows.col[k]);
    buf_free(&bt.scratch);
    free(cs.v);
    if (rv != SW_OK && err[0] == '\0')
        snprintf(err, errlen, "could not make the batch's deliveries (%s)", sw_strerror(rv));
    return rv;
}
