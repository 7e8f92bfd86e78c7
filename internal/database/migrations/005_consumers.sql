-- Consumers' personal data, consents and notification preferences
-- (internal/consumers). The ledger and every other table know a consumer only
-- by the pseudonymous account id; the name and phone number live here,
-- encrypted under a data key of that person alone (docs/privacy.md).
--
-- Erasure deletes the person's consumer_keys row (crypto-shredding: the
-- sealed fields can no longer be opened), their card links and preferences,
-- and leaves a tombstone in consumers so the account id is never reused.

-- consumers: one row per person. account is random (never derived from
-- personal data) for new people, or an existing ledger account id for
-- people whose account predates their record (the demo's fixtures, a
-- migrated programme): hence the ledger's id charset, not only c-<hex>. The *_sealed columns are keys.SealData output under the
-- person's data key, with the person id and column name as aad, so a
-- ciphertext cannot be moved to another row or column. birth_date is
-- collected only to know whether a guardian must consent (PIPL Art. 31,
-- under 14); no national id is collected.
CREATE TABLE consumers (
    id                uuid        PRIMARY KEY,
    account           text        NOT NULL UNIQUE CHECK (account ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name_sealed       bytea,
    phone_sealed      bytea,
    birth_date_sealed bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    erased_at         timestamptz,
    -- After erasure nothing sealed is left behind either (the key is gone,
    -- so it would be noise; without it, even a leaked old KEK cannot help).
    CHECK (erased_at IS NULL OR (name_sealed IS NULL AND phone_sealed IS NULL AND birth_date_sealed IS NULL)),
    CHECK (erased_at IS NOT NULL OR (name_sealed IS NOT NULL AND phone_sealed IS NOT NULL))
);

-- consumer_keys: each person's data key, wrapped by the key manager's
-- key-encryption key with the person id as aad. Deleting the row is the
-- erasure.
CREATE TABLE consumer_keys (
    person_id   uuid        PRIMARY KEY REFERENCES consumers (id),
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- consents: what a person agreed to, in which version of the text, when and
-- through which channel. scope narrows a purpose (for card_link: the partner
-- and card token). guardian_consent records that a guardian consented for a
-- person under 14. request_id is the partner's signed request that carried
-- the consent, when one did (the non-repudiable proof).
CREATE TABLE consents (
    id               uuid        PRIMARY KEY,
    person_id        uuid        NOT NULL REFERENCES consumers (id),
    purpose          text        NOT NULL CHECK (purpose IN ('card_link', 'whereabouts', 'marketing', 'notifications')),
    scope            text        NOT NULL DEFAULT '',
    version          text        NOT NULL,
    granted_at       timestamptz NOT NULL,
    channel          text        NOT NULL,
    guardian_consent boolean     NOT NULL DEFAULT false,
    request_id       uuid        REFERENCES partner_requests (id),
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    withdrawn_at     timestamptz
);
-- One live consent per person, purpose and scope; withdrawn ones stay as
-- history until their retention period ends.
CREATE UNIQUE INDEX consents_live ON consents (person_id, purpose, scope) WHERE withdrawn_at IS NULL;
CREATE INDEX consents_withdrawn ON consents (withdrawn_at) WHERE withdrawn_at IS NOT NULL;

-- card_links (003) gains when it was linked (so retention and disputes can
-- tell a link's age from its consent's) and whether a guardian consented;
-- and an index for the retention job.
ALTER TABLE card_links ADD COLUMN linked_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE card_links ADD COLUMN guardian_consent boolean NOT NULL DEFAULT false;
CREATE INDEX card_links_withdrawn ON card_links (withdrawn_at) WHERE withdrawn_at IS NOT NULL;

-- notification_prefs: how a person wants reminders and notices. Quiet hours
-- are minutes of the local day in time_zone; start = end means none.
CREATE TABLE notification_prefs (
    person_id   uuid        PRIMARY KEY REFERENCES consumers (id),
    sms         boolean     NOT NULL,
    push        boolean     NOT NULL,
    quiet_start int         NOT NULL CHECK (quiet_start BETWEEN 0 AND 1439),
    quiet_end   int         NOT NULL CHECK (quiet_end BETWEEN 0 AND 1439),
    time_zone   text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE notification_prefs;
DROP INDEX card_links_withdrawn;
ALTER TABLE card_links DROP COLUMN guardian_consent;
ALTER TABLE card_links DROP COLUMN linked_at;
DROP TABLE consents;
DROP TABLE consumer_keys;
DROP TABLE consumers;
