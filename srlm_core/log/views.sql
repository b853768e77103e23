-- srlm event-log views. Load from the repository root:  duckdb -init srlm_core/log/views.sql
-- Generated from srlm_core/log/events.py (a test keeps it in sync). A table the pipeline
-- has not written yet has no files; `srlm sql` shows it as an empty view instead.
CREATE OR REPLACE VIEW prompts AS
  SELECT * FROM read_parquet('data/events/prompts/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW candidates AS
  SELECT * FROM read_parquet('data/events/candidates/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW judgements AS
  SELECT * FROM read_parquet('data/events/judgements/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW pairs AS
  SELECT * FROM read_parquet('data/events/pairs/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW rejected_prompts AS
  SELECT * FROM read_parquet('data/events/rejected_prompts/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW skipped_pairs AS
  SELECT * FROM read_parquet('data/events/skipped_pairs/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW reply_judgements AS
  SELECT * FROM read_parquet('data/events/reply_judgements/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW rm_judgements AS
  SELECT * FROM read_parquet('data/events/rm_judgements/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW eval_answers AS
  SELECT * FROM read_parquet('data/events/eval_answers/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW h2h_games AS
  SELECT * FROM read_parquet('data/events/h2h_games/*/*.parquet', hive_partitioning = true, union_by_name = true);
