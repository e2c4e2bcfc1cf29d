-- The trace index: one compact row per stored base object. Never trace bodies.
-- Partitioned by day so that retiring old rows is a DROP of a partition, not a DELETE.
CREATE TABLE traces (
    canvas      text        NOT NULL,
    handler_id  text        NOT NULL,
    trace_id    uuid        NOT NULL,
    started_at  timestamptz NOT NULL,
    object_key  text        NOT NULL,
    size_bytes  integer     NOT NULL,
    sha256      bytea       NOT NULL,
    status      smallint,
    duration_ms real        NOT NULL,
    functions   text[]      NOT NULL DEFAULT '{}',
    has_error   boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (canvas, trace_id, started_at)
) PARTITION BY RANGE (started_at);

-- Rows whose day has no partition (clock skew, adopted old requests) land here.
CREATE TABLE traces_default PARTITION OF traces DEFAULT;

CREATE INDEX traces_by_handler ON traces (canvas, handler_id, trace_id DESC);

-- Editor tokens: only a SHA-256 of the token is stored.
CREATE TABLE editor_tokens (
    token_hash  bytea       PRIMARY KEY,
    canvas      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Handlers as last registered by a serve process (identity is the id, not the route).
CREATE TABLE handlers (
    canvas      text        NOT NULL,
    handler_id  text        NOT NULL,
    method      text        NOT NULL,
    route       text        NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (canvas, handler_id)
);
