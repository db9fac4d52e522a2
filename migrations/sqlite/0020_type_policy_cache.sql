-- The account types' policies join the in-process cache (storage/cache): every sign-in
-- reads its person's type policy, and every process must see a change within the poll
-- interval, whoever made it. A counter of its own, bumped by triggers in the changing
-- transaction, as for clients and signing keys (0014).
INSERT INTO cache_versions (name, version) VALUES ('type_policy', 0);

CREATE TRIGGER type_policies_cache_insert AFTER INSERT ON type_policies
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'type_policy'; END;
CREATE TRIGGER type_policies_cache_update AFTER UPDATE ON type_policies
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'type_policy'; END;
CREATE TRIGGER type_policies_cache_delete AFTER DELETE ON type_policies
BEGIN UPDATE cache_versions SET version = version + 1 WHERE name = 'type_policy'; END;
