-- Patches: reruns and function runs on top of an immutable base trace.
-- The document is stored zstd-compressed (it is also what the size limit measures).
CREATE TABLE patches (
    canvas           text        NOT NULL,
    trace_id         uuid        NOT NULL,
    seq              integer     NOT NULL,
    patch_id         uuid        NOT NULL UNIQUE,
    kind             text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    trace_started_at timestamptz NOT NULL,
    document         bytea       NOT NULL,
    PRIMARY KEY (canvas, trace_id, seq)
);

-- The last seq handed out per trace. Incrementing it row-locks the trace's counter, so
-- concurrent runs on one trace get distinct, increasing seqs without retries.
CREATE TABLE patch_seqs (
    canvas   text    NOT NULL,
    trace_id uuid    NOT NULL,
    last_seq integer NOT NULL,
    PRIMARY KEY (canvas, trace_id)
);
