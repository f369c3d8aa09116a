-- 0015_case_customer_consent: whether the customer agreed to hear from us.
--
-- Notification sends a customer a receipt with the case number, progress,
-- the result and a callback survey only where the site enables it
-- (notification.site_settings.customer_notices) and the customer
-- consented when the request was registered.
ALTER TABLE core.cases ADD COLUMN customer_consent boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN core.cases.customer_consent IS 'The customer agreed to receive a receipt, progress, the result and a callback survey by SMS or e-mail (customer.consent at registration).';

-- A site's own wording for customers (receipts, progress, results and the
-- survey), beside its wording for staff.
ALTER TABLE notification.templates
    ADD COLUMN audience text NOT NULL DEFAULT 'staff' CHECK (audience IN ('staff', 'customer'));
ALTER TABLE notification.templates
    DROP CONSTRAINT templates_site_id_event_type_channel_kind_locale_key,
    ADD CONSTRAINT templates_unique UNIQUE (site_id, event_type, channel_kind, locale, audience);
COMMENT ON COLUMN notification.templates.audience IS 'staff: what staff are told of the event; customer: what a customer who consented is told (case.registered, case.progress, case.resolved, case.resolved_on_spot).';
