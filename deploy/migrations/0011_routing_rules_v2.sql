-- 0011_routing_rules_v2: a routing rule matches on sets (types, channels,
-- urgencies), on any of several keywords, on a location prefix and on the
-- time of day, and may name assisting departments (a multi-department case
-- with a lead).  0003's single-valued columns could say none of that and
-- were never written; they are replaced.  Two active rules of a site may
-- not share a priority: the order must be clear.
DROP INDEX routing.rules_site_priority_idx;
ALTER TABLE routing.rules
    DROP COLUMN case_type,
    DROP COLUMN category,
    DROP COLUMN keyword,
    DROP COLUMN channel,
    DROP COLUMN urgency,
    ADD COLUMN case_types text[] NOT NULL DEFAULT '{}'
        CONSTRAINT rules_case_types_known CHECK (case_types <@ ARRAY['consultation', 'complaint',
            'help', 'suggestion', 'repair', 'business', 'report', 'emergency']),
    ADD COLUMN channels text[] NOT NULL DEFAULT '{}'
        CONSTRAINT rules_channels_known CHECK (channels <@ ARRAY['visit', 'phone', 'letter', 'web',
            'email', 'hotline', 'chat', 'social', 'meeting', 'callback', 'api', 'device']),
    ADD COLUMN urgencies text[] NOT NULL DEFAULT '{}'
        CONSTRAINT rules_urgencies_known CHECK (urgencies <@ ARRAY['normal', 'urgent', 'emergency']),
    ADD COLUMN keywords text[] NOT NULL DEFAULT '{}'
        CONSTRAINT rules_keywords_few CHECK (cardinality(keywords) <= 16
            AND array_position(keywords, NULL) IS NULL
            AND char_length(array_to_string(keywords, '')) <= 1600),
    ADD COLUMN location_prefix text CHECK (char_length(location_prefix) BETWEEN 1 AND 64),
    ADD COLUMN from_minute integer CHECK (from_minute BETWEEN 0 AND 1439),
    ADD COLUMN to_minute integer CHECK (to_minute BETWEEN 1 AND 1440),
    ADD COLUMN assisting_department_ids uuid[] NOT NULL DEFAULT '{}'
        CONSTRAINT rules_assisting_few CHECK (cardinality(assisting_department_ids) <= 8),
    ADD CONSTRAINT rules_hours_pair CHECK ((from_minute IS NULL) = (to_minute IS NULL)
        AND (from_minute IS NULL OR from_minute <> to_minute));
CREATE UNIQUE INDEX rules_site_priority_idx ON routing.rules (site_id, priority) WHERE active;

COMMENT ON TABLE routing.rules IS 'Routing rules of a site, tried by priority (lower first; unique among active rules): the first whose conditions all hold sends the case to target_department_id (the lead when assisting_department_ids is not empty). An empty set or NULL condition means any. Nothing matches: the customer-relations supervisor (客服主管). Checked by common/route.c before they are saved (PUT /v1/sites/{code}/routing/rules).';
COMMENT ON COLUMN routing.rules.keywords IS 'Any one occurring in the subject or description matches (ASCII letters without case; Chinese text as a plain substring).';
COMMENT ON COLUMN routing.rules.location_prefix IS 'A prefix of the customer''s address, room or unit, e.g. ''3-'' for building 3.';
COMMENT ON COLUMN routing.rules.from_minute IS 'Time of day in the site''s time zone, minutes since midnight: [from_minute, to_minute), wrapping past midnight when from_minute > to_minute.';
COMMENT ON COLUMN routing.rules.assisting_department_ids IS 'Assisting departments (协办) of a multi-department case; the target is the lead (主办).';
