-- 0004_reports.sql - what admin reports and reconciliation read by.
--
-- The summary counts the payments created in a range and `payd reconcile`
-- walks one gateway's payments in a range; both scan payments by
-- created_at, which no index covered (the ledger has ledger_created).
-- created_at never changes, so updates of a payment stay HOT.
CREATE INDEX payments_created ON payments (created_at);
