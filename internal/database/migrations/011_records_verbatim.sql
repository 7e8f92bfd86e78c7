-- Quantification records are kept byte for byte as the canonical JSON whose
-- SHA-256 is record_hash (and, for an issuance, the quantification hash on
-- the ledger): jsonb re-orders keys and drops the encoding, so an auditor
-- re-hashing a stored jsonb record got another hash. json keeps the text
-- as given (still checked to be JSON) and is cheaper to write, which
-- intake does for every action and issuance.
ALTER TABLE actions ALTER COLUMN record TYPE json USING record::text::json;
ALTER TABLE issuances ALTER COLUMN record TYPE json USING record::text::json;

---- create above / drop below ----

ALTER TABLE issuances ALTER COLUMN record TYPE jsonb USING record::jsonb;
ALTER TABLE actions ALTER COLUMN record TYPE jsonb USING record::jsonb;
