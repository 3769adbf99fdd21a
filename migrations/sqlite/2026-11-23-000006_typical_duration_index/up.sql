-- The ETA's history half reads the latest successes of a type: serve it from an index
-- instead of scanning and sorting every earlier task of that type.
CREATE INDEX idx_tasks_type_status_finished ON tasks (task_type, status, finished_at);
