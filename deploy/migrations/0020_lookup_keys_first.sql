-- 0020_lookup_keys_first: the two unique keys intake looks up on every
-- registration lead with the column that only they have.
--
-- intake checks a batch of registrations with one kept statement (a plan
-- made once per session, not per batch: handle_register.c).  A plan made
-- once must not depend on what the statistics said at the time.  With the
-- site first, five indexes of core.cases (and two of core.staff) could
-- serve `site_id = $1`, and on a small or unanalysed table the planner
-- found them all equally cheap: a kept plan could then scan a whole site's
-- cases for every look-up once the table had grown.  With the source (the
-- staff code) first, the look-up compares the site in a way no index
-- serves, and the key is the one index it can use.
--
-- The keys themselves are unchanged: the same columns, so the same rows
-- are unique, and ON CONFLICT (site_id, code) still names the staff key.
-- (source, external_ref, site_id) also serves an external system listing
-- its own cases (source = ... AND site_id = ...).
ALTER TABLE core.cases
    DROP CONSTRAINT cases_idempotency,
    ADD CONSTRAINT cases_idempotency UNIQUE (source, external_ref, site_id);

ALTER TABLE core.staff
    DROP CONSTRAINT staff_site_id_code_key,
    ADD CONSTRAINT staff_code_site_id_key UNIQUE (code, site_id);
