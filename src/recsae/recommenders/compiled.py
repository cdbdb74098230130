"""Compiled loops (numba): per-sample SGD for MF and BPR, LightGCN's BPR gradient, and the
negative sampler's membership checks.

``mf_epoch`` and ``bpr_epoch`` serve ``train.per_sample: true``. Each sample is one SGD step on
its own loss, taken in the epoch's shuffled order, exactly as ``optimizer: sgd`` with
``batch_size: 1`` would take it through autograd (tested), but at the speed of a compiled loop (the
algorithm of cornac's BPR). The tables are updated in place through NumPy views of the CPU
parameters; one thread, so the result depends only on the seed. Gradients of a sample are computed
from the rows as they were before its update. ``bpr_final_gradient`` serves LightGCN's
``train.analytic_gradients``.

These three return (summed loss, index of the first sample whose loss is not finite or -1) and
stop BEFORE using that sample, so a diverging run leaves the last finite state. They are compiled
with fast-math reassociation (sums split into SIMD lanes), so their last bits depend on the host's
instruction set, like ``cpu_kernels: native``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# LLVM fast-math flags that let sums be reassociated and vectorised but keep NaN and infinity
# semantics, so the finiteness check of each sample's loss is not optimised away (with "nsz"
# added, LLVM folds max(z, 0) - z * y into an expression that drops a NaN label; tested)
SAFE_FASTMATH = {"reassoc", "contract", "arcp"}


@numba.njit(cache=True, nogil=True, fastmath=SAFE_FASTMATH, error_model="numpy")
def mf_epoch(
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    global_bias: np.ndarray,
    learn_global: bool,
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    lr: float,
    reg: float,
) -> tuple[float, int]:
    """Logistic MF: tables (n_users, d), (n_items, d), biases (n_users,), (n_items,), global (1,);
    samples users, items (N,) int64 and labels (N,) float32. Loss per sample: BCE of
    z = b + b_u + b_i + p.q plus reg * (|p|^2 + |q|^2 + b_u^2 + b_i^2)."""
    dim = user_emb.shape[1]
    decay = np.float32(1.0 - 2.0 * lr * reg)
    total = 0.0
    for n in range(users.shape[0]):
        u, i, y = users[n], items[n], labels[n]
        z = global_bias[0] + user_bias[u] + item_bias[i]
        penalty = user_bias[u] * user_bias[u] + item_bias[i] * item_bias[i]
        for k in range(dim):
            z += user_emb[u, k] * item_emb[i, k]
            penalty += user_emb[u, k] * user_emb[u, k] + item_emb[i, k] * item_emb[i, k]
        tail = np.exp(-abs(z))
        loss = max(z, np.float32(0.0)) - z * y + np.log1p(tail) + np.float32(reg) * penalty
        if not math.isfinite(loss):
            return total, n
        total += loss
        error = (1.0 if z >= 0 else tail) / (1.0 + tail) - y
        step = np.float32(lr * error)
        for k in range(dim):
            p, q = user_emb[u, k], item_emb[i, k]
            user_emb[u, k] = decay * p - step * q
            item_emb[i, k] = decay * q - step * p
        user_bias[u] -= lr * (error + 2.0 * reg * user_bias[u])
        item_bias[i] -= lr * (error + 2.0 * reg * item_bias[i])
        if learn_global:
            global_bias[0] -= lr * error
    return total, -1


@numba.njit(cache=True, nogil=True, fastmath=SAFE_FASTMATH, error_model="numpy")
def bpr_epoch(
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    users: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    lr: float,
    reg: float,
) -> tuple[float, int]:
    """BPR: tables (n_users, d), (n_items, d); triples users, pos, neg (N,) int64. Loss per
    sample: -log sigmoid(u.(pos - neg)) + reg * (|u|^2 + |pos|^2 + |neg|^2)."""
    dim = user_emb.shape[1]
    decay = np.float32(1.0 - 2.0 * lr * reg)
    total = 0.0
    for n in range(users.shape[0]):
        u, i, j = users[n], pos[n], neg[n]
        x = np.float32(0.0)
        penalty = np.float32(0.0)
        for k in range(dim):
            w, p, q = user_emb[u, k], item_emb[i, k], item_emb[j, k]
            x += w * (p - q)
            penalty += w**2 + p**2
            penalty += q**2
        tail = np.exp(-abs(x))
        loss = max(-x, np.float32(0.0)) + np.log1p(tail) + np.float32(reg) * penalty
        if not math.isfinite(loss):
            return total, n
        total += loss
        # error = -sigmoid(-x): the derivative of the loss with respect to x
        step = np.float32(lr * (tail if x >= 0 else 1.0) / (1.0 + tail))
        for k in range(dim):
            w, p, q = user_emb[u, k], item_emb[i, k], item_emb[j, k]
            user_emb[u, k] = decay * w + step * (p - q)
            item_emb[i, k] = decay * p + step * w
            item_emb[j, k] = decay * q - step * w
    return total, -1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def row_contains(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Bool (N,): whether column cols[n] is stored in row rows[n] of a CSR matrix (indptr,
    indices with each row's columns sorted); a binary search within the row."""
    out = np.zeros(rows.shape[0], dtype=np.bool_)
    for n in range(rows.shape[0]):
        low, high, col = indptr[rows[n]], indptr[rows[n] + 1], cols[n]
        while low < high:
            mid = (low + high) // 2
            if indices[mid] < col:
                low = mid + 1
            else:
                high = mid
        out[n] = low < indptr[rows[n] + 1] and indices[low] == col
    return out


@numba.njit(cache=True, nogil=True)
def row_bitmap(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> np.ndarray:
    """The stored entries of a CSR matrix (indptr, indices) with n_cols columns as bits: entry
    (r, c) is bit (r * n_cols + c) % 64 of word (r * n_cols + c) // 64 of the uint64 result."""
    n_rows = indptr.shape[0] - 1
    bits = np.zeros((n_rows * n_cols + 63) // 64, dtype=np.uint64)
    for r in range(n_rows):
        for p in range(indptr[r], indptr[r + 1]):
            key = r * n_cols + indices[p]
            bits[key >> 6] |= np.uint64(1) << np.uint64(key & 63)
    return bits


@numba.njit(cache=True, nogil=True)
def bitmap_contains(
    bits: np.ndarray, n_cols: int, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Bool (N,): whether (rows[n], cols[n]) is set in a ``row_bitmap`` of n_cols columns."""
    out = np.empty(rows.shape[0], dtype=np.bool_)
    for n in range(rows.shape[0]):
        key = rows[n] * n_cols + cols[n]
        out[n] = (bits[key >> 6] >> np.uint64(key & 63)) & np.uint64(1)
    return out


@numba.njit(cache=True, nogil=True, fastmath=SAFE_FASTMATH, error_model="numpy")
def bpr_final_gradient(
    final: np.ndarray,
    users: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    grad_final: np.ndarray,
    counts: np.ndarray,
) -> tuple[float, int]:
    """Summed BPR loss -log sigmoid(x) of the triples users, pos, neg (B,) (rows of final, items
    offset by the number of users) on the final embeddings final (N, d); its gradient is ADDED to
    grad_final (N, d) and each row's occurrences in the triples to counts (N,) (for the L2 penalty,
    which the caller adds). Returns (loss, index of the first non-finite sample or -1; nothing is
    added for it or after it)."""
    dim = final.shape[1]
    total = 0.0
    for n in range(users.shape[0]):
        u, i, j = users[n], pos[n], neg[n]
        fu, fi, fj = final[u], final[i], final[j]
        x = np.float32(0.0)
        for k in range(dim):
            x += fu[k] * (fi[k] - fj[k])
        tail = np.exp(-abs(x))
        loss = max(-x, np.float32(0.0)) + np.log1p(tail)
        if not math.isfinite(loss):
            return total, n
        total += loss
        error = np.float32(-(tail if x >= 0 else 1.0) / (1.0 + tail))
        counts[u] += 1.0
        counts[i] += 1.0
        counts[j] += 1.0
        gu, gi, gj = grad_final[u], grad_final[i], grad_final[j]
        for k in range(dim):
            gu[k] += error * (fi[k] - fj[k])
            gi[k] += error * fu[k]
            gj[k] -= error * fu[k]
    return total, -1
