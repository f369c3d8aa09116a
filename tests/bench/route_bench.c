/*
 * route_bench.c - routing decisions per second, in process, with a site of
 * 1,000 rules (BENCH_RULES), against a baseline on the same rules and
 * cases: the obvious matcher that searches the text once per keyword of
 * each rule tried (strstr), in order.  Both must agree on every case; the
 * run fails if they do not.
 *
 * The rules are a property-management site's, made up but shaped like the
 * real thing: a type set on most, a channel or urgency on some, one to
 * four Chinese keywords on most, a building prefix on some, hours on a few.
 * The cases are a mix: some match an early rule, some a late one, a fifth
 * match none (every rule is tried, the worst case).
 *
 *   route_bench [seconds per side, default 3]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route.h"

#define NCASES 4096

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* two-character words from these characters make ~3,600 distinct keywords */
static const char *const chars[] = {
    "水", "电", "门", "窗", "墙", "梯", "灯", "管", "漏", "堵", "噪", "音", "费", "车", "位",
    "狗", "垃", "圾", "绿", "化", "保", "安", "监", "控", "消", "防", "燃", "气", "暖", "空",
    "调", "网", "线", "锁", "卡", "钥", "匙", "快", "递", "装", "修", "邻", "居", "物", "业",
    "租", "房", "契", "税", "票", "楼", "道", "井", "盖", "排", "污", "虫", "鼠", "树", "草",
};
#define NCHARS (sizeof(chars) / sizeof(chars[0]))

static void word(char *out, size_t len)
{
    snprintf(out, len, "%s%s", chars[rnd(NCHARS)], chars[rnd(NCHARS)]);
}

static const char *const depts[] = {"eng", "security", "clean", "finance", "green", "cs"};

/* the baseline: the same rules in the same order, strstr per keyword */
static const struct route_rule *naive(const struct route_rule *rules, const size_t *order, size_t n,
                                      const struct route_facts *f)
{
    for (size_t i = 0; i < n; i++) {
        const struct route_rule *r = &rules[order[i]];
        if ((r->types && !(r->types & (1u << f->type))) ||
            (r->channels && !(r->channels & (1u << f->channel))) ||
            (r->urgencies && !(r->urgencies & (1u << f->urgency))))
            continue;
        if (r->from_minute >= 0) {
            bool in = r->from_minute < r->to_minute
                          ? f->minute >= r->from_minute && f->minute < r->to_minute
                          : f->minute >= r->from_minute || f->minute < r->to_minute;
            if (!in)
                continue;
        }
        if (r->location[0] && strncmp(f->location[0], r->location, strlen(r->location)) != 0)
            continue;
        bool kw = r->nkeywords == 0;
        for (size_t k = 0; k < r->nkeywords && !kw; k++)
            kw = strstr(f->subject, r->keywords[k]) || strstr(f->description, r->keywords[k]);
        if (kw)
            return r;
    }
    return NULL;
}

static const struct route_rule *sort_rules; /* what by_prio compares */

static int by_prio(const void *a, const void *b)
{
    const struct route_rule *x = &sort_rules[*(const size_t *)a],
                            *y = &sort_rules[*(const size_t *)b];
    return (x->priority > y->priority) - (x->priority < y->priority);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    const char *e = getenv("BENCH_RULES");
    size_t nrules = e != NULL ? (size_t)atol(e) : 1000;
    struct route_rule *rules = calloc(nrules, sizeof(*rules));
    size_t *sorted = calloc(nrules, sizeof(size_t));
    static char subj[NCASES][160], desc[NCASES][400], addr[NCASES][16];
    static struct route_facts facts[NCASES];
    if (rules == NULL || sorted == NULL) {
        fprintf(stderr, "route_bench: out of memory\n");
        free(rules);
        free(sorted);
        return 1;
    }
    for (size_t i = 0; i < nrules; i++) {
        struct route_rule *r = &rules[i];
        snprintf(r->name, sizeof(r->name), "rule-%zu", i);
        r->priority = (int)((i * 7919) % nrules) + 1; /* a permutation: all distinct */
        r->from_minute = r->to_minute = -1;
        if (rnd(10) < 7)
            r->types = (1u << (1 + rnd(8))) | (rnd(2) ? 1u << (1 + rnd(8)) : 0);
        if (rnd(10) < 2)
            r->channels = 1u << (1 + rnd(12));
        if (rnd(20) == 0)
            r->urgencies = 1u << (1 + rnd(3));
        if (rnd(20) == 0) { /* a building's rule: no keywords */
            snprintf(r->location, sizeof(r->location), "%u-", 1 + rnd(30));
        } else {
            r->nkeywords = 1 + rnd(4);
            for (size_t k = 0; k < r->nkeywords; k++)
                word(r->keywords[k], sizeof(r->keywords[k]));
        }
        if (r->nkeywords > 0 && rnd(10) == 0)
            snprintf(r->location, sizeof(r->location), "%u-", 1 + rnd(30));
        if (rnd(20) == 0) {
            r->from_minute = (int)rnd(24) * 60;
            r->to_minute = (r->from_minute + 8 * 60) % 1440;
        }
        snprintf(r->target, sizeof(r->target), "%s", depts[rnd(6)]);
        sorted[i] = i;
    }
    sort_rules = rules;
    qsort(sorted, nrules, sizeof(size_t), by_prio);
    for (int i = 0; i < NCASES; i++) {
        char w1[16], w2[16], w3[16];
        word(w1, sizeof(w1));
        word(w2, sizeof(w2));
        word(w3, sizeof(w3));
        if (rnd(5) == 0) /* matches no keyword: ASCII only */
            snprintf(subj[i], sizeof(subj[i]), "ask about opening hours %u", rnd(1000));
        else
            snprintf(subj[i], sizeof(subj[i]), "业主反映%s问题", w1);
        snprintf(desc[i], sizeof(desc[i]),
                 "%s 客户来电称最近一段时间%s方面的情况一直没有得到解决，希望物业尽快派人处理，"
                 "并且说明%s的安排。联系电话已登记。",
                 rnd(5) == 0 ? "no keywords here at all" : w2, rnd(5) == 0 ? "其它" : w3, w1);
        snprintf(addr[i], sizeof(addr[i]), "%u-%u-%u", 1 + rnd(30), 1 + rnd(4), 101 + rnd(2000));
        facts[i] = (struct route_facts){.type = 1 + (int)rnd(8),
                                        .channel = 1 + (int)rnd(12),
                                        .urgency = 1 + (int)rnd(3),
                                        .subject = subj[i],
                                        .description = desc[i],
                                        .location = {addr[i], NULL, NULL},
                                        .minute = (int)rnd(1440)};
    }
    struct route_table *t = NULL;
    double t0 = now_s();
    if (route_table_build(rules, nrules, &t) != SW_OK) {
        fprintf(stderr, "route_bench: could not build the table\n");
        return 1;
    }
    double build_ms = (now_s() - t0) * 1000;

    /* the same answers */
    size_t none = 0;
    for (int i = 0; i < NCASES; i++) {
        const struct route_rule *a = route_match(t, &facts[i], NULL, 0);
        const struct route_rule *b = naive(rules, sorted, nrules, &facts[i]);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a->name, b->name) != 0)) {
            fprintf(stderr, "route_bench: case %d: the table says %s, the baseline %s\n", i,
                    a ? a->name : "none", b ? b->name : "none");
            return 1;
        }
        none += a == NULL;
    }
    printf("rules: %zu (table built in %.2f ms); cases: %d, of which %zu match no rule\n", nrules,
           build_ms, NCASES, none);

    double rate[2];
    for (int side = 0; side < 2; side++) {
        size_t n = 0;
        uintptr_t sink = 0;
        double start = now_s(), el;
        do {
            for (int i = 0; i < 256; i++, n++) {
                const struct route_facts *f = &facts[n % NCASES];
                sink += (uintptr_t)(side == 0 ? route_match(t, f, NULL, 0)
                                              : naive(rules, sorted, nrules, f));
            }
            el = now_s() - start;
        } while (el < secs);
        rate[side] = (double)n / el;
        printf("%s: %zu decisions in %.2f s: %.0f decisions/s (%.2f us each; checksum %lu)\n",
               side == 0 ? "route_match (one automaton pass, then the rules in order)"
                         : "baseline (strstr per keyword, rules in order)",
               n, el, rate[side], 1e6 / rate[side], (unsigned long)(sink % 1000003));
    }
    printf("decisions_per_s=%.0f baseline_per_s=%.0f ratio=%.2f\n", rate[0], rate[1],
           rate[0] / rate[1]);
    route_table_free(t);
    free(rules);
    free(sorted);
    return 0;
}
