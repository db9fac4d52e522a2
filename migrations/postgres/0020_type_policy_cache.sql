-- The account types' policies join the in-process cache (storage/cache): every sign-in
-- reads its person's type policy, and every process must hear of a change, whoever made
-- it. NOTIFY openidp_cache 'type_policy' in the changing transaction (0014's function:
-- any policy may have changed).
CREATE TRIGGER type_policies_cache_notify AFTER INSERT OR UPDATE OR DELETE ON type_policies
    FOR EACH ROW EXECUTE FUNCTION openidp_cache_notify('type_policy');
