-- Intake records an event's row, with its outcome, in the same statement
-- batch that ends its transaction, and an action names its issuance before
-- that issuance's row is written: the references are checked at commit
-- rather than per statement, which saves an UPDATE per event and per
-- issuance. Integrity is the same: a transaction that leaves a dangling
-- reference still fails, at COMMIT.
ALTER TABLE actions ALTER CONSTRAINT actions_event_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE actions ALTER CONSTRAINT actions_issuance_id_fkey DEFERRABLE INITIALLY DEFERRED;

---- create above / drop below ----

ALTER TABLE actions ALTER CONSTRAINT actions_issuance_id_fkey NOT DEFERRABLE;
ALTER TABLE actions ALTER CONSTRAINT actions_event_id_fkey NOT DEFERRABLE;
