-- Alerts (SPEC §8): repeats of the same fingerprint fold into one row with a count.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    level TEXT NOT NULL,
    alert_type TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT NOT NULL,
    count BIGINT NOT NULL,
    acknowledged BOOLEAN NOT NULL DEFAULT FALSE,
    acknowledged_by TEXT,
    acknowledged_at BIGINT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    notified_at BIGINT NOT NULL
);
CREATE INDEX idx_alerts_fingerprint ON alerts (fingerprint, acknowledged);
CREATE INDEX idx_alerts_created ON alerts (created_at);
