-- A group-commit batch is sent to the server with its COMMIT in one round trip: every
-- statement, then one Sync, runs as one implicit transaction that commits at the Sync
-- (storage/postgres/writer.go, runOneTrip). Nothing can be checked by the client before
-- that commit, so what a batch must check, the server checks, raising an error that
-- aborts the whole transaction; the writer then runs the batch again the slow way, which
-- tells which job failed and why.

-- The batch's audit events are linked to the chain head its process's previous batch
-- left. This raises SQLSTATE OI001 when the newest event is not (want_hash, want_key)
-- ('' and '' for an empty chain); the writer then reads the real head and runs the
-- batch again. It is called after the append lock is taken, and each statement of a
-- VOLATILE function reads a fresh snapshot, so it sees every event committed before the
-- lock was granted.
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

-- A conditional write that must match a row (a refresh token's rotation, a code's claim,
-- a token required to be current) is queued as a statement calling this with whether it
-- did: SQLSTATE OI002 when not.
CREATE FUNCTION openidp_require(ok boolean) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'a conditional write matched nothing' USING ERRCODE = 'OI002';
    END IF;
END
$$;
