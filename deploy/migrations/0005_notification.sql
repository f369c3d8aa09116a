-- 0005_notification: who hears about what, and the delivery queue (owned by
-- the notification service).

CREATE SCHEMA notification;
COMMENT ON SCHEMA notification IS 'Owned by notification: channels, templates, subscriptions, deliveries.';

CREATE TABLE notification.channels (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id          uuid NOT NULL REFERENCES core.sites(id),
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    kind             text NOT NULL CHECK (kind IN ('webhook', 'smtp', 'sms', 'chat')),
    target           text NOT NULL CHECK (char_length(target) BETWEEN 1 AND 2000),
    secret           bytea CHECK (octet_length(secret) BETWEEN 1 AND 1024),
    rate_per_minute  integer NOT NULL DEFAULT 60 CHECK (rate_per_minute > 0),
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, name),
    UNIQUE (site_id, id),
    CONSTRAINT channels_webhook_url CHECK (kind NOT IN ('webhook', 'chat') OR target ~ '^https?://')
);
COMMENT ON TABLE notification.channels IS 'Where notifications go. Targets are configured by administrators only, never taken from a request payload (no SSRF through the notifier); each channel has a rate limit.';
COMMENT ON COLUMN notification.channels.target IS 'webhook/chat: the URL; smtp: the relay (smtp[s]://host:port) ; sms: the gateway URL. Recipients come from the subscription (staff of a role/department).';
COMMENT ON COLUMN notification.channels.secret IS 'Signing secret (Standard Webhooks, whsec_ decoded) or gateway credential. Never returned by the API.';

CREATE TABLE notification.templates (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id       uuid NOT NULL REFERENCES core.sites(id),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    event_type    text NOT NULL CHECK (char_length(event_type) BETWEEN 1 AND 100),
    channel_kind  text NOT NULL CHECK (channel_kind IN ('webhook', 'smtp', 'sms', 'chat')),
    locale        text NOT NULL DEFAULT 'zh-CN' CHECK (char_length(locale) BETWEEN 2 AND 35),
    subject       text CHECK (char_length(subject) <= 1000),
    body          text NOT NULL CHECK (char_length(body) <= 100000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, name, channel_kind, locale),
    UNIQUE (site_id, id)
);
COMMENT ON TABLE notification.templates IS 'Message templates per event type, channel kind and locale. Customer data is masked in them unless the recipient''s role needs it.';

CREATE TABLE notification.subscriptions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id        uuid NOT NULL REFERENCES core.sites(id),
    event_type     text NOT NULL CHECK (char_length(event_type) BETWEEN 1 AND 100),
    channel_id     uuid NOT NULL,
    template_id    uuid,
    role           text CHECK (role IN ('staff', 'receptionist', 'department_head', 'handler',
                                        'supervisor', 'manager', 'qa', 'leader', 'first_responder', 'owner')),
    department_id  uuid,
    min_urgency    text NOT NULL DEFAULT 'normal' CHECK (min_urgency IN ('normal', 'urgent', 'emergency')),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (site_id, channel_id) REFERENCES notification.channels(site_id, id),
    FOREIGN KEY (site_id, template_id) REFERENCES notification.templates(site_id, id),
    FOREIGN KEY (site_id, department_id) REFERENCES core.departments(site_id, id)
);
CREATE INDEX subscriptions_lookup_idx ON notification.subscriptions (site_id, event_type) WHERE active;
COMMENT ON TABLE notification.subscriptions IS 'Who must hear about which event: staff of a role (NULL = the channel target itself, e.g. a webhook) in a department (NULL = the case''s department or any), for cases at or above min_urgency.';
COMMENT ON COLUMN notification.subscriptions.role IS 'A staff role, or first_responder / owner of the case concerned; NULL for channels that are themselves the recipient (webhooks, group chats).';

CREATE TABLE notification.deliveries (
    id               bigserial PRIMARY KEY,
    site_id          uuid NOT NULL REFERENCES core.sites(id),
    event_id         uuid NOT NULL,
    case_id          uuid,
    subscription_id  uuid NOT NULL REFERENCES notification.subscriptions(id),
    channel_id       uuid NOT NULL REFERENCES notification.channels(id),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'dead')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text CHECK (char_length(last_error) <= 10000),
    response_code    integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CONSTRAINT deliveries_once UNIQUE (event_id, subscription_id),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX deliveries_due_idx ON notification.deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_channel_idx ON notification.deliveries (channel_id, created_at);
CREATE INDEX deliveries_case_idx ON notification.deliveries (case_id) WHERE case_id IS NOT NULL;
COMMENT ON TABLE notification.deliveries IS 'The delivery queue: one row per (event, subscription), created in the same transaction as the event is consumed; workers claim due rows (FOR UPDATE SKIP LOCKED), retry with backoff, and mark them dead after the last attempt.';
COMMENT ON COLUMN notification.deliveries.status IS 'pending: waiting for next_attempt_at; sending: claimed; delivered; failed: will be retried at next_attempt_at; dead: gave up.';
COMMENT ON COLUMN notification.deliveries.response_code IS 'HTTP or SMTP status of the last attempt.';
