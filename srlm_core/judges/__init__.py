"""The models as judges: the additive 5-point judge (`judge`), the pairwise evaluator of
head-to-head games (`evaluator`) and the score-injection guard (`injection`)."""
