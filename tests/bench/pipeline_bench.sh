#!/usr/bin/env bash
# make bench: the whole pipeline, end to end, on one machine.
#
# A private cluster with the demo site; the five real services wired as
# `make run` wires them (each dials the PUB sockets it needs over ipc://;
# notification and audit dial every service's), a loopback webhook
# receiver (tests/bench/http_sink.c) that the manager subscribes, through
# the notification API, to case.registered (audience "channel": every case
# is notified).  tests/bench/http_load then registers cases over HTTP in a
# closed loop, 32 keep-alive connections (BENCH_CONNS) for 60 s
# (BENCH_SECONDS), each case a leak reported by the hotline, which the
# demo site's rules transfer to engineering (BENCH_RATE=N: an open loop
# at N cases/s instead, to see the latency at a rate the pipeline
# sustains).  For each accepted case (a 201) the pipeline must: register
# it (intake), route it (routing's signed handoff), give it deadlines
# (escalation: the engineering head's appoint clock, which only the
# transfer starts), deliver case.registered to the webhook (notification;
# checked at the receiver by webhook-id) and chain every event of the case
# into audit.log (audit).  The bench waits for that (at most
# BENCH_DRAIN_SECONDS, 120, after the load ends), then reads the figures
# once, in SQL:
#
#   cases_per_s  accepted cases / (from the start of the load to the
#                moment the last of those cases was done): the rate at
#                which the whole pipeline finished cases, backlog included
#                (intake's own rate is printed beside it).  A case is done
#                when its last audit entry is recorded and its deadlines'
#                last write (escalation.deadlines.updated_at) is made,
#                whichever comes later: escalation writes no event here,
#                so the audit log alone would not wait for it, and an
#                escalation left behind would make the rate look better
#   ack          intake's answer as http_load timed it (request sent to
#                201 read): p50, p99
#   e2e          registration (core.cases.created_at: intake's transaction)
#                to done: the LAST audit entry of the case (case.registered,
#                case.transferred and notification.delivered all chained)
#                or its deadlines' last write, whichever came later; p50,
#                p99.  Also printed: to its case.registered chained, to the
#                webhook's arrival at the receiver, to its deadlines' last
#                write; and per event type, when it was written and how
#                long audit took to chain it
#   lost         accepted cases missing any step at the end, each kind of
#                loss counted apart, and the total of distinct cases
#   CPU          utime+stime of each service, of its database sessions, of
#                all of PostgreSQL, of the load generator and receiver, and
#                of the whole machine, over the run (load start to drained)
#   memory       VmHWM (peak resident) of each service before it stops
#
# Baseline, same command, same cluster, the services stopped: pgbench, one
# single-row INSERT per transaction, 2 clients, 10 s (as make bench-intake);
# ratio = cases_per_s / baseline_tps.  Durable commits throughout.
#
# Floor, after the baseline, same cluster: what the database itself needs
# for the rows a case ends with.  The final rows of the run's cases (the
# case, its events on the bus, its handoff, deadlines and marks, deliveries
# and attempts, audit entries and facts) are copied aside, the tables are
# emptied, and pgbench inserts the rows again, the cases of one batch
# (BENCH_FLOOR_BATCH, 300, about a consumer's batch) per transaction, 2
# clients, with every index, key and constraint in place.  None of the
# reads, updates, plans and round trips the services spend on the way is
# in it: printed beside the pipeline's figures (cases/s and PostgreSQL CPU
# per case), it shows how much of the pipeline's database time is the rows
# and how much the way they are written.  BENCH_FLOOR=0 skips it.
#
# BENCH_SQL: SQL run on the migrated database before the services start,
# to measure a change of the schema before it is written as a migration
# (an index dropped, a fillfactor): the run prints it with its settings.
# The updates of the tables each case's row is updated in (core.cases,
# escalation.deadlines, notification.deliveries) are printed with how many
# of them were HOT (no index entry written).
#
# Prints figures and asserts nothing about time; exits 1 if a case is lost
# (or the set-up fails).  Services log at warn (SHOUWEN_LOG_LEVEL).
set -uo pipefail
name=pipeline
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tbin=${SHOUWEN_TEST_BIN:-$top/build/tests}
conns=${BENCH_CONNS:-32}
secs=${BENCH_SECONDS:-60}
drain=${BENCH_DRAIN_SECONDS:-120}
rate=${BENCH_RATE:-}
export SHOUWEN_LOG_LEVEL=${SHOUWEN_LOG_LEVEL:-warn}
q() { bench_psql "$1"; }
die() { echo "FAIL: $*" >&2; exit 1; }
q 'SELECT 1' >/dev/null || die "the private cluster did not start"
if [ -n "${BENCH_SQL:-}" ]; then
    q "$BENCH_SQL" >/dev/null || die "BENCH_SQL failed: $BENCH_SQL"
fi
echo "synchronous_commit = $(q 'SHOW synchronous_commit'), fsync = $(q 'SHOW fsync')"
pgdir=$(readlink -f "$SHOUWEN_RUN_DIR/pg")
pgbench=$(dirname "$(command -v initdb 2>/dev/null || echo /usr/lib/postgresql/15/bin/initdb)")/pgbench
[ -x "$pgbench" ] || pgbench=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbench" ] || die "pgbench not found (Debian: postgresql-contrib)"

# ---- the receiver and the five services -----------------------------------------------------------
services=(intake routing escalation notification audit)
declare -A pid admin
sport=$(free_port)
"$tbin/http_sink" "$sport" "$tmp/sink.txt" 2>"$tmp/sink.log" &
sink=$!
pids+=("$sink")
iport=$(free_port)
for s in "${services[@]}"; do admin[$s]=127.0.0.1:$(free_port); done
p() { echo "ipc://$tmp/$1.pub"; }
# start SERVICE VAR=value...: the service in the background, stderr in $tmp/SERVICE.log
start() {
    local s=$1 up=${1^^}
    shift
    env "SHOUWEN_${up}_ADMIN_ADDR=${admin[$s]}" "SHOUWEN_${up}_PUB_URL=$(p "$s")" "$@" \
        "$bin/shouwen-$s" 2>"$tmp/$s.log" &
    pid[$s]=$!
    pids+=("${pid[$s]}")
}
ready() {
    local s
    for s in "$@"; do
        for _ in $(seq 1 300); do curl -fs "http://${admin[$s]}/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
        curl -fs "http://${admin[$s]}/readyz" >/dev/null 2>&1 || { tail -n 5 "$tmp/$s.log" >&2; die "$s did not become ready"; }
    done
}
start intake SHOUWEN_INTAKE_HTTP_ADDR=127.0.0.1:$iport SHOUWEN_INTAKE_REP_ADDR="ipc://$tmp/intake.rep"
ready intake
(exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null || die "the receiver is not listening"
api=http://127.0.0.1:$iport/v1

# the webhook channel and its subscription, made by the manager through the API
# (the rate limit out of the way: the bench measures the pipeline, not the bucket)
N=$api/sites/SH01/notification
call() { curl -s -o "$tmp/api.out" -w '%{http_code}' -H "Authorization: Bearer $SHOUWEN_DEMO_MANAGER_TOKEN" -H 'Content-Type: application/json' -d "$2" "$1"; }
secret="whsec_$(head -c 24 /dev/urandom | base64)"
code=$(call "$N/channels" "{\"name\":\"bench\",\"kind\":\"webhook\",\"url\":\"http://127.0.0.1:$sport/hook\",\"secret\":\"$secret\",\"rate_per_s\":100000,\"burst\":100000}")
[ "$code" = 201 ] || die "could not make the webhook channel: $code $(cat "$tmp/api.out")"
code=$(call "$N/subscriptions" '{"event_type":"case.registered","channel":"bench","audience":"channel"}')
[ "$code" = 201 ] || die "could not subscribe the webhook: $code $(cat "$tmp/api.out")"

start routing SHOUWEN_ROUTING_SUB_URLS="$(p intake)"
start escalation SHOUWEN_ESCALATION_SUB_URLS="$(p intake),$(p routing),$(p escalation)"
start notification SHOUWEN_NOTIFICATION_SUB_URLS="$(p intake),$(p routing),$(p escalation),$(p audit)"
start audit SHOUWEN_AUDIT_SUB_URLS="$(p intake),$(p routing),$(p escalation),$(p notification)" \
    SHOUWEN_AUDIT_KEY="bench-key-0123456789abcdef0123456789"
ready routing escalation notification audit
echo "services: ${services[*]} (pids ${pid[*]}), receiver on 127.0.0.1:$sport, intake on $api"
set_=$(env | grep -E '^SHOUWEN_(INTAKE|ROUTING|ESCALATION|NOTIFICATION|AUDIT)_' | grep -Ev '_(ADDR|URL|URLS|KEY)=' | sort | tr '\n' ' ')
echo "settings: ${set_:-all defaults}"
[ -z "${BENCH_SQL:-}" ] || echo "schema changed before the run (BENCH_SQL): $BENCH_SQL"

# ---- helpers ----------------------------------------------------------------------------------------
metric() { curl -s "http://${admin[$1]}/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
now() { date +%s.%N; }
# the cluster's CPU: the postmaster, its live children, and its exited (reaped) children
postmaster=$(awk '{print $4}' "/proc/$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")/stat")
pg_ticks() {
    local t
    t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
    # shellcheck disable=SC2046 # one pid a word
    echo $((t + $(proc_ticks $(cat "/proc/$postmaster/task/$postmaster/children" 2>/dev/null))))
}
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }
# wait_done PREFIX WANT SECONDS: until WANT cases are routed and delivered and every event is
# chained (cheap: the services' /metrics and two counts), then until the SQL check below
# finds nothing missing; returns 1 at the time limit
wait_done() {
    local want=$2 end
    end=$(($(date +%s) + $3))
    while [ "$(date +%s)" -lt "$end" ]; do
        if [ "$(metric routing shouwen_routing_decisions_total)" -ge "$want" ] &&
            [ "$(metric notification shouwen_notification_delivered_total)" -ge "$want" ] &&
            [ "$(metric audit shouwen_audit_appended_total)" -ge "$(q 'SELECT count(*) FROM bus.events')" ] &&
            [ "$(q "SELECT count(DISTINCT d.case_id) FROM escalation.deadlines d JOIN core.cases c ON c.id = d.case_id WHERE d.kind = 'appoint' AND c.external_ref LIKE '$1%'")" -ge "$(q "SELECT count(*) FROM core.cases WHERE external_ref LIKE '$1%'")" ]; then
            return 0
        fi
        sleep 1
    done
    return 1
}

# ---- warm-up: connections, plans, caches; and a check that the pipeline is whole ------------------
wline=$("$load" -u "$api/cases" -k "$SHOUWEN_DEMO_API_KEY" -c 4 -d 1 -p warm- 2>"$tmp/warm.err")
wok=$(field ok "$wline")
[ -n "$wok" ] && [ "$wok" -gt 0 ] || { cat "$tmp/warm.err" >&2; die "warm-up: no case registered"; }
# stuck_report PREFIX: where the pipeline stands, and the end of each service's log
stuck_report() {
    echo "  routing decisions $(metric routing shouwen_routing_decisions_total)," \
        "webhooks delivered $(metric notification shouwen_notification_delivered_total)," \
        "audit entries $(metric audit shouwen_audit_appended_total) of $(q 'SELECT count(*) FROM bus.events') events," \
        "cases with an appoint deadline $(q "SELECT count(DISTINCT d.case_id) FROM escalation.deadlines d JOIN core.cases c ON c.id = d.case_id WHERE d.kind = 'appoint' AND c.external_ref LIKE '$1%'")" \
        "of $(q "SELECT count(*) FROM core.cases WHERE external_ref LIKE '$1%'")"
    local s
    for s in "${services[@]}"; do
        echo "  $s.log:"
        tail -n 5 "$tmp/$s.log" | sed 's/^/    /'
    done
}
wait_done warm- "$wok" 60 || {
    stuck_report warm- >&2
    die "warm-up: $wok cases did not go through the pipeline in 60 s"
}
echo "warm-up: $wok cases through the pipeline"
# The statistics a running site has.  The services' sessions keep the plans
# they made during the warm-up (prepared statements, and the foreign-key
# checks' plans, which PostgreSQL caches per session), made on tables of a
# few rows, where every index looks alike: the check of a deadline's case
# then probed core.cases by its site alone (the index on site and creation
# time), reading the whole site's cases for each row.  Autovacuum would
# analyze the tables a minute or so into the run and the plans would be made
# again; ANALYZE does it now, so the run measures the steady state.
q "ANALYZE" >/dev/null

# ---- the run -------------------------------------------------------------------------------------------
declare -A t0 s0
for s in "${services[@]}"; do t0[$s]=$(proc_ticks "${pid[$s]}"); s0[$s]=$(session_ticks "$s"); done
pg0=$(pg_ticks)
sink0=$(proc_ticks "$sink")
read -r busy0 all0 < <(machine_ticks)
start_s=$(now)
TIMEFORMAT='%U %S'
line=$({ time "$load" -u "$api/cases" -k "$SHOUWEN_DEMO_API_KEY" -c "$conns" -d "$secs" ${rate:+-r "$rate"} -p pipe- 2>"$tmp/load.err"; } 2>"$tmp/load.time")
load_end=$(now)
[ -n "$line" ] || { cat "$tmp/load.err" >&2; die "http_load failed"; }
echo "load: $line"
[ ! -s "$tmp/load.err" ] || sed 's/^/    /' "$tmp/load.err"
ok=$(field ok "$line")
echo "load ended after $(awk -v a="$start_s" -v b="$load_end" 'BEGIN {printf "%.1f", b - a}') s; waiting up to $drain s for the pipeline to finish"
gaveup=""
wait_done pipe- $((wok + ok)) "$drain" || { gaveup=" (gave up waiting after $drain s)"; }
end_s=$(now)
# the CPU and memory, before anything stops
declare -A cpu scpu hwm
for s in "${services[@]}"; do
    cpu[$s]=$(($(proc_ticks "${pid[$s]}") - t0[$s]))
    scpu[$s]=$(($(session_ticks "$s") - s0[$s]))
    hwm[$s]=$(awk '$1 == "VmHWM:" {printf "%.0f", $2 / 1024}' "/proc/${pid[$s]}/status")
done
pgcpu=$(($(pg_ticks) - pg0))
sinkcpu=$(($(proc_ticks "$sink") - sink0))
read -r busy1 all1 < <(machine_ticks)
mets=""
for m in "intake shouwen_intake_unavailable_total" "routing shouwen_routing_refused_total" \
    "notification shouwen_notification_retries_total" "notification shouwen_notification_dead_total" \
    "audit shouwen_bus_parked_total" "routing shouwen_bus_parked_total" "escalation shouwen_bus_parked_total" \
    "notification shouwen_bus_parked_total" "audit shouwen_audit_duplicates_total"; do
    read -r s m2 <<<"$m"
    mets+=" $s:${m2#shouwen_}=$(metric "$s" "$m2")"
done
# Each consumer's transactions that read events (the warm-up's included):
# how large its batches were (SHOUWEN_*_BATCH_WAIT).
batches=""
for s in routing escalation notification audit; do
    b=$(metric "$s" shouwen_bus_batches_total)
    batches+=" $s $b ($(awk -v n="$ok" -v b="$b" 'BEGIN {printf "%.0f", (b > 0 ? n / b : 0)}') cases a batch),"
done
for s in "${services[@]}"; do kill -TERM "${pid[$s]}" 2>/dev/null; done
for s in "${services[@]}"; do wait "${pid[$s]}" 2>/dev/null; done
kill -TERM "$sink"
wait "$sink"

# ---- the figures, in SQL ------------------------------------------------------------------------------
q "CREATE TABLE public.bench_sink (id text, at bigint)" >/dev/null
"$top/deploy/pg.sh" psql -qtAX -v ON_ERROR_STOP=1 -c "\\copy public.bench_sink FROM '$tmp/sink.txt' WITH (DELIMITER ' ')" >/dev/null ||
    die "could not read the receiver's record"
q "CREATE INDEX ON public.bench_sink (id); ANALYZE public.bench_sink" >/dev/null
cases="SELECT id, created_at FROM core.cases WHERE external_ref LIKE 'pipe-%'"
losses=$(q "WITH c AS ($cases),
 routed AS (SELECT DISTINCT case_id FROM core.handoffs WHERE by_system = 'routing'),
 timed AS (SELECT DISTINCT case_id FROM escalation.deadlines WHERE kind = 'appoint'),
 deliv AS (SELECT DISTINCT d.case_id FROM notification.deliveries d JOIN notification.channels ch ON ch.id = d.channel_id AND ch.name = 'bench' JOIN public.bench_sink s ON s.id = d.message_id WHERE d.status = 'delivered'),
 unchained AS (SELECT DISTINCT e.case_id FROM bus.events e LEFT JOIN audit.log a ON a.event_id = e.event_id WHERE a.event_id IS NULL AND e.case_id IS NOT NULL),
 chained AS (SELECT DISTINCT case_id FROM audit.log WHERE event_type = 'case.registered'),
 x AS (SELECT r.case_id IS NULL AS nr, t.case_id IS NULL AS nt, d.case_id IS NULL AS nd, u.case_id IS NOT NULL OR g.case_id IS NULL AS na
       FROM c LEFT JOIN routed r ON r.case_id = c.id LEFT JOIN timed t ON t.case_id = c.id LEFT JOIN deliv d ON d.case_id = c.id
       LEFT JOIN unchained u ON u.case_id = c.id LEFT JOIN chained g ON g.case_id = c.id)
 SELECT count(*), count(*) FILTER (WHERE nr), count(*) FILTER (WHERE nt), count(*) FILTER (WHERE nd), count(*) FILTER (WHERE na),
        count(*) FILTER (WHERE nr OR nt OR nd OR na) FROM x" | tr '|' ' ')
read -r ncases not_routed no_deadline not_delivered not_audited lost_steps <<<"$losses"
twice=$(q "SELECT (SELECT count(*) FROM (SELECT h.case_id FROM core.handoffs h JOIN core.cases c ON c.id = h.case_id WHERE c.external_ref LIKE 'pipe-%' AND h.by_system = 'routing' GROUP BY h.case_id HAVING count(*) > 1) x) || ' ' || (SELECT count(*) - count(DISTINCT id) FROM public.bench_sink WHERE id <> '-')" )
read -r routed_twice received_twice <<<"$twice"
# committed but unanswered (the client gave up) are not lost; a 201 without its case is
unregistered=$((ok > ncases ? ok - ncases : 0))
lost=$((lost_steps + unregistered))
lat=$(q "WITH c AS ($cases),
 a AS (SELECT a.case_id, max(a.recorded_at) AS last, min(a.recorded_at) FILTER (WHERE a.event_type = 'case.registered') AS reg FROM audit.log a JOIN c ON c.id = a.case_id GROUP BY a.case_id),
 w AS (SELECT d.case_id, min(s.at) AS at FROM notification.deliveries d JOIN c ON c.id = d.case_id JOIN public.bench_sink s ON s.id = d.message_id GROUP BY d.case_id),
 dl AS (SELECT d.case_id, max(d.updated_at) AS at FROM escalation.deadlines d JOIN c ON c.id = d.case_id GROUP BY d.case_id),
 m AS (SELECT extract(epoch FROM greatest(a.last, dl.at) - c.created_at) * 1000 AS e2e, extract(epoch FROM a.reg - c.created_at) * 1000 AS reg,
              (w.at - extract(epoch FROM c.created_at) * 1000000) / 1000.0 AS hook, extract(epoch FROM dl.at - c.created_at) * 1000 AS timed,
              greatest(a.last, dl.at) AS done
       FROM c JOIN a ON a.case_id = c.id LEFT JOIN w ON w.case_id = c.id LEFT JOIN dl ON dl.case_id = c.id)
 SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY e2e)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY e2e)::numeric, 1), round(max(e2e)::numeric, 1),
        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY reg)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY reg)::numeric, 1),
        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY hook)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY hook)::numeric, 1),
        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY timed)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY timed)::numeric, 1),
        extract(epoch FROM max(done)), (SELECT extract(epoch FROM max(a.last)) FROM a), (SELECT extract(epoch FROM max(dl.at)) FROM dl),
        (SELECT count(*) FROM bus.events e JOIN c ON c.id = e.case_id)
 FROM m")
# '|' keeps an empty (NULL) field in its place, where spaces would let the next one slide into it
IFS='|' read -r e2e50 e2e99 e2emax reg50 reg99 hook50 hook99 timed50 timed99 last_s audited_s timed_s nevents <<<"$lat"
# where the time goes, per event type: registration to the event's row, and the row to its audit entry
stages=$(q "WITH c AS ($cases) SELECT e.type || ' ' || count(*) || ' ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.created_at - c.created_at) * 1000)::numeric, 1) || ' ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM e.created_at - c.created_at) * 1000)::numeric, 1) || ' ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.recorded_at - e.created_at) * 1000)::numeric, 1) || ' ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM a.recorded_at - e.created_at) * 1000)::numeric, 1) FROM bus.events e JOIN c ON c.id = e.case_id JOIN audit.log a ON a.event_id = e.event_id GROUP BY e.type ORDER BY percentile_cont(0.5) WITHIN GROUP (ORDER BY e.created_at - c.created_at)")
total_s=$(awk -v a="$start_s" -v b="$last_s" 'BEGIN {printf "%.2f", b - a}')
cps=$(awk -v n="$ok" -v s="$total_s" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}')

# ---- baseline ----------------------------------------------------------------------------------------
q "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, payload bytea NOT NULL)" >/dev/null
echo "INSERT INTO bench_insert (payload) VALUES (decode(repeat('ab', 300), 'hex'));" >"$tmp/insert.sql"
baseline=$("$pgbench" -h "$pgdir" -U shouwen -n -c 2 -j 2 -T 10 -f "$tmp/insert.sql" shouwen 2>"$tmp/pgbench.err" |
    awk '/^tps/ {print int($3)}')
[ -n "$baseline" ] || { cat "$tmp/pgbench.err" >&2; die "pgbench failed"; }
# Rows updated after they were written, and how many of the updates were
# HOT: no new index entry, because no indexed column changed and the page
# had room (the warm-up's included).  Read once the services' sessions
# have ended and the baseline has run: every session's counts have
# reached the statistics by then.
updates=$(q "SELECT string_agg(format('%s.%s %s (HOT %s)', schemaname, relname, n_tup_upd, n_tup_hot_upd), ', ' ORDER BY schemaname, relname) FROM pg_stat_user_tables WHERE (schemaname, relname) IN (('core', 'cases'), ('escalation', 'deadlines'), ('notification', 'deliveries'))")

# ---- floor: the run's final rows inserted again, alone (see the top) ---------------------------------
floor=""
if [ "${BENCH_FLOOR:-1}" != 0 ]; then
    fb=${BENCH_FLOOR_BATCH:-300}
    q "CREATE SCHEMA floor;
       CREATE TABLE floor.cb AS SELECT id, (row_number() OVER (ORDER BY created_at, id) - 1) / $fb AS b FROM core.cases;
       CREATE TABLE floor.cases AS SELECT * FROM core.cases;
       CREATE TABLE floor.handoffs AS SELECT * FROM core.handoffs;
       CREATE TABLE floor.events AS SELECT * FROM bus.events WHERE case_id IS NOT NULL;
       CREATE TABLE floor.deadlines AS SELECT * FROM escalation.deadlines;
       CREATE TABLE floor.marks AS SELECT * FROM escalation.marks;
       CREATE TABLE floor.violations AS SELECT * FROM escalation.violations;
       CREATE TABLE floor.deliveries AS SELECT * FROM notification.deliveries;
       CREATE TABLE floor.attempts AS SELECT a.*, d.case_id FROM notification.attempts a
           JOIN notification.deliveries d ON d.id = a.delivery_id;
       CREATE TABLE floor.log AS SELECT * FROM audit.log WHERE case_id IS NOT NULL;
       CREATE TABLE floor.case_facts AS SELECT * FROM audit.case_facts;
       CREATE INDEX ON floor.cb (b, id);
       ALTER TABLE audit.log DISABLE TRIGGER log_no_truncate;
       ALTER TABLE core.cases DISABLE TRIGGER cases_never_truncated;
       TRUNCATE core.cases, core.handoffs, bus.events, escalation.deadlines, escalation.marks,
           escalation.violations, notification.deliveries, notification.attempts, audit.log,
           audit.case_facts CASCADE;
       ALTER TABLE core.cases ENABLE TRIGGER cases_never_truncated;
       ALTER TABLE audit.log ENABLE TRIGGER log_no_truncate;
       CREATE SEQUENCE floor.next MINVALUE 0 START 0" >/dev/null 2>"$tmp/floor.err" ||
        { cat "$tmp/floor.err" >&2; die "floor: could not set the rows aside"; }
    for t in handoffs events deadlines marks violations deliveries attempts log case_facts; do
        q "CREATE INDEX ON floor.$t (case_id)" >/dev/null || die "floor: could not index floor.$t"
    done
    q "VACUUM ANALYZE" >/dev/null
    q "CHECKPOINT" >/dev/null
    fcases=$(q "SELECT count(*) FROM floor.cb")
    fbatches=$(q "SELECT coalesce(max(b) + 1, 0) FROM floor.cb")
    frows=$(q "SELECT string_agg(n || ' ' || round(c::numeric / greatest($fcases, 1), 2), ', ') FROM (VALUES
        ('events', (SELECT count(*) FROM floor.events)), ('handoffs', (SELECT count(*) FROM floor.handoffs)),
        ('deadlines', (SELECT count(*) FROM floor.deadlines)), ('marks', (SELECT count(*) FROM floor.marks)),
        ('deliveries', (SELECT count(*) FROM floor.deliveries)), ('attempts', (SELECT count(*) FROM floor.attempts)),
        ('audit entries', (SELECT count(*) FROM floor.log)), ('facts', (SELECT count(*) FROM floor.case_facts))) v(n, c)")
    ins() { echo "INSERT INTO $1 SELECT ${3:-x.*} FROM floor.$2 x JOIN floor.cb ON cb.id = x.${4:-case_id} WHERE cb.b = :b;"; }
    {
        echo "SELECT nextval('floor.next') AS b \\gset"
        echo "BEGIN;"
        ins core.cases cases "" id
        ins bus.events events
        ins core.handoffs handoffs
        ins escalation.deadlines deadlines
        ins escalation.marks marks
        ins escalation.violations violations
        ins notification.deliveries deliveries
        ins notification.attempts attempts "x.delivery_id, x.attempt, x.started_at, x.latency_ms, x.outcome, x.response_code, x.error"
        ins audit.log log
        ins audit.case_facts case_facts
        echo "COMMIT;"
    } >"$tmp/floor.sql"
    fp0=$(pg_ticks)
    f0=$(now)
    "$pgbench" -h "$pgdir" -U shouwen -n -c 2 -j 2 -t $(((fbatches + 1) / 2)) -f "$tmp/floor.sql" shouwen \
        >"$tmp/floor.out" 2>&1 || { cat "$tmp/floor.out" >&2; die "floor: pgbench failed"; }
    f1=$(now)
    fpg=$(($(pg_ticks) - fp0))
    fdone=$(q "SELECT count(*) FROM core.cases")
    [ "$fdone" = "$fcases" ] || die "floor: $fdone of $fcases cases inserted again"
    floor=$(awk -v n="$fdone" -v a="$f0" -v b="$f1" -v t="$fpg" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.0f %.0f %.1f", n / (b - a), t / hz / n * 1e6, b - a}')
fi

# ---- report ----------------------------------------------------------------------------------------------
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
hz=$(getconf CLK_TCK)
window=$(awk -v a="$start_s" -v b="$end_s" 'BEGIN {printf "%.1f", b - a}')
read -r lu ls_ <"$tmp/load.time"
echo "pipeline: $ok cases accepted (201) by intake in $(field elapsed_s "$line") s ($(field per_s "$line")/s at the door);" \
    "$ncases in the database, $nevents events of theirs on the bus"
since() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
echo "end to end: the last of them done $total_s s after the load started ($(since "$load_end" "$last_s") s after it ended): $cps cases/s" \
    "(accepted cases / load start to the last audit entry or deadline write of those cases, whichever came later;" \
    "the last audit entry came $(since "$start_s" "$audited_s") s after the start, the last deadline write $(since "$start_s" "$timed_s") s)"
echo "ack (intake's 201, as the client timed it): p50 $(field p50_ms "$line") ms, p99 $(field p99_ms "$line") ms, max $(field max_ms "$line") ms"
echo "registration to done (created_at to the case's last audit entry or deadline write, whichever came later): p50 $e2e50 ms, p99 $e2e99 ms, max $e2emax ms"
echo "    to its case.registered chained: p50 $reg50 ms, p99 $reg99 ms; to the webhook's arrival: p50 $hook50 ms, p99 $hook99 ms;" \
    "to its deadlines' last write: p50 $timed50 ms, p99 $timed99 ms"
while read -r ty n w50 w99 a50 a99; do
    [ -n "$ty" ] && echo "    $ty ($n): written p50 $w50 ms, p99 $w99 ms after the registration; chained p50 $a50 ms, p99 $a99 ms after it was written"
done <<<"$stages"
echo "lost: $lost cases (a 201 without its case: $unregistered; not routed: $not_routed; no deadlines: $no_deadline;" \
    "not delivered to the webhook: $not_delivered; an event not in audit.log: $not_audited)$gaveup"
echo "doubled: routed twice $routed_twice, webhook requests received twice $received_twice"
echo "metrics:$mets"
echo "batches (transactions that read events):${batches%,}"
echo "updates: $updates"
echo "CPU over the run ($window s from load start to drained; $(nproc) cores = $(awk -v w="$window" -v n="$(nproc)" 'BEGIN {printf "%.0f", w * n}') CPU-s):"
cpu_row() { awk -v t="$2" -v hz="$hz" -v n="$ok" -v w="$window" -v what="$1" 'BEGIN {printf "    %-28s %7.1f s  %5.0f us/case  %3.0f%% of a core\n", what, t / hz, t / hz / n * 1e6, t / hz / w * 100}'; }
for s in "${services[@]}"; do cpu_row "$s" "${cpu[$s]}"; cpu_row "  its database sessions" "${scpu[$s]}"; done
cpu_row "PostgreSQL, all processes" "$pgcpu"
lt=$(awk -v u="$lu" -v s="$ls_" -v hz="$hz" 'BEGIN {printf "%.0f", (u + s) * hz}')
cpu_row "http_load (client)" "$lt"
cpu_row "http_sink (receiver)" "$sinkcpu"
ours=$((pgcpu + sinkcpu + lt))
for s in "${services[@]}"; do ours=$((ours + cpu[$s])); done
cpu_row "this bench's processes" "$ours"
cpu_row "the whole machine" "$((busy1 - busy0))"
cpu_row "  other work on it" "$((busy1 - busy0 - ours))"
echo "    (the machine was $(awk -v b=$((busy1 - busy0)) -v a=$((all1 - all0)) 'BEGIN {printf "%.0f", (a > 0 ? b / a * 100 : 0)}')% busy; other work: other processes, this script's polling, the kernel's interrupts)"
echo "peak resident memory (VmHWM): $(for s in "${services[@]}"; do printf '%s %s MB, ' "$s" "${hwm[$s]}"; done | sed 's/, $//')"
echo "baseline: pgbench single-row insert, 2 clients, 10 s: $baseline tps"
if [ -n "$floor" ]; then
    read -r fcps fus fsecs <<<"$floor"
    echo "floor: the $fcases cases' final rows (per case: a case, $frows) inserted again alone, $fb cases to a" \
        "transaction, 2 clients: $fcps cases/s ($fsecs s), PostgreSQL $fus us/case against the pipeline's" \
        "$(awk -v t="$pgcpu" -v hz="$hz" -v n="$ok" 'BEGIN {printf "%.0f", t / hz / n * 1e6}')"
fi
ratio=$(awk -v a="$cps" -v b="$baseline" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
echo "RESULT bench cases_per_s=$cps baseline_tps=$baseline ratio=$ratio ack_p99_ms=$(field p99_ms "$line") e2e_p99_ms=$e2e99 lost=$lost"
[ "$lost" = 0 ] && [ "$ncases" -gt 0 ] || exit 1
