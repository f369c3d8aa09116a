-- 0015_case_customer_consent: whether the customer agreed to hear from us.
--
-- Notification sends a customer a receipt with the case number, progress,
-- the result and a callback survey only where the site enables it
-- (notification.site_settings.customer_notices) and the customer
-- consented when the request was registered.
ALTER TABLE core.cases ADD COLUMN customer_consent boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN core.cases.customer_consent IS 'The customer agreed to receive a receipt, progress, the result and a callback survey by SMS or e-mail (customer.consent at registration).';
