-- The issuance pipeline (issuer/pipeline): partners and their keys, raw
-- signed requests, evidence events, green actions, ledger issuances (the
-- outbox), reversals and partner callbacks.
--
-- Raw evidence is kept exactly as signed (body bytes + signature header), so
-- an auditor can re-verify a partner's v1a signature years later.

CREATE TABLE partners (
    id               text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
    kind             text        NOT NULL CHECK (kind IN ('bank', 'transit_operator', 'retailer')),
    name             text        NOT NULL,
    uscc             text        NOT NULL,
    sandbox          boolean     NOT NULL DEFAULT false,
    status           text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    callback_url     text        NOT NULL DEFAULT '',
    rate_per_second  int         NOT NULL DEFAULT 200 CHECK (rate_per_second > 0),
    rate_burst       int         NOT NULL DEFAULT 400 CHECK (rate_burst > 0),
    -- Transit operators: the published average trip distance per mode, used
    -- when a trip record carries no distance, and where it is published.
    avg_bus_meters   bigint      NOT NULL DEFAULT 0 CHECK (avg_bus_meters >= 0),
    avg_metro_meters bigint      NOT NULL DEFAULT 0 CHECK (avg_metro_meters >= 0),
    avg_source       text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- partner_keys: v1 secrets are sealed under a per-secret data key that is
-- wrapped by the key manager's key-encryption key (verification needs the
-- plaintext, so they cannot be hashed); v1a keeps only the public key. Two
-- active keys per partner during rotation.
CREATE TABLE partner_keys (
    partner_id    text        NOT NULL REFERENCES partners (id),
    key_id        text        NOT NULL,
    scheme        text        NOT NULL CHECK (scheme IN ('v1', 'v1a')),
    public_key    bytea,
    wrapped_dek   bytea,
    sealed_secret bytea,
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    retired_at    timestamptz,
    PRIMARY KEY (partner_id, key_id),
    CHECK ((scheme = 'v1a' AND public_key IS NOT NULL AND sealed_secret IS NULL)
        OR (scheme = 'v1' AND sealed_secret IS NOT NULL AND wrapped_dek IS NOT NULL AND public_key IS NULL))
);

-- partner_requests: every accepted signed request, raw. A replayed
-- webhook-id returns the stored response and changes nothing.
CREATE TABLE partner_requests (
    id              uuid        PRIMARY KEY,
    partner_id      text        NOT NULL REFERENCES partners (id),
    webhook_id      text        NOT NULL,
    route           text        NOT NULL,
    body            bytea       COMPRESSION lz4 NOT NULL,
    body_sha256     bytea       NOT NULL,
    signature       text        NOT NULL,  -- the webhook-signature header as received
    key_id          text        NOT NULL,  -- which of the partner's keys verified it
    signed_at       timestamptz NOT NULL,  -- webhook-timestamp
    received_at     timestamptz NOT NULL DEFAULT now(),
    response_status int         NOT NULL,
    response        bytea       COMPRESSION lz4 NOT NULL,
    UNIQUE (partner_id, webhook_id)
);

-- card_links: a bank links a card token to a pseudonymous account only with
-- the consumer's recorded consent; withdrawing it stops intake for the card.
CREATE TABLE card_links (
    partner_id      text        NOT NULL REFERENCES partners (id),
    card_token      text        NOT NULL,
    account         text        NOT NULL,
    consent_version text        NOT NULL,
    consented_at    timestamptz NOT NULL,
    consent_channel text        NOT NULL,
    withdrawn_at    timestamptz,
    PRIMARY KEY (partner_id, card_token)
);
CREATE INDEX card_links_account ON card_links (account);

-- ledger_accounts: accounts known to be open on the ledger, so the batcher
-- opens each new one once before its first issuance.
CREATE TABLE ledger_accounts (
    account   text        PRIMARY KEY,
    opened_at timestamptz NOT NULL DEFAULT now()
);

-- label_registry: the China Energy Label registry entries we match line items
-- against, keyed by normalised brand and model.
CREATE TABLE label_registry (
    brand_key         text        NOT NULL,
    model_key         text        NOT NULL,
    brand             text        NOT NULL,
    model             text        NOT NULL,
    category          text        NOT NULL,
    grade             int         NOT NULL CHECK (grade BETWEEN 1 AND 5),
    label_value_milli bigint      NOT NULL CHECK (label_value_milli > 0),
    capacity_w        bigint      NOT NULL DEFAULT 0,
    standard          text        NOT NULL,
    registration_no   text        NOT NULL,
    imported_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_key, model_key)
);
CREATE INDEX label_registry_model ON label_registry (model_key);

-- evidence_events: one row per reported event (a card transaction in one
-- status, a trip). (partner, kind, partner_tx_id, event_status) is the
-- partner's own idempotency key; item_sha256 recognises a resend of the same
-- event under a new webhook id or in a settlement file, and refuses the same
-- id with a different body.
CREATE TABLE evidence_events (
    id            uuid        PRIMARY KEY,
    partner_id    text        NOT NULL REFERENCES partners (id),
    kind          text        NOT NULL CHECK (kind IN ('card', 'trip')),
    partner_tx_id text        NOT NULL,
    event_status  text        NOT NULL,  -- card status; 'recorded' for trips
    item_sha256   bytea       NOT NULL,  -- SHA-256 of the event's canonical form
    request_id    uuid        REFERENCES partner_requests (id),
    item_index    int         NOT NULL,  -- position in the request or file line
    source        text        NOT NULL CHECK (source IN ('api', 'file')),
    occurred_at   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    outcome       text        NOT NULL,  -- accepted | rejected | ignored
    reason        text        NOT NULL DEFAULT '',
    UNIQUE (partner_id, kind, partner_tx_id, event_status)
);

-- issuances: the outbox. One row per ledger IssueBatch item (the row id is
-- the item id, persisted before submission and reused on every retry, so a
-- retry after a crash reports already_issued instead of issuing twice).
CREATE TABLE issuances (
    id                  uuid        PRIMARY KEY,
    kind                text        NOT NULL CHECK (kind IN ('appliance', 'transit')),
    account             text        NOT NULL,
    category            text        NOT NULL,
    claim               text        NOT NULL UNIQUE,
    sub_claims          text[]      NOT NULL DEFAULT '{}',
    local_day           text        NOT NULL DEFAULT '',  -- transit grants: the local day they aggregate
    occurred_at         timestamptz NOT NULL,  -- when the action happened: caps count in its window
    grams               bigint      NOT NULL CHECK (grams >= 0),
    points              bigint      NOT NULL CHECK (points > 0),
    record              jsonb       NOT NULL,  -- canonical quantification record (pseudonymous)
    record_hash         text        NOT NULL,
    rule_id             text        NOT NULL,
    rule_version        text        NOT NULL,
    methodology_id      text        NOT NULL,
    methodology_version text        NOT NULL,
    profile_id          text        NOT NULL DEFAULT '',  -- the profile in force when submitted
    profile_version     text        NOT NULL DEFAULT '',
    not_before          timestamptz NOT NULL,
    status              text        NOT NULL CHECK (status IN ('queued', 'issued', 'rejected', 'cancelled', 'reversed')),
    reason              text        NOT NULL DEFAULT '',
    attempts            int         NOT NULL DEFAULT 0,
    tx_ids              text[]      NOT NULL DEFAULT '{}',  -- every ledger transaction tried
    expires_at          timestamptz,
    lot_key             text        NOT NULL DEFAULT '',
    tx_id               text        NOT NULL DEFAULT '',
    block               bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX issuances_due ON issuances (not_before) WHERE status = 'queued';
CREATE INDEX issuances_account_category ON issuances (account, category, occurred_at);

-- actions: green actions found in evidence (an appliance line, a trip). An
-- appliance action is issued as its own issuance; trips of one account and
-- local day are grouped into one transit grant, their claims as the grant's
-- sub-claims.
CREATE TABLE actions (
    id            uuid        PRIMARY KEY,
    event_id      uuid        NOT NULL REFERENCES evidence_events (id),
    partner_id    text        NOT NULL REFERENCES partners (id),
    kind          text        NOT NULL CHECK (kind IN ('appliance', 'transit')),
    partner_tx_id text        NOT NULL,
    line          int         NOT NULL DEFAULT 0,
    account       text        NOT NULL,
    claim         text        NOT NULL UNIQUE,
    local_day     text        NOT NULL DEFAULT '',
    occurred_at   timestamptz NOT NULL,
    grams         bigint      NOT NULL CHECK (grams >= 0),
    record        jsonb       NOT NULL,
    record_hash   text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('held', 'queued', 'grouped', 'issued', 'rejected', 'cancelled', 'reversal_queued', 'reversed')),
    reason        text        NOT NULL DEFAULT '',
    not_before    timestamptz NOT NULL,
    issuance_id   uuid        REFERENCES issuances (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX actions_partner_tx ON actions (partner_id, partner_tx_id);
-- Due trips per (account, local day): the batcher groups one day at a time.
CREATE INDEX actions_due_trips ON actions (account, local_day, not_before) WHERE status = 'queued' AND kind = 'transit';
CREATE INDEX actions_issuance ON actions (issuance_id);

-- reversals: refunds and chargebacks of issued actions, claimed back on the
-- ledger by the issuance's claim.
CREATE TABLE reversals (
    id          uuid        PRIMARY KEY,
    issuance_id uuid        NOT NULL UNIQUE REFERENCES issuances (id),
    claim       text        NOT NULL,
    reason      text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('queued', 'done', 'failed')),
    attempts    int         NOT NULL DEFAULT 0,
    tx_ids      text[]      NOT NULL DEFAULT '{}',
    result      jsonb,
    error       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
CREATE INDEX reversals_queued ON reversals (created_at) WHERE status = 'queued';

-- callbacks: signed notifications to partners (issued, rejected, reversed),
-- written in the same transaction as the status change they report.
CREATE TABLE callbacks (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id      text        NOT NULL REFERENCES partners (id),
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_status     int         NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE delivered_at IS NULL;

---- create above / drop below ----

DROP TABLE callbacks;
DROP TABLE reversals;
DROP TABLE actions;
DROP TABLE issuances;
DROP TABLE evidence_events;
DROP TABLE label_registry;
DROP TABLE ledger_accounts;
DROP TABLE card_links;
DROP TABLE partner_requests;
DROP TABLE partner_keys;
DROP TABLE partners;
