-- 0005_review_queue.sql - what the needs_review queue reads by.
--
-- GET /v1/payments?needs_review=true lists the payments a person must look
-- at, newest first. Flagged payments are few, so a partial index keeps the
-- queue a cheap read however many payments there are.
CREATE INDEX payments_needs_review ON payments (created_at DESC, id DESC) WHERE needs_review;
