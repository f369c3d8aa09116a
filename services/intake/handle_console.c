/*
 * handle_console.c - what the web console needs besides the case API.
 *
 *   POST   /v1/session                          sign in: site, staff code, password -> a token
 *   GET    /v1/session                          who the caller's staff token belongs to
 *   DELETE /v1/session                          sign out: the caller's token is revoked
 *   PUT    /v1/sites/{code}/staff/{staff}/password   set a password (through admin_run)
 *   GET    /v1/sites/{code}/checklists          what customers must bring, per type
 *   PUT    /v1/sites/{code}/checklists/{type}   set one type's list (through admin_run)
 *   DELETE /v1/sites/{code}/checklists/{type}   remove it
 *
 * Passwords.  Only a crypt(3) hash is kept: yescrypt ("$y$", libxcrypt's
 * default cost) for the passwords set here; bcrypt ("$2b$") is accepted
 * too, so that an installer can set one with pgcrypto (deploy/demo.sh
 * does).  Hashes are compared in constant time, and signing in as someone
 * unknown, inactive or without a password costs the same hash, so the
 * answer's timing does not tell which staff codes exist.  Every refusal is
 * the same 401 "wrong site, staff code or password", counted and logged
 * with the site and staff code (never the password).
 *
 * A session is an ordinary staff token (core.staff_tokens, session = true)
 * that expires after SHOUWEN_INTAKE_SESSION_TTL; every request checks the
 * expiry, so an expired session is a 401 like any other.  Setting a
 * password ends the member's other console sessions.
 */
#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "intake.h"
#include "log.h"

#define PASSWORD_MIN        8
#define PASSWORD_MAX        128 /* characters */
#define PASSWORD_HASH_MAX   256
#define SESSION_TOKEN_BYTES 24 /* 48 hex digits, as tokens issued by administrators */
#define CHECKLIST_ITEMS_MAX 100
#define CHECKLIST_ITEM_MAX  500 /* characters */

static const char *const case_types[] = {"consultation", "complaint", "help",
                                         "suggestion",   "repair",    "business",
                                         "report",       "emergency", NULL};

/* ------------------------------------------------------------ password hashes */

/* out = crypt(pw, setting); false when libcrypt refuses (bad setting, no memory). */
static bool crypt_into(const char *pw, const char *setting, char *out, size_t outlen)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd == NULL)
        return false;
    const char *h = crypt_rn(pw, setting, cd, (int)sizeof(*cd));
    bool ok = h != NULL && h[0] == '$' && strlen(h) < outlen;
    if (ok)
        snprintf(out, outlen, "%s", h);
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return ok;
}

/* A new yescrypt hash of `pw` (a fresh salt from the system's randomness). */
static bool password_hash(const char *pw, char *out, size_t outlen)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, (int)sizeof(setting)) == NULL)
        return false;
    return crypt_into(pw, setting, out, outlen);
}

static char dummy_hash[PASSWORD_HASH_MAX];
static void dummy_make(void)
{
    char pw[33];
    if (crypto_random_hex(pw, 16) != SW_OK || !password_hash(pw, dummy_hash, sizeof(dummy_hash)))
        dummy_hash[0] = '\0';
}

/*
 * Does `pw` match `stored`?  With stored NULL (no such member, or no
 * password) a hash is computed anyway and false returned.
 */
static bool password_matches(const char *pw, const char *stored)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    char h[PASSWORD_HASH_MAX];
    if (stored == NULL) {
        pthread_once(&once, dummy_make);
        if (dummy_hash[0] != '\0')
            (void)crypt_into(pw, dummy_hash, h, sizeof(h));
        return false;
    }
    size_t n = strlen(stored);
    return crypt_into(pw, stored, h, sizeof(h)) && strlen(h) == n && crypto_equal(h, stored, n);
}

/* A password someone may set: 8-128 characters, not only blanks. */
static const char *password_weak(const char *pw)
{
    size_t n = utf8_chars(pw);
    if (n < PASSWORD_MIN)
        return "is too short: at least 8 characters";
    if (n > PASSWORD_MAX)
        return "is too long: at most 128 characters";
    if (blank(pw))
        return "must not be only spaces";
    return NULL;
}

/* ------------------------------------------------------------ sessions */

static struct metric *m_signins, *m_signin_refused;

static void metrics_once(void)
{
    m_signins = metrics_get(METRIC_COUNTER, "shouwen_intake_signins_total",
                            "Console sign-ins that made a session", NULL);
    m_signin_refused =
        metrics_get(METRIC_COUNTER, "shouwen_intake_signins_refused_total",
                    "Console sign-ins refused (wrong site, staff code or password)", NULL);
}

void console_metrics_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, metrics_once);
}

/*
 * Answer the session of the staff token with SHA-256 `hash` (hex): who,
 * which site, until when; with `token` (just made) it is included, once.
 */
static sw_err session_answer(struct job *j, PGconn *db, const char *hash, const char *token,
                             uint16_t status, char *err, size_t errlen)
{
    const char *v[] = {hash};
    PGresult *r;
    sw_err rv = db_run(
        db, "read the session",
        "SELECT " SQL_UTC(
            "t.expires_at") ", st.code, st.name, st.role, d.code, s.code, "
                            "s.name, s.time_zone FROM core.staff_tokens t JOIN core.staff st ON "
                            "st.id = "
                            "t.staff_id JOIN core.sites s ON s.id = st.site_id LEFT JOIN "
                            "core.departments d ON d.id = st.department_id WHERE t.token_hash = "
                            "decode($1, 'hex')",
        1, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    if (PQntuples(r) != 1) {
        PQclear(r);
        job_reply_error(j, 401, "invalid credentials");
        return SW_OK;
    }
    struct buf *b = &j->body;
    buf_reset(b);
    buf_puts(b, "{");
    if (token != NULL) {
        buf_puts(b, "\"token\":");
        buf_json_string(b, token);
        buf_puts(b, ",");
    }
    buf_puts(b, "\"expires_at\":");
    buf_json_string(b, PQgetvalue(r, 0, 0));
    buf_puts(b, ",\"staff\":{\"code\":");
    buf_json_string(b, PQgetvalue(r, 0, 1));
    buf_puts(b, ",\"name\":");
    buf_json_string(b, PQgetvalue(r, 0, 2));
    buf_puts(b, ",\"role\":");
    buf_json_string(b, PQgetvalue(r, 0, 3));
    buf_puts(b, ",\"department\":");
    if (PQgetisnull(r, 0, 4))
        buf_puts(b, "null");
    else
        buf_json_string(b, PQgetvalue(r, 0, 4));
    buf_puts(b, "},\"site\":{\"code\":");
    buf_json_string(b, PQgetvalue(r, 0, 5));
    buf_puts(b, ",\"name\":");
    buf_json_string(b, PQgetvalue(r, 0, 6));
    buf_puts(b, ",\"time_zone\":");
    buf_json_string(b, PQgetvalue(r, 0, 7));
    buf_puts(b, "}}");
    j->status = status;
    PQclear(r);
    return SW_OK;
}

sw_err session_create(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob,
                      char *err, size_t errlen)
{
    (void)ob;
    static const char *const known[] = {"site", "staff", "password", NULL};
    struct field_errors f = {.n = 0};
    console_metrics_init();
    members_only(&f, j->json, known, "a sign-in");
    const char *site = json_str_member(&f, j->json, "site", 16, true);
    const char *staff = json_str_member(&f, j->json, "staff", 32, true);
    const char *pw = json_str_member(&f, j->json, "password", (size_t)4 * PASSWORD_MAX, true);
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    const char *v[] = {site, staff};
    PGresult *r;
    sw_err rv = db_run(db, "find the staff member",
                       "SELECT st.id::text, st.password_hash FROM core.staff st JOIN core.sites s "
                       "ON s.id = st.site_id AND s.active WHERE s.code = $1 AND st.code = $2 AND "
                       "st.active",
                       2, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    bool found = PQntuples(r) == 1 && !PQgetisnull(r, 0, 1);
    if (!password_matches(pw, found ? PQgetvalue(r, 0, 1) : NULL)) {
        PQclear(r);
        metric_add(m_signin_refused, 1);
        LOG(LOG_WARN, "INTAKE-SIGNIN-REFUSED", "sign-in refused for staff \"%s\" of site \"%s\"",
            staff, site);
        job_reply_error(j, 401, "wrong site, staff code or password");
        return SW_OK;
    }
    char id[37], hex[2 * SESSION_TOKEN_BYTES + 1], token[2 * SESSION_TOKEN_BYTES + 8], hash[65];
    char ttl[24];
    uint8_t sum[32];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (crypto_random_hex(hex, SESSION_TOKEN_BYTES) != SW_OK) {
        snprintf(err, errlen, "could not make a session: no randomness from the system");
        return SW_EINVAL;
    }
    snprintf(token, sizeof(token), "swt_%s", hex);
    crypto_sha256(token, strlen(token), sum);
    crypto_hex(sum, 32, hash);
    snprintf(ttl, sizeof(ttl), "%lld", in->session_ttl_s);
    const char *w[] = {id, hash, ttl};
    rv = db_run(db, "make the session",
                "INSERT INTO core.staff_tokens (staff_id, token_hash, expires_at, session) VALUES "
                "($1::uuid, decode($2, 'hex'), now() + make_interval(secs => $3::bigint), true)",
                3, w, NULL, err, errlen);
    if (rv == SW_OK)
        rv = session_answer(j, db, hash, token, 201, err, errlen);
    explicit_bzero(hex, sizeof(hex));
    explicit_bzero(token, sizeof(token));
    if (rv == SW_OK && j->status == 201) {
        metric_add(m_signins, 1);
        LOG(LOG_INFO, "INTAKE-SIGNIN", "staff \"%s\" of site \"%s\" signed in", staff, site);
    }
    return rv;
}

/* GET and DELETE /v1/session: a staff token's own. */
sw_err session_run(struct intake *in, PGconn *db, struct job *j, struct bus_outbox *ob, char *err,
                   size_t errlen)
{
    (void)in;
    (void)ob;
    if (j->who.kind != 't') {
        job_reply_error(j, 403, "forbidden: a session is a staff member's; this is an API key");
        return SW_OK;
    }
    if (strcmp(j->method, "GET") == 0)
        return session_answer(j, db, j->cred_hash, NULL, 200, err, errlen);
    const char *v[] = {j->cred_hash};
    sw_err rv = db_run(db, "end the session",
                       "UPDATE core.staff_tokens SET revoked_at = now() WHERE token_hash = "
                       "decode($1, 'hex') AND revoked_at IS NULL",
                       1, v, NULL, err, errlen);
    if (rv != SW_OK)
        return rv;
    LOG(LOG_INFO, "INTAKE-SIGNOUT", "staff \"%s\" of site \"%s\" signed out", j->who.name,
        j->who.site);
    job_reply_json(j, 200, "{\"signed_out\":true}");
    return SW_OK;
}

/* ------------------------------------------------------------ passwords */

/*
 * PUT /v1/sites/{code}/staff/{staff}/password {"password", "current"}: an
 * API key of role admin sets anyone's; a manager sets those of everyone but
 * other managers; a staff member sets their own with the current one.
 */
sw_err password_put(struct job *j, PGconn *db, const char *staff, char *err, size_t errlen)
{
    static const char *const known[] = {"password", "current", NULL};
    const struct principal *p = &j->who;
    struct field_errors f = {.n = 0};
    members_only(&f, j->json, known, "a password");
    const char *pw = json_str_member(&f, j->json, "password", (size_t)4 * PASSWORD_MAX, true);
    const char *current = json_str_member(&f, j->json, "current", (size_t)4 * PASSWORD_MAX, false);
    const char *weak = pw != NULL ? password_weak(pw) : NULL;
    if (weak != NULL)
        field_bad(&f, "password", "%s", weak);
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    const char *v[] = {p->site_id, staff};
    PGresult *r;
    sw_err rv = db_run(db, "find the staff member",
                       "SELECT id::text, role, password_hash, code FROM core.staff WHERE site_id = "
                       "$1::uuid AND code = $2 FOR NO KEY UPDATE",
                       2, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    if (PQntuples(r) != 1) {
        PQclear(r);
        char msg[80];
        snprintf(msg, sizeof(msg), "no such staff member: %s", staff);
        job_reply_error(j, 404, msg);
        return SW_OK;
    }
    char id[37];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
    bool self = p->kind == 't' && strcmp(p->id, id) == 0;
    bool admin = p->kind == 'k' && strcmp(p->role, "admin") == 0;
    bool manager = p->kind == 't' && strcmp(p->role, "manager") == 0 &&
                   strcmp(PQgetvalue(r, 0, 1), "manager") != 0;
    const char *stored = PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2);
    if (!self && !admin && !manager) {
        PQclear(r);
        job_reply_error(j, 403,
                        "forbidden: a password is set by its owner, by a manager (not for another "
                        "manager) or with an API key of role admin");
        return SW_OK;
    }
    if (self && !admin && !manager && (current == NULL || !password_matches(current, stored))) {
        PQclear(r);
        struct field_error fe = {.field = "current", .message = ""};
        snprintf(fe.message, sizeof(fe.message), "%s",
                 current == NULL ? "is required to change your own password"
                                 : "is not your current password");
        job_reply_fields(j, &fe, 1);
        return SW_OK;
    }
    PQclear(r);
    char hash[PASSWORD_HASH_MAX];
    if (!password_hash(pw, hash, sizeof(hash))) {
        snprintf(err, errlen, "could not hash the password (libcrypt refused)");
        return SW_EINVAL;
    }
    /* The caller's own token stays; every other console session of the member ends. */
    const char *w[] = {id, hash, p->kind == 't' ? j->cred_hash : ""};
    rv = db_run(db, "set the password",
                "WITH s AS (UPDATE core.staff SET password_hash = $2, password_set_at = now() "
                "WHERE id = $1::uuid) UPDATE core.staff_tokens SET revoked_at = now() WHERE "
                "staff_id = $1::uuid AND session AND revoked_at IS NULL AND token_hash <> "
                "decode($3, 'hex')",
                3, w, NULL, err, errlen);
    explicit_bzero(hash, sizeof(hash));
    if (rv != SW_OK)
        return rv;
    LOG(LOG_INFO, "ADMIN-PASSWORD-SET", "password of staff \"%s\" of site %s set by %s%s", staff,
        p->site, p->kind == 'k' ? "api key " : "staff ", p->name);
    buf_reset(&j->body);
    buf_puts(&j->body, "{\"staff\":");
    buf_json_string(&j->body, staff);
    buf_puts(&j->body, ",\"password_set\":true}");
    j->status = 200;
    return SW_OK;
}

/* ------------------------------------------------------------ checklists */

static bool case_type_ok(const char *s)
{
    for (int i = 0; case_types[i] != NULL; i++)
        if (strcmp(s, case_types[i]) == 0)
            return true;
    return false;
}

sw_err checklists_get(struct job *j, PGconn *db, char *err, size_t errlen)
{
    const char *v[] = {j->who.site_id};
    PGresult *r;
    sw_err rv = db_run(db, "read the checklists",
                       "SELECT case_type, array_to_json(items) FROM core.checklists WHERE site_id "
                       "= $1::uuid ORDER BY case_type",
                       1, v, &r, err, errlen);
    if (rv != SW_OK)
        return rv;
    struct buf *b = &j->body;
    buf_reset(b);
    buf_puts(b, "{\"checklists\":{");
    for (int i = 0; i < PQntuples(r); i++) {
        buf_puts(b, i ? "," : "");
        buf_json_string(b, PQgetvalue(r, i, 0));
        buf_puts(b, ":");
        buf_puts(b, PQgetvalue(r, i, 1)); /* JSON from the database */
    }
    buf_puts(b, "}}");
    j->status = 200;
    PQclear(r);
    return SW_OK;
}

static bool type_known(struct job *j, const char *type)
{
    if (case_type_ok(type))
        return true;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "no such request type: \"%.40s\" (one of consultation, complaint, help, suggestion, "
             "repair, business, report, emergency)",
             type);
    job_reply_error(j, 404, msg);
    return false;
}

/* PUT /v1/sites/{code}/checklists/{type} {"items": ["...", ...]} */
sw_err checklist_put(struct job *j, PGconn *db, const char *type, char *err, size_t errlen)
{
    static const char *const known[] = {"items", NULL};
    struct field_errors f = {.n = 0};
    if (!type_known(j, type))
        return SW_OK;
    members_only(&f, j->json, known, "a checklist");
    json_t *items = json_object_get(j->json, "items");
    size_t n = json_is_array(items) ? json_array_size(items) : 0;
    if (!json_is_array(items))
        field_bad(&f, "items", "is required: an array of 1-%d strings", CHECKLIST_ITEMS_MAX);
    else if (n < 1 || n > CHECKLIST_ITEMS_MAX)
        field_bad(&f, "items", "must hold 1-%d items, not %zu", CHECKLIST_ITEMS_MAX, n);
    for (size_t i = 0; f.n == 0 && i < n; i++) {
        json_t *it = json_array_get(items, i);
        const char *s = json_is_string(it) ? json_string_value(it) : NULL;
        if (s == NULL || blank(s) || utf8_chars(s) > CHECKLIST_ITEM_MAX)
            field_bad(&f, "items", "item %zu must be a string of 1-%d characters, not blank", i,
                      CHECKLIST_ITEM_MAX);
    }
    if (f.n > 0) {
        job_reply_fields(j, f.fe, f.n);
        return SW_OK;
    }
    char *text = json_dumps(items, JSON_COMPACT);
    if (text == NULL) {
        snprintf(err, errlen, "could not keep the checklist: out of memory");
        return SW_ENOMEM;
    }
    const char *v[] = {j->who.site_id, type, text};
    PGresult *r;
    sw_err rv = db_run(db, "keep the checklist",
                       "INSERT INTO core.checklists (site_id, case_type, items) SELECT $1::uuid, "
                       "$2, array_agg(e ORDER BY o) FROM json_array_elements_text($3::json) WITH "
                       "ORDINALITY AS x(e, o) ON CONFLICT (site_id, case_type) DO UPDATE SET "
                       "items = excluded.items, updated_at = now() RETURNING array_to_json(items)",
                       3, v, &r, err, errlen);
    free(text);
    if (rv != SW_OK)
        return rv;
    buf_reset(&j->body);
    buf_puts(&j->body, "{\"type\":");
    buf_json_string(&j->body, type);
    buf_puts(&j->body, ",\"items\":");
    buf_puts(&j->body, PQgetvalue(r, 0, 0));
    buf_puts(&j->body, "}");
    j->status = 200;
    PQclear(r);
    LOG(LOG_INFO, "ADMIN-CHECKLIST-SET", "checklist of \"%s\" at site %s set by %s", type,
        j->who.site, j->who.name);
    return SW_OK;
}

sw_err checklist_delete(struct job *j, PGconn *db, const char *type, char *err, size_t errlen)
{
    if (!type_known(j, type))
        return SW_OK;
    char msg[80];
    snprintf(msg, sizeof(msg), "no checklist for \"%s\"", type);
    return job_delete_one(j, db, "remove the checklist",
                          "DELETE FROM core.checklists WHERE site_id = $1::uuid AND case_type = $2 "
                          "RETURNING case_type",
                          type, msg, err, errlen);
}
