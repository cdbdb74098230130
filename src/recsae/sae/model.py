"""The sparse autoencoder: one module for every variant, whose activation the variant registry
(``recsae.sae.variants``) builds from ``SAEConfig``.

Shapes: N inputs, d = ``input_dim``, h = ``width``. Forward pass (the paper's SAE):

    x_s  = (x - input_min) / input_range              if input_scaling minmax, else x   (N, d)
    x_n  = (x_s - mean_row(x_s)) / std_row(x_s)       if standardize, else x_s    (N, d)
    pre  = (x_n - pre_bias) @ encoder_weight.T + latent_bias                     (N, h)
    z    = activation(pre)                            the variant's activation    (N, h)
    xh_n = z @ W_dec.T + pre_bias                     W_dec = encoder_weight.T if tied (d, h)
    xh_s = xh_n * std_row(x_s) + mean_row(x_s)        if standardize, else xh_n   (N, d)
    x_hat = xh_s * input_range + input_min            if input_scaling minmax, else xh_s

``pre_bias`` is a learned parameter, or a zero buffer with ``pre_bias: false`` (the authors' NCF
SAE: ``Linear(d, h)`` with bias, tied decoder without bias). ``input_min``/``input_range`` (d,)
exist only with ``input_scaling: minmax``: fitted once (``fit_input_scaling_``) on the SAE's
training embeddings, stored in the checkpoint and so applied identically in training,
evaluation and interventions. ``minmax_batch`` scales inside training only (``recsae.sae.train``)
and leaves the module's input unscaled, the authors' mismatch (docs/method.md).

The per-row statistics of x are not recoverable from z, so ``decode`` takes the ``InputStats``
that ``encode(x, return_stats=True)`` returns (required when the SAE standardises).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from recsae.errors import UserError
from recsae.io import load_torch, save_torch
from recsae.sae.config import SAEConfig
from recsae.sae.variants import VARIANTS

STD_EPS = 1e-6
CHECKPOINT_FORMAT = "recsae-sae-1"


@dataclass
class InputStats:
    """Per-row statistics removed by standardisation: mean (N, 1), std (N, 1)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __getitem__(self, rows) -> InputStats:
        return InputStats(self.mean[rows], self.std[rows])


@dataclass
class SAEOutput:
    """One forward pass. x_* are (N, d), z and pre_acts (N, h).

    ``x_hat`` is in the original embedding space; ``x_norm``/``x_hat_norm`` are the standardised
    input and its reconstruction (equal to x / x_hat when ``standardize`` is off).
    """

    z: torch.Tensor
    pre_acts: torch.Tensor
    x_hat: torch.Tensor
    x_norm: torch.Tensor
    x_hat_norm: torch.Tensor
    stats: InputStats | None


class SparseAutoencoder(nn.Module):
    """Sparse autoencoder on (N, input_dim) embeddings with ``width`` latents.

    Parameters: ``pre_bias`` (d,), ``encoder_weight`` (h, d), ``latent_bias`` (h,), and
    ``decoder_weight`` (d, h) when untied. Buffers: ``steps_since_active`` (h,) and, for
    BatchTopK, ``activation.threshold``. ``activation`` may be injected (a callable (N, h) ->
    (N, h)); checkpoints rebuild the one the config names.
    """

    def __init__(
        self,
        config: SAEConfig,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.config = config
        d, h = config.input_dim, config.width
        directions = torch.randn(d, h, generator=generator)
        directions = directions / directions.norm(dim=0, keepdim=True).clamp_min(STD_EPS)
        if config.pre_bias:
            self.pre_bias = nn.Parameter(torch.zeros(d))
        else:
            self.register_buffer("pre_bias", torch.zeros(d))
        if config.input_scaling == "minmax":
            self.register_buffer("input_min", torch.zeros(d))
            self.register_buffer("input_range", torch.ones(d))
        self.encoder_weight = nn.Parameter(directions.T.contiguous())
        self.latent_bias = nn.Parameter(torch.zeros(h))
        self.register_parameter(
            "decoder_weight", None if config.tied else nn.Parameter(directions.clone())
        )
        if activation is None:
            activation = VARIANTS[config.variant].make_activation(config)
        self.activation = activation
        self.register_buffer("steps_since_active", torch.zeros(h, dtype=torch.long))

    @property
    def input_dim(self) -> int:
        return self.config.input_dim

    @property
    def width(self) -> int:
        return self.config.width

    @property
    def decoder(self) -> torch.Tensor:
        """(d, h) decoder matrix: column j is latent j's direction (in standardised space)."""
        return self.encoder_weight.T if self.decoder_weight is None else self.decoder_weight

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings (N, d) -> the SAE's input space (N, d): per-column min-max with the fitted
        statistics under ``input_scaling: minmax``, else x itself."""
        if self.config.input_scaling != "minmax":
            return x
        return (x - self.input_min) / self.input_range

    def unscale(self, x_s: torch.Tensor) -> torch.Tensor:
        """Inverse of ``scale``: (N, d) in the SAE's input space -> embedding space."""
        if self.config.input_scaling != "minmax":
            return x_s
        return x_s * self.input_range + self.input_min

    @torch.no_grad()
    def fit_input_scaling_(self, x: torch.Tensor) -> None:
        """Fit ``input_min``/``input_range`` to the columns of x (N, d) (a constant column gets
        range 1); nothing unless ``input_scaling: minmax``."""
        if self.config.input_scaling == "minmax":
            low, high = x.min(dim=0).values, x.max(dim=0).values
            span = high - low
            self.input_min.copy_(low)
            self.input_range.copy_(torch.where(span > 0, span, torch.ones_like(span)))

    def standardize(self, x: torch.Tensor) -> tuple[torch.Tensor, InputStats | None]:
        """(N, d) -> standardised (N, d) and the stats that undo it (None when off)."""
        if not self.config.standardize:
            return x, None
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True, unbiased=False) + STD_EPS
        return (x - mean) / std, InputStats(mean, std)

    def pre_activations(self, x_norm: torch.Tensor) -> torch.Tensor:
        """Standardised (N, d) -> pre-activations (N, h)."""
        return F.linear(x_norm - self.pre_bias, self.encoder_weight, self.latent_bias)

    def encode(self, x: torch.Tensor, return_stats: bool = False):
        """(N, d) -> latents z (N, h); with ``return_stats`` also the InputStats for ``decode``.

        In eval mode BatchTopK uses its inference threshold."""
        x_norm, stats = self.standardize(self.scale(x))
        z = self.activation(self.pre_activations(x_norm))
        return (z, stats) if return_stats else z

    def decode_norm(self, z: torch.Tensor) -> torch.Tensor:
        """(N, h) -> reconstruction (N, d) in the standardised space."""
        return z @ self.decoder.T + self.pre_bias

    def unstandardize(self, x_norm: torch.Tensor, stats: InputStats | None) -> torch.Tensor:
        """Standardised (N, d) -> original space (N, d)."""
        if not self.config.standardize:
            return x_norm
        if stats is None:
            raise ValueError(
                "this SAE standardises its inputs (sae config key 'standardize'); pass the stats "
                "from encode(x, return_stats=True) to decode"
            )
        return x_norm * stats.std + stats.mean

    def decode(self, z: torch.Tensor, stats: InputStats | None = None) -> torch.Tensor:
        """Latents (N, h) -> reconstruction (N, d) in the original embedding space."""
        return self.unscale(self.unstandardize(self.decode_norm(z), stats))

    def decode_direction(self, z: torch.Tensor, stats: InputStats | None = None) -> torch.Tensor:
        """The linear part of ``decode`` (no biases, no mean): (N, h) -> (N, d), at the scale of
        the SAE's input space (``scale``)."""
        out = z @ self.decoder.T
        return out if stats is None or not self.config.standardize else out * stats.std

    def decode_prefixes(
        self, z: torch.Tensor, stats: InputStats | None = None
    ) -> list[torch.Tensor]:
        """Matryoshka reconstructions from each nested prefix of latents: a list of (N, d) in the
        SAE's input space, one per entry of ``config.prefix_sizes`` (the last uses every latent)."""
        sizes = self.config.prefix_sizes or (self.width,)
        bounds = (0, *sizes)
        parts = torch.stack(
            [z[:, a:b] @ self.decoder[:, a:b].T for a, b in zip(bounds, bounds[1:], strict=False)]
        )
        partial = parts.cumsum(dim=0) + self.pre_bias
        return [self.unstandardize(p, stats) for p in partial]

    def forward(self, x: torch.Tensor) -> SAEOutput:
        """(N, d) -> SAEOutput (z, pre-activations, reconstruction in both spaces, stats)."""
        out = self.forward_scaled(self.scale(x))
        out.x_hat = self.unscale(out.x_hat)
        return out

    def forward_scaled(self, x: torch.Tensor) -> SAEOutput:
        """``forward`` on inputs (N, d) already in the SAE's input space (``scale``); ``x_hat``
        stays in that space. Training calls it so that its losses are computed there."""
        x_norm, stats = self.standardize(x)
        pre_acts = self.pre_activations(x_norm)
        z = self.activation(pre_acts)
        x_hat_norm = self.decode_norm(z)
        return SAEOutput(
            z, pre_acts, self.unstandardize(x_hat_norm, stats), x_norm, x_hat_norm, stats
        )

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Untied with ``normalize_decoder == "unit_norm"``: rescale decoder columns to norm 1."""
        if self.decoder_weight is not None and self.config.normalize_decoder == "unit_norm":
            norms = self.decoder_weight.norm(dim=0, keepdim=True).clamp_min(STD_EPS)
            self.decoder_weight.div_(norms)

    def l1_weights(self) -> torch.Tensor | None:
        """(h,) decoder column norms when the L1 penalty is weighted by them, else None."""
        if self.decoder_weight is not None and self.config.normalize_decoder == "weighted_l1":
            return self.decoder_weight.norm(dim=0)
        return None

    @torch.no_grad()
    def update_activity(self, active: torch.Tensor) -> None:
        """Record one training step: ``active`` (h,) bool marks latents that fired in it."""
        self.steps_since_active.add_(1).masked_fill_(active, 0)

    def dead_mask(self, dead_steps_threshold: int) -> torch.Tensor:
        """(h,) bool: latents inactive for at least ``dead_steps_threshold`` steps."""
        return self.steps_since_active >= dead_steps_threshold

    @torch.no_grad()
    def init_pre_bias_(self, x: torch.Tensor) -> None:
        """Set a learned pre-bias to the mean of the standardised inputs x (N, d), given in the
        SAE's input space; a fixed (``pre_bias: false``) one stays zero."""
        if self.config.pre_bias:
            self.pre_bias.copy_(self.standardize(x)[0].mean(dim=0))


def build_sae(config: SAEConfig, seed: int | None = None) -> SparseAutoencoder:
    """A freshly initialised SAE; ``seed`` fixes the initial weights."""
    gen = None
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
    return SparseAutoencoder(config, generator=gen)


def save_sae(sae: SparseAutoencoder, path: str | Path, extra: dict | None = None) -> None:
    """Write state_dict + config (+ ``extra``: plain JSON-like values) atomically; the file loads
    with ``torch.load(weights_only=True)``."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": sae.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in sae.state_dict().items()},
        "extra": extra or {},
    }
    save_torch(path, payload)


def load_sae(path: str | Path, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Rebuild an SAE written by ``save_sae``, in eval mode, on ``device``; a sweep point of a
    non-SAE method (``recsae.methods.save_method``) comes back as that method's module, which has
    the same ``encode``/``decode``."""
    payload = load_torch(path, "SAE checkpoint", device)
    from recsae.methods import CHECKPOINT_FORMAT as METHOD_FORMAT
    from recsae.methods import method_from_payload

    if payload.get("format") == METHOD_FORMAT:
        return method_from_payload(payload, device)
    if payload.get("format") != CHECKPOINT_FORMAT:
        kind = "a recommender's model.pt" if "n_users" in payload else "no SAE format"
        raise UserError(f"{path} is not an SAE checkpoint ({kind})")
    sae = SparseAutoencoder(SAEConfig.from_dict(payload["config"]))
    sae.load_state_dict(payload["state_dict"])
    return sae.to(device).eval()


def load_sae_extra(path: str | Path) -> dict:
    """The ``extra`` dict stored by ``save_sae`` (training config, point id, seed)."""
    return load_torch(path, "SAE checkpoint").get("extra", {})
