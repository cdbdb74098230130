"""Loss terms of SAE training (docs/method.md, "Loss terms") as pure functions of tensors.

Shapes: N inputs, d embedding size, h latents, P scored pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RHO_HAT_CLAMP = 1e-6


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements (scalar)."""
    return F.mse_loss(x_hat, x)


def embedding_loss(
    u_hat: torch.Tensor, u: torch.Tensor, v_hat: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """L_emb = MSE(U~, U) + MSE(V~, V); users (Nu, d), items (Nv, d)."""
    return mse(u_hat, u) + mse(v_hat, v)


def matryoshka_embedding_loss(
    u_prefixes: list[torch.Tensor], u: torch.Tensor, v_prefixes: list[torch.Tensor], v: torch.Tensor
) -> torch.Tensor:
    """L_emb summed over nested prefixes: sum_m MSE(U~_m, U) + MSE(V~_m, V)."""
    return sum(embedding_loss(uh, u, vh, v) for uh, vh in zip(u_prefixes, v_prefixes, strict=True))


def score_mse(recon_scores: torch.Tensor, orig_scores: torch.Tensor) -> torch.Tensor:
    """MSE between logits on reconstructed and on original embeddings (any equal shapes)."""
    return mse(recon_scores, orig_scores.detach())


def soft_bce(recon_logits: torch.Tensor, orig_logits: torch.Tensor) -> torch.Tensor:
    """BCE of sigmoid(recon_logits) against the soft target sigmoid(orig_logits); (P,) -> scalar."""
    return F.binary_cross_entropy_with_logits(recon_logits, torch.sigmoid(orig_logits.detach()))


def pairwise_prediction_loss(
    recon_logits: torch.Tensor, orig_logits: torch.Tensor, kind: str = "bce"
) -> torch.Tensor:
    """L_pred of a pairwise scorer on P pairs: ``bce`` (soft target) or ``mse`` (on logits)."""
    if kind == "bce":
        return soft_bce(recon_logits, orig_logits)
    if kind == "mse":
        return score_mse(recon_logits, orig_logits)
    raise ValueError(f"sae config key 'pred_loss': {kind!r} is not one of ['bce', 'mse']")


def l1_loss(z: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean |z| over (N, h); with ``weights`` (h,) (decoder column norms) mean |z_j| * w_j."""
    a = z.abs()
    return (a * weights).mean() if weights is not None else a.mean()


def kl_sparsity_loss(z: torch.Tensor, rho: float) -> torch.Tensor:
    """sum_j KL(rho || rho_hat_j), rho_hat_j = mean_n z_nj clamped to [1e-6, 1 - 1e-6]; z (N, h)."""
    rho_hat = z.mean(dim=0).clamp(RHO_HAT_CLAMP, 1 - RHO_HAT_CLAMP)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def auxk_latents(pre_acts: torch.Tensor, dead: torch.Tensor, k_aux: int) -> torch.Tensor:
    """Each row's top-``k_aux`` ReLU pre-activations among dead latents, zeros elsewhere.

    pre_acts (N, h), dead (h,) bool -> (N, h)."""
    k = min(k_aux, pre_acts.shape[-1])
    masked = pre_acts.masked_fill(~dead, float("-inf"))
    top = masked.topk(k, dim=-1)
    return torch.zeros_like(pre_acts).scatter(-1, top.indices, F.relu(top.values))


def auxk_loss(aux_recon: torch.Tensor, residual: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
    """AuxK (Gao et al. 2024): MSE between the dead latents' reconstruction ``aux_recon`` (N, d)
    and the detached residual x - x_hat (N, d); exactly 0 when no latent is dead."""
    return mse(aux_recon, residual.detach()) * dead.any().to(residual.dtype)


def fraction_variance_unexplained(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over rows (N, d) -> scalar."""
    return (x - x_hat).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum().clamp_min(1e-12)
