-- 0017_console: what the web console needs (issue 10).
--
-- Staff sign in with a password: only a slow, salted hash is kept (crypt(3)
-- form: yescrypt "$y$..." made by intake, bcrypt "$2b$..." also accepted),
-- and signing in makes an ordinary staff token (core.staff_tokens) that
-- expires; signing out revokes it.
ALTER TABLE core.staff
    ADD COLUMN password_hash text CHECK (password_hash IS NULL OR password_hash ~ '^\$(y|2[aby]|7|gy)\$'),
    ADD COLUMN password_set_at timestamptz;
COMMENT ON COLUMN core.staff.password_hash IS 'crypt(3) hash of the staff member''s console password (yescrypt or bcrypt); NULL: no password, signing in is refused. Never the password.';
COMMENT ON COLUMN core.staff.password_set_at IS 'When the password was last set.';

ALTER TABLE core.staff_tokens
    ADD COLUMN session boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN core.staff_tokens.session IS 'Made by signing in to the console (POST /v1/session), not issued by an administrator.';

-- What a customer must bring or do, per request type, told in one go
-- (一次性告知): the console shows the list of the chosen type when a request
-- is registered, and it goes into core.cases.required_documents.
CREATE TABLE core.checklists (
    site_id     uuid NOT NULL REFERENCES core.sites(id),
    case_type   text NOT NULL CHECK (case_type IN ('consultation', 'complaint', 'help', 'suggestion',
                                                   'repair', 'business', 'report', 'emergency')),
    items       text[] NOT NULL CHECK (cardinality(items) BETWEEN 1 AND 100),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, case_type)
);
COMMENT ON TABLE core.checklists IS 'Per site and request type: everything the customer must bring or do, told in one go (一次性告知清单).';

-- The case's clocks are kept by the escalation service in
-- escalation.deadlines; these columns of 0001 were never written, and the
-- case list now reads the clocks (GET /v1/cases: *_due, overdue).
COMMENT ON COLUMN core.cases.handoff_due IS 'Unused: the clocks are escalation.deadlines.';
COMMENT ON COLUMN core.cases.first_contact_due IS 'Unused: the clocks are escalation.deadlines.';
COMMENT ON COLUMN core.cases.answer_due IS 'Unused: the clocks are escalation.deadlines.';
COMMENT ON COLUMN core.cases.resolve_due IS 'Unused: the clocks are escalation.deadlines.';
COMMENT ON COLUMN core.cases.callback_due IS 'Unused: the clocks are escalation.deadlines.';
