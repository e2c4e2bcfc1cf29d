-- The unmatched (404) summary: one row per (canvas, method, path), bounded per canvas.
-- The request bodies live in the store under unmatched/<canvas>/<trace_id>.json.zst;
-- a row only counts them and remembers the ids of the latest few (``samples``), which
-- is what adoption copies when a handler for the path appears.
CREATE TABLE unmatched (
    canvas         text        NOT NULL,
    method         text        NOT NULL,
    -- The decoded request path, made safe for text (NUL replaced) and cut to a bounded
    -- length (a btree key must stay far below 2700 bytes); ``path_truncated`` says so.
    path           text        NOT NULL,
    path_truncated boolean     NOT NULL DEFAULT false,
    count          bigint      NOT NULL,
    first_seen     timestamptz NOT NULL,
    last_seen      timestamptz NOT NULL,
    -- The latest stored request and its object.
    trace_id       uuid        NOT NULL,
    object_key     text        NOT NULL,
    -- Stored requests not yet adopted, oldest first, at most a few (see unmatched.py).
    samples        uuid[]      NOT NULL DEFAULT '{}',
    -- Set when a handler adopted the samples; cleared when the path goes unmatched again.
    adopted_by     text,
    adopted_at     timestamptz,
    PRIMARY KEY (canvas, method, path)
);

-- "Most recent first" for the API and for trimming each canvas to its bound.
CREATE INDEX unmatched_recent ON unmatched (canvas, last_seen DESC);

-- Index rows of handler traces adopted from unmatched requests (input only, no result).
-- Adding a column with a constant default to a partitioned table reaches every
-- partition and is a catalogue-only change.
ALTER TABLE traces ADD COLUMN adopted boolean NOT NULL DEFAULT false;
