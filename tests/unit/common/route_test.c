/*
 * route_test.c - routing rules and decisions, table-driven: each row is a
 * case and where it must land, against one site's rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

#define T(x)  (1u << SHOUWEN__V1__CASE_TYPE__CASE_TYPE_##x)
#define CH(x) (1u << SHOUWEN__V1__CHANNEL__CHANNEL_##x)
#define U(x)  (1u << SHOUWEN__V1__URGENCY__URGENCY_##x)

/* a rule in one line: name, priority, sets, keywords ("a|b"), location, hours, target, assisting */
static struct route_rule rule(const char *name, int prio, uint32_t types, uint32_t channels,
                              uint32_t urgencies, const char *kws, const char *loc, int from,
                              int to, const char *target, const char *assist)
{
    struct route_rule r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "id-%s", name);
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.priority = prio;
    r.types = types;
    r.channels = channels;
    r.urgencies = urgencies;
    for (const char *p = kws; p != NULL && *p;) {
        size_t n = strcspn(p, "|");
        snprintf(r.keywords[r.nkeywords++], ROUTE_KEYWORD_MAX + 1, "%.*s", (int)n, p);
        p += n + (p[n] == '|');
    }
    snprintf(r.location, sizeof(r.location), "%s", loc ? loc : "");
    r.from_minute = from;
    r.to_minute = to;
    snprintf(r.target, sizeof(r.target), "%s", target);
    for (const char *p = assist; p != NULL && *p;) {
        size_t n = strcspn(p, "|");
        snprintf(r.assisting[r.nassisting++], WF_CODE_SIZE, "%.*s", (int)n, p);
        p += n + (p[n] == '|');
    }
    return r;
}

static const char *const depts[] = {"front", "eng", "security", "clean", "finance", "qa", "cs"};

/* The demo site's rules, out of order on purpose (the table orders them). */
static struct route_rule *site_rules(size_t *n)
{
    static struct route_rule r[8];
    r[0] =
        rule("night-water", 5, 0, 0, 0, "漏水|burst pipe", NULL, 22 * 60, 6 * 60, "security", "");
    r[1] = rule("water", 10, 0, 0, 0, "漏水|水管|water", NULL, -1, -1, "eng", "");
    r[2] = rule("noise", 20, 0, 0, 0, "噪音|noise", NULL, -1, -1, "security", "");
    r[3] = rule("fees", 30, T(CONSULTATION) | T(COMPLAINT), 0, 0, "物业费|收费", NULL, -1, -1,
                "finance", "");
    r[4] = rule("repairs", 40, T(REPAIR), 0, 0, NULL, NULL, -1, -1, "eng", "");
    r[5] = rule("building-9", 15, 0, 0, 0, NULL, "9-", -1, -1, "clean", "");
    r[6] = rule("emergency", 1, 0, 0, U(EMERGENCY), NULL, NULL, -1, -1, "security", "eng|cs");
    r[7] =
        rule("hotline-complaints", 50, T(COMPLAINT), CH(HOTLINE), 0, NULL, NULL, -1, -1, "cs", "");
    *n = 8;
    return r;
}

struct row {
    const char *what;
    const char *subject, *description, *address;
    const char *exclude; /* one department, or NULL */
    const char *want;    /* rule name, or NULL for none */
    int type, channel, urgency;
    int minute;
};

#define ROW(what_, type_, channel_, urgency_, subject_, description_, address_, minute_, exclude_, \
            want_)                                                                                 \
    {                                                                                              \
        .what = what_, .type = type_, .channel = channel_, .urgency = urgency_,                    \
        .subject = subject_, .description = description_, .address = address_, .minute = minute_,  \
        .exclude = exclude_, .want = want_                                                         \
    }

static void test_match_table(void **state)
{
    (void)state;
    size_t n;
    struct route_rule *rs = site_rules(&n);
    struct route_table *t = NULL;
    assert_int_equal(route_table_build(rs, n, &t), SW_OK);
    const int HELP = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_HELP,
              REPAIR = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_REPAIR,
              CONS = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_CONSULTATION,
              COMPL = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_COMPLAINT,
              PHONE = SHOUWEN__V1__CHANNEL__CHANNEL_PHONE,
              HOT = SHOUWEN__V1__CHANNEL__CHANNEL_HOTLINE,
              NORM = SHOUWEN__V1__URGENCY__URGENCY_NORMAL,
              EMERG = SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY;
    const struct row rows[] = {
        ROW("keyword in the subject", HELP, PHONE, NORM, "厨房漏水", "", "3-2-501", 600, NULL,
            "water"),
        ROW("keyword in the description", HELP, PHONE, NORM, "求助", "卫生间水管坏了", "", 600,
            NULL, "water"),
        ROW("ASCII keywords ignore case", HELP, PHONE, NORM, "WATER everywhere", "", "", 600, NULL,
            "water"),
        ROW("night hours win over day rules (priority 5)", HELP, PHONE, NORM, "漏水", "", "",
            23 * 60, NULL, "night-water"),
        ROW("... wrapping past midnight", HELP, PHONE, NORM, "漏水", "", "", 3 * 60, NULL,
            "night-water"),
        ROW("... but not at 06:00", HELP, PHONE, NORM, "漏水", "", "", 6 * 60, NULL, "water"),
        ROW("time unknown: an hours rule does not match", HELP, PHONE, NORM, "漏水", "", "", -1,
            NULL, "water"),
        ROW("location prefix", HELP, PHONE, NORM, "门口有垃圾", "", "9-1-101", 600, NULL,
            "building-9"),
        ROW("location prefix is a prefix, not a substring", HELP, PHONE, NORM, "门口有垃圾", "",
            "19-1-101", 600, NULL, NULL),
        ROW("priority order: building 9 (15) before noise (20)", HELP, PHONE, NORM, "噪音", "",
            "9-3-302", 600, NULL, "building-9"),
        ROW("type set: fees for a consultation", CONS, PHONE, NORM, "物业费怎么交", "", "", 600,
            NULL, "fees"),
        ROW("type set: not for a repair", REPAIR, PHONE, NORM, "物业费", "", "", 600, NULL,
            "repairs"),
        ROW("urgency: emergency first of all", HELP, PHONE, EMERG, "噪音", "", "", 600, NULL,
            "emergency"),
        ROW("channel and type together", COMPL, HOT, NORM, "态度不好", "", "", 600, NULL,
            "hotline-complaints"),
        ROW("channel alone is not enough", COMPL, PHONE, NORM, "态度不好", "", "", 600, NULL, NULL),
        ROW("nothing matches", HELP, PHONE, NORM, "问路", "去哪里办", "", 600, NULL, NULL),
        ROW("an excluded department is skipped", HELP, PHONE, NORM, "漏水 噪音", "", "", 600, "eng",
            "noise"),
        ROW("every match excluded", HELP, PHONE, NORM, "漏水", "", "", 600, "eng", NULL),
        ROW("a keyword inside a longer word still matches", HELP, PHONE, NORM, "楼上漏水严重", "",
            "", 600, NULL, "water"),
        ROW("overlapping keywords (水管 inside 漏水管)", HELP, PHONE, NORM, "漏水管", "", "", 600,
            NULL, "water"),
        ROW("no keyword split across subject and description", HELP, PHONE, NORM, "漏", "水", "",
            600, NULL, NULL),
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        struct route_facts f = {.type = w->type,
                                .channel = w->channel,
                                .urgency = w->urgency,
                                .subject = w->subject,
                                .description = w->description,
                                .location = {w->address, NULL, ""},
                                .minute = w->minute};
        const char *ex[1] = {w->exclude};
        const struct route_rule *r = route_match(t, &f, ex, w->exclude ? 1 : 0);
        const char *got = r ? r->name : "(none)";
        const char *want = w->want ? w->want : "(none)";
        if (strcmp(got, want) != 0)
            fail_msg("%s: matched %s, want %s", w->what, got, want);
    }
    route_table_free(t);
}

static struct route_case a_case(const char *subject)
{
    struct route_case c;
    memset(&c, 0, sizeof(c));
    c.facts.type = SHOUWEN__V1__CASE_TYPE__CASE_TYPE_HELP;
    c.facts.channel = SHOUWEN__V1__CHANNEL__CHANNEL_VISIT;
    c.facts.urgency = SHOUWEN__V1__URGENCY__URGENCY_NORMAL;
    c.facts.subject = subject;
    c.facts.description = "";
    c.facts.minute = 600;
    c.first_department = "front";
    c.department = "front";
    c.first_supervisor = "";
    return c;
}

static void test_new_cases(void **state)
{
    (void)state;
    size_t n;
    struct route_rule *rs = site_rules(&n);
    struct route_table *t = NULL;
    struct route_decision d;
    assert_int_equal(route_table_build(rs, n, &t), SW_OK);

    struct route_case c = a_case("厨房漏水");
    c.resolved_on_spot = true;
    route_new_case(t, &c, &d);
    assert_int_equal(d.action, ROUTE_NOTHING);

    c = a_case("厨房漏水");
    c.first_department = "eng";
    c.department = "eng";
    c.first_department_covers = true;
    route_new_case(t, &c, &d);
    assert_int_equal(d.action, ROUTE_OWN_DEPARTMENT);
    assert_string_equal(d.department, "eng");
    assert_non_null(strstr(d.why, "covers"));

    c = a_case("电梯坏了");
    c.first_department = "security";
    c.first_is_operator = true;
    c.first_supervisor = "zhao.sec";
    route_new_case(t, &c, &d);
    assert_int_equal(d.action, ROUTE_DIRECT_SUPERVISOR);
    assert_string_equal(d.staff, "zhao.sec");

    c = a_case("厨房漏水");
    route_new_case(t, &c, &d);
    assert_int_equal(d.action, ROUTE_RULE);
    assert_string_equal(d.department, "eng");
    assert_string_equal(d.rule->name, "water");
    assert_non_null(strstr(d.why, "rule \"water\""));

    c = a_case("厨房漏水");
    c.first_department = "eng"; /* the rule names their own department: assign there */
    route_new_case(t, &c, &d);
    assert_int_equal(d.action, ROUTE_OWN_DEPARTMENT);
    assert_string_equal(d.department, "eng");

    c = a_case("问路");
    route_new_case(t, &c, &d);
    assert_int_equal(d.action, ROUTE_FALLBACK);
    assert_non_null(strstr(d.why, "supervisor"));

    c = a_case("有人晕倒");
    c.facts.urgency = SHOUWEN__V1__URGENCY__URGENCY_EMERGENCY;
    route_new_case(t, &c, &d);
    assert_int_equal(d.action, ROUTE_RULE);
    assert_string_equal(d.department, "security");
    assert_int_equal(d.rule->nassisting, 2);
    assert_non_null(strstr(d.why, "lead"));
    route_table_free(t);
}

static void test_returns_and_loops(void **state)
{
    (void)state;
    size_t n;
    struct route_rule *rs = site_rules(&n);
    struct route_table *t = NULL;
    struct route_decision d;
    assert_int_equal(route_table_build(rs, n, &t), SW_OK);

    /* eng returned a water-and-noise case: the next match, never eng again */
    const char *ret1[] = {"eng"};
    const char *vis1[] = {"eng"};
    struct route_case c = a_case("漏水 噪音");
    c.department = "front";
    c.returned_by = ret1;
    c.nreturned = 1;
    c.visited = vis1;
    c.nvisited = 1;
    route_returned(t, &c, &d);
    assert_int_equal(d.action, ROUTE_RULE);
    assert_string_equal(d.department, "security");

    /* returned by the only matching department: the supervisor */
    c = a_case("漏水");
    c.returned_by = ret1;
    c.nreturned = 1;
    route_returned(t, &c, &d);
    assert_int_equal(d.action, ROUTE_FALLBACK);
    assert_non_null(strstr(d.why, "returned by 1 department"));

    /* back with the first responder's department, and the next match is that very one */
    c = a_case("漏水 噪音");
    c.department = "security";
    c.returned_by = ret1;
    c.nreturned = 1;
    route_returned(t, &c, &d);
    assert_int_equal(d.action, ROUTE_NOTHING);
    assert_non_null(strstr(d.why, "it stays"));

    /* A (security) -> B (eng), eng returns, the rules say security again: a loop */
    const char *vis2[] = {"security", "eng"};
    c = a_case("漏水 噪音");
    c.returned_by = ret1;
    c.nreturned = 1;
    c.visited = vis2;
    c.nvisited = 2;
    route_returned(t, &c, &d);
    assert_int_equal(d.action, ROUTE_LOOP);
    assert_true(d.flag_qa);
    assert_string_equal(d.department, "security");
    assert_non_null(strstr(d.why, "loop"));
    route_table_free(t);
}

static void test_checks(void **state)
{
    (void)state;
    char field[40], msg[300];
    struct route_rule r = rule("ok", 1, 0, 0, 0, "漏水", NULL, -1, -1, "eng", "cs");
    assert_true(route_rule_check(&r, depts, 7, field, sizeof(field), msg, sizeof(msg)));

    struct {
        struct route_rule r;
        const char *field, *says;
    } bad[] = {
        {rule("a", 1, 0, 0, 0, "x", NULL, -1, -1, "nowhere", ""), "department",
         "no active department \"nowhere\""},
        {rule("b", 1, 0, 0, 0, "x", NULL, -1, -1, "", ""), "department", "must name"},
        {rule("c", 1, 0, 0, 0, "x", NULL, -1, -1, "eng", "gone"), "assisting_departments",
         "\"gone\""},
        {rule("d", 1, 0, 0, 0, "x", NULL, -1, -1, "eng", "eng"), "assisting_departments",
         "cannot also assist"},
        {rule("e", 1, 0, 0, 0, "x", NULL, -1, -1, "eng", "cs|cs"), "assisting_departments",
         "named twice"},
        {rule("f", 1, 0, 0, 0, NULL, NULL, -1, -1, "eng", ""), "match", "must match on"},
        {rule("g", 1, 0, 0, 0, NULL, NULL, 600, -1, "eng", ""), "hours", "both"},
        {rule("h", 1, 0, 0, 0, NULL, NULL, 600, 600, "eng", ""), "hours", "differ"},
        {rule("i", 1, 0, 0, 0, NULL, NULL, 1500, 60, "eng", ""), "hours", "within"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        field[0] = msg[0] = '\0';
        if (route_rule_check(&bad[i].r, depts, 7, field, sizeof(field), msg, sizeof(msg)))
            fail_msg("rule %s was accepted", bad[i].r.name);
        assert_string_equal(field, bad[i].field);
        if (strstr(msg, bad[i].says) == NULL)
            fail_msg("rule %s: \"%s\" does not say \"%s\"", bad[i].r.name, msg, bad[i].says);
    }
    /* an empty keyword */
    r = rule("k", 1, 0, 0, 0, "x", NULL, -1, -1, "eng", "");
    r.keywords[r.nkeywords++][0] = '\0';
    assert_false(route_rule_check(&r, depts, 7, field, sizeof(field), msg, sizeof(msg)));
    assert_string_equal(field, "keywords");

    size_t n;
    struct route_rule *rs = site_rules(&n);
    assert_true(route_rules_check_order(rs, n, msg, sizeof(msg)));
    struct route_rule two[2] = {rule("x", 7, T(HELP), 0, 0, NULL, NULL, -1, -1, "eng", ""),
                                rule("y", 7, T(REPAIR), 0, 0, NULL, NULL, -1, -1, "eng", "")};
    assert_false(route_rules_check_order(two, 2, msg, sizeof(msg)));
    assert_non_null(strstr(msg, "priority 7"));
}

static void test_many_keywords_and_rules(void **state)
{
    (void)state;
    /* 1,000 rules of 3 keywords; the last one's keyword is the one that occurs */
    size_t n = 1000;
    struct route_rule *rs = calloc(n, sizeof(*rs));
    assert_non_null(rs);
    for (size_t i = 0; i < n; i++) {
        char kws[64];
        snprintf(kws, sizeof(kws), "词%zu甲|词%zu乙|word%zu", i, i, i);
        rs[i] = rule("r", (int)i + 1, 0, 0, 0, kws, NULL, -1, -1, i % 2 ? "eng" : "security", "");
        snprintf(rs[i].name, sizeof(rs[i].name), "r%zu", i);
    }
    struct route_table *t = NULL;
    assert_int_equal(route_table_build(rs, n, &t), SW_OK);
    assert_int_equal(route_table_size(t), n);
    struct route_facts f = {.type = 3, .channel = 1, .urgency = 1, .minute = 600};
    f.subject = "这里有 词500乙";
    f.description = "";
    const struct route_rule *r = route_match(t, &f, NULL, 0);
    assert_non_null(r);
    assert_string_equal(r->name, "r500");
    f.subject = "WORD999"; /* word9, word99 and word999 all occur: the first in order wins */
    r = route_match(t, &f, NULL, 0);
    assert_non_null(r);
    assert_string_equal(r->name, "r9");
    f.subject = "nothing here but word1000x"; /* word100 occurs inside word1000x */
    r = route_match(t, &f, NULL, 0);
    assert_non_null(r);
    assert_string_equal(r->name, "r1"); /* word1 occurs first in order (priority 2) */
    route_table_free(t);
    free(rs);

    /* a keyword that ends where a longer one ends (a suffix of it) is found too */
    struct route_rule sx[2] = {rule("long", 2, 0, 0, 0, "楼上水管", NULL, -1, -1, "eng", ""),
                               rule("suffix", 1, 0, 0, 0, "水管", NULL, -1, -1, "security", "")};
    assert_int_equal(route_table_build(sx, 2, &t), SW_OK);
    f.subject = "楼上水管裂了";
    r = route_match(t, &f, NULL, 0);
    assert_non_null(r);
    assert_string_equal(r->name, "suffix");
    route_table_free(t);

    /* an empty table matches nothing */
    assert_int_equal(route_table_build(NULL, 0, &t), SW_OK);
    assert_null(route_match(t, &f, NULL, 0));
    route_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_new_cases),
        cmocka_unit_test(test_returns_and_loops),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_many_keywords_and_rules),
    };
    return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
