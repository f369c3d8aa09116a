-- 0009_notes_on_behalf_leader_callback: a note written for someone else
-- (a receptionist recording what a handler did) says for whom, as a
-- handoff does; a leader's call-back keeps where and when the customer
-- wants to be called, so the leader works from the request itself.
ALTER TABLE core.case_notes
    ADD COLUMN on_behalf_of_id uuid,
    ADD FOREIGN KEY (site_id, on_behalf_of_id) REFERENCES core.staff(site_id, id);
ALTER TABLE core.leader_callbacks
    ADD COLUMN callback_phone text CHECK (char_length(callback_phone) <= 32),
    ADD COLUMN preferred_time timestamptz;

COMMENT ON COLUMN core.case_notes.on_behalf_of_id IS 'The person the note was written for (by_staff_id acted on their behalf).';
COMMENT ON COLUMN core.leader_callbacks.callback_phone IS 'Where the customer wants the leader to call (the customer''s number, never the leader''s).';
COMMENT ON COLUMN core.leader_callbacks.preferred_time IS 'When the customer would like the call; NULL: any time.';

-- A leader's contact details are never given out (DOMAIN.md): the
-- directory API keeps contact_private on for leaders, and so does the
-- table, whatever writes to it.
UPDATE core.staff SET contact_private = true WHERE role = 'leader' AND NOT contact_private;
ALTER TABLE core.staff ADD CONSTRAINT staff_leader_contact_private
    CHECK (role <> 'leader' OR contact_private);
