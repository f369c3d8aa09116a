-- The demo site's webhook channel "demo-receiver": every notification of
-- SH01 goes, signed, to the local receiver `make run` starts
-- (deploy/demo/receiver.py).  Loaded by `deploy/demo.sh --receiver URL`
-- with psql variables :url and :secret (the channel's whsec_ secret, kept
-- in the run folder); safe to load again: the channel is made once (its
-- URL and secret follow the run folder's), subscriptions already there
-- stay, and the site's notification settings are set only if it has none.
BEGIN;
INSERT INTO notification.channels AS c (site_id, name, kind, url, secret, locale)
SELECT id, 'demo-receiver', 'webhook', :'url', :'secret', 'en' FROM core.sites WHERE code = 'SH01'
ON CONFLICT (site_id, name) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret,
    updated_at = now()
WHERE c.url IS DISTINCT FROM EXCLUDED.url OR c.secret IS DISTINCT FROM EXCLUDED.secret;

-- DOMAIN.md's defaults (what "subscribe_defaults": true gives a channel
-- made through the API, services/intake/handle_notify.c: who must hear of a
-- transfer, an appointment, an escalation, a breach, ...), and every
-- registration for the channel itself
INSERT INTO notification.subscriptions (site_id, event_type, channel_id, audience)
SELECT c.site_id, x.e, c.id, x.a FROM notification.channels c JOIN core.sites s ON s.id = c.site_id,
(VALUES ('case.registered', 'channel'),
        ('case.transferred', 'receiving_head'), ('case.forwarded', 'receiving_head'),
        ('case.assigned', 'receiving_head'), ('case.lead_designated', 'receiving_head'),
        ('case.accepted', 'handler'), ('case.transferred', 'qa'), ('case.forwarded', 'qa'),
        ('case.escalated', 'owner'), ('case.deadline_breached', 'owner'),
        ('emergency.alerted', 'ladder'), ('case.resolved', 'first_responder'),
        ('review.requested', 'reviewers'), ('case.leader_callback_requested', 'leader')) AS x(e, a)
WHERE s.code = 'SH01' AND c.name = 'demo-receiver'
ON CONFLICT ON CONSTRAINT subscriptions_unique DO NOTHING;

-- a demo answers at any hour: messages to staff are not held for the next
-- working period (PATCH .../notification/settings {"quiet_hours":true} to see them held)
INSERT INTO notification.site_settings (site_id, quiet_hours)
SELECT id, false FROM core.sites WHERE code = 'SH01'
ON CONFLICT (site_id) DO NOTHING;
COMMIT;
