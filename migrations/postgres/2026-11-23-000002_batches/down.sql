DROP TABLE settings;
DROP INDEX idx_tasks_batch_status;
DROP TABLE batches;
