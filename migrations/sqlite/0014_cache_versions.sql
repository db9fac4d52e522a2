-- Change counters for the in-process caches of clients and signing keys (storage/cache).
-- Triggers bump a counter in the same transaction as every change to the table, by any
-- process (the server, the `idp` CLI, an operator's SQL); each server process polls the
-- counters and drops what it cached when one moved. A rolled-back change bumps nothing.
CREATE TABLE cache_versions (
    name    TEXT    NOT NULL PRIMARY KEY, -- 'client' or 'signing_keys' (storage.ChangeKind)
    version INTEGER NOT NULL
) STRICT;
INSERT INTO cache_versions (name, version) VALUES ('client', 0), ('signing_keys', 0);

CREATE TRIGGER clients_cache_insert AFTER INSERT ON clients
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'client'; END;
CREATE TRIGGER clients_cache_update AFTER UPDATE ON clients
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'client'; END;
CREATE TRIGGER clients_cache_delete AFTER DELETE ON clients
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'client'; END;

CREATE TRIGGER signing_keys_cache_insert AFTER INSERT ON signing_keys
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'signing_keys'; END;
CREATE TRIGGER signing_keys_cache_update AFTER UPDATE ON signing_keys
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'signing_keys'; END;
CREATE TRIGGER signing_keys_cache_delete AFTER DELETE ON signing_keys
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'signing_keys'; END;
