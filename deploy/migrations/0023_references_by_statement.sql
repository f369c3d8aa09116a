-- 0023_references_by_statement: the references of the tables every case
-- writes to are checked once per statement instead of once per row.
--
-- A foreign key checks each new row on its own: one more query per
-- reference of each row (a cached plan, executed alone), and a lock
-- (FOR KEY SHARE) on the row it points at.  A case wrote about 21 of
-- them: 4 for the case, 2 more when routing changes its owner and
-- department, 7 for its handoff, one for each of its 4.4 deadlines, one
-- for its delivery, one for each of its 3 audit entries and one for its
-- roll-up.  The rows they lock are few and shared: the site's row, the
-- hotline's staff and the engineering head are locked by every
-- service's transaction at once, which turns each such lock into a new
-- multixact.  Without these keys, and nothing in their place, the
-- pipeline's PostgreSQL spent about 75 µs less per case; with the checks
-- below, about 50 less (BENCHMARKS.md, session 41).
--
-- The guarantees stay what the keys gave:
--
--  * A row written to core.cases, core.handoffs, escalation.deadlines,
--    notification.deliveries, audit.log or audit.case_facts points at
--    rows that exist, of its own site.  A statement-level trigger on
--    each reads the statement's new rows (and core.cases' changed rows
--    too: their owner and department change) once, looks each distinct
--    reference up once, and fails the statement with SQLSTATE 23503
--    (foreign_key_violation), as a key does, naming the table, the
--    column and the missing row.
--  * What they point at does not go away under them, without the lock
--    a key takes on each row it checks:
--    - cases are never deleted.  A case is the record the first-contact
--      responsibility rests on, and nothing accepted is ever lost: a
--      DELETE or TRUNCATE of core.cases is refused outright;
--    - a site, staff member or department still referred to is not
--      deleted (23503, as the keys' ON DELETE NO ACTION).  The delete
--      first locks the tables that could refer to it (SHARE), so that
--      no such row is being written meanwhile; TRUNCATE is refused;
--    - no site, staff member, department or case changes its id or its
--      site.
--
-- The other tables keep their foreign keys: they are written once in a
-- while (notes, leader call-backs, violations...), not for every case.
-- notification.deliveries keeps its key to notification.channels (ON
-- DELETE CASCADE: a channel's deliveries go with it) and
-- notification.attempts its key to notification.deliveries.
--
-- On a live database: nothing here reads a table's rows (dropping a key
-- and creating a trigger only take each table's lock for a moment), and
-- a binary of an earlier release works on this schema (it never relied
-- on a key to refuse what it writes).

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT conrelid::regclass AS t, conname
        FROM pg_constraint
        WHERE contype = 'f'
          AND conrelid IN ('core.cases'::regclass, 'core.handoffs'::regclass,
                           'escalation.deadlines'::regclass, 'audit.log'::regclass,
                           'audit.case_facts'::regclass, 'notification.deliveries'::regclass)
          AND confrelid IN ('core.sites'::regclass, 'core.staff'::regclass,
                            'core.departments'::regclass, 'core.cases'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
    END LOOP;
END $$;

-- ---- what a statement's rows point at ---------------------------------------------------------
--
-- Each trigger runs one query over the statement's rows (its transition
-- table, new_rows): the distinct references, each looked up once by its
-- index.  No lock is taken: what is referred to cannot go away meanwhile
-- (below).  A session keeps a trigger's plan until the tables' statistics
-- change, and a plan made while a table was small may read all of it
-- for every statement after (a hashed NOT EXISTS, or a merge anti join
-- over the whole index of core.cases, both seen): so each look-up is a
-- LATERAL subquery with LIMIT 1, which can only be probed row by row,
-- by the primary key alone (the site is compared with IS NOT DISTINCT
-- FROM, which no index serves: on a small table the index on the site
-- and the time looked as cheap, and reads all of a site's cases once the
-- table is large), sequential scans are off in these functions, and so
-- is JIT.

-- The error of a reference that points at nothing: 23503, as a foreign
-- key's.
CREATE FUNCTION core.refs_fail(tab text, col text, target text, site uuid, id uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'insert or update on table % violates its reference %: % % of site % does not exist',
        tab, col, target, id, site USING ERRCODE = 'foreign_key_violation',
        DETAIL = format('%s.%s must name a row of %s of the same site', tab, col, target);
END $$;

-- core.cases: its site, first responder, owner and department.  Also
-- after an update: routing and the actions change the owner and the
-- department.
CREATE FUNCTION core.cases_check_refs() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    bad record;
BEGIN
    SELECT r.col, r.s, r.i INTO bad
    FROM (SELECT DISTINCT v.col, n.site_id AS s, v.i FROM new_rows n,
          LATERAL (VALUES ('site_id', n.site_id), ('first_responder_id', n.first_responder_id),
                          ('owner_id', n.owner_id), ('department_id', n.department_id)) v(col, i)
          WHERE v.i IS NOT NULL) r
    LEFT JOIN LATERAL (SELECT true AS ok FROM core.sites p
                       WHERE r.col = 'site_id' AND p.id = r.i LIMIT 1) t ON true
    LEFT JOIN LATERAL (SELECT true AS ok FROM core.staff p
                       WHERE r.col IN ('first_responder_id', 'owner_id') AND p.id = r.i
                         AND p.site_id IS NOT DISTINCT FROM r.s LIMIT 1) f ON true
    LEFT JOIN LATERAL (SELECT true AS ok FROM core.departments p
                       WHERE r.col = 'department_id' AND p.id = r.i
                         AND p.site_id IS NOT DISTINCT FROM r.s LIMIT 1) d ON true
    WHERE t.ok IS NULL AND f.ok IS NULL AND d.ok IS NULL
    LIMIT 1;
    IF FOUND THEN
        PERFORM core.refs_fail('core.cases', bad.col, CASE bad.col WHEN 'site_id' THEN 'core.sites'
            WHEN 'department_id' THEN 'core.departments' ELSE 'core.staff' END, bad.s, bad.i);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER cases_refs_insert AFTER INSERT ON core.cases
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.cases_check_refs();
CREATE TRIGGER cases_refs_update AFTER UPDATE ON core.cases
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.cases_check_refs();

-- core.handoffs: its case, four staff and two departments (the site
-- comes with the case: a case of that site exists).
CREATE FUNCTION core.handoffs_check_refs() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    bad record;
BEGIN
    SELECT r.col, r.s, r.i INTO bad
    FROM (SELECT DISTINCT v.col, n.site_id AS s, v.i FROM new_rows n,
          LATERAL (VALUES ('case_id', n.case_id), ('from_staff_id', n.from_staff_id),
                          ('to_staff_id', n.to_staff_id), ('by_staff_id', n.by_staff_id),
                          ('on_behalf_of_id', n.on_behalf_of_id),
                          ('from_department_id', n.from_department_id),
                          ('to_department_id', n.to_department_id)) v(col, i)
          WHERE v.i IS NOT NULL) r
    LEFT JOIN LATERAL (SELECT true AS ok FROM core.cases p
                       WHERE r.col = 'case_id' AND p.id = r.i
                         AND p.site_id IS NOT DISTINCT FROM r.s LIMIT 1) c ON true
    LEFT JOIN LATERAL (SELECT true AS ok FROM core.staff p
                       WHERE (r.col LIKE '%staff_id' OR r.col = 'on_behalf_of_id')
                         AND p.id = r.i AND p.site_id IS NOT DISTINCT FROM r.s LIMIT 1) f ON true
    LEFT JOIN LATERAL (SELECT true AS ok FROM core.departments p
                       WHERE r.col LIKE '%department_id' AND p.id = r.i
                         AND p.site_id IS NOT DISTINCT FROM r.s LIMIT 1) d ON true
    WHERE c.ok IS NULL AND f.ok IS NULL AND d.ok IS NULL
    LIMIT 1;
    IF FOUND THEN
        PERFORM core.refs_fail('core.handoffs', bad.col, CASE WHEN bad.col = 'case_id' THEN
            'core.cases' WHEN bad.col LIKE '%department_id' THEN 'core.departments'
            ELSE 'core.staff' END, bad.s, bad.i);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER handoffs_refs_insert AFTER INSERT ON core.handoffs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.handoffs_check_refs();
CREATE TRIGGER handoffs_refs_update AFTER UPDATE ON core.handoffs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.handoffs_check_refs();

-- escalation.deadlines: its case.
CREATE FUNCTION escalation.deadlines_check_refs() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    bad record;
BEGIN
    SELECT x.s, x.i INTO bad FROM (SELECT DISTINCT site_id AS s, case_id AS i FROM new_rows) x
    LEFT JOIN LATERAL (SELECT true AS ok FROM core.cases p
                       WHERE p.id = x.i AND p.site_id IS NOT DISTINCT FROM x.s LIMIT 1) c ON true
    WHERE c.ok IS NULL
    LIMIT 1;
    IF FOUND THEN
        PERFORM core.refs_fail('escalation.deadlines', 'case_id', 'core.cases', bad.s, bad.i);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER deadlines_refs_insert AFTER INSERT ON escalation.deadlines
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION escalation.deadlines_check_refs();

-- notification.deliveries, audit.log, audit.case_facts: their site.
CREATE FUNCTION core.site_check_refs() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT x.s INTO bad FROM (SELECT DISTINCT site_id AS s FROM new_rows) x
    LEFT JOIN LATERAL (SELECT true AS ok FROM core.sites p WHERE p.id = x.s LIMIT 1) t ON true
    WHERE t.ok IS NULL
    LIMIT 1;
    IF FOUND THEN
        PERFORM core.refs_fail(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 'site_id', 'core.sites',
                               bad, bad);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_refs_insert AFTER INSERT ON notification.deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.site_check_refs();
CREATE TRIGGER log_refs_insert AFTER INSERT ON audit.log
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.site_check_refs();
CREATE TRIGGER case_facts_refs_insert AFTER INSERT ON audit.case_facts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.site_check_refs();

-- The references of these rows never change afterwards (their updates
-- are escalation's clocks, notification's sends and audit's roll-ups;
-- audit.log refuses every update already).  A row trigger that fires
-- only when one of them is assigned a new value.
CREATE FUNCTION core.refuse_new_reference() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'update on table %.%: % never changes', TG_TABLE_SCHEMA, TG_TABLE_NAME,
        TG_ARGV[0] USING ERRCODE = 'foreign_key_violation';
END $$;
CREATE TRIGGER deadlines_refs_fixed BEFORE UPDATE OF site_id, case_id ON escalation.deadlines
    FOR EACH ROW WHEN (OLD.site_id IS DISTINCT FROM NEW.site_id OR OLD.case_id IS DISTINCT FROM NEW.case_id)
    EXECUTE FUNCTION core.refuse_new_reference('the case of a deadline');
CREATE TRIGGER deliveries_refs_fixed BEFORE UPDATE OF site_id ON notification.deliveries
    FOR EACH ROW WHEN (OLD.site_id IS DISTINCT FROM NEW.site_id)
    EXECUTE FUNCTION core.refuse_new_reference('the site of a delivery');
CREATE TRIGGER case_facts_refs_fixed BEFORE UPDATE OF site_id ON audit.case_facts
    FOR EACH ROW WHEN (OLD.site_id IS DISTINCT FROM NEW.site_id)
    EXECUTE FUNCTION core.refuse_new_reference('the site of a case''s roll-up');

-- ---- what they point at stays ---------------------------------------------------------------

-- A site, staff member or department that a row of the tables above
-- still refers to is not deleted (as the keys' ON DELETE NO ACTION).
-- The tables that could refer to it are locked first (SHARE: it waits
-- for the transactions writing to them to end, and holds new writers
-- back until this one ends), so that no row referring to it is being
-- written meanwhile; a writer let through afterwards finds it gone and
-- fails its check.  Deleting one is an administrator's rare act: no
-- service does it.  SECURITY DEFINER: the services' role may not lock
-- audit.log, which it may only append to.
CREATE FUNCTION core.refuse_delete_referred() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    by_ text;
BEGIN
    IF TG_TABLE_NAME = 'sites' THEN
        LOCK TABLE core.cases, notification.deliveries, audit.log, audit.case_facts IN SHARE MODE;
        by_ := CASE
            WHEN EXISTS (SELECT 1 FROM core.cases WHERE site_id = OLD.id) THEN 'core.cases'
            WHEN EXISTS (SELECT 1 FROM notification.deliveries WHERE site_id = OLD.id)
                THEN 'notification.deliveries'
            WHEN EXISTS (SELECT 1 FROM audit.log WHERE site_id = OLD.id) THEN 'audit.log'
            WHEN EXISTS (SELECT 1 FROM audit.case_facts WHERE site_id = OLD.id) THEN 'audit.case_facts'
        END;
    ELSIF TG_TABLE_NAME = 'staff' THEN
        LOCK TABLE core.cases, core.handoffs IN SHARE MODE;
        by_ := CASE
            WHEN EXISTS (SELECT 1 FROM core.cases WHERE first_responder_id = OLD.id)
              OR EXISTS (SELECT 1 FROM core.cases WHERE owner_id = OLD.id) THEN 'core.cases'
            WHEN EXISTS (SELECT 1 FROM core.handoffs WHERE site_id = OLD.site_id AND OLD.id IN
                         (from_staff_id, to_staff_id, by_staff_id, on_behalf_of_id)) THEN 'core.handoffs'
        END;
    ELSE
        LOCK TABLE core.cases, core.handoffs IN SHARE MODE;
        by_ := CASE
            WHEN EXISTS (SELECT 1 FROM core.cases WHERE department_id = OLD.id) THEN 'core.cases'
            WHEN EXISTS (SELECT 1 FROM core.handoffs WHERE site_id = OLD.site_id AND OLD.id IN
                         (from_department_id, to_department_id)) THEN 'core.handoffs'
        END;
    END IF;
    IF by_ IS NOT NULL THEN
        RAISE EXCEPTION 'delete on table %.%: % is still referred to by %', TG_TABLE_SCHEMA,
            TG_TABLE_NAME, OLD.id, by_ USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER sites_referred BEFORE DELETE ON core.sites
    FOR EACH ROW EXECUTE FUNCTION core.refuse_delete_referred();
CREATE TRIGGER staff_referred BEFORE DELETE ON core.staff
    FOR EACH ROW EXECUTE FUNCTION core.refuse_delete_referred();
CREATE TRIGGER departments_referred BEFORE DELETE ON core.departments
    FOR EACH ROW EXECUTE FUNCTION core.refuse_delete_referred();

-- TRUNCATE skips row triggers, and a key no longer stops it (nor would
-- TRUNCATE ... CASCADE reach the tables above): refused.
CREATE FUNCTION core.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'truncate on table %.%: the case tables refer to its rows; delete them one by one',
        TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation';
END $$;
CREATE TRIGGER sites_no_truncate BEFORE TRUNCATE ON core.sites
    FOR EACH STATEMENT EXECUTE FUNCTION core.refuse_truncate();
CREATE TRIGGER staff_no_truncate BEFORE TRUNCATE ON core.staff
    FOR EACH STATEMENT EXECUTE FUNCTION core.refuse_truncate();
CREATE TRIGGER departments_no_truncate BEFORE TRUNCATE ON core.departments
    FOR EACH STATEMENT EXECUTE FUNCTION core.refuse_truncate();

-- Cases are never deleted, and no site, staff member, department or
-- case changes its id or its site.
CREATE FUNCTION core.refuse_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'update on table %.%: a row never changes its id or its site',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation';
    END IF;
    RAISE EXCEPTION '% on table %.%: cases are never deleted (close them instead)', lower(TG_OP),
        TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation';
END $$;
CREATE TRIGGER cases_never_deleted BEFORE DELETE ON core.cases
    FOR EACH ROW EXECUTE FUNCTION core.refuse_key_change();
CREATE TRIGGER cases_never_truncated BEFORE TRUNCATE ON core.cases
    FOR EACH STATEMENT EXECUTE FUNCTION core.refuse_key_change();
CREATE TRIGGER cases_keep_key BEFORE UPDATE OF id, site_id ON core.cases
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.site_id IS DISTINCT FROM NEW.site_id)
    EXECUTE FUNCTION core.refuse_key_change();
CREATE TRIGGER sites_keep_key BEFORE UPDATE OF id ON core.sites
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION core.refuse_key_change();
CREATE TRIGGER staff_keep_key BEFORE UPDATE OF id, site_id ON core.staff
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.site_id IS DISTINCT FROM NEW.site_id)
    EXECUTE FUNCTION core.refuse_key_change();
CREATE TRIGGER departments_keep_key BEFORE UPDATE OF id, site_id ON core.departments
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.site_id IS DISTINCT FROM NEW.site_id)
    EXECUTE FUNCTION core.refuse_key_change();

COMMENT ON TRIGGER cases_never_deleted ON core.cases IS 'Cases are never deleted: they are the record of first-contact responsibility, and the case tables refer to them without a foreign key (0023).';
COMMENT ON TRIGGER cases_refs_insert ON core.cases IS 'The site, first responder, owner and department of a statement''s cases exist (23503 otherwise): a foreign key''s check, once per statement (0023).';
