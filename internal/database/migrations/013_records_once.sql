-- A quantification record is stored once. An appliance action that queued
-- its issuance keeps no record of its own: the issuance's record holds it
-- verbatim as its one quantification (issuer/pipeline, IssuanceRecord), and
-- issuances outlive actions (consumer data retention deletes actions, not
-- issuances). Two copies of ~1.6 KB per purchase were written at intake and
-- the action's copied again when its status was settled. Trips (grouped
-- into grants later) and actions without an issuance keep theirs.
-- action_records gives every action's record, byte for byte (json, not
-- jsonb: -> returns the element's text as stored).
--
-- Records are compressed with lz4 rather than pglz, as the ledger's
-- transactions are: an issuance row with its record passes the 2 KB TOAST
-- threshold, and pglz compressed every one on insert.
ALTER TABLE actions ALTER COLUMN record DROP NOT NULL;
ALTER TABLE actions ADD CONSTRAINT actions_record_kept
    CHECK (record IS NOT NULL OR (kind = 'appliance' AND issuance_id IS NOT NULL));
ALTER TABLE actions ALTER COLUMN record SET COMPRESSION lz4;
ALTER TABLE issuances ALTER COLUMN record SET COMPRESSION lz4;

CREATE VIEW action_records AS
    SELECT a.id, coalesce(a.record, i.record -> 'quantifications' -> 0) AS record, a.record_hash
    FROM actions a LEFT JOIN issuances i ON i.id = a.issuance_id;

---- create above / drop below ----

DROP VIEW action_records;
UPDATE actions a SET record = i.record -> 'quantifications' -> 0
    FROM issuances i WHERE a.record IS NULL AND i.id = a.issuance_id;
ALTER TABLE issuances ALTER COLUMN record SET COMPRESSION pglz;
ALTER TABLE actions ALTER COLUMN record SET COMPRESSION pglz;
ALTER TABLE actions DROP CONSTRAINT actions_record_kept;
ALTER TABLE actions ALTER COLUMN record SET NOT NULL;
