-- A candidate's score: the mean of its valid (non-NULL) judge samples, with their spread
-- (population standard deviation) and how many samples were valid. View expected: judgements.
-- Exact whatever the thread count: the judge stores scores with at most 6 decimals (whole
-- numbers from the text method, the expected digit rounded to 6 decimals from the probability
-- method; a score with more digits counts rounded to 6), so each is summed as a whole number of
-- millionths in integer arithmetic (HUGEINT sums: no rounding, any summation order gives the
-- same sums); mean and spread are then computed from those exact sums in double precision, by the
-- same few float operations every time (mean: one division).
-- A candidate's judgements all carry its prompt_id; one that carries two gives two rows, which
-- pairs.select refuses.
with samples as (
    select candidate_id, prompt_id, round(score * 1000000)::BIGINT as micro
    from judgements
),
sums as (
    select candidate_id,
           prompt_id,
           sum(micro) as total,
           sum(micro * micro) as squares,
           count(micro) as valid_samples,
           count(*) as samples
    from samples
    group by candidate_id, prompt_id
)
select candidate_id,
       prompt_id,
       total::DOUBLE / (valid_samples * 1000000)::DOUBLE as score,
       coalesce(sqrt((valid_samples * squares - total * total)::DOUBLE) / (valid_samples * 1000000)::DOUBLE, 0)
           as spread,
       valid_samples,
       samples
from sums
order by candidate_id
