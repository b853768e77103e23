-- AIFT(Mt): per prompt, the highest- vs lowest-scored candidate (ties broken by candidate_id).
-- Candidate scores come from candidate_scores.sql.
-- Parameters: $min_margin. Views expected: prompts, candidates, candidate_scores (one iteration each).
-- Candidates are ranked on ids and scores only; texts are joined for the two picked per prompt, so
-- the windows never carry response texts.
with valid as (
    select c.candidate_id, c.prompt_id, s.score, s.spread
    from candidates c join candidate_scores s using (candidate_id)
    where s.valid_samples > 0
),
ranked as (
    select *,
           row_number() over (partition by prompt_id order by score desc, candidate_id) as top_rank,
           row_number() over (partition by prompt_id order by score asc, candidate_id desc) as bottom_rank,
           count(*) over (partition by prompt_id) as judged
    from valid
),
picked as (
    select prompt_id,
           any_value(judged) as judged,
           any_value(candidate_id) filter (where top_rank = 1) as chosen_id,
           any_value(score) filter (where top_rank = 1) as chosen_score,
           any_value(spread) filter (where top_rank = 1) as chosen_spread,
           any_value(candidate_id) filter (where bottom_rank = 1) as rejected_id,
           any_value(score) filter (where bottom_rank = 1) as rejected_score,
           any_value(spread) filter (where bottom_rank = 1) as rejected_spread
    from ranked
    where top_rank = 1 or bottom_rank = 1
    group by prompt_id
)
select p.prompt_id, p.text as prompt,
       coalesce(k.judged, 0) as judged_candidates,
       k.chosen_id, t.text as chosen, k.chosen_score, k.chosen_spread,
       k.rejected_id, b.text as rejected, k.rejected_score, k.rejected_spread,
       case when coalesce(k.judged, 0) < 2 then 'too_few_judged'
            when k.chosen_score = k.rejected_score then 'tie'
            when k.chosen_score - k.rejected_score < $min_margin then 'below_margin'
       end as skip_reason
from prompts p
left join picked k on k.prompt_id = p.prompt_id
left join candidates t on t.candidate_id = k.chosen_id
left join candidates b on b.candidate_id = k.rejected_id
order by p.prompt_id
