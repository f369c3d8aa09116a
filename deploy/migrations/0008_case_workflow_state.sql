-- 0008_case_workflow_state: what the workflow rules (common/workflow.h)
-- need to know about a case and 0001 did not keep.  Without these a
-- waiting case could not resume to the status it left, a department
-- could return a case twice, transfers could not be counted (a case
-- bounced between departments is what QA measures), and the first
-- contact and an emergency's acknowledgement had no time.
ALTER TABLE core.cases
    ADD COLUMN status_before_waiting text
        CHECK (status_before_waiting IN ('registered', 'assigned', 'accepted', 'in_progress')),
    ADD COLUMN waiting_on text CHECK (waiting_on IN ('customer', 'third_party')),
    ADD COLUMN transfer_count integer NOT NULL DEFAULT 0 CHECK (transfer_count >= 0),
    ADD COLUMN returned_by text[] NOT NULL DEFAULT '{}'
        CONSTRAINT cases_returned_by_size CHECK (cardinality(returned_by) <= 16),
    ADD COLUMN first_contact_at timestamptz,
    ADD COLUMN emergency_acknowledged_at timestamptz,
    ADD CONSTRAINT cases_waiting_state CHECK ((status = 'waiting') =
        (status_before_waiting IS NOT NULL AND waiting_on IS NOT NULL));

COMMENT ON COLUMN core.cases.status_before_waiting IS 'While waiting: the status the case resumes to.';
COMMENT ON COLUMN core.cases.waiting_on IS 'While waiting: for whom, the customer or a third party (the clocks are paused).';
COMMENT ON COLUMN core.cases.transfer_count IS 'Transfers and forwards so far: how often the customer was bounced (踢皮球).';
COMMENT ON COLUMN core.cases.returned_by IS 'Codes of the departments that returned the case (each returns it once; routing never sends it back to them).';
COMMENT ON COLUMN core.cases.first_contact_at IS 'When the owner first contacted the customer.';
COMMENT ON COLUMN core.cases.emergency_acknowledged_at IS 'When someone on the ladder acknowledged the emergency (the alert stops climbing).';

