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
