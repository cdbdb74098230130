"""Memory estimates of the recommender and SAE jobs, checked against the machine's memory before
anything is allocated: at config validation where the sizes are known, and at each job's start.
The estimates count float32 parameters four times (weights, gradients, Adam's two moments) and,
for an SAE, a batch's activations; they are lower bounds, so a refusal is certain to be right."""

from __future__ import annotations

import os

from recsae.errors import UserError

FLOAT_BYTES = 4
TRAINING_COPIES = 4  # weights, gradients and Adam's two moments


def machine_memory() -> int | None:
    """Physical memory of this machine in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def recommender_bytes(n_users: int, n_items: int, dim: int) -> int:
    """Training memory of (n_users + n_items, dim) embedding tables."""
    return FLOAT_BYTES * TRAINING_COPIES * (n_users + n_items) * dim


def sae_bytes(input_dim: int, width: int, batch_size: int, tied: bool) -> int:
    """Training memory of an SAE (input_dim -> width, a second decoder matrix unless ``tied``)
    with a batch's pre-activations, activations and their gradients (batch_size, width)."""
    params = input_dim * width * (1 if tied else 2) + width + input_dim
    return FLOAT_BYTES * (TRAINING_COPIES * params + 3 * batch_size * width)


def check_fits(needed: int, what: str, setting: str, available: int | None = None) -> None:
    """Raise a UserError naming ``what`` and the ``setting`` to lower when ``needed`` bytes
    exceed ``available`` (default: the machine's memory)."""
    available = machine_memory() if available is None else available
    if available and needed > available:
        raise UserError(
            f"{what} needs at least {needed / 2**30:,.1f} GiB of memory, more than this "
            f"machine's {available / 2**30:,.1f} GiB; lower {setting}"
        )
