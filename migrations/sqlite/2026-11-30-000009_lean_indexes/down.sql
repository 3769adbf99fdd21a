DROP INDEX idx_tasks_mutex;
CREATE INDEX idx_tasks_mutex ON tasks (mutex_key, status);
DROP INDEX idx_tasks_schedule;
CREATE INDEX idx_tasks_schedule ON tasks (schedule_id, created_at);
DROP INDEX idx_tasks_batch;
CREATE INDEX idx_tasks_batch ON tasks (batch_id, created_at);
DROP INDEX idx_tasks_batch_status;
CREATE INDEX idx_tasks_batch_status ON tasks (batch_id, status);
CREATE INDEX idx_events_at ON events (at);
