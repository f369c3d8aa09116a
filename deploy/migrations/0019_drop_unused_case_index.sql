-- 0019_drop_unused_case_index: core.cases.resolve_due has been unused since
-- the clocks moved to escalation.deadlines (0013, 0017), and nothing reads
-- the index on it: every registration and every routing decision still
-- paid one B-tree insert into it (the case row's update changes the status,
-- owner and department, so it is never a HOT update and every index gets
-- a new entry).  Nine indexes are left on core.cases.
DROP INDEX IF EXISTS core.cases_open_resolve_due_idx;
