"""Multi-process training: a training stage re-runs itself under `accelerate launch`.

With `train.num_processes > 1` (or a `train.accelerate_config`) the stage script, started
plainly by `dvc repro`, runs `accelerate launch ... <the same script and arguments>` and
exits with its exit code. accelerate starts one process per rank (torchrun); each one finds
WORLD_SIZE/LOCAL_RANK in its environment, so it trains instead of launching again. HF
Trainer then does data parallel training (DDP; FSDP or DeepSpeed when the config says so;
gloo on a machine without CUDA). Only the main process writes the model, the metrics and
clears the journal (`training.finished_model`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

from ..errors import SrlmError
from ..hashing import sha256_file
from ..params import Params, TrainParams
from ..stage import run_stage

log = logging.getLogger(__name__)
LAUNCHER_PID = "SRLM_LAUNCHER_PID"   # the stage process that ran `accelerate launch`, for the ranks' check
MACHINE_RANK = "SRLM_MACHINE_RANK"   # this machine's rank in a multi-node run (`srlm join` sets it)
RAM_EFFICIENT = "FSDP_CPU_RAM_EFFICIENT_LOADING"   # set by accelerate from fsdp_cpu_ram_efficient_loading


def under_launcher() -> bool:
    """True inside a process started by a distributed launcher (accelerate launch, torchrun, mpirun)."""
    return "WORLD_SIZE" in os.environ or "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    return rank() == 0


def accelerate_shards_here() -> bool:
    """Whether accelerate shards a model with FSDP in this process when its config asks: on GPUs only.
    accelerate's AcceleratorState turns a CPU process group into plain data parallel (MULTI_CPU) whatever
    the config says. tests/fsdp_on_cpu lifts that rule and this one together to run FSDP2 on gloo."""
    import torch

    return torch.cuda.is_available()


def wants_launch(train: TrainParams) -> bool:
    return not under_launcher() and (train.num_processes > 1 or train.accelerate_config is not None)


def record(train: TrainParams) -> dict:
    """What the manifest (and the training journal's key) records of the run's processes: the number of
    processes that actually trained, and the accelerate config they were launched with."""
    config = None
    if under_launcher() and train.accelerate_config is not None:
        path = Path(train.accelerate_config)
        config = {"path": path.as_posix(), "sha256": sha256_file(path)}
    return {"num_processes": world_size(), "accelerate_config": config}


def machine_rank() -> str:
    """This machine's rank in a multi-node run: SRLM_MACHINE_RANK (`srlm join` sets it), else SLURM_NODEID (srun
    sets it on each node), else 0, the machine that runs `dvc repro`."""
    return os.environ.get(MACHINE_RANK) or os.environ.get("SLURM_NODEID") or "0"


def launch_command(train: TrainParams, argv: list[str]) -> list[str]:
    """`accelerate launch` for this script and arguments. Without a config file: plain data parallel over
    `num_processes` local processes. accelerate's `--multi_gpu` is its torchrun launcher; on a machine without
    CUDA the processes join with gloo on the CPU (`--cpu` would start a single process, and accelerate's
    MULTI_CPU setting needs mpirun). With a config for several machines, `num_processes` counts the processes
    of all of them and this machine's rank comes from machine_rank()."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(train.num_processes)]
    if train.accelerate_config is not None:
        cmd += ["--config_file", train.accelerate_config]
        if train.num_machines > 1:
            cmd += ["--machine_rank", machine_rank()]
    else:
        cmd += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", "0"]    # 0: a free port, so two runs on one machine do not collide
    return cmd + argv


def relaunch(train: TrainParams, name: str, argv: list[str] | None = None) -> int:
    """Run this stage under `accelerate launch` and return its exit code."""
    import torch  # only the launching process needs it here

    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    here = train.num_processes // train.num_machines
    if cuda_devices and here > cuda_devices:
        raise SrlmError(f"train.num_processes is {train.num_processes} on {train.num_machines} machine(s), {here} "
                        f"on each, but this machine has {cuda_devices} GPU(s); use one process per GPU")
    if not cuda_devices and here > (os.cpu_count() or 1):
        log.warning("%d training processes on %d CPU cores: processes will compete for cores", here,
                    os.cpu_count() or 1)
    cmd = launch_command(train, argv if argv is not None else sys.argv)
    where = f", machine {machine_rank()} of {train.num_machines}" if train.num_machines > 1 else ""
    log.info("training on %d processes (%s%s): %s", train.num_processes,
             f"{cuda_devices} GPU(s)" if cuda_devices else "CPU, gloo", where, " ".join(cmd[1:]))
    env = dict(os.environ, **{LAUNCHER_PID: str(os.getpid())})
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum, _frame):
        proc.send_signal(signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = proc.wait()
    if code != 0:
        print(f"[{name}] error: the {train.num_processes}-process training run failed (exit code {code}); "
              f"the first rank's error is above", file=sys.stderr)
    return code if code >= 0 else 128 - code


def _die_with_launcher() -> None:
    """torchrun starts each rank in a session of its own, so a SIGKILL to the stage's process group (a killed
    `dvc repro`) would not reach the ranks: they would train on and write the model behind DVC's back. Ask
    Linux to kill this rank when its launcher dies, and stop now if the stage process is already gone."""
    if sys.platform != "linux":
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    launcher = os.environ.get(LAUNCHER_PID)
    if launcher:
        try:
            os.kill(int(launcher), 0)
        except ProcessLookupError:
            sys.exit(1)
        except (PermissionError, ValueError):
            pass


def _as_rank(name: str) -> None:
    """Set up one rank of a multi-process run: log lines tagged with the rank (the other ranks log warnings and
    their own start only), each rank on its own GPU, and stop with the launcher."""
    n, r = world_size(), rank()
    _die_with_launcher()
    if n > 1:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logging.Formatter(f"[{name} rank {r}/{n}] %(message)s"))
        if r != 0:
            logging.getLogger().setLevel(logging.WARNING)
            log.setLevel(logging.INFO)
    import torch

    local = os.environ.get("LOCAL_RANK")
    if local is not None and torch.cuda.is_available():
        torch.cuda.set_device(int(local))   # the Trainer then places this rank's model on its own GPU
    if not accelerate_shards_here() and os.environ.get(RAM_EFFICIENT, "false").lower() == "true":
        # Without FSDP accelerate trains plain data parallel (launch.report warns), which needs the whole model
        # on every rank, not only on rank 0 (training.loading).
        os.environ[RAM_EFFICIENT] = "false"


def leave_process_group() -> None:
    """Destroy this rank's process group: every rank together after the last collective (training.finished_model),
    and once more, a no-op then, when the stage's work is done. Left to the interpreter's exit, gloo's worker
    threads can abort the process (SIGABRT, "terminate called without an active exception") after the model is
    written, and the launcher then fails the stage (pytorch/pytorch#190489; a bare 2-rank gloo script here: 3 of
    14 exits aborted without this, 0 of 12 with it). Together, because NCCL's teardown waits for every rank."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        log.info("left the process group")


def report(trainer, cfg) -> None:
    """One line per rank once the process group is up (backend, device), and the effective batch."""
    args = trainer.args
    if args.world_size <= 1:
        return
    state = trainer.accelerator.state
    log.info("rank %d of %d in the process group (%s, backend %s, device %s)", args.process_index,
             args.world_size, str(state.distributed_type).split(".")[-1], state.backend, args.device)
    if trainer.is_world_process_zero():
        for flag, enabled, what in (("ACCELERATE_USE_FSDP", trainer.is_fsdp_enabled, "FSDP"),
                                    ("ACCELERATE_USE_DEEPSPEED", trainer.is_deepspeed_enabled, "DeepSpeed")):
            if os.environ.get(flag, "false").lower() == "true" and not enabled:
                log.warning("the accelerate config asks for %s, but accelerate set up %s (it does not shard on "
                            "CPU): plain data parallel training", what, str(state.distributed_type).split(".")[-1])
        log.info("training on %d processes: effective batch %d x %d x %d = %d", args.world_size, cfg.batch_size,
                 cfg.grad_accum, args.world_size, cfg.batch_size * cfg.grad_accum * args.world_size)


def run_training_stage(name: str, body: Callable[[Params], object], params_path: str = "params.yaml") -> None:
    """run_stage for the training stages: launch the processes params ask for, or be one of them."""
    def start(params: Params):
        if wants_launch(params.train):
            sys.exit(relaunch(params.train, name))
        if not under_launcher():
            return body(params)
        _as_rank(name)
        result = body(params)
        leave_process_group()
        return result

    run_stage(name, start, params_path)
