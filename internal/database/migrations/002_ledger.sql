-- The embedded ledger (chaincode/embedded): world state, key history, and the
-- hash-chained, signed blocks with their transactions. One block producer at a
-- time writes these tables (it holds a transaction-scoped advisory lock), so
-- several server instances can share one database.
--
-- Every table is logged: durability is the server's (fsync,
-- synchronous_commit), never traded away in the schema.
--
-- Keys use the "C" collation so that key order is byte order, as in Fabric's
-- state database: range reads and the state hash depend on it, whatever the
-- database's default collation is.

-- ledger_blocks is the chain. Block numbers start at 1, so the zero
-- checkpoint (block 0) is before every transaction.
CREATE TABLE ledger_blocks (
    number      bigint      PRIMARY KEY CHECK (number >= 1),
    prev_hash   bytea       NOT NULL,  -- header_hash of block number-1; empty for block 1
    data_hash   bytea       NOT NULL,  -- SHA-256 over the block's transaction envelopes and validation codes
    header_hash bytea       NOT NULL,  -- SHA-256 over (number, prev_hash, data_hash, created_at, tx_count, key_id)
    signature   bytea       NOT NULL,  -- Ed25519 signature of header_hash by the producer's key
    key_id      text        NOT NULL,  -- which key (name/version) signed, for verification after rotation
    created_at  timestamptz NOT NULL,  -- the producer's clock when the block was cut; strictly increasing
    tx_count    int         NOT NULL CHECK (tx_count >= 1)
);

-- ledger_txs holds every ordered transaction, valid or not, at its position in
-- its block (Fabric keeps invalid transactions in the block too).
CREATE TABLE ledger_txs (
    block           bigint      NOT NULL REFERENCES ledger_blocks (number),
    idx             int         NOT NULL,  -- position in the block, from 0
    txid            text        NOT NULL,  -- 32 random hex digits, chosen at endorsement
    caller          text        NOT NULL,  -- MSP id of the submitter
    function        text        NOT NULL,  -- contract function
    args            bytea       COMPRESSION lz4 NOT NULL,  -- the function's JSON argument document
    ts              timestamptz NOT NULL,  -- transaction timestamp (microseconds), chosen at endorsement
    validation_code text        NOT NULL,  -- VALID, MVCC_READ_CONFLICT, PHANTOM_READ_CONFLICT, DUPLICATE_TXID
    event_name      text        NOT NULL,  -- the transaction's single event ('' when none)
    event           bytea       COMPRESSION lz4,  -- its payload (NULL when none)
    result          bytea       COMPRESSION lz4,  -- the function's return value as endorsed
    reads_hash      bytea       NOT NULL,  -- SHA-256 of the read set and range-query infos (reads are not stored)
    writes_hash     bytea       NOT NULL,  -- SHA-256 of the write set; for VALID txs it is recomputable from ledger_history
    PRIMARY KEY (block, idx),
    CHECK (validation_code IN ('VALID', 'MVCC_READ_CONFLICT', 'PHANTOM_READ_CONFLICT', 'DUPLICATE_TXID'))
);

-- A transaction id is used once: a later transaction carrying it is recorded
-- as DUPLICATE_TXID, which is why those rows are left out of the index.
CREATE UNIQUE INDEX ledger_txs_txid ON ledger_txs (txid) WHERE validation_code <> 'DUPLICATE_TXID';

-- ledger_state is the world state: the latest committed value of each key and
-- its version, the (block, txnum) of the valid transaction that wrote it.
-- Deleted keys have no row. Rows are rewritten often (lots are spent), so
-- pages keep room for HOT updates.
CREATE TABLE ledger_state (
    key   text COLLATE "C" PRIMARY KEY,
    value bytea  NOT NULL,
    block bigint NOT NULL,  -- version: block number ...
    txnum int    NOT NULL   -- ... and the writing transaction's position in it
) WITH (fillfactor = 85);

-- ledger_history is every committed write of every key by a VALID
-- transaction, for GetHistoryForKey and for VerifyChain (which recomputes each
-- transaction's writes_hash from it and folds it into the world state).
-- (key, block, txnum) is unique by construction (a transaction writes a key
-- at most once); it is not declared, because the index would be a B-tree on
-- random text keys, the most expensive write of the block producer. History
-- is only ever looked up by key, which a hash index serves at a third of the
-- cost.
CREATE TABLE ledger_history (
    key       text COLLATE "C" NOT NULL,
    block     bigint  NOT NULL,
    txnum     int     NOT NULL,
    value     bytea,            -- NULL when is_delete
    is_delete boolean NOT NULL,
    CHECK (is_delete = (value IS NULL))
);
CREATE INDEX ledger_history_key ON ledger_history USING hash (key);

---- create above / drop below ----

DROP TABLE ledger_history;
DROP TABLE ledger_state;
DROP TABLE ledger_txs;
DROP TABLE ledger_blocks;
