-- The system log (seed 002's log aggregation): steward's own notable events and, in the
-- binary, the warnings and errors it logs, searchable beside task logs at /api/v1/logs.
CREATE TABLE system_logs (
    id BIGSERIAL PRIMARY KEY,
    level TEXT NOT NULL,
    component TEXT NOT NULL,
    message TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX idx_system_logs_at ON system_logs (at);
