-- app_meta holds small facts about this installation (e.g. which ledger
-- backend and network it was first started against), so that a restart with
-- a different configuration can be detected instead of mixing data.
CREATE TABLE app_meta (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE app_meta;
