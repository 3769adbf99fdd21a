-- Batches (SPEC §3) and persisted system settings (PUT /system/config).
CREATE TABLE batches (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    mode TEXT NOT NULL,
    max_parallel INTEGER,
    on_failure TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    callback_url TEXT,
    tags TEXT NOT NULL,
    created_by TEXT,
    task_count INTEGER NOT NULL,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    cancelled BOOLEAN NOT NULL DEFAULT FALSE,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX idx_batches_status_created ON batches (status, created_at);
CREATE INDEX idx_batches_created ON batches (created_at);
CREATE INDEX idx_tasks_batch_status ON tasks (batch_id, status);

CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
