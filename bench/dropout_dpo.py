"""DPO with attention dropout on the real model: where should the reference log-probs come from?

Three ways of running srlm's full-fine-tuning DPO (reference log-probs precomputed once) on
real OASST1 preference pairs (first-turn prompts; chosen = the reply ranked 0, rejected = the
lowest-ranked reply), from the same model, data, seed and schedule:

  ref-dropout   dropout 0.1 in the policy; the reference log-probs computed with the model in
                train mode, so each carries a dropout draw of its own (what TRL does with the
                model as srlm hands it over once dropout takes effect, without dpo.build_trainer's
                eval mode)
  ref-clean     dropout 0.1 in the policy; the reference computed in eval mode, without dropout
                (dpo.build_trainer; TRL's own behaviour with a separate reference model)
  no-dropout    dropout 0 in policy and reference (what TRL's `disable_dropout` is meant to give;
                on Llama it does not, as its attention dropout is no nn.Dropout: dpo.dpo_args)

For each, at each learning rate: the loss before any update over all training pairs, in train
mode as the first steps see it (with identical policy and reference it is ln 2 exactly, unless
dropout makes them differ), TRL's logged per-step figures, and after the fixed number of steps the
reward accuracy, margin and loss in eval mode (no dropout) against the eval-mode reference, on the
training pairs and on held-out pairs. Each run is a subprocess of its own: TRL caches precomputed
reference log-probs by dataset and weights, not by train/eval mode.

    python bench/dropout_dpo.py --model models/M0 --out bench/results/dropout_dpo.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

from common import machine, table, write_result  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "oasst1" / "oasst1-en-validation.messages.jsonl"
# name: (policy dropout, mode the reference log-probs are computed in)
VARIANTS = {"ref-dropout": (0.1, "train"), "ref-clean": (0.1, "eval"), "no-dropout": (0.0, "eval")}
BETA = 0.1


def oasst_pairs(path: Path, count: int) -> list[dict]:
    """(prompt, rank-0 reply, lowest-ranked reply) for the first `count` English root prompts, in file order."""
    messages = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    usable = [m for m in messages if m["lang"] == "en" and not m["deleted"] and m["review_result"] is not False
              and not m["synthetic"]]
    roots = [m for m in usable if m["parent_id"] is None and m["role"] == "prompter"]
    replies: dict[str, list[dict]] = {}
    for m in usable:
        if m["role"] == "assistant" and m["rank"] is not None:
            replies.setdefault(m["parent_id"], []).append(m)
    rows = []
    for root in roots:
        ranked = replies.get(root["message_id"], [])
        if len({m["rank"] for m in ranked}) < 2:
            continue
        best = min(ranked, key=lambda m: m["rank"])
        worst = max(ranked, key=lambda m: m["rank"])
        rows.append({"prompt": root["text"], "chosen": best["text"], "rejected": worst["text"]})
    return rows[:count]


def dpo_cfg(lr: float, dropout: float, steps: int, batch: int, max_length: int):
    from srlm_core.params import parse_params

    return parse_params({"dpo": {"learning_rate": lr, "lr_end": lr / 10, "max_steps": steps, "batch_size": batch,
                                 "grad_accum": 1, "max_length": max_length, "dropout": dropout,
                                 "beta": BETA}}).dpo


def sequence_logps(trainer, model, dataset, batch: int, train_mode: bool) -> tuple[list[float], list[float]]:
    """Summed completion log-probs of chosen and rejected, the way TRL computes the reference's."""
    import torch
    from torch.utils.data import DataLoader

    model.train(train_mode)
    chosen, rejected = [], []
    for inputs in DataLoader(dataset, batch_size=batch, collate_fn=trainer.data_collator, shuffle=False):
        c, r = trainer.compute_ref_log_probs(model, inputs)
        chosen.append(c.float().cpu())
        rejected.append(r.float().cpu())
    return torch.cat(chosen).tolist(), torch.cat(rejected).tolist()


def figures(policy: tuple[list, list], reference: tuple[list, list]) -> dict:
    """DPO loss, reward accuracy (margin > 0; a tie is not a hit) and margin over pairs, with 95% intervals."""
    margins = [BETA * ((pc - rc) - (pr - rr)) for pc, pr, rc, rr in zip(*policy, *reference)]
    n = len(margins)
    losses = [math.log1p(math.exp(-m)) for m in margins]
    hits = sum(m > 0 for m in margins)
    mean = sum(margins) / n
    sd = (sum((m - mean) ** 2 for m in margins) / (n - 1)) ** 0.5
    return {"pairs": n, "loss": sum(losses) / n, "accuracy": hits / n, "accuracy_ci": wilson(hits, n),
            "margin": mean, "margin_sd": sd, "margin_ci": [mean - 1.96 * sd / n ** 0.5, mean + 1.96 * sd / n ** 0.5],
            "margins": margins}


def wilson(hits: int, n: int, z: float = 1.96) -> list[float]:
    p, scale = hits / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / scale, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    return [centre - half, centre + half]


def preference_dataset(rows: list[dict]):
    import pyarrow as pa
    from datasets import Dataset

    from srlm_core.training import dpo

    return Dataset.from_list(dpo.preference_rows(pa.Table.from_pylist(rows)))


def precomputed(trainer) -> tuple[list[float], list[float]]:
    """The reference log-probs the trainer computed before training, as TRL stores them."""
    return list(trainer.train_dataset["ref_chosen_logps"]), list(trainer.train_dataset["ref_rejected_logps"])


def build(model_dir: Path, rows: list[dict], cfg, reference_mode: str, folder: Path):
    """The trainer as dpo.run builds it, except that `reference_mode` train hands TRL the model in train mode."""
    from trl import DPOTrainer

    from srlm_core.engine import runtime
    from srlm_core.training import dpo
    from srlm_core.training.trainer import quiet

    runtime.seed_everything(0)
    model, tokenizer, _ = runtime.load(model_dir, for_training=True, dropout=cfg.dropout)
    args = dpo.dpo_args(cfg, folder, seed=0, precision=runtime.compute_dtype())
    if reference_mode == "eval":
        return dpo.build_trainer(model, tokenizer, preference_dataset(rows), args, cfg), model
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=preference_dataset(rows),
                         processing_class=tokenizer)
    return quiet(trainer, "dpo"), model


def held_out(trainer, rows: list[dict]):
    return trainer._prepare_dataset(preference_dataset(rows), trainer.processing_class, trainer.args, "held_out")


def job_reference(model_dir: Path, data: dict, batch: int, max_length: int) -> dict:
    """M0's eval-mode log-probs on the training and held-out pairs: the reference every run is scored against."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer, model = build(model_dir, data["train"], dpo_cfg(1e-6, 0.0, 1, batch, max_length), "eval", Path(tmp))
        # the training pairs' reference is what dpo.build_trainer precomputed (eval mode, the same batches)
        return {"train": precomputed(trainer),
                "held_out": sequence_logps(trainer, model, held_out(trainer, data["held_out"]), batch, False)}


def job_run(model_dir: Path, data: dict, reference: dict, variant: str, lr: float, steps: int, batch: int,
            max_length: int) -> dict:
    dropout, reference_mode = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as tmp:
        trainer, model = build(model_dir, data["train"], dpo_cfg(lr, dropout, steps, batch, max_length),
                               reference_mode, Path(tmp))
        used = precomputed(trainer)
        lengths = {side: [len(ids) for ids in trainer.train_dataset[f"{side}_ids"]]
                   for side in ("prompt", "chosen", "rejected")}
        step0 = figures(sequence_logps(trainer, model, trainer.train_dataset, batch, train_mode=True), used)
        trainer.train()
        logged = [r for r in trainer.state.log_history if "loss" in r]
        after = {"train": figures(sequence_logps(trainer, model, trainer.train_dataset, batch, False),
                                  reference["train"]),
                 "held_out": figures(sequence_logps(trainer, model, held_out(trainer, data["held_out"]), batch, False),
                                     reference["held_out"])}
    gap = [abs(u - r) for u, r in zip(used[0] + used[1], reference["train"][0] + reference["train"][1])]
    return {"variant": variant, "dropout": dropout, "reference_mode": reference_mode, "lr": lr, "steps": steps,
            "reference_gap_max": max(gap), "train_token_lengths": lengths, "step0_train_mode": step0,
            "logged": [{k: r[k] for k in ("step", "loss", "rewards/accuracies", "rewards/margins", "rewards/chosen",
                                          "rewards/rejected")} for r in logged],
            "after_eval_mode": after}


def section(results: list[dict], meta: dict) -> str:
    def ci(pair):
        return f"[{pair[0]:.2f}, {pair[1]:.2f}]"

    rows = []
    for r in results:
        s0, tr, ho = r["step0_train_mode"], r["after_eval_mode"]["train"], r["after_eval_mode"]["held_out"]
        rows.append([r["variant"], f"{r['lr']:g}", f"{s0['loss']:.4f}", f"{s0['margin_sd']:.3f}",
                     f"{r['logged'][0]['loss']:.4f}", f"{r['logged'][-1]['loss']:.4f}",
                     f"{tr['accuracy']:.2f} {ci(tr['accuracy_ci'])}", f"{tr['margin']:.3f} {ci(tr['margin_ci'])}",
                     f"{ho['accuracy']:.2f} {ci(ho['accuracy_ci'])}", f"{ho['margin']:.4f} {ci(ho['margin_ci'])}"])
    header = ["variant", "lr", "loss before any update (train mode, all pairs)", "margin sd before any update",
              "logged loss step 1", f"logged loss step {meta['steps']}",
              f"accuracy after {meta['steps']} steps, train pairs (eval mode) [95% CI]", "margin, train pairs [95% CI]",
              "accuracy, held-out pairs [95% CI]", "margin, held-out pairs [95% CI]"]
    return "## DPO with attention dropout: reference with or without it\n\n" + table(header, rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "M0")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dropout_dpo.json")
    parser.add_argument("--train", type=int, default=32, help="training pairs (steps x batch covers them once)")
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-6, 5e-6])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--reference", type=Path,
                        help="reference log-probs a previous run saved (<out>.reference.json): not recomputed")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = oasst_pairs(args.data, args.train + args.held_out)
    data = {"train": rows[:args.train], "held_out": rows[args.train:]}
    if args.job:   # a subprocess: one job, its result as JSON on stdout's last line
        job = json.loads(args.job)
        if job["kind"] == "reference":
            result = job_reference(args.model, data, args.batch, args.max_length)
        else:
            result = job_run(args.model, data, job["reference"], job["variant"], job["lr"], args.steps, args.batch,
                             args.max_length)
        print(json.dumps(result))
        return

    def run(job: dict) -> dict:
        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--job", json.dumps(job)], cwd=REPO,
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"job {job.get('variant', 'reference')} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    meta = {"model": str(args.model), "data": str(args.data), "train_pairs": len(data["train"]),
            "held_out_pairs": len(data["held_out"]), "steps": args.steps, "batch": args.batch,
            "max_length": args.max_length, "beta": BETA, "lr_schedule": "linear to lr/10", "seed": 0,
            "machine": machine()}
    if args.reference:
        reference = json.loads(args.reference.read_text())
    else:
        reference = run({"kind": "reference"})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".reference.json").write_text(json.dumps(reference))
    results = []
    for lr in args.lr:
        for variant in args.variants:
            results.append(run({"kind": "run", "variant": variant, "lr": lr, "reference": reference}))
            print(json.dumps({k: results[-1][k] for k in ("variant", "lr", "step0_train_mode", "after_eval_mode")}),
                  flush=True)
            write_result(args.out, "dropout_dpo", section(results, meta), {"meta": meta, "runs": results})
    print(section(results, meta))


if __name__ == "__main__":
    main()
