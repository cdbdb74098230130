"""Every random choice in the suite takes its seed from config through these helpers."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    deterministic_algorithms()


def deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without its import of torch's
    compiler stack (``torch._inductor``, 1.4 s of CPU per job): torch's own switch is set
    directly, and the compiler, which the suite never uses, reads TORCHINDUCTOR_DETERMINISTIC if
    something imports it later. Falls back to the public call where torch lacks the switch."""
    switch = getattr(torch._C, "_set_deterministic_algorithms", None)
    if switch is None:
        torch.use_deterministic_algorithms(True, warn_only=True)
        return
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1"
    if "torch._inductor.config" in sys.modules:
        sys.modules["torch._inductor.config"].deterministic = True
    switch(True, warn_only=True)


def numpy_rng(seed: int, *stream: int | str) -> np.random.Generator:
    """An independent NumPy generator for ``seed`` and a named sub-stream.

    ``numpy_rng(0, "split")`` and ``numpy_rng(0, "negatives", epoch)`` never share draws.
    """
    keys = [seed] + [_stream_key(s) for s in stream]
    return np.random.default_rng(np.random.SeedSequence(keys))


def torch_generator(
    seed: int, *stream: int | str, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A torch generator seeded from ``seed`` and a named sub-stream (see ``numpy_rng``)."""
    sub_seed = int(numpy_rng(seed, *stream).integers(0, 2**63 - 1))
    gen = torch.Generator(device=device)
    gen.manual_seed(sub_seed)
    return gen


def _stream_key(part: int | str) -> int:
    if isinstance(part, int):
        return part
    return int.from_bytes(part.encode("utf-8")[:16].ljust(16, b"\0"), "little") % (2**63)
