-- 0016_audit_chain: the audit service's hash chain, its signed checkpoints,
-- the roll-ups the QA reports read, and the database role the services
-- run as, which may add audit rows but never change or remove them.
--
-- Nothing wrote 0006's audit.log, so it is replaced by a table that holds
-- every field the chain's hash covers (see common/auditlog.h for the
-- canonical bytes).

DROP TABLE audit.log;

CREATE TABLE audit.log (
    site_id         uuid NOT NULL REFERENCES core.sites(id),
    seq             bigint NOT NULL CHECK (seq >= 1),
    event_id        uuid NOT NULL UNIQUE,
    event_type      text NOT NULL CHECK (char_length(event_type) BETWEEN 1 AND 100),
    case_id         uuid,
    actor           text NOT NULL CHECK (char_length(actor) <= 300),
    event_time      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    payload_sha256  bytea NOT NULL CHECK (octet_length(payload_sha256) = 32),
    prev_hash       bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash            bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (site_id, seq)
);
CREATE INDEX log_case_idx ON audit.log (case_id, seq) WHERE case_id IS NOT NULL;
COMMENT ON TABLE audit.log IS 'The audit log: every event on the bus, once, in a hash chain per site. hash = SHA-256(prev_hash || canonical bytes of the entry), see common/auditlog.h. Append-only: the services'' role may only insert, and triggers refuse UPDATE, DELETE and TRUNCATE to everyone.';
COMMENT ON COLUMN audit.log.seq IS 'Position in the site''s chain: 1, 2, 3 ... without gaps.';
COMMENT ON COLUMN audit.log.actor IS 'Who caused the event (签名): a staff code, "for <code>" when on someone''s behalf, key:<id> for an API key, system:<name> for a service.';
COMMENT ON COLUMN audit.log.event_time IS 'When it happened, by the server that made it (签时).';
COMMENT ON COLUMN audit.log.recorded_at IS 'When the audit service chained it.';
COMMENT ON COLUMN audit.log.payload_sha256 IS 'SHA-256 of the event''s protobuf Envelope (as protobuf-c packs it).';
COMMENT ON COLUMN audit.log.prev_hash IS 'hash of entry seq - 1 of the same site; 32 zero bytes for seq 1.';

CREATE TRIGGER log_no_update_delete BEFORE UPDATE OR DELETE ON audit.log
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON audit.log
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

DROP TABLE audit.chain_heads;
CREATE TABLE audit.chain_heads (
    site_id     uuid PRIMARY KEY REFERENCES core.sites(id),
    last_seq    bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_hash   bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
                CHECK (octet_length(last_hash) = 32),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit.chain_heads IS 'The head of each site''s chain (0 and 32 zero bytes before the first entry); appending locks this row (SELECT ... FOR UPDATE), so replicas extend one chain without forks.';

CREATE TABLE audit.checkpoints (
    site_id     uuid NOT NULL REFERENCES core.sites(id),
    seq         bigint NOT NULL CHECK (seq >= 1),
    hash        bytea NOT NULL CHECK (octet_length(hash) = 32),
    signed_at   timestamptz NOT NULL,
    key_id      text NOT NULL CHECK (char_length(key_id) BETWEEN 1 AND 64),
    signature   bytea NOT NULL CHECK (octet_length(signature) = 32),
    PRIMARY KEY (site_id, seq)
);
COMMENT ON TABLE audit.checkpoints IS 'Signed chain heads (签名签时): HMAC-SHA256 with the site''s key over the site, seq, hash and time (common/auditlog.h), for a site to publish or archive. Append-only.';
COMMENT ON COLUMN audit.checkpoints.key_id IS 'First 16 hex digits of SHA-256 of the site key: which key signed, never the key.';
CREATE TRIGGER checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit.checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON audit.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- ---------------------------------------------------------------- roll-ups
CREATE TABLE audit.case_facts (
    case_id          uuid PRIMARY KEY,
    site_id          uuid NOT NULL REFERENCES core.sites(id),
    reg_day          date NOT NULL,
    registered_at    timestamptz NOT NULL,
    case_type        text NOT NULL,
    channel          text NOT NULL,
    urgency          text NOT NULL,
    first_responder  text NOT NULL,
    department       text NOT NULL,
    on_spot          boolean NOT NULL DEFAULT false,
    outcome          text NOT NULL DEFAULT 'open'
                     CHECK (outcome IN ('open', 'resolved', 'unresolvable', 'referred_out')),
    resolve_s        bigint CHECK (resolve_s >= 0),
    handed_off       boolean NOT NULL DEFAULT false,
    responded        boolean NOT NULL DEFAULT false,
    transfers        integer NOT NULL DEFAULT 0,
    returns          integer NOT NULL DEFAULT 0,
    late_handoff     boolean NOT NULL DEFAULT false,
    late_answer      boolean NOT NULL DEFAULT false,
    late_resolve     boolean NOT NULL DEFAULT false,
    late_callback    boolean NOT NULL DEFAULT false,
    called_back      boolean NOT NULL DEFAULT false,
    satisfaction     text CHECK (satisfaction IN ('satisfied', 'basically_satisfied', 'unsatisfied', 'unreachable')),
    reopened         integer NOT NULL DEFAULT 0,
    esc_supervisor   integer NOT NULL DEFAULT 0,
    esc_manager      integer NOT NULL DEFAULT 0,
    esc_leader       integer NOT NULL DEFAULT 0
);
CREATE INDEX case_facts_site_day_idx ON audit.case_facts (site_id, reg_day);
CREATE INDEX case_facts_department_idx ON audit.case_facts (site_id, department, reg_day);
CREATE INDEX case_facts_staff_idx ON audit.case_facts (site_id, first_responder, reg_day);
COMMENT ON TABLE audit.case_facts IS 'Roll-up, one row per case, kept by the audit service in the transaction that chains the case''s events: what the QA reports count. Cases are counted in the period of their registration (reg_day: the site''s local date).';
COMMENT ON COLUMN audit.case_facts.department IS 'The department the case is with now (registration: the first responder''s; then each handoff''s target; a lead designation''s lead).';
COMMENT ON COLUMN audit.case_facts.responded IS 'Answered (resolved on the spot, first contact made, or resolved).';
COMMENT ON COLUMN audit.case_facts.resolve_s IS 'Seconds from registration to the last resolution (calendar time).';

CREATE TABLE audit.violations (
    event_id     uuid PRIMARY KEY,
    site_id      uuid NOT NULL REFERENCES core.sites(id),
    day          date NOT NULL,
    occurred_at  timestamptz NOT NULL,
    case_id      uuid,
    kind         text NOT NULL,
    staff        text NOT NULL DEFAULT '',
    department   text NOT NULL DEFAULT '',
    points       integer NOT NULL DEFAULT 0
);
CREATE INDEX violations_site_day_idx ON audit.violations (site_id, day);
COMMENT ON TABLE audit.violations IS 'Roll-up of every violation (from case.deadline_breached with a violation, and violation.recorded), by the site''s local day: who, what, when, points.';

-- ---------------------------------------------------------------- the services' role
DO $role$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shouwen_service') THEN
        CREATE ROLE shouwen_service NOLOGIN;
    END IF;
END
$role$;
COMMENT ON ROLE shouwen_service IS 'What the shouwen services may do: grant it to the login role they connect as (GRANT shouwen_service TO ...). Everything but changing or removing audit rows.';

GRANT USAGE ON SCHEMA core, bus, routing, escalation, notification, audit, shouwen_meta TO shouwen_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA core, bus, routing, escalation, notification, audit TO shouwen_service;
GRANT SELECT ON ALL TABLES IN SCHEMA shouwen_meta TO shouwen_service;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA core, bus, routing, escalation, notification, audit TO shouwen_service;
REVOKE UPDATE, DELETE, TRUNCATE ON audit.log, audit.checkpoints, audit.verifications FROM shouwen_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA core, bus, routing, escalation, notification, audit
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO shouwen_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA core, bus, routing, escalation, notification, audit
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO shouwen_service;
