"""Offline data parallelism for vLLM: one engine process per replica (`generation.vllm.data_parallel_size`).

vLLM's in-process `LLM` refuses data_parallel_size > 1, so each replica is a process of its own
("spawn") that builds an ordinary one-replica engine on devices no other replica uses: its
environment (CUDA_VISIBLE_DEVICES, or VLLM_CPU_OMP_THREADS_BIND on the CPU build) is set before
vLLM is imported there. The parent hands out tasks, one at a time per replica, to whichever is
free and gets each result back with its position. A replica that fails or dies raises an
SrlmError naming it; the pool is then stopped, never left waiting.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from multiprocessing.connection import wait
from typing import Callable, Iterator, Sequence

from ..errors import SrlmError


def replica_envs(replicas: int, tensor_parallel: int, *, gpus: Sequence[str] | None,
                 cores: Sequence[int]) -> list[dict[str, str]]:
    """Each replica's share of the machine: replica r takes GPUs r*tp .. r*tp+tp-1 of `gpus` (this
    process's visible ones), or, without GPUs, tp disjoint ranges of `cores`, one per tensor-parallel
    rank ("0,1|2,3": vLLM's CPU syntax)."""
    units = replicas * tensor_parallel
    if gpus is not None:
        if len(gpus) < units:
            raise SrlmError(f"generation.vllm: data_parallel_size {replicas} x tensor_parallel_size {tensor_parallel} "
                            f"needs {units} GPUs; this process sees {len(gpus)} ({','.join(gpus) or 'none'})")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[r * tensor_parallel:(r + 1) * tensor_parallel])}
                for r in range(replicas)]
    cores = sorted(cores)
    if len(cores) < units:
        raise SrlmError(f"generation.vllm: data_parallel_size {replicas} x tensor_parallel_size {tensor_parallel} "
                        f"needs at least {units} CPU cores; this process may use {len(cores)}")
    groups = [cores[len(cores) * i // units:len(cores) * (i + 1) // units] for i in range(units)]
    return [{"VLLM_CPU_OMP_THREADS_BIND": "|".join(",".join(map(str, g))
                                                   for g in groups[r * tensor_parallel:(r + 1) * tensor_parallel])}
            for r in range(replicas)]


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _serve(env: dict[str, str], start: Callable, start_args: tuple, stop: Callable, conn) -> None:
    """A replica: start the engine, then run (position, fn, args) tasks as fn(engine, *args) until
    told to stop (None) or the parent is gone."""
    os.environ.update(env)   # before the engine (and so vLLM) is started in this process
    try:
        engine = start(*start_args)
    except BaseException as exc:
        traceback.print_exc()
        conn.send(("error", None, _describe(exc)))
        return
    try:
        conn.send(("ready", None, None))
        while True:
            try:
                task = conn.recv()
            except EOFError:
                break
            if task is None:
                break
            position, fn, args = task
            try:
                result = ("done", position, fn(engine, *args))
            except Exception as exc:
                traceback.print_exc()
                result = ("error", position, _describe(exc))
            conn.send(result)
    except (BrokenPipeError, EOFError):
        pass
    finally:
        stop(engine)


class ReplicaPool:
    """`len(envs)` engine processes, replica r started with environment envs[r] as start(*start_args)
    and stopped with stop(engine). start, stop and every task function must be importable
    (module-level), as "spawn" pickles them by name."""

    def __init__(self, start: Callable, start_args: tuple, stop: Callable, envs: Sequence[dict[str, str]]):
        context = multiprocessing.get_context("spawn")
        self.envs = list(envs)
        self.procs, self.conns = [], []
        for r, env in enumerate(self.envs):
            parent, child = context.Pipe()
            # Not daemonic: a daemonic process may not start children, and vLLM starts its engine core.
            proc = context.Process(target=_serve, args=(env, start, start_args, stop, child),
                                   name=f"srlm-vllm-replica-{r}")
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        try:
            for r in range(len(self.procs)):
                self._receive(r)   # ("ready", ...) or an SrlmError
        except BaseException:
            self.close()
            raise

    def _name(self, r: int) -> str:
        return f"vLLM replica {r} ({', '.join(f'{k}={v}' for k, v in self.envs[r].items())})"

    def _receive(self, r: int):
        """Replica r's next message; an SrlmError when it reports an error or has died."""
        conn, proc = self.conns[r], self.procs[r]
        while True:
            ready = wait([conn, proc.sentinel])
            if conn in ready:   # read what it sent before looking at whether it exited
                try:
                    kind, position, value = conn.recv()
                except EOFError:
                    break
                if kind == "error":
                    raise SrlmError(f"{self._name(r)} failed: {value}")
                return position, value
            if proc.sentinel in ready:
                break
        proc.join(5)
        raise SrlmError(f"{self._name(r)} exited (exit code {proc.exitcode}) without a result")

    def imap(self, fn: Callable, calls: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        """fn(engine, *call) for each call, spread over the replicas; yields (position in calls,
        result) as each finishes. An error, or the caller leaving early, stops the pool (a replica
        still busy would hand its result to the next call)."""
        if not self.procs:
            raise SrlmError("the vLLM replicas are stopped")
        todo = iter(enumerate(calls))
        busy: set[int] = set()
        finished = False
        try:
            for r in range(len(self.procs)):
                if self._send(r, fn, todo):
                    busy.add(r)
            while busy:
                ready = wait([self.conns[r] for r in busy] + [self.procs[r].sentinel for r in busy])
                for r in sorted(busy):
                    if self.conns[r] in ready or self.procs[r].sentinel in ready:
                        yield self._receive(r)
                        if not self._send(r, fn, todo):
                            busy.discard(r)
            finished = True
        finally:
            if not finished:
                self.close()

    def _send(self, r: int, fn: Callable, todo: Iterator) -> bool:
        task = next(todo, None)
        if task is None:
            return False
        try:
            self.conns[r].send((task[0], fn, task[1]))
        except (BrokenPipeError, OSError):
            self._receive(r)   # it died: raises with its exit code
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Ask every replica to stop its engine and exit; terminate any that has not within `timeout` s."""
        for conn in self.conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            # Closed here too: a replica still sending a result nobody will read gets BrokenPipeError
            # and stops, rather than blocking on a full pipe (what it was sent before stays readable).
            conn.close()
        for proc in self.procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.procs, self.conns = [], []
