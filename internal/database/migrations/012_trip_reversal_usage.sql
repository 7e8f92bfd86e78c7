-- Cap usage subtracts the shares of a transit grant that its refunded trips
-- gave back (docs/pipeline.md): found per grant issuance.
CREATE INDEX reversals_trip_issuance ON reversals (issuance_id) WHERE action_id IS NOT NULL;

---- create above / drop below ----

DROP INDEX reversals_trip_issuance;
