-- 0013_escalation_clocks: what the escalation service (issue 6) needs and
-- 0004 did not model.
--
-- * Working hours may be split in any number of periods
--   ("09:00-12:00,13:30-18:00"), not one day with one lunch break.
-- * Every time limit is one row of escalation.limits with its basis
--   (working or calendar time): the site's own (case_type and urgency
--   NULL) or an override for a request type and/or urgency.  Without a row
--   the defaults of DOMAIN.md apply (services/escalation/README.md).  The
--   limit columns of core.sites and escalation.sla_policies, which no
--   service read, go: one place for one setting.
-- * A deadline keeps what it needs to be paused and resumed with the time
--   already used (the limit, its basis, when its episode began) and the
--   partition of its case, so that replicas split the clocks as they split
--   the events.
-- * escalation.marks keeps the times the clocks need from a case's events
--   (handoffs, pauses, reopening, escalations); escalation.reviews makes
--   each daily and weekly review request happen once.
-- * Violations: late appointment of a handler, and conflict escalations
--   (矛盾升级), with points.

ALTER TABLE escalation.calendars
    ADD COLUMN hours text NOT NULL DEFAULT '09:00-12:00,13:30-18:00'
        CHECK (char_length(hours) BETWEEN 11 AND 200);
UPDATE escalation.calendars
   SET hours = CASE WHEN lunch_start IS NULL
                    THEN to_char(work_start, 'HH24:MI') || '-' || to_char(work_end, 'HH24:MI')
                    ELSE to_char(work_start, 'HH24:MI') || '-' || to_char(lunch_start, 'HH24:MI') || ','
                         || to_char(lunch_end, 'HH24:MI') || '-' || to_char(work_end, 'HH24:MI') END;
ALTER TABLE escalation.calendars
    DROP COLUMN work_start, DROP COLUMN work_end, DROP COLUMN lunch_start, DROP COLUMN lunch_end;
COMMENT ON COLUMN escalation.calendars.hours IS 'Working periods of a working day in local time, sorted and not overlapping: "09:00-12:00,13:30-18:00". Checked by the service (common/calendar.c) when saved.';
COMMENT ON COLUMN escalation.calendars.time_zone IS 'IANA time zone name (Asia/Shanghai, America/New_York) in which the hours and days are local.';
ALTER TABLE escalation.calendar_days ADD COLUMN source text NOT NULL DEFAULT 'api'
    CHECK (char_length(source) BETWEEN 1 AND 200);
COMMENT ON COLUMN escalation.calendar_days.source IS 'Where the entry came from: api, an .ics file''s name, or the data file it was loaded from.';
CREATE INDEX calendar_days_day_idx ON escalation.calendar_days (calendar_id, kind, day);

DROP TABLE escalation.sla_policies;
ALTER TABLE core.sites
    DROP CONSTRAINT sites_ladder_order,
    DROP COLUMN handoff_limit, DROP COLUMN first_contact_workdays, DROP COLUMN answer_workdays,
    DROP COLUMN resolve_limit, DROP COLUMN callback_limit, DROP COLUMN supervisor_after,
    DROP COLUMN manager_after, DROP COLUMN emergency_ack_limit;
COMMENT ON TABLE core.sites IS 'A site (项目/服务中心): the unit of tenancy. Its time limits are escalation.limits.';

CREATE TABLE escalation.limits (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id     uuid NOT NULL REFERENCES core.sites(id) ON DELETE CASCADE,
    case_type   text CHECK (case_type IN ('consultation', 'complaint', 'help', 'suggestion',
                                          'repair', 'business', 'report', 'emergency')),
    urgency     text CHECK (urgency IN ('normal', 'urgent', 'emergency')),
    clock       text NOT NULL CHECK (clock IN ('handoff', 'appoint', 'first_contact', 'resolve',
                                               'callback', 'supervisor', 'manager', 'emergency_ack')),
    amount      interval NOT NULL CHECK (amount > interval '0'
                                         AND extract(month FROM amount) = 0
                                         AND extract(year FROM amount) = 0
                                         AND amount <= interval '366 days'),
    basis       text NOT NULL CHECK (basis IN ('working', 'calendar')),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT limits_unique UNIQUE NULLS NOT DISTINCT (site_id, case_type, urgency, clock)
);
COMMENT ON TABLE escalation.limits IS 'SLA policies: the time limit of one clock for a site, overridable by request type and/or urgency (NULL = any). The most specific row wins: type and urgency, then type, then urgency, then the site''s own; no row: DOMAIN.md''s default.';
COMMENT ON COLUMN escalation.limits.amount IS 'With basis working: days are working days (each the working time of one day of the calendar) and hours and minutes are working time. With basis calendar: elapsed time.';

CREATE TABLE escalation.settings_stamp (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    stamp       bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO escalation.settings_stamp DEFAULT VALUES;
COMMENT ON TABLE escalation.settings_stamp IS 'One row, bumped by triggers whenever a calendar, its days, a limit, a site''s calendar or time zone, or a supervisor, manager or leader changes: the escalation service then reloads what it keeps in memory.';

CREATE FUNCTION escalation.bump_settings_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE escalation.settings_stamp SET stamp = stamp + 1, updated_at = now();
    RETURN NULL;
END $$;
CREATE TRIGGER calendars_stamp AFTER INSERT OR UPDATE OR DELETE ON escalation.calendars
    FOR EACH STATEMENT EXECUTE FUNCTION escalation.bump_settings_stamp();
CREATE TRIGGER calendar_days_stamp AFTER INSERT OR UPDATE OR DELETE ON escalation.calendar_days
    FOR EACH STATEMENT EXECUTE FUNCTION escalation.bump_settings_stamp();
CREATE TRIGGER limits_stamp AFTER INSERT OR UPDATE OR DELETE ON escalation.limits
    FOR EACH STATEMENT EXECUTE FUNCTION escalation.bump_settings_stamp();
CREATE TRIGGER sites_stamp AFTER UPDATE OF calendar_id, time_zone ON core.sites
    FOR EACH STATEMENT EXECUTE FUNCTION escalation.bump_settings_stamp();
CREATE TRIGGER staff_stamp AFTER INSERT OR DELETE OR UPDATE OF role, active, department_id ON core.staff
    FOR EACH STATEMENT EXECUTE FUNCTION escalation.bump_settings_stamp();

ALTER TABLE escalation.deadlines
    DROP CONSTRAINT deadlines_kind_check,
    ADD CONSTRAINT deadlines_kind_check CHECK (kind IN ('handoff', 'appoint', 'first_contact', 'answer',
        'resolve', 'callback', 'supervisor', 'manager', 'emergency_ack')),
    ALTER COLUMN due_at DROP NOT NULL,
    ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN part integer NOT NULL DEFAULT 0 CHECK (part >= 0),
    ADD COLUMN episode text NOT NULL DEFAULT '' CHECK (char_length(episode) <= 100),
    ADD COLUMN started_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN limit_us bigint NOT NULL DEFAULT 0 CHECK (limit_us >= 0),
    ADD COLUMN basis text NOT NULL DEFAULT 'calendar' CHECK (basis IN ('working', 'calendar')),
    ADD CONSTRAINT deadlines_state CHECK (met_at IS NULL OR breached_at IS NULL);
DROP INDEX escalation.deadlines_pending_idx;
DROP INDEX escalation.deadlines_site_due_idx;
CREATE INDEX deadlines_pending_idx ON escalation.deadlines (part, due_at)
    WHERE met_at IS NULL AND breached_at IS NULL AND due_at IS NOT NULL;
COMMENT ON COLUMN escalation.deadlines.due_at IS 'When the clock runs out: the start plus the limit in working or calendar time, past every pause. NULL while the case waits (the clock is paused).';
COMMENT ON COLUMN escalation.deadlines.episode IS 'Who or what the clock runs for (the holder of a handoff, the level of an emergency): a new episode starts the clock again.';
COMMENT ON COLUMN escalation.deadlines.part IS 'The bus partition of the case: the replica that owns it keeps this clock.';
COMMENT ON COLUMN escalation.deadlines.id IS 'New for each episode; the deadline_id of case.deadline_breached.';

CREATE TABLE escalation.marks (
    case_id   uuid NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('holder', 'level', 'waiting', 'resumed', 'reopened')),
    at        timestamptz NOT NULL,
    PRIMARY KEY (case_id, at, kind)
);
COMMENT ON TABLE escalation.marks IS 'The times the clocks are computed from, taken from a case''s events as they are handled: a new holder (a handoff), a new escalation level, a pause, a resumption, a reopening.';

CREATE TABLE escalation.reviews (
    site_id     uuid NOT NULL REFERENCES core.sites(id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('daily', 'weekly')),
    local_date  date NOT NULL,
    event_id    uuid NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, kind, local_date)
);
COMMENT ON TABLE escalation.reviews IS 'Each review request made (daily at 09:00 local, weekly on Monday), so that none is made twice.';

ALTER TABLE escalation.violations
    DROP CONSTRAINT violations_kind_check,
    ADD CONSTRAINT violations_kind_check CHECK (kind IN ('late_handoff', 'late_appointment',
        'late_first_contact', 'late_resolution', 'no_callback', 'transfer_refused', 'transfer_bounced',
        'info_not_given_at_once', 'attitude_complaint', 'conflict_escalation')),
    ADD COLUMN deadline_id uuid;
CREATE UNIQUE INDEX violations_deadline_idx ON escalation.violations (deadline_id) WHERE deadline_id IS NOT NULL;
COMMENT ON COLUMN escalation.violations.deadline_id IS 'The deadline whose breach this is (escalation.deadlines.id); unique, so a breach is counted once.';
ALTER TABLE core.site_penalty_points
    DROP CONSTRAINT site_penalty_points_kind_check,
    ADD CONSTRAINT site_penalty_points_kind_check CHECK (kind IN ('late_handoff', 'late_appointment',
        'late_first_contact', 'late_resolution', 'no_callback', 'transfer_refused', 'transfer_bounced',
        'info_not_given_at_once', 'attitude_complaint', 'conflict_escalation'));
