-- Idempotency keys of the consumers' creating POSTs (internal/idempotency),
-- after the IETF draft "The Idempotency-Key HTTP Header Field". A key is
-- scoped to the authenticated subject, so one consumer can never replay or
-- block another's request. The row stores a fingerprint of the request (so a
-- reused key with a different body is refused) and, once done, the response
-- (so a retry gets the same answer without moving points twice).

CREATE TABLE idempotency_keys (
    subject        text        NOT NULL,
    key            text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    route          text        NOT NULL,           -- the route template the key was first used on
    request_hash   bytea       NOT NULL CHECK (length(request_hash) = 32),  -- SHA-256 fingerprint
    state          text        NOT NULL CHECK (state IN ('in_progress', 'done')),
    locked_until   timestamptz NOT NULL,           -- an in_progress row older than this was abandoned (crash)
    status         int         CHECK (status BETWEEN 100 AND 599),
    body           bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    PRIMARY KEY (subject, key),
    CHECK ((state = 'done') = (status IS NOT NULL AND body IS NOT NULL))
);

-- Expiry of old keys (a retention job deletes rows older than the window).
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

---- create above / drop below ----

DROP TABLE idempotency_keys;
