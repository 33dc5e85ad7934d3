-- What every survey's table shares.  Applied on a fresh database and
-- re-applied on a changed one, so each statement must be idempotent.
--
-- Each survey's answers are a table of their own in the schema `answers`,
-- one column per question, and the auditor reads them through a view of the
-- same name in `public`: `select * from cats;` (worker/tables.py makes both
-- from the survey files, and says why a table and a view).

CREATE SCHEMA IF NOT EXISTS answers;

-- An earlier release kept the cat survey's answers in public.cats: moved,
-- rows, indexes and all, to where every survey's table lives (instant).
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('public.cats')) = 'r' THEN
        ALTER TABLE public.cats SET SCHEMA answers;
    END IF;
END
$$;

-- The tutorial's table, as it was: name, coat and donut come first and keep
-- the tutorial's names.  Length limits match the form's (survey/cats.toml);
-- the allowed coat and donut values live only in the survey file, so adding
-- a choice needs no migration.
CREATE TABLE IF NOT EXISTS answers.cats (
    name          text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 50),
    coat          text        NOT NULL CHECK (char_length(coat) BETWEEN 1 AND 32),
    donut         text        NOT NULL CHECK (char_length(donut) BETWEEN 1 AND 32),
    -- Given to the form when it is rendered; also the RQ job id. Being the key
    -- is what makes a retried job or a double post store one row, not two.
    submission_id uuid        PRIMARY KEY,
    submitted_at  timestamptz NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS cats_stored_at ON answers.cats (stored_at);
-- Which version of its survey file an answer answered (NULL: before versions).
ALTER TABLE answers.cats ADD COLUMN IF NOT EXISTS survey_version text;

-- Each survey's table and the questions it has ever asked, in order: a
-- question removed from the file keeps its column, its answers and its label.
CREATE TABLE IF NOT EXISTS survey_tables (
    table_name text        PRIMARY KEY,
    slug       text        NOT NULL,
    version    text        NOT NULL,
    questions  jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Erasure (the respondent's, the auditor's, or retention's): a tombstone
-- holds the id and when it was erased, never an answer.  An id here is never
-- stored again, whatever the order of events (a store job still queued or
-- re-delivered, a worker killed mid-erase).
CREATE TABLE IF NOT EXISTS erasures (
    submission_id uuid        PRIMARY KEY,
    erased_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The survey's table the answer was erased from (or kept out of, when the
-- erase came first), so each survey's cap counts its own (submission/cap.py);
-- NULL until known, and for tombstones from before there were several surveys.
ALTER TABLE erasures ADD COLUMN IF NOT EXISTS survey_table text;

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

-- Before this release the triggers were the cat table's own.
DROP FUNCTION IF EXISTS cats_skip_erased() CASCADE;
DROP FUNCTION IF EXISTS cats_require_read_committed() CASCADE;

CREATE OR REPLACE FUNCTION answers_skip_erased() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('survey submission'), hashtext(NEW.submission_id::text) & 1023);
    IF EXISTS (SELECT FROM erasures WHERE submission_id = NEW.submission_id) THEN
        UPDATE erasures SET survey_table = TG_TABLE_NAME
            WHERE submission_id = NEW.submission_id AND survey_table IS NULL;
        RETURN NULL;  -- erased: the row is skipped, as ON CONFLICT skips a stored one
    END IF;
    RETURN NEW;
END
$$;

-- Once per statement, not per row: a batch of 200 rows checks once.
-- worker/tables.py puts both triggers on every survey's table.
CREATE OR REPLACE FUNCTION answers_require_read_committed() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM require_read_committed();
    RETURN NULL;
END
$$;

-- Tombstone then delete, for any number of ids; returns how many stored rows
-- it deleted.  SECURITY DEFINER: the worker may delete only through this,
-- and only with a tombstone (db/roles.sql grants EXECUTE, never DELETE).
-- queued_table: the survey table of an answer erased while its store was
-- still queued (no row to tell), so its tombstone counts in that survey's
-- cap (submission/cap.py).  The one-argument form was an earlier release's.
DROP FUNCTION IF EXISTS erase_submissions(uuid[]);
CREATE OR REPLACE FUNCTION erase_submissions(ids uuid[], queued_table text DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    deleted integer := 0;
    more integer;
    answers_table name;
BEGIN
    PERFORM require_read_committed();
    PERFORM pg_advisory_xact_lock(hashtext('survey submission'), bucket)
        FROM (SELECT DISTINCT hashtext(id::text) & 1023 AS bucket FROM unnest(ids) AS id) AS buckets ORDER BY bucket;
    INSERT INTO erasures (submission_id) SELECT DISTINCT unnest(ids) ON CONFLICT (submission_id) DO NOTHING;
    -- Every survey's table, those no file asks any more included.
    FOR answers_table IN SELECT relname FROM pg_class WHERE relnamespace = 'answers'::regnamespace AND relkind = 'r'
    LOOP
        EXECUTE format('WITH gone AS (DELETE FROM answers.%I WHERE submission_id = ANY ($1) RETURNING submission_id) '
                       'UPDATE erasures SET survey_table = %L FROM gone WHERE erasures.submission_id = gone.submission_id',
                       answers_table, answers_table) USING ids;
        GET DIAGNOSTICS more = ROW_COUNT;
        deleted := deleted + more;
    END LOOP;
    UPDATE erasures SET survey_table = queued_table
        WHERE queued_table IS NOT NULL AND survey_table IS NULL AND submission_id = ANY (ids);
    RETURN deleted;
END
$$;

-- A webhook's answer.stored delivery (worker/deliveries.py): the stored row as
-- JSON, or NULL (erased, or never stored).  FOR SHARE holds it until the
-- delivery's transaction ends, after the send: an erase's DELETE waits for a
-- send in progress, and a delivery that comes after the erase sends nothing.
CREATE OR REPLACE FUNCTION stored_answer(answers_table text, id uuid) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    found jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = 'answers'::regnamespace
                   AND relname = answers_table AND relkind = 'r') THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT to_jsonb(a) FROM answers.%I AS a WHERE submission_id = $1 FOR SHARE', answers_table)
        INTO found USING id;
    RETURN found;
END
$$;

-- The owner's email (worker/notify.py): how many answers a survey holds, no more.
CREATE OR REPLACE FUNCTION answers_stored(answers_table text) RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    total bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = 'answers'::regnamespace
                   AND relname = answers_table AND relkind = 'r') THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT count(*) FROM answers.%I', answers_table) INTO total;
    RETURN total;
END
$$;

-- Retention's question (worker/erasure.py): the oldest `lim` answers of
-- every survey stored more than `days` days ago.
CREATE OR REPLACE FUNCTION expired_submissions(days integer, lim integer) RETURNS text[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    every_table text;
    expired text[];
BEGIN
    SELECT string_agg(format('SELECT submission_id, stored_at FROM answers.%I', relname), ' UNION ALL ')
        INTO every_table FROM pg_class WHERE relnamespace = 'answers'::regnamespace AND relkind = 'r';
    IF every_table IS NULL THEN
        RETURN '{}';
    END IF;
    EXECUTE format('SELECT coalesce(array_agg(submission_id::text), ''{}'') FROM (SELECT submission_id FROM (%s) AS a '
                   'WHERE stored_at < now() - make_interval(days => $1) ORDER BY stored_at LIMIT $2) AS e', every_table)
        INTO expired USING days, lim;
    RETURN expired;
END
$$;

-- The digest of this file and db/roles.sql as last applied (worker/migrate.py):
-- a start with the same files applies nothing, so takes no lock on any survey's table.
CREATE TABLE IF NOT EXISTS schema_applied (
    one        boolean     PRIMARY KEY DEFAULT true CHECK (one),
    digest     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
