-- A group-commit batch whose jobs check nothing before they may commit (token issues
-- without a rotation or code, audit appends, finished authorization requests) is sent
-- to the server with its COMMIT in one round trip: every statement, then one Sync, runs
-- as one implicit transaction (storage/postgres/writer.go, runOneTrip). Its audit events
-- are linked to the chain head its process's previous batch left, so the head must be
-- checked by the server, under the append lock, before anything commits: this function
-- raises SQLSTATE OI001 when the newest event is not (want_hash, want_key) ('' and ''
-- for an empty chain), which aborts the whole transaction; the writer then reads the
-- real head and runs the batch again. Each statement of a VOLATILE function reads a
-- fresh snapshot, so the read sees every event committed before the lock was granted.
CREATE FUNCTION openidp_require_audit_head(want_hash text, want_key text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h text;
    k text;
BEGIN
    SELECT hash, chain_key INTO h, k FROM audit_events ORDER BY id DESC LIMIT 1;
    IF COALESCE(h, '') <> want_hash OR COALESCE(k, '') <> want_key THEN
        RAISE EXCEPTION 'the audit chain head moved' USING ERRCODE = 'OI001';
    END IF;
END
$$;
