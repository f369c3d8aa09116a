-- 0018_bus_events_case_index: a case's history (GET /v1/cases/{id}/history,
-- the console's case page) reads the case's events from bus.events by
-- case_id.  Without an index that was a scan of the case's whole partition:
-- 15.7 ms at 3,200 events, 130-150 ms at 1,000,000 (docs/CAPACITY.md), and
-- growing with every event ever stored.  The index costs one more B-tree
-- insert per event (0007 weighed the same cost for an index nothing read);
-- this one is read on every case page.  Events without a case (none today)
-- are left out.
CREATE INDEX events_case_idx ON bus.events (case_id, seq) WHERE case_id IS NOT NULL;
