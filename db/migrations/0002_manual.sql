-- 0002_manual.sql - manual payments (bank transfer, cash on delivery, cheque).
--
-- A manual payment awaits the buyer's money in requires_action or
-- processing until an admin approves or rejects it, or the janitor
-- cancels it after its gateway's auto_expire_days. The janitor looks for
-- the oldest such payments of each manual gateway on every pass; this
-- index keeps that a short range scan however many settled payments
-- there are. (The reference code the buyer quotes is the payment's
-- provider_ref, unique per gateway by payments_provider_ref.)

CREATE INDEX payments_awaiting_funds ON payments (gateway, created_at)
    WHERE status IN ('requires_action', 'processing') AND pending_op IS NULL;
