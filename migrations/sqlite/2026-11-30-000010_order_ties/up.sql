-- List pages sort by (column, id): a batch stamps all of its tasks with one created_at, so
-- an index without the id made each page sort every task sharing the boundary timestamp
-- (10,000 table reads for a page of 50). With the id the index alone gives the order.
DROP INDEX idx_tasks_status_created;
CREATE INDEX idx_tasks_status_created ON tasks (status, created_at, id);
DROP INDEX idx_tasks_type_created;
CREATE INDEX idx_tasks_type_created ON tasks (task_type, created_at, id);
DROP INDEX idx_tasks_created;
CREATE INDEX idx_tasks_created ON tasks (created_at, id);
DROP INDEX idx_tasks_batch;
CREATE INDEX idx_tasks_batch ON tasks (batch_id, created_at, id) WHERE batch_id IS NOT NULL;
DROP INDEX idx_tasks_schedule;
CREATE INDEX idx_tasks_schedule ON tasks (schedule_id, created_at, id) WHERE schedule_id IS NOT NULL;
