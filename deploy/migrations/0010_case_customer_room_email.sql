-- 0010_case_customer_room_email: the registration API accepts the
-- customer's room and e-mail (and puts them in case.registered), but the
-- case row had nowhere to keep them, so they were lost.  Nothing accepted
-- is lost: they are columns now.
ALTER TABLE core.cases
    ADD COLUMN customer_room text CHECK (char_length(customer_room) <= 50),
    ADD COLUMN customer_email text CHECK (char_length(customer_email) <= 254);

COMMENT ON COLUMN core.cases.customer_room IS 'The room (房号) within the unit, as the customer gave it.';
COMMENT ON COLUMN core.cases.customer_email IS 'The customer''s e-mail, if given; confidential like the phone.';
