-- Expiry reminders, notices of rights-reducing changes, their Merkle
-- anchoring, grace records and the expiry sweep's log (issuer/notices,
-- docs/notices.md). Consumers are named only by their pseudonymous ledger
-- account; the gateway resolves it to a device or phone number.

-- notifications: the outbox. One row per reminder (a lot and one of its
-- profile's reminder offsets, unique) or per notice (a change and an
-- account, unique), so running the jobs again or on several instances never
-- makes a second one. A row is delivered at least once (its id is the
-- gateway's idempotency key) and ends 'sent' with the gateway's receipt or
-- 'undelivered' with the last error. Final rows are then anchored on the
-- ledger in a batch: leaf is the exact canonical JSON whose RFC 6962 leaf
-- hash is leaf leaf_index of the batch's Merkle tree.
CREATE TABLE notifications (
    id              text        PRIMARY KEY,  -- UUIDv7
    issuer          text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('expiry_reminder', 'rights_notice')),
    account         text        NOT NULL,
    -- expiry_reminder: the lot, the offset (days before expiry), its expiry
    -- and the points it held when the reminder was made.
    lot_key         text COLLATE "C",
    offset_days     int,
    expires_at      timestamptz,
    points          bigint,
    -- rights_notice: the change (e.g. "profile:cn-default@2") and when it
    -- takes effect; summary lists the reductions.
    change_id       text,
    effective_at    timestamptz,
    summary         text        NOT NULL DEFAULT '',
    -- Delivery: the channel ('' when the consumer has none: undelivered),
    -- the quiet hours in force when it was made (minutes of the local day
    -- in quiet_zone; NULL: none), retries.
    channel         text        NOT NULL,
    quiet_start     int CHECK (quiet_start BETWEEN 0 AND 1439),
    quiet_end       int CHECK (quiet_end BETWEEN 0 AND 1439),
    quiet_zone      text,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'undelivered')),
    attempts        int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,  -- also the lease of a claimed row
    last_error      text        NOT NULL DEFAULT '',
    receipt_id      text        NOT NULL DEFAULT '',  -- the gateway's delivery receipt id
    receipt         bytea,                             -- the gateway's whole answer, exact bytes (hashed into the leaf)
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,                       -- when it became sent or undelivered
    batch_id        text,
    leaf_index      int,
    leaf            bytea,
    CHECK (kind <> 'expiry_reminder' OR (lot_key IS NOT NULL AND offset_days > 0 AND expires_at IS NOT NULL AND points >= 0)),
    CHECK (kind <> 'rights_notice' OR (change_id IS NOT NULL AND effective_at IS NOT NULL)),
    CHECK ((status = 'pending') = (finished_at IS NULL)),
    CHECK ((batch_id IS NULL) = (leaf IS NULL) AND (batch_id IS NULL) = (leaf_index IS NULL)),
    UNIQUE (lot_key, offset_days),
    UNIQUE (change_id, account)
);

-- The delivery worker's queue.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
-- Final rows waiting for a batch.
CREATE INDEX notifications_unbatched ON notifications (issuer, kind, id) WHERE status <> 'pending' AND batch_id IS NULL;
-- A batch's leaves in order (proofs).
CREATE UNIQUE INDEX notifications_batch ON notifications (batch_id, leaf_index) WHERE batch_id IS NOT NULL;
-- An account's notifications (a lot's reminders use the unique (lot_key, offset_days)).
CREATE INDEX notifications_account ON notifications (account, created_at);

-- notice_batches: Merkle roots of notification batches. A batch is written
-- here first and then anchored (AnchorNoticeBatch, idempotent on batch_id),
-- so a crash in between is finished by the next run.
CREATE TABLE notice_batches (
    batch_id    text        PRIMARY KEY,
    issuer      text        NOT NULL,
    kind        text        NOT NULL,
    merkle_root text        NOT NULL CHECK (merkle_root ~ '^[0-9a-f]{64}$'),
    count       int         NOT NULL CHECK (count > 0),
    created_at  timestamptz NOT NULL,
    anchored_at timestamptz,  -- the ledger transaction time
    tx_id       text        NOT NULL DEFAULT ''
);

CREATE INDEX notice_batches_pending ON notice_batches (issuer, created_at) WHERE anchored_at IS NULL;

-- grace_records: points that expired although none of their lot's
-- reminders was delivered. The ledger has no extension: the profile's grace
-- period is the window (until grace_until) in which the holder may have the
-- points re-issued after an operator's approval (docs/notices.md).
CREATE TABLE grace_records (
    lot_key     text COLLATE "C" PRIMARY KEY,
    issuer      text        NOT NULL,
    account     text        NOT NULL,
    points      bigint      NOT NULL CHECK (points > 0),  -- what expired
    expires_at  timestamptz NOT NULL,
    grace_days  int         NOT NULL CHECK (grace_days >= 0),
    grace_until timestamptz NOT NULL,
    reason      text        NOT NULL CHECK (reason IN ('reminder_undelivered', 'no_reminder')),
    recorded_at timestamptz NOT NULL,
    status      text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'reissued', 'lapsed')),
    resolved_at timestamptz,
    resolved_by text        NOT NULL DEFAULT ''
);

CREATE INDEX grace_records_open ON grace_records (issuer, grace_until) WHERE status = 'open';
CREATE INDEX grace_records_account ON grace_records (account);

-- expiry_sweeps: one row per SweepExpired transaction, for operations.
CREATE TABLE expiry_sweeps (
    tx_id    text        PRIMARY KEY,
    issuer   text        NOT NULL,
    bucket   text        NOT NULL,
    swept    int         NOT NULL,
    points   bigint      NOT NULL,
    pruned   int         NOT NULL,
    not_due  int         NOT NULL,
    more     boolean     NOT NULL,
    swept_at timestamptz NOT NULL  -- the ledger transaction time
);

CREATE INDEX expiry_sweeps_issuer ON expiry_sweeps (issuer, swept_at);

-- The grace check reads an issuer's lots by expiry whether or not the sweep
-- already emptied them (004's proj_lots_issuer_expiry covers only lots with
-- points left). An index only: it survives a projection rebuild.
CREATE INDEX proj_lots_issuer_expires_all ON proj_lots (issuer, expires_at);

---- create above / drop below ----

DROP INDEX proj_lots_issuer_expires_all;
DROP TABLE expiry_sweeps;
DROP TABLE grace_records;
DROP TABLE notice_batches;
DROP TABLE notifications;
