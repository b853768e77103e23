-- Length-controlled AIFT(Mt) (pairs.length_control; Meta-Rewarding, Wu et al. 2024): per prompt, the
-- shortest candidate among those scoring within $tolerance of the best vs the longest among those
-- scoring within $tolerance of the worst: where the judge hardly tells candidates apart, DPO is taught
-- the shorter one, not the longer (length growth). Length: characters of the text (candidate_lengths).
-- Parameters: $min_margin, $tolerance. Views expected: prompts, candidate_scores, candidate_lengths
-- (one iteration each; pairs.select checks that every scored candidate has exactly one length).
-- The same columns as pairs.sql, chosen_* and rejected_* being the two picked here. Ties in length:
-- the chosen one is the higher-scored, then the smaller id; the rejected one the lower-scored, then
-- the larger id: the min and the max of the unique keys (chars, -score, candidate_id), so any thread
-- count picks the same.
-- A score exactly $tolerance from the best (worst) is near it: each distance is rounded to 9 decimals
-- first, since in doubles 3.0 - 2.8 is 0.20000000000000018 (judge samples have at most 6 decimals, so
-- the rounding takes off float error only).
-- Skip reasons, in this order: too_few_judged and tie (best = worst) as pairs.sql; bands_overlap when
-- the two picks are the same candidate or the chosen one does not score above the rejected one (the
-- near-best and near-worst bands overlap); below_margin when the picks' gap, rounded as above, is below
-- $min_margin.
with scored as (
    select s.prompt_id, s.candidate_id, s.score, s.spread, l.chars
    from candidate_scores s
    join candidate_lengths l on l.candidate_id = s.candidate_id
    where s.valid_samples > 0
),
bounds as (
    select prompt_id, count(*) as judged, max(score) as best, min(score) as worst
    from scored
    group by prompt_id
),
picked as (
    select b.prompt_id, b.judged, b.best, b.worst,
           min({'chars': s.chars, 'neg_score': -s.score, 'id': s.candidate_id, 'score': s.score, 'spread': s.spread})
               filter (where round(b.best - s.score, 9) <= $tolerance) as top,
           max({'chars': s.chars, 'neg_score': -s.score, 'id': s.candidate_id, 'score': s.score, 'spread': s.spread})
               filter (where round(s.score - b.worst, 9) <= $tolerance) as bottom
    from scored s
    join bounds b on b.prompt_id = s.prompt_id
    group by b.prompt_id, b.judged, b.best, b.worst
)
select p.prompt_id,
       coalesce(k.judged, 0) as judged_candidates,
       k.top.id as chosen_id, k.top.score as chosen_score, k.top.spread as chosen_spread,
       k.bottom.id as rejected_id, k.bottom.score as rejected_score, k.bottom.spread as rejected_spread,
       case when coalesce(k.judged, 0) < 2 then 'too_few_judged'
            when k.best = k.worst then 'tie'
            when k.top.id = k.bottom.id or k.top.score <= k.bottom.score then 'bands_overlap'
            when round(k.top.score - k.bottom.score, 9) < $min_margin then 'below_margin'
       end as skip_reason
from prompts p
left join picked k on k.prompt_id = p.prompt_id
order by p.prompt_id
