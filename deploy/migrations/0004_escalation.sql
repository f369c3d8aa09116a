-- 0004_escalation: the clock (owned by the escalation service): working-day
-- calendars, SLA policies, the deadlines of each case, violations and
-- emergency alerts.

CREATE SCHEMA escalation;
COMMENT ON SCHEMA escalation IS 'Owned by escalation: calendars, SLA policies, deadlines, violations (考核), emergency alerts.';

CREATE TABLE escalation.calendars (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id      uuid REFERENCES core.sites(id),
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    time_zone    text NOT NULL DEFAULT 'Asia/Shanghai' CHECK (char_length(time_zone) BETWEEN 1 AND 64),
    work_start   time NOT NULL DEFAULT '09:00',
    work_end     time NOT NULL DEFAULT '18:00',
    lunch_start  time,
    lunch_end    time,
    weekend_days smallint[] NOT NULL DEFAULT '{6,7}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT calendars_name_unique UNIQUE NULLS NOT DISTINCT (site_id, name),
    CONSTRAINT calendars_hours CHECK (work_end > work_start),
    CONSTRAINT calendars_lunch CHECK ((lunch_start IS NULL) = (lunch_end IS NULL)
        AND (lunch_start IS NULL OR (lunch_start >= work_start AND lunch_end > lunch_start
                                     AND lunch_end <= work_end))),
    CONSTRAINT calendars_weekend CHECK (weekend_days <@ '{1,2,3,4,5,6,7}'::smallint[]
        AND cardinality(weekend_days) < 7)
);
COMMENT ON TABLE escalation.calendars IS 'Working-day calendars (工作日历): working hours, weekends, public holidays and make-up working days (调休). site_id NULL: a calendar shared by several sites (e.g. the national one).';
COMMENT ON COLUMN escalation.calendars.weekend_days IS 'ISO weekdays that are not working days (1 = Monday ... 7 = Sunday), unless listed as a workday in calendar_days.';
COMMENT ON COLUMN escalation.calendars.lunch_start IS 'Lunch break, not counted as working time; both NULL for none.';

CREATE TABLE escalation.calendar_days (
    calendar_id  uuid NOT NULL REFERENCES escalation.calendars(id) ON DELETE CASCADE,
    day          date NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    name         text CHECK (char_length(name) <= 100),
    PRIMARY KEY (calendar_id, day)
);
COMMENT ON TABLE escalation.calendar_days IS 'Exceptions to the weekly pattern: public holidays (法定节假日) and make-up working days on a weekend (调休上班).';

ALTER TABLE core.sites ADD COLUMN calendar_id uuid REFERENCES escalation.calendars(id);
COMMENT ON COLUMN core.sites.calendar_id IS 'The site''s working-day calendar; NULL: Monday to Friday, 09:00-18:00, no holidays, in the site''s time zone.';

CREATE TABLE escalation.sla_policies (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id                 uuid NOT NULL REFERENCES core.sites(id),
    case_type               text CHECK (case_type IN ('consultation', 'complaint', 'help', 'suggestion',
                                                      'repair', 'business', 'report', 'emergency')),
    urgency                 text CHECK (urgency IN ('normal', 'urgent', 'emergency')),
    handoff_limit           interval CHECK (handoff_limit > interval '0'),
    first_contact_workdays  integer CHECK (first_contact_workdays BETWEEN 0 AND 365),
    answer_workdays         integer CHECK (answer_workdays BETWEEN 0 AND 365),
    resolve_limit           interval CHECK (resolve_limit > interval '0'),
    resolve_workdays        integer CHECK (resolve_workdays BETWEEN 0 AND 365),
    callback_limit          interval CHECK (callback_limit > interval '0'),
    supervisor_after        interval CHECK (supervisor_after > interval '0'),
    manager_after           interval CHECK (manager_after > interval '0'),
    emergency_ack_limit     interval CHECK (emergency_ack_limit > interval '0'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sla_policies_unique UNIQUE NULLS NOT DISTINCT (site_id, case_type, urgency),
    CONSTRAINT sla_policies_resolve_one CHECK (resolve_limit IS NULL OR resolve_workdays IS NULL)
);
COMMENT ON TABLE escalation.sla_policies IS 'Time limits for a case type and/or urgency (NULL = any), overriding the defaults on core.sites column by column; NULL limit = inherit. The most specific matching policy wins (type and urgency, then type, then urgency).';
COMMENT ON COLUMN escalation.sla_policies.resolve_workdays IS 'Resolution limit in working days, as an alternative to resolve_limit (at most one of the two).';

CREATE TABLE escalation.deadlines (
    site_id      uuid NOT NULL,
    case_id      uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('handoff', 'first_contact', 'answer', 'resolve', 'callback',
                                               'supervisor', 'manager', 'emergency_ack')),
    due_at       timestamptz NOT NULL,
    met_at       timestamptz,
    breached_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, kind),
    FOREIGN KEY (site_id, case_id) REFERENCES core.cases(site_id, id)
);
CREATE INDEX deadlines_pending_idx ON escalation.deadlines (due_at)
    WHERE met_at IS NULL AND breached_at IS NULL;
CREATE INDEX deadlines_site_due_idx ON escalation.deadlines (site_id, kind, due_at);
COMMENT ON TABLE escalation.deadlines IS 'The running clocks of each case; due_at already includes working days, the calendar and paused time. A deadline is met (met_at), breached (breached_at, case.deadline_breached emitted once) or pending.';
COMMENT ON COLUMN escalation.deadlines.kind IS 'handoff (转办 1h), first_contact and answer (1 working day), resolve, callback (回访 2 days), supervisor (2 days) and manager (1 week) takeovers, emergency_ack (next rung of the emergency ladder).';

CREATE TABLE escalation.violations (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id        uuid NOT NULL REFERENCES core.sites(id),
    case_id        uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('late_handoff', 'late_first_contact', 'late_resolution',
                                                 'no_callback', 'transfer_refused', 'transfer_bounced',
                                                 'info_not_given_at_once', 'attitude_complaint')),
    staff_id       uuid,
    department_id  uuid,
    occurred_at    timestamptz NOT NULL,
    points         integer NOT NULL DEFAULT 0 CHECK (points BETWEEN 0 AND 1000),
    detail         text NOT NULL DEFAULT '' CHECK (char_length(detail) <= 10000),
    event_id       uuid NOT NULL UNIQUE,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (site_id, case_id) REFERENCES core.cases(site_id, id),
    FOREIGN KEY (site_id, staff_id) REFERENCES core.staff(site_id, id),
    FOREIGN KEY (site_id, department_id) REFERENCES core.departments(site_id, id),
    CHECK (staff_id IS NOT NULL OR department_id IS NOT NULL)
);
CREATE INDEX violations_site_time_idx ON escalation.violations (site_id, occurred_at);
CREATE INDEX violations_department_idx ON escalation.violations (department_id, occurred_at);
CREATE INDEX violations_staff_idx ON escalation.violations (staff_id, occurred_at);
CREATE INDEX violations_case_idx ON escalation.violations (case_id);
COMMENT ON TABLE escalation.violations IS 'Violations counted in assessments (考核): who, what, when, with the site''s penalty points at the time.';
COMMENT ON COLUMN escalation.violations.kind IS 'late_handoff (转办超时), late_first_contact (未及时联系), late_resolution (未按时办结), no_callback (未回访), transfer_refused (拒收), transfer_bounced (推诿/踢皮球), info_not_given_at_once (未一次性告知), attitude_complaint (态度投诉).';
COMMENT ON COLUMN escalation.violations.event_id IS 'The event that established the violation; unique, so that handling it twice records it once.';

CREATE TABLE escalation.emergency_alerts (
    id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    site_id          uuid NOT NULL,
    case_id          uuid NOT NULL,
    level            smallint NOT NULL CHECK (level >= 0),
    staff_id         uuid NOT NULL,
    alerted_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_by  uuid,
    acknowledged_at  timestamptz,
    event_id         uuid,
    FOREIGN KEY (site_id, case_id) REFERENCES core.cases(site_id, id),
    FOREIGN KEY (site_id, staff_id) REFERENCES core.staff(site_id, id),
    FOREIGN KEY (site_id, acknowledged_by) REFERENCES core.staff(site_id, id),
    CHECK ((acknowledged_by IS NULL) = (acknowledged_at IS NULL))
);
CREATE INDEX emergency_alerts_case_idx ON escalation.emergency_alerts (case_id, level);
CREATE INDEX emergency_alerts_open_idx ON escalation.emergency_alerts (alerted_at) WHERE acknowledged_at IS NULL;
COMMENT ON TABLE escalation.emergency_alerts IS 'Emergencies (fire, medical, flooding): everyone responsible is alerted; unacknowledged within the site''s emergency_ack_limit, the next rung (level + 1) is alerted, until someone acknowledges.';
COMMENT ON COLUMN escalation.emergency_alerts.level IS 'Rung of the ladder: 0 = handler and department, then each direct supervisor up to the leaders.';
