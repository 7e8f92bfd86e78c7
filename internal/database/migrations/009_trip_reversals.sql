-- Refunded fares of a daily transit grant (docs/pipeline.md). A grant is one
-- issuance whose trips are its sub-claims; a refunded or charged-back trip
-- gives back its share of the grant by a reversal of its own sub-claim, so
-- a grant may have one reversal per trip. One reversal per issuance remains
-- the rule for reversals of an issuance's whole claim. action_id has no
-- foreign key: the retention schedule deletes finished actions, and the
-- reversal row stays as the record of what the ledger was asked.
ALTER TABLE reversals
    ADD COLUMN action_id uuid,                        -- the refunded trip; NULL: the issuance's whole claim
    ADD COLUMN points    bigint CHECK (points >= 0),  -- the trip's share of its grant; NULL for a whole claim
    ADD CONSTRAINT reversals_share CHECK ((action_id IS NULL) = (points IS NULL));
ALTER TABLE reversals DROP CONSTRAINT reversals_issuance_id_key;
CREATE UNIQUE INDEX reversals_whole ON reversals (issuance_id) WHERE action_id IS NULL;
CREATE UNIQUE INDEX reversals_trip ON reversals (action_id) WHERE action_id IS NOT NULL;

---- create above / drop below ----

DROP INDEX reversals_trip;
DROP INDEX reversals_whole;
DELETE FROM reversals WHERE action_id IS NOT NULL;
ALTER TABLE reversals ADD CONSTRAINT reversals_issuance_id_key UNIQUE (issuance_id);
ALTER TABLE reversals DROP CONSTRAINT reversals_share, DROP COLUMN points, DROP COLUMN action_id;
