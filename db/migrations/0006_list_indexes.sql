-- 0006_list_indexes.sql - what the remaining list pages read by.
--
-- An end user's GET /v1/payments (and GET /v1/refunds, which joins its
-- payments) filters by user_id, newest first. Without an index that walked
-- the whole payments table backwards to find one user's rows: 96 ms for a
-- user with two payments among 400 000 (0.08 ms with the index). The
-- merchant's unfiltered GET /v1/refunds sorted the whole refunds table for
-- every page: 113 ms at 200 000 refunds, 0.14 ms with the index.
CREATE INDEX payments_user_created ON payments (user_id, created_at DESC, id DESC) WHERE user_id IS NOT NULL;
CREATE INDEX refunds_created ON refunds (created_at DESC, id DESC);
