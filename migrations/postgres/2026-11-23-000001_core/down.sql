DROP TABLE task_logs;
DROP TABLE task_history;
DROP TABLE tasks;
