-- Least privilege: one role per kind of client, each allowed only what it
-- does.  Applied after schema.sql by worker/migrate.py, as the table's owner,
-- on every start, so each statement must be idempotent.  No passwords here:
-- worker/migrate.py sets them from the environment when given.
--
--   survey_worker  inserts submissions (the only writer), erases them with a tombstone
--   survey_web     reads them, for the receipt page
--   auditor        reads them, for people checking the data

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['survey_worker', 'survey_web', 'auditor'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Roles belong to the whole cluster: a migration of another
                -- database on it may have created this one a moment ago.
                NULL;
            END;
        END IF;
    END LOOP;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO survey_worker, survey_web, auditor', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO survey_worker, survey_web, auditor;

-- Each survey's table and view get theirs from worker/tables.py, after this
-- file: the worker inserts into the table (never reading an answer), the web
-- and the auditor read the view.  The schema holding the tables is the worker's
-- to insert into only.
REVOKE ALL ON SCHEMA answers FROM PUBLIC, survey_web, auditor;
GRANT USAGE ON SCHEMA answers TO survey_worker;
-- Which questions each survey has asked: the tallies' and exports' labels.
REVOKE ALL ON survey_tables FROM PUBLIC, survey_worker, survey_web, auditor;
GRANT SELECT ON survey_tables TO survey_web, auditor;
-- Which questions have their columns (survey/applied.py), as the web asks too.
GRANT SELECT (table_name, questions) ON survey_tables TO survey_worker;

-- Erasure: the worker erases only through erase_submissions() (SECURITY
-- DEFINER, db/schema.sql), which always leaves a tombstone; it never holds
-- DELETE.  The web reads tombstones for the receipt, the auditor to count
-- erasures.  A function is executable by PUBLIC unless revoked.
REVOKE ALL ON erasures FROM PUBLIC, survey_worker, survey_web, auditor;
GRANT SELECT ON erasures TO survey_web, auditor;
-- The worker asks which ids are in (submission/cap.py's reconcile): ids only.
GRANT SELECT (submission_id) ON erasures TO survey_worker;
-- An erase tells the survey's webhooks when (worker/deliveries.py): its table and time, no answer.
GRANT SELECT (survey_table, erased_at) ON erasures TO survey_worker;
REVOKE ALL ON FUNCTION erase_submissions(uuid[], text) FROM PUBLIC, survey_worker, survey_web, auditor;
GRANT EXECUTE ON FUNCTION erase_submissions(uuid[], text) TO survey_worker;
REVOKE ALL ON FUNCTION expired_submissions(integer, integer) FROM PUBLIC, survey_worker, survey_web, auditor;
GRANT EXECUTE ON FUNCTION expired_submissions(integer, integer) TO survey_worker;
-- A webhook delivery reads the one row it sends, by id, and nothing else.
REVOKE ALL ON FUNCTION stored_answer(text, uuid) FROM PUBLIC, survey_worker, survey_web, auditor;
GRANT EXECUTE ON FUNCTION stored_answer(text, uuid) TO survey_worker;
-- The owner's email says how many answers there are: a count, no answer.
REVOKE ALL ON FUNCTION answers_stored(text) FROM PUBLIC, survey_worker, survey_web, auditor;
GRANT EXECUTE ON FUNCTION answers_stored(text) TO survey_worker;
REVOKE ALL ON FUNCTION answers_skip_erased(), answers_require_read_committed() FROM PUBLIC, survey_worker, survey_web, auditor;

-- The migration's own bookkeeping: the owner's alone.
REVOKE ALL ON schema_applied FROM PUBLIC, survey_worker, survey_web, auditor;
