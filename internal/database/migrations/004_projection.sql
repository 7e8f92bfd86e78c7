-- The read projection (issuer/projection): what the API serves about
-- accounts, lots, history, item results and receipts without asking the
-- ledger. Every row is derived from the change lists ("gp.changes" events) of
-- valid committed ledger transactions, applied in ledger order. A group of
-- transactions and the checkpoint that follows them are written in ONE
-- transaction, under a row lock on the checkpoint, so each ledger transaction
-- is applied exactly once whatever crashes or how many instances run.
-- Everything here can be dropped and rebuilt from block 0
-- (`greenpoints projection rebuild`).
--
-- Ledger keys (lot keys) use the "C" collation so that ORDER BY lot_key is
-- the contract's key order (expiry, then lot id, within an account).

-- proj_checkpoint: the position of each projection: the (block, idx) of the
-- last ledger transaction applied; (0, 0) is before the first.
CREATE TABLE proj_checkpoint (
    name       text        PRIMARY KEY,
    block      bigint      NOT NULL CHECK (block >= 0),
    idx        int         NOT NULL CHECK (idx >= 0),
    tx_id      text        NOT NULL DEFAULT '',  -- the transaction at (block, idx); '' at (0, 0)
    applied    bigint      NOT NULL DEFAULT 0,   -- transactions applied since the last rebuild
    rebuilt_at timestamptz,                      -- when a rebuild last reset it
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO proj_checkpoint (name, block, idx) VALUES ('points', 0, 0);

-- proj_txs: every applied ledger transaction. WaitFor looks a transaction id
-- up here, so "is it visible yet" works across processes.
CREATE TABLE proj_txs (
    tx_id    text        PRIMARY KEY,
    block    bigint      NOT NULL,
    idx      int         NOT NULL,
    function text        NOT NULL,
    caller   text        NOT NULL,
    ts       timestamptz NOT NULL,  -- the transaction time
    changes  int         NOT NULL,  -- how many changes its event listed
    UNIQUE (block, idx)
);

-- proj_accounts: accounts (account_opened), their debt (debt_changed: the
-- debt after the change) and the family they belong to (family_changed).
CREATE TABLE proj_accounts (
    account_id text        PRIMARY KEY,
    issuer     text        NOT NULL,
    kind       text        NOT NULL,
    opened_at  timestamptz NOT NULL,
    opened_tx  text        NOT NULL,
    debt       bigint      NOT NULL DEFAULT 0 CHECK (debt >= 0),
    family_id  text        NOT NULL DEFAULT ''  -- '' when in no family (as head or accepted member)
);

CREATE INDEX proj_accounts_issuer ON proj_accounts (issuer);

-- proj_families: each family as after its last change.
CREATE TABLE proj_families (
    family_id  text        PRIMARY KEY,
    issuer     text        NOT NULL,
    head       text        NOT NULL,
    members    text[]      NOT NULL,  -- accepted members other than the head, sorted
    invited    text[]      NOT NULL,  -- pending invitations, sorted
    status     text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- proj_lots: every lot (lot_created), kept current by lot_debited. The
-- identity amount = remaining + donated + transferred_out + reversed + expired
-- holds as on the ledger. A lot whose expires_at <= now is expired for
-- balance purposes from that instant, before the sweep records it (expired
-- counts only what the sweep recorded).
CREATE TABLE proj_lots (
    lot_key             text COLLATE "C" PRIMARY KEY,
    lot_id              text        NOT NULL,
    account             text        NOT NULL,
    issuer              text        NOT NULL,
    cause               text        NOT NULL CHECK (cause IN ('issue', 'transfer_in')),
    claim               text        NOT NULL,
    item_id             text        NOT NULL,
    category            text        NOT NULL,
    amount              bigint      NOT NULL CHECK (amount >= 0),  -- points issued into the lot
    remaining           bigint      NOT NULL CHECK (remaining >= 0),
    grams               bigint      NOT NULL CHECK (grams >= 0),
    grams_remaining     bigint      NOT NULL CHECK (grams_remaining >= 0),
    donated             bigint      NOT NULL DEFAULT 0,
    transferred_out     bigint      NOT NULL DEFAULT 0,
    reversed            bigint      NOT NULL DEFAULT 0,  -- clawed back, or settled a debt at issuance
    expired             bigint      NOT NULL DEFAULT 0,  -- recorded by the sweep
    issued_at           timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    rule_id             text        NOT NULL,
    rule_version        text        NOT NULL,
    methodology_id      text        NOT NULL,
    methodology_version text        NOT NULL,
    profile_id          text        NOT NULL,
    profile_version     text        NOT NULL,
    quantification_hash text        NOT NULL,
    source_lot          text COLLATE "C" NOT NULL DEFAULT '',  -- a transfer lot's source; '' for an issued lot
    tx_id               text        NOT NULL,
    block               bigint      NOT NULL,
    idx                 int         NOT NULL,
    CHECK (amount = remaining + donated + transferred_out + reversed + expired)
);

-- An account's lots holding points, by expiry: balances, lots, spending views.
CREATE INDEX proj_lots_live ON proj_lots (account, expires_at, lot_key) WHERE remaining > 0;
-- An account's lots in key order (all of them, also empty ones).
CREATE INDEX proj_lots_account ON proj_lots (account, lot_key);
-- An issuer's points by expiry: reminders before expiry, sweeps.
CREATE INDEX proj_lots_issuer_expiry ON proj_lots (issuer, expires_at) WHERE remaining > 0;
-- Provenance: the lots transfers made from a lot (the ledger's children).
CREATE INDEX proj_lots_source ON proj_lots (source_lot) WHERE source_lot <> '';

-- proj_claims: every claim (claim_recorded) and its reversal (claim_reversed).
-- A sub-claim (a trip of a daily grant) names its grant's claim in parent and
-- has no points of its own.
CREATE TABLE proj_claims (
    claim            text        PRIMARY KEY,
    issuer           text        NOT NULL,
    item_id          text        NOT NULL,
    account          text        NOT NULL,
    lot_key          text COLLATE "C" NOT NULL,
    lot_id           text        NOT NULL,
    parent           text        NOT NULL DEFAULT '',
    points           bigint      NOT NULL,
    grams            bigint      NOT NULL,
    debt_settled     bigint      NOT NULL,
    issued_at        timestamptz NOT NULL,
    tx_id            text        NOT NULL,
    reversed         boolean     NOT NULL DEFAULT false,
    reversal_item_id text        NOT NULL DEFAULT '',
    reversal_reason  text        NOT NULL DEFAULT '',
    reversed_at      timestamptz,
    reversal_tx_id   text        NOT NULL DEFAULT '',
    clawed           bigint      NOT NULL DEFAULT 0,
    expired          bigint      NOT NULL DEFAULT 0,
    debt             bigint      NOT NULL DEFAULT 0
);

CREATE INDEX proj_claims_item ON proj_claims (issuer, item_id);
CREATE INDEX proj_claims_reversal_item ON proj_claims (issuer, reversal_item_id) WHERE reversed;

-- proj_movements: one row per balance movement, i.e. per lot_created (points
-- in) and lot_debited (points out) change, for consumer history. (block, idx,
-- seq) is the change's position in the ledger; seq is its index in the
-- transaction's change list. Cursor pagination runs on (account, block, idx,
-- seq). The sum of an account's points is the sum of its lots' remaining.
CREATE TABLE proj_movements (
    block        bigint      NOT NULL,
    idx          int         NOT NULL,
    seq          int         NOT NULL,
    account      text        NOT NULL,
    issuer       text        NOT NULL,
    tx_id        text        NOT NULL,
    cause        text        NOT NULL CHECK (cause IN ('issue', 'transfer_in', 'transfer_out', 'donate', 'reverse', 'expire', 'debt_settle')),
    points       bigint      NOT NULL,  -- signed: + into the account, - out of it
    grams        bigint      NOT NULL,  -- signed like points
    lot_key      text COLLATE "C" NOT NULL,
    claim        text        NOT NULL,  -- the claim that made the lot
    counterparty text        NOT NULL DEFAULT '',  -- transfers: the other account; donations: charity/project
    receipt_id   text        NOT NULL DEFAULT '',  -- donations: the receipt
    ts           timestamptz NOT NULL,  -- the transaction time
    request_hash text        NOT NULL DEFAULT '',  -- consumer transactions: hash of the consumer's request
    PRIMARY KEY (block, idx, seq)
);

CREATE INDEX proj_movements_account ON proj_movements (account, block, idx, seq);

-- proj_item_results: the result of every IssueBatch item, retries included;
-- the latest row of an (issuer, item_id) is the item's current outcome.
CREATE TABLE proj_item_results (
    block            bigint NOT NULL,
    idx              int    NOT NULL,
    item_index       int    NOT NULL,  -- position in the batch
    issuer           text   NOT NULL,  -- the batch's caller
    item_id          text   NOT NULL,
    claim            text   NOT NULL,
    status           text   NOT NULL,  -- issued | already_issued | claimed_elsewhere | rejected
    reason           text   NOT NULL DEFAULT '',
    lot_id           text   NOT NULL DEFAULT '',
    lot_key          text COLLATE "C" NOT NULL DEFAULT '',
    debt_settled     bigint NOT NULL DEFAULT 0,
    taken_sub_claims text[] NOT NULL DEFAULT '{}',
    tx_id            text   NOT NULL,
    PRIMARY KEY (block, idx, item_index)
);

CREATE INDEX proj_item_results_item ON proj_item_results (issuer, item_id, block, idx);

-- proj_receipts: donation receipts (receipt_issued) and their
-- acknowledgement by the charity (donation_acknowledged).
CREATE TABLE proj_receipts (
    receipt_id      text        PRIMARY KEY,
    account         text        NOT NULL,  -- the donor
    issuer          text        NOT NULL,
    charity_id      text        NOT NULL,
    project_id      text        NOT NULL,
    points          bigint      NOT NULL,
    grams           bigint      NOT NULL,
    funding_fen     bigint      NOT NULL,
    profile_id      text        NOT NULL,
    profile_version text        NOT NULL,
    tx_id           text        NOT NULL,
    block           bigint      NOT NULL,
    idx             int         NOT NULL,
    ts              timestamptz NOT NULL,
    request_hash    text        NOT NULL,
    acknowledged    boolean     NOT NULL DEFAULT false,
    acknowledged_at timestamptz
);

CREATE INDEX proj_receipts_account ON proj_receipts (account, block, idx);

---- create above / drop below ----

DROP TABLE proj_receipts;
DROP TABLE proj_item_results;
DROP TABLE proj_movements;
DROP TABLE proj_claims;
DROP TABLE proj_lots;
DROP TABLE proj_families;
DROP TABLE proj_accounts;
DROP TABLE proj_txs;
DROP TABLE proj_checkpoint;
