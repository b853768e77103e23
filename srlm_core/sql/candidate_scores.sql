-- A candidate's score: the mean of its valid (non-NULL) judge samples, with their spread
-- (population standard deviation) and how many samples were valid. View expected: judgements.
select candidate_id,
       any_value(prompt_id) as prompt_id,
       avg(score) as score,
       coalesce(stddev_pop(score), 0) as spread,
       count(score) as valid_samples,
       count(*) as samples
from judgements
group by candidate_id
order by candidate_id
