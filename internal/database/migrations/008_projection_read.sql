-- Consumer reads among many lots (issue 6; figures in docs/benchmarks.md).

-- Balance sums an account's live lots. With remaining in the index it is an
-- index-only scan: an account's lots are scattered over the heap (one per
-- issuance, in ledger order), so reading each lot's heap page cost a heavy
-- account (5,000 lots) 11-16 ms warm and ~150 ms cold; the index alone, about
-- 4 ms. Same key and predicate as before, so every other use is unchanged.
DROP INDEX proj_lots_live;
CREATE INDEX proj_lots_live ON proj_lots (account, expires_at, lot_key) INCLUDE (remaining) WHERE remaining > 0;

-- Lots looks up each lot's children (source_lot = its key). Most lots are
-- issued (source_lot ''), and ANALYZE's sample holds each real source about
-- once, so PostgreSQL estimated ~1/30 as many distinct sources as there are
-- transfer lots: ~30 children per lot instead of ~1. That priced a
-- 5,000-lot read above jit_above_cost, and every such read was JIT-compiled
-- first (~80 ms). Distinct values are at most one per lot; -0.5 (half the
-- rows) keeps the estimate at about one child, whatever the transfer share.
ALTER TABLE proj_lots ALTER COLUMN source_lot SET (n_distinct = -0.5);

---- create above / drop below ----

ALTER TABLE proj_lots ALTER COLUMN source_lot RESET (n_distinct);
DROP INDEX proj_lots_live;
CREATE INDEX proj_lots_live ON proj_lots (account, expires_at, lot_key) WHERE remaining > 0;
