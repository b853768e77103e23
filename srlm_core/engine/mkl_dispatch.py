"""Settle MKL's choice of kernel for each vector math function before threads race for it.

torch computes float unary ops (cos, sin, exp, sqrt, ...) with MKL's vector math library, one call per
intra-op thread on its chunk of the tensor. The MKL in the torch wheels (2024.2) picks each function's
kernel on that function's first call; when the first call runs on two threads at once, one of them can
run a low-accuracy kernel for its whole chunk (errors about 1e-4; pytorch/pytorch#188792, fixed upstream
by the same warm-up as here). In srlm this made a judge stage of the tiny model write other scores and
texts in 16 of 84 runs (about one in five): the rotary embedding's cos over a 281-token rubric (2,248 values, more than torch's
grain of 2,048, so two threads) came out 1.5e-4 off in the second thread's half (docs/open-work.md).
One call per function and precision on a one-element tensor runs on one thread and settles the choice
for the process; the results of every later call are unchanged.
"""

from __future__ import annotations

import functools

import torch

# The functions torch routes to MKL's vector math library (ATen/cpu/vml.h), in both precisions it routes.
VML_OPS = ("acos", "asin", "atan", "cos", "erf", "erfc", "erfinv", "exp", "log", "log10", "log2", "sin", "sqrt",
           "tan", "tanh", "trunc")


@functools.cache
def settle() -> None:
    """Call each MKL vector-math function once on one thread (once per process)."""
    for dtype in (torch.float32, torch.float64):
        x = torch.full((1,), 0.5, dtype=dtype)
        for op in VML_OPS:
            getattr(torch, op)(x)
