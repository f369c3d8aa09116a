/*
 * route.c - routing rules and decisions; see route.h.
 *
 * Keywords: a site may have a thousand rules with several keywords each,
 * and a decision must not search the text once per keyword.  All the
 * distinct keywords of a table go into one Aho-Corasick automaton (a trie
 * with failure links), so one pass over the subject and one over the
 * description find every keyword that occurs; the rules are then tried in
 * order with cheap tests (bit sets, prefixes, minutes) and a look-up in
 * the set of keywords found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

struct edge {
    uint8_t c;
    int to;
    int next; /* the node's next edge, -1 at the end */
};

struct node {
    int first;   /* first edge, -1 = none */
    int fail;    /* longest proper suffix that is a node */
    int dict;    /* nearest node on the fail chain that ends a keyword, 0 = none */
    int keyword; /* the keyword ending here, -1 = none */
};

struct crule {
    struct route_rule r;
    size_t order; /* position given, to keep equal priorities stable */
    int kw[ROUTE_MAX_KEYWORDS];
};

struct route_table {
    struct crule *rules;
    size_t n;
    struct node *nodes;
    int nnodes;
    struct edge *edges;
    int nedges;
    int nkeywords;
};

static uint8_t fold(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/* ---- checking ---------------------------------------------------------------------------- */

static bool has_dept(const char *code, const char *const *depts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(depts[i], code) == 0)
            return true;
    return false;
}

bool route_rule_check(const struct route_rule *r, const char *const *depts, size_t ndepts,
                      char *field, size_t fieldlen, char *msg, size_t msglen)
{
#define REFUSE(f, ...)                                                                             \
    do {                                                                                           \
        snprintf(field, fieldlen, "%s", f);                                                        \
        snprintf(msg, msglen, __VA_ARGS__);                                                        \
        return false;                                                                              \
    } while (0)
    if (r->target[0] == '\0')
        REFUSE("department", "a rule must name the department it sends cases to");
    if (!has_dept(r->target, depts, ndepts))
        REFUSE("department", "no active department \"%s\" at this site", r->target);
    if (r->nassisting > WF_MAX_ASSIST)
        REFUSE("assisting_departments", "at most %d assisting departments", WF_MAX_ASSIST);
    for (size_t i = 0; i < r->nassisting; i++) {
        if (!has_dept(r->assisting[i], depts, ndepts))
            REFUSE("assisting_departments", "no active department \"%s\" at this site",
                   r->assisting[i]);
        if (strcmp(r->assisting[i], r->target) == 0)
            REFUSE("assisting_departments", "\"%s\" is the lead department; it cannot also assist",
                   r->target);
        for (size_t k = 0; k < i; k++)
            if (strcmp(r->assisting[i], r->assisting[k]) == 0)
                REFUSE("assisting_departments", "\"%s\" is named twice", r->assisting[i]);
    }
    if (r->nkeywords > ROUTE_MAX_KEYWORDS)
        REFUSE("keywords", "at most %d keywords", ROUTE_MAX_KEYWORDS);
    for (size_t i = 0; i < r->nkeywords; i++)
        if (r->keywords[i][0] == '\0')
            REFUSE("keywords", "a keyword may not be empty");
    if ((r->from_minute < 0) != (r->to_minute < 0))
        REFUSE("hours", "a time of day needs both a start and an end");
    if (r->from_minute >= 0 &&
        (r->from_minute > 1439 || r->to_minute > 1440 || r->from_minute == r->to_minute))
        REFUSE("hours", "the start and the end must differ, within 00:00-24:00");
    if (r->types == 0 && r->channels == 0 && r->urgencies == 0 && r->nkeywords == 0 &&
        r->location[0] == '\0' && r->from_minute < 0)
        REFUSE("match",
               "a rule must match on something (type, channel, urgency, keywords, location or "
               "hours); what no rule matches goes to the customer-relations supervisor");
    return true;
#undef REFUSE
}

bool route_rules_check_order(const struct route_rule *rules, size_t n, char *msg, size_t msglen)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            if (rules[i].priority == rules[k].priority) {
                snprintf(msg, msglen,
                         "rules \"%s\" and \"%s\" both have priority %d: the order would be "
                         "unclear",
                         rules[i].name[0] ? rules[i].name : rules[i].id,
                         rules[k].name[0] ? rules[k].name : rules[k].id, rules[i].priority);
                return false;
            }
    return true;
}

/* ---- the automaton ------------------------------------------------------------------------ */

static int child(const struct route_table *t, int node, uint8_t c)
{
    for (int e = t->nodes[node].first; e >= 0; e = t->edges[e].next)
        if (t->edges[e].c == c)
            return t->edges[e].to;
    return -1;
}

static sw_err grow(void **p, int *cap, int need, size_t size)
{
    if (need <= *cap)
        return SW_OK;
    int ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *q = realloc(*p, (size_t)ncap * size);
    if (q == NULL)
        return SW_ENOMEM;
    *p = q;
    *cap = ncap;
    return SW_OK;
}

/* Adds a keyword (folded); returns its id, the same for the same text. */
static int add_keyword(struct route_table *t, const char *kw, int *ncap, int *ecap)
{
    int node = 0;
    for (const uint8_t *p = (const uint8_t *)kw; *p; p++) {
        uint8_t c = fold(*p);
        int next = child(t, node, c);
        if (next < 0) {
            if (grow((void **)&t->nodes, ncap, t->nnodes + 1, sizeof(*t->nodes)) != SW_OK ||
                grow((void **)&t->edges, ecap, t->nedges + 1, sizeof(*t->edges)) != SW_OK)
                return -2;
            next = t->nnodes++;
            t->nodes[next] = (struct node){.first = -1, .keyword = -1};
            t->edges[t->nedges] = (struct edge){.c = c, .to = next, .next = t->nodes[node].first};
            t->nodes[node].first = t->nedges++;
        }
        node = next;
    }
    if (t->nodes[node].keyword < 0)
        t->nodes[node].keyword = t->nkeywords++;
    return t->nodes[node].keyword;
}

/* Failure and dictionary links, breadth first. */
static sw_err link_nodes(struct route_table *t)
{
    if (t->edges == NULL)
        return SW_OK; /* no keywords */
    int *queue = malloc((size_t)t->nnodes * sizeof(int));
    if (queue == NULL)
        return SW_ENOMEM;
    int head = 0, tail = 0;
    for (int e = t->nodes[0].first; e >= 0; e = t->edges[e].next) {
        int v = t->edges[e].to;
        t->nodes[v].fail = 0;
        t->nodes[v].dict = 0;
        queue[tail++] = v;
    }
    while (head < tail) {
        int u = queue[head++];
        for (int e = t->nodes[u].first; e >= 0; e = t->edges[e].next) {
            int v = t->edges[e].to;
            uint8_t c = t->edges[e].c;
            int f = t->nodes[u].fail;
            int to;
            while ((to = child(t, f, c)) < 0 && f != 0)
                f = t->nodes[f].fail;
            t->nodes[v].fail = to >= 0 && to != v ? to : 0;
            int fv = t->nodes[v].fail;
            t->nodes[v].dict = t->nodes[fv].keyword >= 0 ? fv : t->nodes[fv].dict;
            queue[tail++] = v;
        }
    }
    free(queue);
    return SW_OK;
}

static int by_priority(const void *a, const void *b)
{
    const struct crule *x = a, *y = b;
    if (x->r.priority != y->r.priority)
        return x->r.priority < y->r.priority ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

sw_err route_table_build(const struct route_rule *rules, size_t n, struct route_table **out)
{
    struct route_table *t = calloc(1, sizeof(*t));
    int ncap = 0, ecap = 0;
    if (t == NULL)
        return SW_ENOMEM;
    t->rules = calloc(n ? n : 1, sizeof(*t->rules));
    if (t->rules == NULL || grow((void **)&t->nodes, &ncap, 1, sizeof(*t->nodes)) != SW_OK) {
        route_table_free(t);
        return SW_ENOMEM;
    }
    t->nodes[0] = (struct node){.first = -1, .keyword = -1};
    t->nnodes = 1;
    for (size_t i = 0; i < n; i++) {
        struct crule *c = &t->rules[i];
        c->r = rules[i];
        c->order = i;
        if (c->r.nkeywords > ROUTE_MAX_KEYWORDS)
            c->r.nkeywords = ROUTE_MAX_KEYWORDS;
        for (size_t k = 0; k < c->r.nkeywords; k++) {
            c->r.keywords[k][ROUTE_KEYWORD_MAX] = '\0';
            c->kw[k] = c->r.keywords[k][0] ? add_keyword(t, c->r.keywords[k], &ncap, &ecap) : -1;
            if (c->kw[k] == -2) {
                route_table_free(t);
                return SW_ENOMEM;
            }
        }
    }
    t->n = n;
    qsort(t->rules, n, sizeof(*t->rules), by_priority);
    if (link_nodes(t) != SW_OK) {
        route_table_free(t);
        return SW_ENOMEM;
    }
    *out = t;
    return SW_OK;
}

void route_table_free(struct route_table *t)
{
    if (t == NULL)
        return;
    free(t->rules);
    free(t->nodes);
    free(t->edges);
    free(t);
}

size_t route_table_size(const struct route_table *t)
{
    return t != NULL ? t->n : 0;
}

/* Marks in `hits` every keyword that occurs in `s`. */
static void scan(const struct route_table *t, const char *s, uint8_t *hits)
{
    int state = 0;
    if (s == NULL || t->nkeywords == 0)
        return;
    for (const uint8_t *p = (const uint8_t *)s; *p; p++) {
        uint8_t c = fold(*p);
        int to;
        while ((to = child(t, state, c)) < 0 && state != 0)
            state = t->nodes[state].fail;
        state = to >= 0 ? to : 0;
        int k = t->nodes[state].keyword >= 0 ? state : t->nodes[state].dict;
        while (k != 0) {
            hits[t->nodes[k].keyword] = 1;
            k = t->nodes[k].dict;
        }
    }
}

/* ---- matching ---------------------------------------------------------------------------- */

static bool in_set(uint32_t set, int v)
{
    return set == 0 || (v >= 0 && v < 32 && (set & (1u << v)) != 0);
}

static bool location_ok(const struct route_rule *r, const struct route_facts *f)
{
    if (r->location[0] == '\0')
        return true;
    size_t n = strlen(r->location);
    for (int i = 0; i < 3; i++)
        if (f->location[i] != NULL && strncmp(f->location[i], r->location, n) == 0)
            return true;
    return false;
}

static bool hours_ok(const struct route_rule *r, int minute)
{
    if (r->from_minute < 0)
        return true;
    if (minute < 0)
        return false;
    if (r->from_minute < r->to_minute)
        return minute >= r->from_minute && minute < r->to_minute;
    return minute >= r->from_minute || minute < r->to_minute; /* past midnight */
}

static bool excluded(const char *code, const char *const *ex, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ex[i] != NULL && strcmp(ex[i], code) == 0)
            return true;
    return false;
}

const struct route_rule *route_match(const struct route_table *t, const struct route_facts *f,
                                     const char *const *exclude, size_t nexclude)
{
    uint8_t small[1024];
    uint8_t *hits = small;
    const struct route_rule *found = NULL;
    if (t == NULL || t->n == 0)
        return NULL;
    if ((size_t)t->nkeywords > sizeof(small)) {
        hits = calloc((size_t)t->nkeywords, 1);
        if (hits == NULL)
            return NULL;
    } else {
        memset(small, 0, (size_t)t->nkeywords);
    }
    scan(t, f->subject, hits);
    scan(t, f->description, hits);
    for (size_t i = 0; i < t->n && found == NULL; i++) {
        const struct crule *c = &t->rules[i];
        const struct route_rule *r = &c->r;
        if (!in_set(r->types, f->type) || !in_set(r->channels, f->channel) ||
            !in_set(r->urgencies, f->urgency) || !hours_ok(r, f->minute) || !location_ok(r, f) ||
            excluded(r->target, exclude, nexclude))
            continue;
        bool kw = r->nkeywords == 0;
        for (size_t k = 0; k < r->nkeywords && !kw; k++)
            kw = c->kw[k] >= 0 && hits[c->kw[k]];
        if (kw)
            found = r;
    }
    if (hits != small)
        free(hits);
    return found;
}

/* ---- decisions --------------------------------------------------------------------------- */

const char *route_action_name(enum route_action a)
{
    switch (a) {
    case ROUTE_NOTHING:
        return "nothing";
    case ROUTE_OWN_DEPARTMENT:
        return "own_department";
    case ROUTE_DIRECT_SUPERVISOR:
        return "direct_supervisor";
    case ROUTE_RULE:
        return "rule";
    case ROUTE_FALLBACK:
        return "fallback";
    case ROUTE_LOOP:
        return "loop";
    }
    return "unknown";
}

static const char *rule_label(const struct route_rule *r)
{
    return r->name[0] ? r->name : r->id;
}

static void decide(struct route_decision *d, enum route_action a, const struct route_rule *r,
                   const char *dept, const char *staff)
{
    memset(d, 0, sizeof(*d));
    d->action = a;
    d->rule = r;
    snprintf(d->department, sizeof(d->department), "%s", dept ? dept : "");
    snprintf(d->staff, sizeof(d->staff), "%s", staff ? staff : "");
}

static bool visited(const struct route_case *c, const char *dept)
{
    return excluded(dept, c->visited, c->nvisited) ||
           (c->department != NULL && strcmp(c->department, dept) == 0);
}

void route_new_case(const struct route_table *t, const struct route_case *c,
                    struct route_decision *d)
{
    const char *fd = c->first_department != NULL ? c->first_department : "";
    if (c->resolved_on_spot) {
        decide(d, ROUTE_NOTHING, NULL, NULL, NULL);
        snprintf(d->why, sizeof(d->why), "resolved on the spot by the first responder");
        return;
    }
    if (fd[0] != '\0' && c->first_department_covers) {
        decide(d, ROUTE_OWN_DEPARTMENT, NULL, fd, NULL);
        snprintf(d->why, sizeof(d->why),
                 "the first responder's department %s covers %s requests: it stays with them", fd,
                 wf_case_type_name((Shouwen__V1__CaseType)c->facts.type)
                     ? wf_case_type_name((Shouwen__V1__CaseType)c->facts.type)
                     : "such");
        return;
    }
    if (c->first_is_operator && c->first_supervisor != NULL && c->first_supervisor[0] != '\0') {
        decide(d, ROUTE_DIRECT_SUPERVISOR, NULL, NULL, c->first_supervisor);
        snprintf(d->why, sizeof(d->why),
                 "outside the first responder's scope: to their direct supervisor %s",
                 c->first_supervisor);
        return;
    }
    const struct route_rule *r = route_match(t, &c->facts, c->returned_by, c->nreturned);
    if (r == NULL) {
        decide(d, ROUTE_FALLBACK, NULL, NULL, NULL);
        snprintf(d->why, sizeof(d->why),
                 "no rule of the site's %zu matched: to the customer-relations supervisor",
                 route_table_size(t));
        return;
    }
    if (fd[0] != '\0' && strcmp(r->target, fd) == 0) {
        decide(d, ROUTE_OWN_DEPARTMENT, r, fd, NULL);
        snprintf(d->why, sizeof(d->why),
                 "rule \"%s\" sends it to %s, the first responder's own department: assigned there",
                 rule_label(r), fd);
        return;
    }
    decide(d, ROUTE_RULE, r, r->target, NULL);
    snprintf(d->why, sizeof(d->why), "rule \"%s\" (priority %d) matched: transferred to %s%s",
             rule_label(r), r->priority, r->target,
             r->nassisting > 0 ? " as the lead department" : "");
}

void route_returned(const struct route_table *t, const struct route_case *c,
                    struct route_decision *d)
{
    const struct route_rule *r = route_match(t, &c->facts, c->returned_by, c->nreturned);
    if (r == NULL) {
        decide(d, ROUTE_FALLBACK, NULL, NULL, NULL);
        snprintf(d->why, sizeof(d->why),
                 "returned by %zu department%s and no other rule matched: to the "
                 "customer-relations supervisor",
                 c->nreturned, c->nreturned == 1 ? "" : "s");
        return;
    }
    if (c->department != NULL && strcmp(c->department, r->target) == 0) {
        decide(d, ROUTE_NOTHING, r, r->target, NULL);
        snprintf(d->why, sizeof(d->why),
                 "returned; rule \"%s\" points to %s, the department it is back with: it stays",
                 rule_label(r), r->target);
        return;
    }
    if (visited(c, r->target)) {
        decide(d, ROUTE_LOOP, r, r->target, NULL);
        d->flag_qa = true;
        snprintf(d->why, sizeof(d->why),
                 "rule \"%s\" points back to %s, where the case has already been: a loop, to the "
                 "customer-relations supervisor and flagged for QA",
                 rule_label(r), r->target);
        return;
    }
    decide(d, ROUTE_RULE, r, r->target, NULL);
    snprintf(d->why, sizeof(d->why),
             "returned; rule \"%s\" (priority %d) is the next that matches a department that has "
             "not returned it: transferred to %s",
             rule_label(r), r->priority, r->target);
}
