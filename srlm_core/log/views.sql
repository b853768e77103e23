-- srlm event-log views. Load from the repository root:  duckdb -init srlm_core/log/views.sql
-- Generated from srlm_core/log/events.py (a test keeps it in sync). A table the pipeline
-- has not written yet has no files; `srlm sql` shows it as an empty view instead.
CREATE OR REPLACE VIEW prompts AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id)
  FROM read_parquet('data/events/prompts/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW candidates AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(candidate_id AS BLOB)) = 32 THEN lower(hex(CAST(candidate_id AS BLOB))) ELSE decode(CAST(candidate_id AS BLOB)) END AS candidate_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id)
  FROM read_parquet('data/events/candidates/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW judgements AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(judgement_id AS BLOB))) ELSE decode(CAST(judgement_id AS BLOB)) END AS judgement_id,
    CASE WHEN octet_length(CAST(candidate_id AS BLOB)) = 32 THEN lower(hex(CAST(candidate_id AS BLOB))) ELSE decode(CAST(candidate_id AS BLOB)) END AS candidate_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id)
  FROM (SELECT * FROM read_parquet('data/events/judgements/*/*.parquet', hive_partitioning = true, union_by_name = true)
    UNION ALL BY NAME SELECT CAST(NULL AS BIGINT) AS injection_spans, CAST(NULL AS BOOLEAN) AS neutralised WHERE false);
CREATE OR REPLACE VIEW candidate_scores AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(score_id AS BLOB)) = 32 THEN lower(hex(CAST(score_id AS BLOB))) ELSE decode(CAST(score_id AS BLOB)) END AS score_id,
    CASE WHEN octet_length(CAST(candidate_id AS BLOB)) = 32 THEN lower(hex(CAST(candidate_id AS BLOB))) ELSE decode(CAST(candidate_id AS BLOB)) END AS candidate_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id)
  FROM read_parquet('data/events/candidate_scores/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW pairs AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(pair_id AS BLOB)) = 32 THEN lower(hex(CAST(pair_id AS BLOB))) ELSE decode(CAST(pair_id AS BLOB)) END AS pair_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id,
    CASE WHEN octet_length(CAST(chosen_id AS BLOB)) = 32 THEN lower(hex(CAST(chosen_id AS BLOB))) ELSE decode(CAST(chosen_id AS BLOB)) END AS chosen_id,
    CASE WHEN octet_length(CAST(rejected_id AS BLOB)) = 32 THEN lower(hex(CAST(rejected_id AS BLOB))) ELSE decode(CAST(rejected_id AS BLOB)) END AS rejected_id,
    coalesce(rule, 'best_vs_worst') AS rule)
  FROM (SELECT * FROM read_parquet('data/events/pairs/*/*.parquet', hive_partitioning = true, union_by_name = true)
    UNION ALL BY NAME SELECT CAST(NULL AS VARCHAR) AS rule, CAST(NULL AS DOUBLE) AS tolerance WHERE false);
CREATE OR REPLACE VIEW rejected_prompts AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(rejection_id AS BLOB)) = 32 THEN lower(hex(CAST(rejection_id AS BLOB))) ELSE decode(CAST(rejection_id AS BLOB)) END AS rejection_id)
  FROM read_parquet('data/events/rejected_prompts/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW skipped_pairs AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(skip_id AS BLOB)) = 32 THEN lower(hex(CAST(skip_id AS BLOB))) ELSE decode(CAST(skip_id AS BLOB)) END AS skip_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id)
  FROM read_parquet('data/events/skipped_pairs/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW reply_judgements AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(judgement_id AS BLOB))) ELSE decode(CAST(judgement_id AS BLOB)) END AS judgement_id,
    CASE WHEN octet_length(CAST(group_id AS BLOB)) = 32 THEN lower(hex(CAST(group_id AS BLOB))) ELSE decode(CAST(group_id AS BLOB)) END AS group_id)
  FROM (SELECT * FROM read_parquet('data/events/reply_judgements/*/*.parquet', hive_partitioning = true, union_by_name = true)
    UNION ALL BY NAME SELECT CAST(NULL AS BIGINT) AS injection_spans, CAST(NULL AS BOOLEAN) AS neutralised WHERE false);
CREATE OR REPLACE VIEW rm_judgements AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(judgement_id AS BLOB))) ELSE decode(CAST(judgement_id AS BLOB)) END AS judgement_id,
    CASE WHEN octet_length(CAST(group_id AS BLOB)) = 32 THEN lower(hex(CAST(group_id AS BLOB))) ELSE decode(CAST(group_id AS BLOB)) END AS group_id)
  FROM (SELECT * FROM read_parquet('data/events/rm_judgements/*/*.parquet', hive_partitioning = true, union_by_name = true)
    UNION ALL BY NAME SELECT CAST(NULL AS BIGINT) AS injection_spans, CAST(NULL AS BOOLEAN) AS neutralised WHERE false);
CREATE OR REPLACE VIEW eval_answers AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(answer_id AS BLOB)) = 32 THEN lower(hex(CAST(answer_id AS BLOB))) ELSE decode(CAST(answer_id AS BLOB)) END AS answer_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id)
  FROM read_parquet('data/events/eval_answers/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW h2h_games AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(game_id AS BLOB)) = 32 THEN lower(hex(CAST(game_id AS BLOB))) ELSE decode(CAST(game_id AS BLOB)) END AS game_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id,
    CASE WHEN octet_length(CAST(answer_a_id AS BLOB)) = 32 THEN lower(hex(CAST(answer_a_id AS BLOB))) ELSE decode(CAST(answer_a_id AS BLOB)) END AS answer_a_id,
    CASE WHEN octet_length(CAST(answer_b_id AS BLOB)) = 32 THEN lower(hex(CAST(answer_b_id AS BLOB))) ELSE decode(CAST(answer_b_id AS BLOB)) END AS answer_b_id)
  FROM read_parquet('data/events/h2h_games/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW answer_scores AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(judgement_id AS BLOB))) ELSE decode(CAST(judgement_id AS BLOB)) END AS judgement_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id,
    CASE WHEN octet_length(CAST(answer_id AS BLOB)) = 32 THEN lower(hex(CAST(answer_id AS BLOB))) ELSE decode(CAST(answer_id AS BLOB)) END AS answer_id)
  FROM read_parquet('data/events/answer_scores/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW instruction_answers AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(answer_id AS BLOB)) = 32 THEN lower(hex(CAST(answer_id AS BLOB))) ELSE decode(CAST(answer_id AS BLOB)) END AS answer_id)
  FROM read_parquet('data/events/instruction_answers/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW reply_logprobs AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(logprob_id AS BLOB)) = 32 THEN lower(hex(CAST(logprob_id AS BLOB))) ELSE decode(CAST(logprob_id AS BLOB)) END AS logprob_id)
  FROM read_parquet('data/events/reply_logprobs/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW guard_checks AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(check_id AS BLOB)) = 32 THEN lower(hex(CAST(check_id AS BLOB))) ELSE decode(CAST(check_id AS BLOB)) END AS check_id)
  FROM read_parquet('data/events/guard_checks/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW meta_judgements AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(meta_judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(meta_judgement_id AS BLOB))) ELSE decode(CAST(meta_judgement_id AS BLOB)) END AS meta_judgement_id,
    CASE WHEN octet_length(CAST(candidate_id AS BLOB)) = 32 THEN lower(hex(CAST(candidate_id AS BLOB))) ELSE decode(CAST(candidate_id AS BLOB)) END AS candidate_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id,
    CASE WHEN octet_length(CAST(first_judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(first_judgement_id AS BLOB))) ELSE decode(CAST(first_judgement_id AS BLOB)) END AS first_judgement_id,
    CASE WHEN octet_length(CAST(second_judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(second_judgement_id AS BLOB))) ELSE decode(CAST(second_judgement_id AS BLOB)) END AS second_judgement_id)
  FROM read_parquet('data/events/meta_judgements/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW judge_pairs AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(judge_pair_id AS BLOB)) = 32 THEN lower(hex(CAST(judge_pair_id AS BLOB))) ELSE decode(CAST(judge_pair_id AS BLOB)) END AS judge_pair_id,
    CASE WHEN octet_length(CAST(candidate_id AS BLOB)) = 32 THEN lower(hex(CAST(candidate_id AS BLOB))) ELSE decode(CAST(candidate_id AS BLOB)) END AS candidate_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id,
    CASE WHEN octet_length(CAST(chosen_judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(chosen_judgement_id AS BLOB))) ELSE decode(CAST(chosen_judgement_id AS BLOB)) END AS chosen_judgement_id,
    CASE WHEN octet_length(CAST(rejected_judgement_id AS BLOB)) = 32 THEN lower(hex(CAST(rejected_judgement_id AS BLOB))) ELSE decode(CAST(rejected_judgement_id AS BLOB)) END AS rejected_judgement_id)
  FROM read_parquet('data/events/judge_pairs/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE OR REPLACE VIEW skipped_judge_pairs AS
  SELECT * REPLACE (
    CASE WHEN octet_length(CAST(skip_id AS BLOB)) = 32 THEN lower(hex(CAST(skip_id AS BLOB))) ELSE decode(CAST(skip_id AS BLOB)) END AS skip_id,
    CASE WHEN octet_length(CAST(candidate_id AS BLOB)) = 32 THEN lower(hex(CAST(candidate_id AS BLOB))) ELSE decode(CAST(candidate_id AS BLOB)) END AS candidate_id,
    CASE WHEN octet_length(CAST(prompt_id AS BLOB)) = 32 THEN lower(hex(CAST(prompt_id AS BLOB))) ELSE decode(CAST(prompt_id AS BLOB)) END AS prompt_id)
  FROM read_parquet('data/events/skipped_judge_pairs/*/*.parquet', hive_partitioning = true, union_by_name = true);
