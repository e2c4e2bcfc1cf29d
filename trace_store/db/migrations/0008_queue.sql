-- Workers and crons (SPEC §15): a durable queue per canvas and queue name, and one row
-- per cron tick that ran (the claim that makes a tick run once across processes).

-- One row per message until a worker finished it (then it is deleted: its traces are
-- the record) or it ran out of attempts (state 'dead', kept). `event` is the enqueued
-- value as tagged JSON (strata.trace/1's value encoding), kept as text so that the
-- order of its keys survives. A 'running' message whose `locked_until` has passed
-- belongs to a process that died: it is taken again, and that counted as an attempt.
CREATE TABLE queue_messages (
    id           bigserial   PRIMARY KEY,
    message_id   uuid        NOT NULL UNIQUE,
    canvas       text        NOT NULL,
    queue        text        NOT NULL,
    event        json        NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    state        text        NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'running', 'dead')),
    attempts     integer     NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    locked_by    text,
    last_error   text
);
CREATE INDEX queue_messages_due ON queue_messages (canvas, queue, run_at, id)
    WHERE state <> 'dead';
CREATE INDEX queue_messages_by_queue ON queue_messages (canvas, queue, state);
-- Deleted rows churn fast: vacuum this table early.
ALTER TABLE queue_messages SET (autovacuum_vacuum_scale_factor = 0.01,
                                autovacuum_vacuum_threshold = 1000);

CREATE TABLE cron_runs (
    canvas     text        NOT NULL,
    handler_id text        NOT NULL,
    tick       timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text        NOT NULL,
    PRIMARY KEY (canvas, handler_id, tick)
);
