-- 0007_saved_method.sql - a payment made with a saved method names it by payd's id.
--
-- payment_method keeps the provider token the payment was made with: the
-- janitor re-issues an unanswered operation with it. A saved method's
-- token is the provider's handle on a customer's card and is never shown
-- (the methods list leaves it out), so the payment's representation shows
-- saved_method_id, the pm_ id the caller paid with, in its place.
ALTER TABLE payments ADD COLUMN saved_method_id text;
