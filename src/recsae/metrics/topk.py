"""Top-k selection whose ties go to the lower index (item id), on every machine.

``torch.topk`` leaves the order of equal values to its implementation, which can differ between
CPU kernels, thread counts and devices; an NCF whose ReLUs are all off for several items gives those
items the same score, so such ties are common. Every ranking of the suite that keeps a top-k list
selects it here.
"""

from __future__ import annotations

import torch


def topk_by_id(x: torch.Tensor, k: int, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the k largest entries of ``x`` along ``dim``, best first; equal
    values in ascending index order. Same shapes as ``torch.topk``; NaN ranks above everything,
    as in ``torch.sort``."""
    values, indices = torch.sort(x, dim=dim, descending=True, stable=True)
    return values.narrow(dim, 0, k), indices.narrow(dim, 0, k)
