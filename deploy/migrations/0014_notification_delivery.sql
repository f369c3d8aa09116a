-- 0014_notification_delivery: what the notification service (issue 7)
-- needs and 0005 did not model.  No service wrote 0005's tables, so they
-- are replaced rather than altered.
--
-- * A channel is one configured destination of a site: a generic webhook
--   (Standard Webhooks signatures), an SMTP relay, an SMS gateway, or a chat
--   robot (WeCom, DingTalk, Feishu/Lark, Slack-compatible).  Its address and
--   secret come only from administrators; nothing in an event names one.
-- * A subscription says which event, for whom (an audience resolved from
--   the case: the receiving department's head, the handler, QA, ...),
--   goes to which channel.
-- * A delivery is one message to one recipient over one channel for one
--   event: the key (event, recipient, channel) makes a replayed event or a
--   restart create nothing new, and a delivery recorded as delivered is
--   never sent again.  The message is rendered when the delivery is made,
--   so a retry sends the same bytes (and the same webhook-id).
-- * Every attempt is kept (notification.attempts).

DROP TABLE notification.deliveries, notification.subscriptions, notification.templates,
    notification.channels;

CREATE TABLE notification.channels (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id       uuid NOT NULL REFERENCES core.sites(id),
    name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    kind          text NOT NULL
                  CHECK (kind IN ('webhook', 'email', 'sms', 'wecom', 'dingtalk', 'feishu', 'slack')),
    url           text NOT NULL CHECK (url ~ '^(https?|smtps?)://[^[:space:]]+$' AND char_length(url) <= 2000),
    secret        text CHECK (char_length(secret) BETWEEN 1 AND 1024),
    settings      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    locale        text NOT NULL DEFAULT 'zh-CN' CHECK (locale IN ('zh-CN', 'en')),
    rate_per_s    integer NOT NULL DEFAULT 50 CHECK (rate_per_s BETWEEN 1 AND 100000),
    burst         integer NOT NULL DEFAULT 100 CHECK (burst BETWEEN 1 AND 100000),
    timeout_ms    integer NOT NULL DEFAULT 10000 CHECK (timeout_ms BETWEEN 100 AND 120000),
    max_attempts  integer NOT NULL DEFAULT 8 CHECK (max_attempts BETWEEN 1 AND 50),
    max_age       interval NOT NULL DEFAULT '24 hours'
                  CHECK (max_age BETWEEN interval '1 second' AND interval '30 days'),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, name),
    UNIQUE (site_id, id),
    CONSTRAINT channels_scheme CHECK ((kind = 'email') = (url ~ '^smtps?://'))
);
COMMENT ON TABLE notification.channels IS 'Where notifications go, configured by administrators only (never from a request payload: no SSRF through the notifier). Each has a token-bucket rate limit (rate_per_s, burst), a per-attempt timeout and a bound on attempts and age before a delivery is dead.';
COMMENT ON COLUMN notification.channels.url IS 'webhook, sms, chat robots: the http(s) URL; email: the relay, smtp://host:port (STARTTLS when settings.starttls) or smtps://host:port.';
COMMENT ON COLUMN notification.channels.secret IS 'webhook: the Standard Webhooks secret (whsec_<base64>); dingtalk and feishu: the robot''s signing secret; email: the relay password; sms: the value of the gateway''s auth header. Never returned by the API.';
COMMENT ON COLUMN notification.channels.settings IS 'email: from, username, starttls; sms: method, content_type, body (a template over the message: {{phone}}, {{text}}), auth_header.';

CREATE TABLE notification.site_settings (
    site_id           uuid PRIMARY KEY REFERENCES core.sites(id),
    quiet_hours       boolean NOT NULL DEFAULT true,
    sms_daily_cap     integer NOT NULL DEFAULT 500 CHECK (sms_daily_cap >= 0),
    customer_notices  boolean NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE notification.site_settings IS 'Per site: hold non-emergency messages to staff until the next working period (quiet_hours), the most SMS sent per local day, whether customers who consented get receipts. No row: the defaults.';

CREATE TABLE notification.templates (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id       uuid NOT NULL REFERENCES core.sites(id),
    event_type    text NOT NULL CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),
    channel_kind  text NOT NULL
                  CHECK (channel_kind IN ('any', 'webhook', 'email', 'sms', 'wecom', 'dingtalk', 'feishu', 'slack')),
    locale        text NOT NULL DEFAULT 'zh-CN' CHECK (locale IN ('zh-CN', 'en')),
    subject       text CHECK (char_length(subject) <= 1000),
    body          text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 20000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, event_type, channel_kind, locale)
);
COMMENT ON TABLE notification.templates IS 'A site''s own wording of one event for one channel kind (or any) and language, with {{variables}}; checked when saved. Without one the built-in wording is used.';

CREATE TABLE notification.subscriptions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id        uuid NOT NULL REFERENCES core.sites(id),
    event_type     text NOT NULL CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),
    channel_id     uuid NOT NULL,
    audience       text NOT NULL
                   CHECK (audience IN ('channel', 'receiving_head', 'handler', 'owner', 'first_responder',
                                       'qa', 'ladder', 'supervisor', 'manager', 'leader', 'reviewers',
                                       'customer')),
    department_id  uuid,
    min_urgency    text NOT NULL DEFAULT 'normal' CHECK (min_urgency IN ('normal', 'urgent', 'emergency')),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (site_id, channel_id) REFERENCES notification.channels(site_id, id) ON DELETE CASCADE,
    FOREIGN KEY (site_id, department_id) REFERENCES core.departments(site_id, id),
    CONSTRAINT subscriptions_unique UNIQUE NULLS NOT DISTINCT (site_id, event_type, channel_id, audience,
                                                               department_id)
);
CREATE INDEX subscriptions_lookup_idx ON notification.subscriptions (site_id, event_type) WHERE active;
COMMENT ON TABLE notification.subscriptions IS 'Who hears which event over which channel. audience: channel (the channel itself is the recipient: a webhook, a group robot), or people resolved from the case and the event (receiving_head, handler, owner, first_responder, qa, ladder, supervisor, manager, leader, reviewers, customer). department_id limits it to cases of that department; min_urgency to cases at least that urgent.';

CREATE TABLE notification.deliveries (
    id               bigserial PRIMARY KEY,
    site_id          uuid NOT NULL REFERENCES core.sites(id),
    partition        integer NOT NULL CHECK (partition >= 0),
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    case_id          uuid,
    channel_id       uuid NOT NULL REFERENCES notification.channels(id) ON DELETE CASCADE,
    recipient        text NOT NULL CHECK (char_length(recipient) <= 64),
    address          text CHECK (char_length(address) <= 254),
    message_id       text NOT NULL UNIQUE,
    subject          text,
    body             text NOT NULL,
    emergency        boolean NOT NULL DEFAULT false,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    held             boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    last_code        integer,
    last_error       text,
    CONSTRAINT deliveries_once UNIQUE (event_id, recipient, channel_id),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX deliveries_pending_idx ON notification.deliveries (partition, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX deliveries_case_idx ON notification.deliveries (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX deliveries_site_idx ON notification.deliveries (site_id, created_at);
COMMENT ON TABLE notification.deliveries IS 'One message to one recipient over one channel for one event, made in the transaction that consumes the event. recipient: a staff code, "customer", or "" for the channel itself. The replica that owns the partition sends it; status moves pending -> delivered or dead by a conditional UPDATE, so it is recorded once.';
COMMENT ON COLUMN notification.deliveries.message_id IS 'The webhook-id (and Message-ID) of every attempt of this delivery.';
COMMENT ON COLUMN notification.deliveries.held IS 'Held by quiet hours until next_attempt_at (the next working period).';

CREATE TABLE notification.attempts (
    delivery_id    bigint NOT NULL REFERENCES notification.deliveries(id) ON DELETE CASCADE,
    attempt        integer NOT NULL CHECK (attempt >= 1),
    started_at     timestamptz NOT NULL,
    latency_ms     integer NOT NULL CHECK (latency_ms >= 0),
    outcome        text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    response_code  integer,
    error          text CHECK (char_length(error) <= 2000),
    PRIMARY KEY (delivery_id, attempt)
);
COMMENT ON TABLE notification.attempts IS 'Every attempt of every delivery: when, how long, the HTTP status or SMTP reply code, the error, and what followed (delivered, a retry, or dead).';

CREATE TABLE notification.daily_counts (
    site_id  uuid NOT NULL REFERENCES core.sites(id),
    day      date NOT NULL,
    kind     text NOT NULL,
    sent     integer NOT NULL DEFAULT 0 CHECK (sent >= 0),
    PRIMARY KEY (site_id, day, kind)
);
COMMENT ON TABLE notification.daily_counts IS 'Messages sent per site, local day and channel kind: the daily cap of paid channels (SMS) is checked against it.';

CREATE TABLE notification.settings_stamp (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    stamp       bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO notification.settings_stamp DEFAULT VALUES;
COMMENT ON TABLE notification.settings_stamp IS 'One row, bumped by triggers whenever a channel, template, subscription or site setting changes: the notification service then reloads what it keeps in memory.';

CREATE FUNCTION notification.bump_settings_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE notification.settings_stamp SET stamp = stamp + 1, updated_at = now();
    RETURN NULL;
END $$;
CREATE TRIGGER channels_stamp AFTER INSERT OR UPDATE OR DELETE ON notification.channels
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
CREATE TRIGGER templates_stamp AFTER INSERT OR UPDATE OR DELETE ON notification.templates
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
CREATE TRIGGER subscriptions_stamp AFTER INSERT OR UPDATE OR DELETE ON notification.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
CREATE TRIGGER site_settings_stamp AFTER INSERT OR UPDATE OR DELETE ON notification.site_settings
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
-- who is who (audiences, names, addresses) and the calendar (quiet hours) are kept too
CREATE TRIGGER staff_notification_stamp AFTER INSERT OR DELETE OR UPDATE ON core.staff
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
CREATE TRIGGER departments_notification_stamp AFTER INSERT OR DELETE OR UPDATE ON core.departments
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
CREATE TRIGGER sites_notification_stamp AFTER UPDATE OF calendar_id, time_zone ON core.sites
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
CREATE TRIGGER calendars_notification_stamp AFTER INSERT OR UPDATE OR DELETE ON escalation.calendars
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
CREATE TRIGGER calendar_days_notification_stamp AFTER INSERT OR UPDATE OR DELETE ON escalation.calendar_days
    FOR EACH STATEMENT EXECUTE FUNCTION notification.bump_settings_stamp();
