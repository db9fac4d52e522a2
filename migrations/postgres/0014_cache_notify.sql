-- Change notifications for the in-process caches of clients and signing keys
-- (storage/cache). Triggers send NOTIFY openidp_cache in the same transaction as every
-- change to the table, by any process (the server, the `idp` CLI, an operator's SQL);
-- PostgreSQL delivers it to every listening process only when the transaction commits,
-- and never for one rolled back. The payload is 'client:<id>' or 'signing_keys'
-- (storage.ChangeKind), or 'client:' (any client) when the id would not fit.
CREATE FUNCTION openidp_cache_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    id text;
BEGIN
    IF TG_ARGV[0] = 'client' THEN
        IF TG_OP = 'DELETE' THEN id := OLD.id; ELSE id := NEW.id; END IF;
        IF octet_length(id) > 4000 THEN id := ''; END IF;
        PERFORM pg_notify('openidp_cache', 'client:' || id);
        IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
            PERFORM pg_notify('openidp_cache', 'client:');
        END IF;
    ELSE
        PERFORM pg_notify('openidp_cache', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER clients_cache_notify AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION openidp_cache_notify('client');
CREATE TRIGGER signing_keys_cache_notify AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION openidp_cache_notify('signing_keys');
