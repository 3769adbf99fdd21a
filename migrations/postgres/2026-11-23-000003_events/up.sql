-- Live events: the replayable event log, webhook subscriptions and their deliveries.
-- Timestamps are UTC milliseconds since the epoch; JSON is stored as text.
CREATE TABLE events (
    seq BIGINT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    task_id TEXT,
    batch_id TEXT,
    task_type TEXT,
    body TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX idx_events_at ON events (at);
CREATE INDEX idx_events_task ON events (task_id, seq);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    tasks TEXT NOT NULL,
    batches TEXT NOT NULL,
    types TEXT NOT NULL,
    secret TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    webhook_id TEXT,
    task_id TEXT,
    url TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    event_kind TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT,
    last_code INTEGER,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX idx_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX idx_deliveries_status ON webhook_deliveries (status);
