-- The survey's one table. Applied on a fresh database and re-applied on every
-- start, so each statement must be idempotent.
--
-- name, coat and donut come first and keep the tutorial's names, so an
-- auditor's `select * from cats;` still reads the same.  Length limits match
-- the web form's (web/forms.py); the allowed coat and donut values live only in
-- the form, so adding a choice needs no migration.

CREATE TABLE IF NOT EXISTS cats (
    name          text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 50),
    coat          text        NOT NULL CHECK (char_length(coat) BETWEEN 1 AND 32),
    donut         text        NOT NULL CHECK (char_length(donut) BETWEEN 1 AND 32),
    -- Given to the form when it is rendered; also the RQ job id. Being the key
    -- is what makes a retried job or a double post store one row, not two.
    submission_id uuid        PRIMARY KEY,
    submitted_at  timestamptz NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS cats_stored_at ON cats (stored_at);

-- Erasure (the respondent's, the auditor's, or retention's): a tombstone
-- holds the id and when it was erased, never an answer.  An id here is never
-- stored again, whatever the order of events (a store job still queued or
-- re-delivered, a worker killed mid-erase).
CREATE TABLE IF NOT EXISTS erasures (
    submission_id uuid        PRIMARY KEY,
    erased_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Why a lock, and why these two functions make the order of events harmless:
-- a store and an erase of one id each take the same transaction-scoped
-- advisory lock (on that id's bucket, below) first, so one commits before the other
-- starts reading.  Each later statement of a VOLATILE plpgsql function takes
-- a fresh snapshot (READ COMMITTED), so whichever comes second sees what the
-- first committed:
--   erase first: the store's trigger sees the tombstone and skips the row;
--   store first: the erase's DELETE sees the committed row and removes it.
-- Without the lock a store could check for a tombstone just before an erase
-- commits it, while the erase's DELETE cannot see the store's uncommitted row:
-- the answer would come back.  The trigger, not the worker's INSERT, checks,
-- so every writer (an older worker during a rolling update too) obeys it.
-- Under REPEATABLE READ or SERIALIZABLE every statement reuses the
-- transaction's first snapshot, and a store that waited on an erase's lock
-- would insert the erased answer anyway: so both functions refuse to run
-- under any level but READ COMMITTED (the worker pins it, worker/db.py; a
-- role or database default of another level is an error, retried, not a leak).
-- The lock is per bucket of ids (1024 of them), not per id, so a transaction
-- storing any number of rows holds at most 1024 locks (PostgreSQL's lock table
-- is small); stores take it shared, so stores never wait for one another, and
-- an erase waits only for stores in its buckets.  Erases take their buckets in
-- order, so two erases cannot deadlock; an erase of many ids (retention) and a
-- batch store can, rarely, and PostgreSQL then fails one of them, which retries.
CREATE OR REPLACE FUNCTION require_read_committed() RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'answers are stored and erased only under READ COMMITTED, not %',
            current_setting('transaction_isolation')
            USING HINT = 'Begin the transaction ISOLATION LEVEL READ COMMITTED (the worker does).';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION cats_skip_erased() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('survey submission'), hashtext(NEW.submission_id::text) & 1023);
    IF EXISTS (SELECT FROM erasures WHERE submission_id = NEW.submission_id) THEN
        RETURN NULL;  -- erased: the row is skipped, as ON CONFLICT skips a stored one
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER cats_skip_erased BEFORE INSERT ON cats
    FOR EACH ROW EXECUTE FUNCTION cats_skip_erased();

-- Once per statement, not per row: a batch of 200 rows checks once.
CREATE OR REPLACE FUNCTION cats_require_read_committed() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM require_read_committed();
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER cats_read_committed BEFORE INSERT ON cats
    FOR EACH STATEMENT EXECUTE FUNCTION cats_require_read_committed();

-- Tombstone then delete, for any number of ids; returns how many stored rows
-- it deleted.  SECURITY DEFINER: the worker may delete only through this,
-- and only with a tombstone (db/roles.sql grants EXECUTE, never DELETE).
CREATE OR REPLACE FUNCTION erase_submissions(ids uuid[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    deleted integer;
BEGIN
    PERFORM require_read_committed();
    PERFORM pg_advisory_xact_lock(hashtext('survey submission'), bucket)
        FROM (SELECT DISTINCT hashtext(id::text) & 1023 AS bucket FROM unnest(ids) AS id) AS buckets ORDER BY bucket;
    INSERT INTO erasures (submission_id) SELECT DISTINCT unnest(ids) ON CONFLICT (submission_id) DO NOTHING;
    DELETE FROM cats WHERE submission_id = ANY (ids);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;

-- The digest of this file and db/roles.sql as last applied (worker/migrate.py):
-- a start with the same files applies nothing, so takes no lock on cats.
CREATE TABLE IF NOT EXISTS schema_applied (
    one        boolean     PRIMARY KEY DEFAULT true CHECK (one),
    digest     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
