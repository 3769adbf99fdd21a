-- Fewer index entries to maintain per task write: the mutex, schedule and batch indexes
-- only hold the tasks that have one (every query on them names a value, so the partial
-- index serves it), and events are pruned along their primary key instead of by an index
-- on `at`.
DROP INDEX idx_tasks_mutex;
CREATE INDEX idx_tasks_mutex ON tasks (mutex_key, status) WHERE mutex_key IS NOT NULL;
DROP INDEX idx_tasks_schedule;
CREATE INDEX idx_tasks_schedule ON tasks (schedule_id, created_at) WHERE schedule_id IS NOT NULL;
DROP INDEX idx_tasks_batch;
CREATE INDEX idx_tasks_batch ON tasks (batch_id, created_at) WHERE batch_id IS NOT NULL;
DROP INDEX idx_tasks_batch_status;
CREATE INDEX idx_tasks_batch_status ON tasks (batch_id, status) WHERE batch_id IS NOT NULL;
DROP INDEX idx_events_at;
