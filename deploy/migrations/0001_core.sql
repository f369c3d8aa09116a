-- 0001_core: the directory and the cases, owned by the intake service.
--
-- Conventions for every migration in this folder:
--   * one PostgreSQL schema per owning service (core, bus, routing,
--     escalation, notification, audit); a service writes only its own schema
--     and reads the others;
--   * every site-scoped table carries site_id uuid REFERENCES core.sites(id);
--     where it points at staff, departments or cases of a site, the foreign
--     key is composite (site_id, x_id) so that a row can never point across
--     sites;
--   * timestamps are timestamptz; local days (case numbers, calendars) are
--     dates in the site's time zone;
--   * the migrator runs each file in one transaction and records it in
--     shouwen_meta.schema_migrations: no BEGIN/COMMIT here.
--
-- Row-level security: not enabled yet. Queries already filter by site
-- (DESIGN.md section 6); a later migration will add
-- ALTER TABLE ... ENABLE ROW LEVEL SECURITY with policies of the form
-- USING (site_id = current_setting('shouwen.site_id')::uuid) on every table
-- with a site_id column, as the belt to those braces.

CREATE SCHEMA core;
COMMENT ON SCHEMA core IS 'Owned by intake: sites, departments, staff, cases (事项/工单), handoffs, API keys.';

-- ---------------------------------------------------------------- sites
CREATE TABLE core.sites (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code                text NOT NULL UNIQUE
                        CONSTRAINT sites_code_form CHECK (code ~ '^[A-Z][A-Z0-9]{1,15}$'),
    name                text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    time_zone           text NOT NULL DEFAULT 'Asia/Shanghai'
                        CHECK (char_length(time_zone) BETWEEN 1 AND 64),
    handoff_limit       interval NOT NULL DEFAULT '1 hour'     CHECK (handoff_limit > interval '0'),
    first_contact_workdays integer NOT NULL DEFAULT 1          CHECK (first_contact_workdays BETWEEN 0 AND 365),
    answer_workdays     integer NOT NULL DEFAULT 1             CHECK (answer_workdays BETWEEN 0 AND 365),
    resolve_limit       interval NOT NULL DEFAULT '7 days'     CHECK (resolve_limit > interval '0'),
    callback_limit      interval NOT NULL DEFAULT '2 days'     CHECK (callback_limit > interval '0'),
    supervisor_after    interval NOT NULL DEFAULT '2 days'     CHECK (supervisor_after > interval '0'),
    manager_after       interval NOT NULL DEFAULT '7 days'     CHECK (manager_after > interval '0'),
    emergency_ack_limit interval NOT NULL DEFAULT '15 minutes' CHECK (emergency_ack_limit > interval '0'),
    active              boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sites_ladder_order CHECK (manager_after > supervisor_after)
);
COMMENT ON TABLE core.sites IS 'A site (项目/服务中心): the unit of tenancy. Its columns are the default time limits of DOMAIN.md; escalation.sla_policies may override them per case type and urgency.';
COMMENT ON COLUMN core.sites.code IS 'Short code used in case numbers, e.g. SH01 in SH01-20261122-0007: an upper-case letter then 1-15 upper-case letters or digits.';
COMMENT ON COLUMN core.sites.time_zone IS 'IANA time zone name; local days (case numbers, working days) are counted in it.';
COMMENT ON COLUMN core.sites.handoff_limit IS 'Transfer (转办) to another department within this limit (default 1 hour).';
COMMENT ON COLUMN core.sites.first_contact_workdays IS 'The handler contacts the customer within this many working days (default 1).';
COMMENT ON COLUMN core.sites.answer_workdays IS 'The handler answers (答复) within this many working days (default 1).';
COMMENT ON COLUMN core.sites.resolve_limit IS 'Resolution limit when no SLA policy says otherwise (default 7 days, the manager takeover point).';
COMMENT ON COLUMN core.sites.callback_limit IS 'Callback (回访) by the first responder within this time after resolution (default 2 days).';
COMMENT ON COLUMN core.sites.supervisor_after IS 'Open this long: the customer-relations supervisor (客服主管) takes it over (default 2 days).';
COMMENT ON COLUMN core.sites.manager_after IS 'Open this long: the manager (经理) takes it over (default 7 days).';
COMMENT ON COLUMN core.sites.emergency_ack_limit IS 'An emergency alert not acknowledged within this time goes one level up the ladder.';

CREATE TABLE core.site_penalty_points (
    site_id  uuid NOT NULL REFERENCES core.sites(id) ON DELETE CASCADE,
    kind     text NOT NULL CHECK (kind IN ('late_handoff', 'late_first_contact', 'late_resolution',
                                           'no_callback', 'transfer_refused', 'transfer_bounced',
                                           'info_not_given_at_once', 'attitude_complaint')),
    points   integer NOT NULL CHECK (points BETWEEN 0 AND 1000),
    PRIMARY KEY (site_id, kind)
);
COMMENT ON TABLE core.site_penalty_points IS 'Penalty points (扣分) per violation kind, a site setting used by assessments (考核). No row: 0 points.';

-- ---------------------------------------------------------------- departments
CREATE TABLE core.departments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id     uuid NOT NULL REFERENCES core.sites(id),
    code        text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    parent_id   uuid,
    is_qa       boolean NOT NULL DEFAULT false,
    is_front_desk boolean NOT NULL DEFAULT false,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, code),
    UNIQUE (site_id, id),
    FOREIGN KEY (site_id, parent_id) REFERENCES core.departments(site_id, id),
    CHECK (parent_id IS NULL OR parent_id <> id)
);
COMMENT ON TABLE core.departments IS 'Departments (部门) of a site: front desk (客服中心), engineering (工程维修部), QA (质检部), ... A transfer (转办) goes to a department whose head appoints a handler.';
COMMENT ON COLUMN core.departments.is_qa IS 'Quality inspection (质检部/总经办): receives a copy of every complaint transfer and counts violations.';
COMMENT ON COLUMN core.departments.is_front_desk IS 'Reception (前台/客户接待): keeps the reception log (《接待业主情况记录》).';

CREATE TABLE core.department_scopes (
    site_id        uuid NOT NULL,
    department_id  uuid NOT NULL,
    case_type      text CHECK (case_type IN ('consultation', 'complaint', 'help', 'suggestion',
                                             'repair', 'business', 'report', 'emergency')),
    category       text CHECK (char_length(category) BETWEEN 1 AND 100),
    FOREIGN KEY (site_id, department_id) REFERENCES core.departments(site_id, id) ON DELETE CASCADE,
    CONSTRAINT department_scopes_unique UNIQUE NULLS NOT DISTINCT (department_id, case_type, category)
);
COMMENT ON TABLE core.department_scopes IS 'What a department is responsible for (职责范围): case type and category; NULL means any.';

-- ---------------------------------------------------------------- staff
CREATE TABLE core.staff (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id         uuid NOT NULL REFERENCES core.sites(id),
    code            text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    role            text NOT NULL CHECK (role IN ('staff', 'receptionist', 'department_head', 'handler',
                                                  'supervisor', 'manager', 'qa', 'leader')),
    department_id   uuid,
    supervisor_id   uuid,
    phone           text CHECK (char_length(phone) <= 32),
    email           text CHECK (char_length(email) <= 254),
    wechat          text CHECK (char_length(wechat) <= 64),
    contact_private boolean NOT NULL DEFAULT false,
    on_duty         boolean NOT NULL DEFAULT true,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, code),
    UNIQUE (site_id, id),
    FOREIGN KEY (site_id, department_id) REFERENCES core.departments(site_id, id),
    FOREIGN KEY (site_id, supervisor_id) REFERENCES core.staff(site_id, id),
    CHECK (supervisor_id IS NULL OR supervisor_id <> id)
);
CREATE INDEX staff_department_idx ON core.staff (department_id, role) WHERE active;
CREATE INDEX staff_supervisor_idx ON core.staff (supervisor_id);
COMMENT ON TABLE core.staff IS 'Everyone who can be asked first (员工, incl. 秩序维护员, 保洁员, 维修员) up to leaders (分管领导, 副总经理, 总经理).';
COMMENT ON COLUMN core.staff.role IS 'staff (员工), receptionist (前台/客户接待员), department_head (责任部门主管), handler (经办人), supervisor (客服主管), manager (经理), qa (质检), leader (领导).';
COMMENT ON COLUMN core.staff.supervisor_id IS 'Direct supervisor (直接上级): where an out-of-scope request goes when the department is unclear, and the next step of the emergency ladder.';
COMMENT ON COLUMN core.staff.contact_private IS 'Contact details are never disclosed (leaders, 领导联系方式不外泄): the API never returns phone/email/wechat; a leader call-back is requested instead.';
COMMENT ON COLUMN core.staff.on_duty IS 'Currently reachable; routing skips owners who are off duty (see also routing.duty_roster).';

-- ---------------------------------------------------------------- cases
CREATE TABLE core.case_numbers (
    site_id      uuid NOT NULL REFERENCES core.sites(id),
    local_day    date NOT NULL,
    last_number  integer NOT NULL CHECK (last_number BETWEEN 1 AND 99999999),
    PRIMARY KEY (site_id, local_day)
);
COMMENT ON TABLE core.case_numbers IS 'Counter behind case numbers SITE-YYYYMMDD-NNNN, per site and local day (in the site''s time zone): INSERT ... ON CONFLICT DO UPDATE SET last_number = last_number + 1 RETURNING last_number.';

CREATE TABLE core.cases (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id             uuid NOT NULL REFERENCES core.sites(id),
    number              text NOT NULL CHECK (number ~ '^[A-Z][A-Z0-9]{1,15}-[0-9]{8}-[0-9]{4,8}$'),
    first_responder_id  uuid,
    owner_id            uuid,
    department_id       uuid,
    status              text NOT NULL DEFAULT 'registered'
                        CHECK (status IN ('registered', 'assigned', 'transferred', 'accepted', 'in_progress',
                                          'waiting', 'resolved', 'closed', 'closed_unresolvable', 'referred_out')),
    type                text NOT NULL CHECK (type IN ('consultation', 'complaint', 'help', 'suggestion',
                                                      'repair', 'business', 'report', 'emergency')),
    channel             text NOT NULL CHECK (channel IN ('visit', 'phone', 'letter', 'web', 'email', 'hotline',
                                                         'chat', 'social', 'meeting', 'callback', 'api', 'device')),
    urgency             text NOT NULL DEFAULT 'normal' CHECK (urgency IN ('normal', 'urgent', 'emergency')),
    category            text CHECK (char_length(category) BETWEEN 1 AND 100),
    subject             text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 1000),
    description         text NOT NULL DEFAULT '' CHECK (char_length(description) <= 100000),
    customer_name       text CHECK (char_length(customer_name) <= 200),
    customer_phone      text CHECK (char_length(customer_phone) <= 32),
    customer_unit       text CHECK (char_length(customer_unit) <= 200),
    customer_address    text CHECK (char_length(customer_address) <= 500),
    required_documents  text[] NOT NULL DEFAULT '{}',
    escalation_level    text NOT NULL DEFAULT 'none'
                        CHECK (escalation_level IN ('none', 'supervisor', 'manager', 'leader')),
    handoff_due         timestamptz,
    first_contact_due   timestamptz,
    answer_due          timestamptz,
    resolve_due         timestamptz,
    callback_due        timestamptz,
    expected_completion timestamptz,
    waiting_since       timestamptz,
    paused_total        interval NOT NULL DEFAULT '0' CHECK (paused_total >= interval '0'),
    waiting_reason      text,
    result              text CHECK (char_length(result) <= 100000),
    satisfaction        text CHECK (satisfaction IN ('satisfied', 'basically_satisfied', 'unsatisfied', 'unreachable')),
    resolved_on_spot    boolean NOT NULL DEFAULT false,
    referral_guidance   text,
    unresolvable_reason text,
    source              text NOT NULL DEFAULT 'staff' CHECK (char_length(source) BETWEEN 1 AND 200),
    external_ref        text CHECK (char_length(external_ref) BETWEEN 1 AND 200),
    request_sha256      bytea CHECK (octet_length(request_sha256) = 32),
    version             bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    closed_at           timestamptz,
    UNIQUE (site_id, number),
    UNIQUE (site_id, id),
    CONSTRAINT cases_idempotency UNIQUE (site_id, source, external_ref),
    FOREIGN KEY (site_id, first_responder_id) REFERENCES core.staff(site_id, id),
    FOREIGN KEY (site_id, owner_id) REFERENCES core.staff(site_id, id),
    FOREIGN KEY (site_id, department_id) REFERENCES core.departments(site_id, id),
    CONSTRAINT cases_waiting CHECK ((status = 'waiting') = (waiting_since IS NOT NULL)),
    CONSTRAINT cases_unresolvable_reason CHECK (status <> 'closed_unresolvable'
        OR coalesce(char_length(btrim(unresolvable_reason)), 0) > 0),
    CONSTRAINT cases_referral_guidance CHECK (status <> 'referred_out'
        OR coalesce(char_length(btrim(referral_guidance)), 0) > 0),
    CONSTRAINT cases_required_documents CHECK (cardinality(required_documents) <= 100)
);
CREATE INDEX cases_site_created_idx ON core.cases (site_id, created_at DESC, id DESC);
CREATE INDEX cases_open_status_idx ON core.cases (site_id, status)
    WHERE status NOT IN ('closed', 'closed_unresolvable', 'referred_out');
CREATE INDEX cases_owner_idx ON core.cases (owner_id)
    WHERE status NOT IN ('closed', 'closed_unresolvable', 'referred_out');
CREATE INDEX cases_first_responder_idx ON core.cases (first_responder_id);
CREATE INDEX cases_department_idx ON core.cases (department_id)
    WHERE status NOT IN ('closed', 'closed_unresolvable', 'referred_out');
CREATE INDEX cases_open_resolve_due_idx ON core.cases (site_id, resolve_due)
    WHERE status NOT IN ('resolved', 'closed', 'closed_unresolvable', 'referred_out');

COMMENT ON TABLE core.cases IS 'A request (事项/工单), registered (登记) at first contact. Updated with optimistic locking: UPDATE ... WHERE id = $1 AND version = $2, version = version + 1.';
COMMENT ON COLUMN core.cases.number IS 'Human case number SITE-YYYYMMDD-NNNN (local day of the site), from core.case_numbers.';
COMMENT ON COLUMN core.cases.first_responder_id IS 'Natural first responder (自然首问责任人): stays accountable for follow-up and the callback whatever the handoffs. NULL when the request came from an external system or a device with no person.';
COMMENT ON COLUMN core.cases.owner_id IS 'Current owner: the actual responsible person (事实首问责任人) after the last valid handoff. NULL while unassigned.';
COMMENT ON COLUMN core.cases.department_id IS 'Owning (responsible) department (责任部门); the lead department (主办部门) when several are involved, see core.case_departments.';
COMMENT ON COLUMN core.cases.type IS 'consultation (咨询), complaint (投诉), help (求助), suggestion (建议), repair (报修), business (业务办理), report (举报), emergency (紧急).';
COMMENT ON COLUMN core.cases.channel IS 'Channel (渠道): visit (来访), phone (来电), letter (来信/来函), web (网上), email, hotline (热线), chat (微信), social (BBS/微博), meeting (会议), callback (回访), api (external system), device (alarm).';
COMMENT ON COLUMN core.cases.urgency IS 'Urgency (紧要程度).';
COMMENT ON COLUMN core.cases.required_documents IS 'Everything the customer must bring or do, told in one go (一次性告知清单).';
COMMENT ON COLUMN core.cases.escalation_level IS 'Highest rung of the escalation ladder reached: supervisor (2 days), manager (1 week), leader. A complaint reaching QA or a leader is a conflict escalation (矛盾升级).';
COMMENT ON COLUMN core.cases.handoff_due IS 'Transfer to the responsible department due (1 hour by default).';
COMMENT ON COLUMN core.cases.expected_completion IS 'Expected completion date told to the customer for long jobs (阶段性反馈).';
COMMENT ON COLUMN core.cases.waiting_since IS 'Set while status = waiting (for the customer or a third party): the clocks are paused.';
COMMENT ON COLUMN core.cases.paused_total IS 'Total time spent waiting so far; deadlines are pushed back by it.';
COMMENT ON COLUMN core.cases.satisfaction IS 'Recorded at the callback (回访): 满意, 基本满意, 不满意, 联系不上.';
COMMENT ON COLUMN core.cases.resolved_on_spot IS 'Handled at first contact (当场办结).';
COMMENT ON COLUMN core.cases.referral_guidance IS 'Outside anyone''s scope here: where the customer was pointed to (引导), required when referred_out.';
COMMENT ON COLUMN core.cases.unresolvable_reason IS 'Written reason of the manager who closed it as unresolvable, required when closed_unresolvable.';
COMMENT ON COLUMN core.cases.source IS 'Who submitted it, for idempotency: an API key name, a device, or staff. With external_ref (or the Idempotency-Key header) it identifies a submission.';
COMMENT ON COLUMN core.cases.request_sha256 IS 'SHA-256 of the normalised submission, so that the same idempotency key with a different body is answered 409.';
COMMENT ON COLUMN core.cases.version IS 'Optimistic-locking version, starts at 1, +1 on every change; the If-Match of the HTTP API.';

CREATE TABLE core.case_departments (
    site_id        uuid NOT NULL,
    case_id        uuid NOT NULL,
    department_id  uuid NOT NULL,
    role           text NOT NULL CHECK (role IN ('lead', 'assisting')),
    designated_by  uuid,
    designated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, department_id),
    FOREIGN KEY (site_id, case_id) REFERENCES core.cases(site_id, id) ON DELETE CASCADE,
    FOREIGN KEY (site_id, department_id) REFERENCES core.departments(site_id, id),
    FOREIGN KEY (site_id, designated_by) REFERENCES core.staff(site_id, id)
);
CREATE UNIQUE INDEX case_departments_one_lead ON core.case_departments (case_id) WHERE role = 'lead';
CREATE INDEX case_departments_department_idx ON core.case_departments (department_id);
COMMENT ON TABLE core.case_departments IS 'Multi-department cases: the lead department (主办部门) and the assisting ones (协办部门), designated by the supervisor (客户接待事项协调单).';

-- ---------------------------------------------------------------- handoffs
CREATE TABLE core.handoffs (
    id                  bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    site_id             uuid NOT NULL,
    case_id             uuid NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('assign', 'transfer', 'accept', 'return', 'forward',
                                                      'escalate', 'refer_out', 'takeover')),
    from_staff_id       uuid,
    from_department_id  uuid,
    to_staff_id         uuid,
    to_department_id    uuid,
    by_staff_id         uuid,
    by_system           text CHECK (char_length(by_system) BETWEEN 1 AND 64),
    on_behalf_of_id     uuid,
    at                  timestamptz NOT NULL DEFAULT now(),
    reason              text CHECK (char_length(reason) <= 10000),
    event_id            uuid,
    FOREIGN KEY (site_id, case_id) REFERENCES core.cases(site_id, id),
    FOREIGN KEY (site_id, from_staff_id) REFERENCES core.staff(site_id, id),
    FOREIGN KEY (site_id, from_department_id) REFERENCES core.departments(site_id, id),
    FOREIGN KEY (site_id, to_staff_id) REFERENCES core.staff(site_id, id),
    FOREIGN KEY (site_id, to_department_id) REFERENCES core.departments(site_id, id),
    FOREIGN KEY (site_id, by_staff_id) REFERENCES core.staff(site_id, id),
    FOREIGN KEY (site_id, on_behalf_of_id) REFERENCES core.staff(site_id, id),
    CONSTRAINT handoffs_signed CHECK (by_staff_id IS NOT NULL OR by_system IS NOT NULL),
    CONSTRAINT handoffs_return_reason CHECK (kind NOT IN ('return', 'refer_out')
        OR coalesce(char_length(btrim(reason)), 0) > 0)
);
CREATE INDEX handoffs_case_idx ON core.handoffs (case_id, at, id);
CREATE INDEX handoffs_event_idx ON core.handoffs (event_id);
CREATE INDEX handoffs_site_at_idx ON core.handoffs (site_id, at);
COMMENT ON TABLE core.handoffs IS 'Every handoff of a case, signed and timed (签名签时): who, from whom, to whom, on whose behalf, when and why. Append-only. The receiver of a valid handoff becomes the actual responsible person (事实首问责任人) for that step.';
COMMENT ON COLUMN core.handoffs.kind IS 'assign (分派), transfer (转办), accept (appoint a handler, 指定经办人), return (退回, reason required), forward (转交), escalate (升级), refer_out (outside the company, guidance as reason), takeover (supervisor/manager takes it over).';
COMMENT ON COLUMN core.handoffs.by_staff_id IS 'The person who signed this step; NULL only when a service (by_system: routing, escalation) did it.';
COMMENT ON COLUMN core.handoffs.on_behalf_of_id IS 'When someone acts for another (a receptionist for a department head, 代签).';
COMMENT ON COLUMN core.handoffs.event_id IS 'The bus event (bus.events.event_id) that announced this handoff.';

-- ---------------------------------------------------------------- notes, callbacks
CREATE TABLE core.case_notes (
    id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    site_id        uuid NOT NULL,
    case_id        uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('first_contact', 'progress', 'callback', 'result',
                                                 'waiting', 'resumed', 'guidance', 'comment')),
    by_staff_id    uuid,
    at             timestamptz NOT NULL DEFAULT now(),
    text           text NOT NULL DEFAULT '' CHECK (char_length(text) <= 100000),
    expected_date  date,
    satisfaction   text CHECK (satisfaction IN ('satisfied', 'basically_satisfied', 'unsatisfied', 'unreachable')),
    event_id       uuid,
    FOREIGN KEY (site_id, case_id) REFERENCES core.cases(site_id, id),
    FOREIGN KEY (site_id, by_staff_id) REFERENCES core.staff(site_id, id)
);
CREATE INDEX case_notes_case_idx ON core.case_notes (case_id, at, id);
COMMENT ON TABLE core.case_notes IS 'What happened on a case besides handoffs: first contact with the customer, progress notes (阶段性反馈) with an expected date, callbacks (回访) with satisfaction, waiting and resuming. Append-only.';
COMMENT ON COLUMN core.case_notes.by_staff_id IS 'Who wrote it; NULL when a service did.';
COMMENT ON COLUMN core.case_notes.expected_date IS 'Expected completion date told to the customer (progress notes).';

CREATE TABLE core.leader_callbacks (
    id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    site_id        uuid NOT NULL,
    case_id        uuid NOT NULL,
    leader_id      uuid NOT NULL,
    requested_by   uuid,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    note           text CHECK (char_length(note) <= 10000),
    done_at        timestamptz,
    outcome        text CHECK (char_length(outcome) <= 10000),
    FOREIGN KEY (site_id, case_id) REFERENCES core.cases(site_id, id),
    FOREIGN KEY (site_id, leader_id) REFERENCES core.staff(site_id, id),
    FOREIGN KEY (site_id, requested_by) REFERENCES core.staff(site_id, id),
    CHECK (done_at IS NULL OR done_at >= requested_at)
);
CREATE INDEX leader_callbacks_pending_idx ON core.leader_callbacks (leader_id, requested_at) WHERE done_at IS NULL;
CREATE INDEX leader_callbacks_case_idx ON core.leader_callbacks (case_id);
COMMENT ON TABLE core.leader_callbacks IS 'A customer asked for a leader: their contact details are never given out, so the customer''s details (on the case) go to the leader, who calls back (领导回电).';

-- ---------------------------------------------------------------- credentials
CREATE TABLE core.api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id       uuid NOT NULL REFERENCES core.sites(id),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    prefix        text NOT NULL UNIQUE CHECK (char_length(prefix) BETWEEN 4 AND 32),
    key_hash      bytea NOT NULL CHECK (octet_length(key_hash) = 32),
    role          text NOT NULL CHECK (role IN ('system', 'device', 'reader', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    UNIQUE (site_id, name)
);
COMMENT ON TABLE core.api_keys IS 'API keys of external systems and devices, scoped to a site and a role. The key is shown once; only its SHA-256 is kept, compared in constant time.';
COMMENT ON COLUMN core.api_keys.prefix IS 'The non-secret leading part of the key, used to find the row before comparing hashes.';
COMMENT ON COLUMN core.api_keys.key_hash IS 'SHA-256 of the whole key (32 bytes); never the key itself.';
COMMENT ON COLUMN core.api_keys.role IS 'system: an external system that submits and reads its own cases; device: submits alarms; reader: read-only; admin: directory administration of its site.';

CREATE TABLE core.staff_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    staff_id      uuid NOT NULL REFERENCES core.staff(id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX staff_tokens_staff_idx ON core.staff_tokens (staff_id);
COMMENT ON TABLE core.staff_tokens IS 'Bearer tokens of staff (console login); only the SHA-256 of the token is kept.';
