-- Core engine: tasks, their status history and their logs.
-- Timestamps are UTC milliseconds since the epoch; JSON is stored as text.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    task_type TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    stage TEXT,
    message TEXT,
    eta_secs DOUBLE PRECISION,
    checkpoint TEXT,
    result TEXT,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    max_retries INTEGER NOT NULL,
    retry_delay_secs DOUBLE PRECISION NOT NULL,
    retry_backoff TEXT NOT NULL,
    timeout_secs DOUBLE PRECISION,
    mutex_key TEXT,
    mutex_policy TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    run_at BIGINT,
    tags TEXT NOT NULL,
    batch_id TEXT,
    schedule_id TEXT,
    unit_id TEXT,
    source TEXT NOT NULL,
    retry_of TEXT,
    created_by TEXT,
    callback_url TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    unit_labels TEXT NOT NULL,
    held BOOLEAN NOT NULL DEFAULT FALSE,
    not_before BIGINT,
    active_secs DOUBLE PRECISION NOT NULL DEFAULT 0,
    resources TEXT
);
CREATE INDEX idx_tasks_status_created ON tasks (status, created_at);
CREATE INDEX idx_tasks_type_created ON tasks (task_type, created_at);
CREATE INDEX idx_tasks_created ON tasks (created_at);
CREATE INDEX idx_tasks_updated ON tasks (updated_at);
CREATE INDEX idx_tasks_priority ON tasks (priority, created_at);
CREATE INDEX idx_tasks_batch ON tasks (batch_id, created_at);
CREATE INDEX idx_tasks_schedule ON tasks (schedule_id, created_at);
CREATE INDEX idx_tasks_mutex ON tasks (mutex_key, status);

CREATE TABLE task_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    at BIGINT NOT NULL,
    by_whom TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX idx_task_history_task ON task_history (task_id, id);

CREATE TABLE task_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX idx_task_logs_task ON task_logs (task_id, id);
CREATE INDEX idx_task_logs_at ON task_logs (at);
