-- AIFT(Mt): per prompt, the highest- vs lowest-scored candidate (ties broken by candidate_id).
-- Candidate scores come from candidate_scores.sql.
-- Parameters: $min_margin. Views expected: prompts, candidate_scores (one iteration each).
-- Candidates are ranked on ids and scores only: per prompt, the smallest and the largest
-- (-score, candidate_id) are the best (highest score, then smallest id) and the worst (lowest
-- score, then largest id) candidate. min and max of these unique keys do not depend on the order
-- rows arrive in, so any thread count picks the same. No texts here: pairs.select adds the
-- prompt and the two picked candidates' texts afterwards, one column at a time (TEXTS_SQL).
-- A candidate's prompt_id is the one its judgements carry (pairs.select checks that each picked
-- candidate is in candidates when it joins the texts).
-- The gap is rounded to 9 decimals before the margin test: means of judge samples are not exact in
-- doubles (13/3 - 10/3 is 0.9999999999999996), and a one-point gap must pass min_margin 1 at any level.
with picked as (
    select prompt_id,
           count(*) as judged,
           min({'neg_score': -score, 'id': candidate_id, 'score': score, 'spread': spread}) as top,
           max({'neg_score': -score, 'id': candidate_id, 'score': score, 'spread': spread}) as bottom
    from candidate_scores
    where valid_samples > 0
    group by prompt_id
)
select p.prompt_id,
       coalesce(k.judged, 0) as judged_candidates,
       k.top.id as chosen_id, k.top.score as chosen_score, k.top.spread as chosen_spread,
       k.bottom.id as rejected_id, k.bottom.score as rejected_score, k.bottom.spread as rejected_spread,
       case when coalesce(k.judged, 0) < 2 then 'too_few_judged'
            when k.top.score = k.bottom.score then 'tie'
            when round(k.top.score - k.bottom.score, 9) < $min_margin then 'below_margin'
       end as skip_reason
from prompts p
left join picked k on k.prompt_id = p.prompt_id
order by p.prompt_id
