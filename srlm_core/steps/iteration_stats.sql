-- One row per self-rewarding iteration t >= 1 (AIFT(Mt)): how many prompts were written,
-- filtered and paired; candidate and chosen/rejected lengths; the judge's score distribution
-- (a score "is a 5" when it rounds to 5, so collapse onto the top score shows up for both
-- judge methods); pair margins; the reward-hacking monitor: candidates whose text speaks to the
-- judge (a score claim, an instruction to the grader; srlm_core/judges/injection.py), and how many of
-- them were neutralised before judging (judge.injection). Views expected: prompts,
-- rejected_prompts, candidates, judgements, pairs, skipped_pairs.
with iterations as (
    select distinct iteration from candidates where iteration >= 1
), kept as (
    select iteration, count(*) as n from prompts where iteration >= 1 group by all
), rejected as (
    select iteration, count(*) as n from rejected_prompts group by all
), cand as (
    select iteration, count(*) as n, avg(length(text)) as chars, avg(num_tokens) as tokens,
           avg((finish_reason = 'length')::int) as cut
    from candidates group by all
), judged as (
    select iteration, count(*) as n, count(score) as scored, avg(score) as mean, stddev_pop(score) as std,
           median(score) as median, avg((round(score) = 5)::int) as share_5, avg((round(score) = 0)::int) as share_0,
           count(distinct candidate_id) filter (where injection_spans > 0) as injected,
           count(distinct candidate_id) filter (where neutralised) as neutralised
    from judgements group by all
), paired as (
    select p.iteration, count(*) as n, avg(p.chosen_score - p.rejected_score) as margin,
           median(p.chosen_score - p.rejected_score) as margin_median,
           avg(length(c.text)) as chosen_chars, avg(c.num_tokens) as chosen_tokens,
           avg(length(r.text)) as rejected_chars, avg(r.num_tokens) as rejected_tokens
    from pairs p
    join candidates c on c.candidate_id = p.chosen_id
    join candidates r on r.candidate_id = p.rejected_id
    group by all
), skipped as (
    select iteration, count(*) as n from skipped_pairs group by all
)
select i.iteration,
       coalesce(kept.n, 0) + coalesce(rejected.n, 0) as prompts_generated,
       coalesce(rejected.n, 0) as prompts_rejected,
       coalesce(kept.n, 0) as prompts_kept,
       coalesce(paired.n, 0) as prompts_paired,
       coalesce(skipped.n, 0) as prompts_skipped,
       cand.n as candidates,
       cand.chars as candidate_chars,
       cand.tokens as candidate_tokens,
       cand.cut as candidate_cut_rate,
       judged.n as judgements,
       judged.n - judged.scored as judgements_unparsed,
       judged.mean as score_mean,
       judged.std as score_std,
       judged.median as score_median,
       judged.share_5 as score_share_5,
       judged.share_0 as score_share_0,
       judged.injected as candidates_with_injection,
       judged.neutralised as candidates_neutralised,
       paired.margin as margin_mean,
       paired.margin_median as margin_median,
       paired.chosen_chars, paired.chosen_tokens, paired.rejected_chars, paired.rejected_tokens
from iterations i
left join kept using (iteration)
left join rejected using (iteration)
left join cand using (iteration)
left join judged using (iteration)
left join paired using (iteration)
left join skipped using (iteration)
order by i.iteration
