"""The replica pool behind generation.vllm.data_parallel_size > 1, with a stand-in engine (no vLLM):
device split, results in order, a failing or dying replica named in an SrlmError, close()."""

from __future__ import annotations

import os
import time

import pytest

from srlm_core.engine.vllm_replicas import ReplicaPool, replica_envs
from srlm_core.errors import SrlmError


def start(name: str, fail: bool = False) -> dict:
    if fail and os.environ["REPLICA"] == "1":
        raise RuntimeError("no memory for the KV cache")
    return {"name": name, "replica": os.environ["REPLICA"], "pid": os.getpid()}


def stop(engine: dict) -> None:
    pass


def work(engine: dict, x: int) -> tuple:
    time.sleep(0.05 * (x % 3))   # finish out of order
    return engine["replica"], engine["pid"], x * x


def broken(engine: dict, x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


def dies(engine: dict, x: int) -> int:
    if engine["replica"] == "1":
        os._exit(3)
    time.sleep(0.2)
    return x


def test_replica_envs_split_devices():
    assert replica_envs(2, 1, gpus=None, cores=[1, 0]) == [{"VLLM_CPU_OMP_THREADS_BIND": "0"},
                                                           {"VLLM_CPU_OMP_THREADS_BIND": "1"}]
    assert replica_envs(2, 2, gpus=None, cores=range(9)) == [{"VLLM_CPU_OMP_THREADS_BIND": "0,1|2,3"},
                                                             {"VLLM_CPU_OMP_THREADS_BIND": "4,5|6,7,8"}]
    assert replica_envs(2, 2, gpus=["3", "5", "6", "7", "9"], cores=[]) == [{"CUDA_VISIBLE_DEVICES": "3,5"},
                                                                           {"CUDA_VISIBLE_DEVICES": "6,7"}]
    with pytest.raises(SrlmError, match="needs 4 GPUs; this process sees 3"):
        replica_envs(2, 2, gpus=["0", "1", "2"], cores=range(64))
    with pytest.raises(SrlmError, match="needs at least 3 CPU cores"):
        replica_envs(3, 1, gpus=None, cores=[0, 1])


def pool(**kw) -> ReplicaPool:
    return ReplicaPool(start, ("m", kw.get("fail", False)), stop, [{"REPLICA": "0"}, {"REPLICA": "1"}])


def test_results_in_order_from_both_replicas():
    p = pool()
    try:
        out = dict(p.imap(work, [(x,) for x in range(10)]))
        assert [out[i][2] for i in range(10)] == [x * x for x in range(10)]
        assert {out[i][0] for i in range(10)} == {"0", "1"}      # both replicas worked
        assert len({out[i][1] for i in range(10)}) == 2          # in two processes
        assert [r[2] for _, r in p.imap(work, [(4,)])] == [16]     # the pool is reusable
        procs = list(p.procs)
    finally:
        p.close()
    assert not any(proc.is_alive() for proc in procs) and not p.procs


def test_failing_start_names_the_replica():
    with pytest.raises(SrlmError, match=r"vLLM replica 1 \(REPLICA=1\) failed: RuntimeError: no memory"):
        pool(fail=True)


def test_failing_task_names_the_replica_and_stops_the_pool():
    p = pool()
    procs = list(p.procs)
    with pytest.raises(SrlmError, match=r"vLLM replica \d \(REPLICA=\d\) failed: ValueError: bad input 3"):
        list(p.imap(broken, [(x,) for x in range(6)]))
    assert not p.procs and not any(proc.is_alive() for proc in procs)
    with pytest.raises(SrlmError, match="stopped"):
        list(p.imap(work, [(1,)]))


def test_dead_replica_raises_instead_of_hanging():
    p = pool()
    with pytest.raises(SrlmError, match=r"vLLM replica 1 \(REPLICA=1\) exited \(exit code 3\)"):
        list(p.imap(dies, [(x,) for x in range(4)]))
    assert not p.procs
