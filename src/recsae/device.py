"""Choose the torch device for a job."""

from __future__ import annotations

import torch


def resolve_device(requested: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else CPU; a ``torch.device`` is taken as it is.

    Which GPU a workflow job sees is decided by CUDA_VISIBLE_DEVICES, which the workflow sets from
    its GPU slot pool (an empty value for CPU-only jobs) and SLURM sets on a cluster.

    ``cpu`` or ``cuda[:N]`` force a device; asking for CUDA where there is none is an error.
    """
    if isinstance(requested, torch.device):
        return requested
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but torch sees no CUDA device")
    return device
