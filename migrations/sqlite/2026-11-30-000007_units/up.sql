-- Execution units registered by remote workers (WebSocket) and HTTP-style units (seed 004
-- §5.3). The in-process unit is not stored. Timestamps are UTC milliseconds.
CREATE TABLE units (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    unit_type TEXT NOT NULL,
    unit_name TEXT NOT NULL UNIQUE,
    endpoint TEXT,
    config TEXT NOT NULL,
    task_types TEXT NOT NULL,
    labels TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    status TEXT NOT NULL,
    draining BOOLEAN NOT NULL DEFAULT FALSE,
    last_heartbeat BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
