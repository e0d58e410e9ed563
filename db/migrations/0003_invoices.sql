-- 0003_invoices.sql - invoices and their gapless per-year numbering.
--
-- An order gets one invoice, the first time its invoice is rendered; the
-- number never changes afterwards. Numbers run INV-<year>-000001,
-- INV-<year>-000002, ... with no gap: they come from a counter row per
-- calendar year (UTC), bumped in the same transaction that inserts the
-- invoice, so a rolled-back issue gives its number back (a sequence would
-- leave a hole). The counter row lock is held only by that one short
-- transaction.

CREATE TABLE invoice_counters (
    year        integer PRIMARY KEY CHECK (year BETWEEN 2000 AND 9999),
    last_number bigint NOT NULL CHECK (last_number >= 1)
);

CREATE TABLE invoices (
    id        text PRIMARY KEY,
    order_id  text NOT NULL UNIQUE REFERENCES orders (id),
    number    text NOT NULL UNIQUE,
    year      integer NOT NULL CHECK (year BETWEEN 2000 AND 9999),
    seq       bigint NOT NULL CHECK (seq >= 1),
    issued_at timestamptz NOT NULL DEFAULT now(),
    issued_by text NOT NULL,
    UNIQUE (year, seq)
);

-- An issued invoice is a legal record: it is never changed or removed.
CREATE FUNCTION invoices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'invoices are append-only' USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER invoices_no_update BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_immutable();
