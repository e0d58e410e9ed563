-- 0001_init.sql - payd's whole data model.
--
-- Money is bigint minor units plus an ISO 4217 code; never floating point.
-- Invariants that must hold under concurrency (no over-capture, no
-- over-refund, one live payment per order, forward-only state) are enforced
-- here, by CHECK constraints, partial unique indexes and triggers, so no
-- code path in payd can break them even by mistake.

CREATE TABLE orders (
    id                text PRIMARY KEY,
    number            text NOT NULL UNIQUE,
    user_id           text,
    created_by        text NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN
                          ('pending', 'payment_pending', 'paid', 'cancelled',
                           'partially_refunded', 'refunded')),
    fulfilment_status text NOT NULL DEFAULT 'unfulfilled' CHECK (fulfilment_status IN
                          ('unfulfilled', 'processing', 'shipped', 'delivered')),
    currency          char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    subtotal          bigint NOT NULL CHECK (subtotal >= 0),
    tax               bigint NOT NULL DEFAULT 0 CHECK (tax >= 0),
    shipping          bigint NOT NULL DEFAULT 0 CHECK (shipping >= 0),
    total             bigint NOT NULL CHECK (total > 0),
    amount_paid       bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    amount_refunded   bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    items             jsonb NOT NULL,
    customer_email    text,
    shipping_address  jsonb,
    billing_address   jsonb,
    shipping_info     jsonb,
    metadata          jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (total = subtotal + tax + shipping),
    CHECK (amount_refunded <= amount_paid),
    CHECK (amount_paid <= total)
);
CREATE INDEX orders_user_created ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_created ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_created ON orders (status, created_at DESC, id DESC);
CREATE SEQUENCE order_number_seq;

-- A customer is payd's; each gateway knows it by its own reference.
CREATE TABLE customers (
    id         text PRIMARY KEY,
    user_id    text,
    email      text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customers_user ON customers (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE customer_gateways (
    customer_id  text NOT NULL REFERENCES customers (id),
    gateway      text NOT NULL,
    provider_ref text NOT NULL,
    PRIMARY KEY (customer_id, gateway),
    UNIQUE (gateway, provider_ref)
);

-- Saved methods: the provider's token plus display data, never card data.
CREATE TABLE payment_methods (
    id           text PRIMARY KEY,
    customer_id  text NOT NULL REFERENCES customers (id),
    gateway      text NOT NULL,
    provider_ref text NOT NULL,
    brand        text,
    last4        char(4) CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month    smallint CHECK (exp_month BETWEEN 1 AND 12),
    exp_year     smallint,
    is_default   boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway, provider_ref)
);
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (customer_id) WHERE is_default;
CREATE INDEX payment_methods_customer ON payment_methods (customer_id, created_at);

CREATE TABLE payments (
    id                    text PRIMARY KEY,
    order_id              text NOT NULL REFERENCES orders (id),
    user_id               text,
    gateway               text NOT NULL,
    provider_ref          text,
    status                text NOT NULL CHECK (status IN
                              ('requires_payment_method', 'requires_confirmation',
                               'requires_action', 'processing', 'requires_capture',
                               'succeeded', 'failed', 'canceled', 'partially_refunded',
                               'refunded', 'disputed')),
    currency              char(3) NOT NULL,
    amount                bigint NOT NULL CHECK (amount > 0),
    amount_capturable     bigint NOT NULL DEFAULT 0 CHECK (amount_capturable >= 0),
    amount_captured       bigint NOT NULL DEFAULT 0 CHECK (amount_captured >= 0),
    amount_refunded       bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    amount_refund_pending bigint NOT NULL DEFAULT 0 CHECK (amount_refund_pending >= 0),
    amount_disputed       bigint NOT NULL DEFAULT 0 CHECK (amount_disputed >= 0),
    capture_method        text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
    payment_method        text,
    customer_id           text REFERENCES customers (id),
    customer_ref          text,
    return_url            text,
    client_secret         text,
    next_action           jsonb,
    failure_code          text,
    failure_message       text,
    outcome_unknown       boolean NOT NULL DEFAULT false,
    pending_op            text,
    pending_amount        bigint,
    pending_confirm       boolean NOT NULL DEFAULT false,
    description           text,
    statement_descriptor_suffix text,
    op_attempt            integer NOT NULL DEFAULT 1,
    janitor_attempts      integer NOT NULL DEFAULT 0,
    janitor_next_at       timestamptz,
    needs_review          boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (amount_captured <= amount),
    CHECK (amount_capturable + amount_captured <= amount),
    CHECK (amount_refunded + amount_refund_pending <= amount_captured)
);
CREATE UNIQUE INDEX payments_provider_ref ON payments (gateway, provider_ref)
    WHERE provider_ref IS NOT NULL;
-- An order is charged at most once: a second payment needs the first to
-- have failed or been canceled.
CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
    WHERE status NOT IN ('failed', 'canceled');
CREATE INDEX payments_order ON payments (order_id, created_at);
CREATE INDEX payments_janitor ON payments (janitor_next_at) WHERE janitor_next_at IS NOT NULL;

CREATE TABLE refunds (
    id              text PRIMARY KEY,
    payment_id      text NOT NULL REFERENCES payments (id),
    order_id        text NOT NULL REFERENCES orders (id),
    gateway         text NOT NULL,
    provider_ref    text,
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        char(3) NOT NULL,
    reason          text CHECK (reason IN ('duplicate', 'fraudulent', 'requested_by_customer')),
    failure_code    text,
    failure_message text,
    outcome_unknown boolean NOT NULL DEFAULT false,
    janitor_attempts integer NOT NULL DEFAULT 0,
    janitor_next_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX refunds_provider_ref ON refunds (gateway, provider_ref)
    WHERE provider_ref IS NOT NULL;
CREATE INDEX refunds_payment ON refunds (payment_id, created_at);
CREATE INDEX refunds_order ON refunds (order_id, created_at);
CREATE INDEX refunds_janitor ON refunds (janitor_next_at) WHERE janitor_next_at IS NOT NULL;

-- Append-only money movements. charge = captured at once (automatic
-- capture), capture = captured from an authorization, refund, chargeback,
-- fee. For every payment: sum(charge + capture) = amount_captured and
-- sum(refund) = amount_refunded.
CREATE TABLE ledger (
    id          bigserial PRIMARY KEY,
    entry_type  text NOT NULL CHECK (entry_type IN ('charge', 'capture', 'refund', 'chargeback', 'fee')),
    payment_id  text NOT NULL REFERENCES payments (id),
    refund_id   text REFERENCES refunds (id),
    order_id    text NOT NULL REFERENCES orders (id),
    gateway     text NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    currency    char(3) NOT NULL,
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_payment ON ledger (payment_id);
CREATE INDEX ledger_created ON ledger (created_at DESC, id DESC);

CREATE TABLE webhook_events (
    id                bigserial PRIMARY KEY,
    gateway           text NOT NULL,
    provider_event_id text NOT NULL,
    event_type        text NOT NULL,
    provider_type     text,
    payment_id        text,
    provider_ref      text,
    refund_id         text,
    refund_ref        text,
    amount            bigint,
    currency          char(3),
    failure_code      text,
    failure_message   text,
    occurred_at       timestamptz,
    body              text NOT NULL,
    status            text NOT NULL CHECK (status IN ('applied', 'ignored', 'stale', 'unmatched')),
    note              text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway, provider_event_id)
);
CREATE INDEX webhook_events_unmatched ON webhook_events (gateway, provider_ref) WHERE status = 'unmatched';
CREATE INDEX webhook_events_unmatched_payment ON webhook_events (payment_id) WHERE status = 'unmatched';

CREATE TABLE events (
    seq         bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    type        text NOT NULL,
    object_type text NOT NULL,
    object_id   text NOT NULL,
    order_id    text,
    user_id     text,
    data        json NOT NULL,
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_type ON events (type, seq);
CREATE INDEX events_object ON events (object_id, seq);

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    event_id        text NOT NULL REFERENCES events (id),
    notifier        text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (event_id, notifier)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_state ON outbox (state, id);

CREATE TABLE idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint   bytea NOT NULL,
    state         text NOT NULL CHECK (state IN ('in_flight', 'done')),
    status        integer,
    response_body text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    hash        bytea NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'merchant')),
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- The audit log: append-only and hash-chained per entity. The chain head of
-- each entity lives in audit_heads; inserting an audit row locks that one
-- head row, so writers on different entities never wait on each other.
CREATE TABLE audit_heads (
    entity text PRIMARY KEY,
    seq    bigint NOT NULL,
    prev   bytea NOT NULL,
    head   bytea NOT NULL
);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    entity     text NOT NULL,
    seq        bigint NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    request_id text,
    before     json,   -- json, not jsonb: kept byte for byte as hashed
    after      json,
    created_at timestamptz NOT NULL DEFAULT now(),
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL,
    txid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    UNIQUE (entity, seq)
);
CREATE INDEX audit_log_txid ON audit_log (txid);

-- The canonical text of an audit row, hashed into the chain. payd's
-- audit-verify rebuilds the same text from the stored columns.
CREATE FUNCTION payd_audit_canonical(entity text, seq bigint, actor text, action text,
                                     request_id text, before json, after json,
                                     created_at timestamptz) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_to(concat_ws('|', entity, seq::text, actor, action, coalesce(request_id, ''),
                                coalesce(before::text, 'null'), coalesce(after::text, 'null'),
                                (extract(epoch FROM created_at) * 1000000)::bigint::text), 'UTF8')
$$;

-- One upsert on the entity's head row both serializes writers of that
-- entity and advances its chain.
CREATE FUNCTION payd_audit_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zero CONSTANT bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
BEGIN
    NEW.created_at := date_trunc('microseconds', clock_timestamp());
    INSERT INTO audit_heads AS h (entity, seq, prev, head)
        VALUES (NEW.entity, 1, zero,
                sha256(zero || payd_audit_canonical(NEW.entity, 1, NEW.actor, NEW.action,
                       NEW.request_id, NEW.before, NEW.after, NEW.created_at)))
        ON CONFLICT (entity) DO UPDATE SET prev = h.head, seq = h.seq + 1,
            head = sha256(h.head || payd_audit_canonical(NEW.entity, h.seq + 1, NEW.actor,
                          NEW.action, NEW.request_id, NEW.before, NEW.after, NEW.created_at))
        RETURNING h.seq, h.prev, h.head INTO NEW.seq, NEW.prev_hash, NEW.hash;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION payd_audit_chain();

CREATE FUNCTION payd_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'P0001';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION payd_forbid_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION payd_forbid_change();
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION payd_forbid_change();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION payd_forbid_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, ledger FROM PUBLIC;

-- The global level: every few seconds payd seals the audit rows of all
-- transactions that have finished since the last checkpoint into a chain
-- of checkpoints. A transaction id below the snapshot's xmin can no longer
-- add rows, so each checkpoint covers a closed set: rows with
-- prev.horizon <= txid < horizon, hashed in id order. Writers never wait on
-- this; only two sealers wait on each other (an advisory lock).
CREATE TABLE audit_checkpoints (
    id         bigserial PRIMARY KEY,
    horizon    xid8 NOT NULL,
    rows       bigint NOT NULL,
    digest     bytea NOT NULL,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION payd_forbid_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION payd_forbid_change();

CREATE FUNCTION payd_audit_seal() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last_horizon xid8;
    last_hash bytea;
    hi xid8;
    n bigint;
    d bytea;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7061796400000002) THEN
        RETURN 0;
    END IF;
    SELECT horizon, hash INTO last_horizon, last_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1;
    last_horizon := coalesce(last_horizon, '0'::xid8);
    last_hash := coalesce(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    hi := pg_snapshot_xmin(pg_current_snapshot());
    IF hi <= last_horizon THEN
        RETURN 0;
    END IF;
    SELECT count(*), sha256(coalesce(string_agg(hash, ''::bytea ORDER BY id), ''::bytea))
        INTO n, d FROM audit_log WHERE txid >= last_horizon AND txid < hi;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO audit_checkpoints (horizon, rows, digest, prev_hash, hash)
        VALUES (hi, n, d, last_hash,
                sha256(last_hash || d || convert_to(hi::text || '|' || n::text, 'UTF8')));
    RETURN n;
END $$;

-- Forward-only state machines, enforced for every writer.
CREATE FUNCTION payd_payment_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF (OLD.status, NEW.status) IN (
        ('requires_payment_method', 'requires_confirmation'),
        ('requires_payment_method', 'requires_action'),
        ('requires_payment_method', 'processing'),
        ('requires_payment_method', 'requires_capture'),
        ('requires_payment_method', 'succeeded'),
        ('requires_payment_method', 'failed'),
        ('requires_payment_method', 'canceled'),
        ('requires_confirmation', 'requires_action'),
        ('requires_confirmation', 'processing'),
        ('requires_confirmation', 'requires_capture'),
        ('requires_confirmation', 'succeeded'),
        ('requires_confirmation', 'failed'),
        ('requires_confirmation', 'canceled'),
        ('requires_action', 'processing'),
        ('requires_action', 'requires_capture'),
        ('requires_action', 'succeeded'),
        ('requires_action', 'failed'),
        ('requires_action', 'canceled'),
        ('processing', 'requires_action'),
        ('processing', 'requires_capture'),
        ('processing', 'succeeded'),
        ('processing', 'failed'),
        ('processing', 'canceled'),
        ('requires_capture', 'processing'),
        ('requires_capture', 'succeeded'),
        ('requires_capture', 'canceled'),
        ('requires_capture', 'failed'),
        ('succeeded', 'partially_refunded'),
        ('succeeded', 'refunded'),
        ('succeeded', 'disputed'),
        ('partially_refunded', 'refunded'),
        ('partially_refunded', 'disputed'),
        ('refunded', 'disputed'),
        -- the provider took money after payd had given up (payment_state.c)
        ('failed', 'succeeded'),
        ('failed', 'requires_capture'),
        ('canceled', 'succeeded'),
        ('canceled', 'requires_capture')) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'payment % cannot move from % to %', OLD.id, OLD.status, NEW.status
        USING ERRCODE = 'P0001';
END $$;

CREATE TRIGGER payments_forward_only BEFORE UPDATE OF status ON payments
    FOR EACH ROW EXECUTE FUNCTION payd_payment_forward_only();

CREATE FUNCTION payd_order_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> OLD.status AND (OLD.status, NEW.status) NOT IN (
        ('pending', 'payment_pending'),
        ('pending', 'paid'),
        ('pending', 'cancelled'),
        -- a failed or canceled payment frees the order for another attempt
        ('payment_pending', 'pending'),
        ('payment_pending', 'paid'),
        ('paid', 'partially_refunded'),
        ('paid', 'refunded'),
        ('partially_refunded', 'refunded')) THEN
        RAISE EXCEPTION 'order % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'P0001';
    END IF;
    IF NEW.fulfilment_status <> OLD.fulfilment_status AND
       (OLD.fulfilment_status, NEW.fulfilment_status) NOT IN (
        ('unfulfilled', 'processing'), ('unfulfilled', 'shipped'), ('unfulfilled', 'delivered'),
        ('processing', 'shipped'), ('processing', 'delivered'),
        ('shipped', 'delivered')) THEN
        RAISE EXCEPTION 'order % fulfilment cannot move from % to %', OLD.id,
            OLD.fulfilment_status, NEW.fulfilment_status USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER orders_forward_only BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION payd_order_forward_only();
