-- Schedules (SPEC §4) and the record of every slot they handled. UNIQUE (schedule_id,
-- slot_at) is what makes a slot fire at most once, across restarts and (later) nodes.
CREATE TABLE schedules (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    trigger_kind TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    tags TEXT NOT NULL,
    spec TEXT NOT NULL,
    last_slot BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE schedule_runs (
    id TEXT PRIMARY KEY NOT NULL,
    schedule_id TEXT NOT NULL,
    slot_at BIGINT NOT NULL,
    manual BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    task_id TEXT,
    batch_id TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (schedule_id, slot_at)
);
CREATE INDEX idx_schedule_runs_schedule ON schedule_runs (schedule_id, created_at);
