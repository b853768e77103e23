-- AIFT(Mt): per prompt, the highest- vs lowest-scored candidate (ties broken by candidate_id).
-- Candidate scores come from candidate_scores.sql.
-- Parameters: $min_margin. Views expected: prompts, candidates, candidate_scores (one iteration each).
with scored as (
    select c.candidate_id, c.prompt_id, c.text, s.score, s.spread, s.valid_samples
    from candidates c join candidate_scores s using (candidate_id)
),
valid as (select * from scored where valid_samples > 0),
ranked as (
    select *,
           row_number() over (partition by prompt_id order by score desc, candidate_id) as top_rank,
           row_number() over (partition by prompt_id order by score asc, candidate_id desc) as bottom_rank,
           count(*) over (partition by prompt_id) as judged
    from valid
)
select p.prompt_id, p.text as prompt,
       coalesce(t.judged, 0) as judged_candidates,
       t.candidate_id as chosen_id, t.text as chosen, t.score as chosen_score, t.spread as chosen_spread,
       b.candidate_id as rejected_id, b.text as rejected, b.score as rejected_score, b.spread as rejected_spread,
       case when coalesce(t.judged, 0) < 2 then 'too_few_judged'
            when t.score = b.score then 'tie'
            when t.score - b.score < $min_margin then 'below_margin'
       end as skip_reason
from prompts p
left join ranked t on t.prompt_id = p.prompt_id and t.top_rank = 1
left join ranked b on b.prompt_id = p.prompt_id and b.bottom_rank = 1
order by p.prompt_id
