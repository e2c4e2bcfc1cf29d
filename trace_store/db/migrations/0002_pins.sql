-- Retention (SPEC §7, §10): the policy in effect, the pins and their outbox.

-- The retention policy the serve processes run with (one row). The writer reads
-- keep_latest from here inside its batch transaction, and the editor lists hide
-- unpinned traces older than traces_retain_days, so every process sharing this
-- database agrees. `strata serve` writes its policy at start-up.
CREATE TABLE retention_policy (
    singleton             boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    traces_retain_days    integer     NOT NULL CHECK (traces_retain_days >= 1),
    keep_latest           integer     NOT NULL CHECK (keep_latest >= 1),
    unmatched_retain_days integer     NOT NULL CHECK (unmatched_retain_days >= 1),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO retention_policy (traces_retain_days, keep_latest, unmatched_retain_days)
VALUES (7, 10, 3);

-- The latest keep_latest traces of each handler. A copy of what a trace list needs,
-- so a pinned trace stays listable (and openable) after its daily index partition
-- is dropped. Bounded by handlers x keep_latest, so rows leave by DELETE.
CREATE TABLE pins (
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
    -- When the object's lease was last written (GCS customTime; creation counts).
    leased_at   timestamptz NOT NULL,
    PRIMARY KEY (canvas, trace_id)
);
CREATE INDEX pins_by_handler ON pins (canvas, handler_id, trace_id DESC);
CREATE UNIQUE INDEX pins_by_key ON pins (object_key);
CREATE INDEX pins_by_lease ON pins (leased_at);

-- Pending pin/unpin work. An entry names an object only: applying it sets the object
-- to whatever `pins` says at that moment, so retries, duplicates and stale entries
-- are harmless. Entries leave when applied.
CREATE TABLE pin_outbox (
    id              bigserial   PRIMARY KEY,
    object_key      text        NOT NULL,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX pin_outbox_due ON pin_outbox (next_attempt_at, id);
