"""Bring-your-own factor model: user and item matrices (and optional biases) from files, scored by
dot product; nothing to train.

Files (params): ``user_path`` (n_users, d) and ``item_path`` (n_items, d) as ``.npy`` or
``.parquet``; optional ``user_bias_path`` (n_users,), ``item_bias_path`` (n_items,) and a float
``global_bias``. A parquet matrix has either numeric columns (one per dimension) or a single list
column; an integer column named ``id``, ``user`` or ``item`` orders the rows (it must hold
0..n-1). The loaded values are buffers, so the checkpoint is self-contained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsae.errors import DataError
from recsae.recommenders.base import DotRecommender, register

_ID_COLUMNS = ("id", "user", "item")
_PATH_PARAMS = ("user_path", "item_path", "user_bias_path", "item_bias_path")


def read_array(path: str | Path, n_rows: int, key: str) -> np.ndarray:
    """A float32 array with ``n_rows`` rows from a .npy or .parquet file (``key`` names the param
    in errors): (n_rows, d) for a matrix file, (n_rows,) for a single-column/1-D bias file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings: {key} file {path} does not exist")
    if path.suffix == ".npy":
        npy_shape(path, key)
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"embeddings: {key} file {path} is not a readable .npy: {err}") from err
    elif path.suffix == ".parquet":
        array = _parquet_array(path, key)
    else:
        raise ValueError(f"embeddings: {key} file {path} must end in .npy or .parquet")
    array = np.array(array, dtype=np.float32)
    if array.ndim == 2 and array.shape[1] == 1 and key.endswith("bias_path"):
        array = array[:, 0]
    if array.shape[0] != n_rows:
        raise ValueError(
            f"embeddings: {key} file {path} has {array.shape[0]} rows, expected {n_rows}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"embeddings: {key} file {path} holds NaN or inf values")
    return array


def npy_shape(path: Path, key: str) -> tuple[int, ...]:
    """The shape in a .npy file's header, after checking that the file holds all the bytes the
    header announces (a truncated or damaged file raises DataError naming it)."""
    size = path.stat().st_size
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(
            f"embeddings: {key} file {path} is damaged or truncated ({size} bytes; {err}); "
            "write it again"
        ) from err
    expected = getattr(array, "offset", 0) + array.nbytes
    if size != expected:
        raise DataError(
            f"embeddings: {key} file {path} is damaged or truncated ({size} bytes, its header "
            f"announces {expected}); write it again"
        )
    shape = array.shape
    return tuple(int(n) for n in shape)


def _parquet_array(path: Path, key: str) -> np.ndarray:
    frame = pd.read_parquet(path)
    id_cols = [c for c in frame.columns if c in _ID_COLUMNS]
    if id_cols:
        ids = frame[id_cols[0]].to_numpy()
        if not np.array_equal(np.sort(ids), np.arange(len(frame))):
            raise ValueError(f"embeddings: {key} file {path}: column {id_cols[0]!r} is not 0..n-1")
        frame = frame.drop(columns=id_cols).iloc[np.argsort(ids, kind="stable")]
    if len(frame.columns) == 1 and frame[frame.columns[0]].dtype == object:
        return np.stack(frame[frame.columns[0]].to_numpy())
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ValueError(f"embeddings: {key} file {path}: non-numeric columns {non_numeric}")
    return frame.to_numpy()


@register("embeddings")
class Embeddings(DotRecommender):
    """Buffers: user_emb (n_users, dim), item_emb (n_items, dim), user_bias (n_users,) and
    item_bias (n_items,) when given, global_bias ()."""

    objective = None
    default_params = {
        "dim": None,
        "user_path": None,
        "item_path": None,
        "user_bias_path": None,
        "item_bias_path": None,
        "global_bias": 0.0,
    }
    default_train = {"epochs": 0}
    param_schema = {
        "dim": {"type": ["integer", "null"], "minimum": 1},
        **{key: {"type": ["string", "null"]} for key in _PATH_PARAMS},
        "global_bias": {"type": "number"},
    }

    def __init__(self, n_users: int, n_items: int, params: dict):
        super().__init__(n_users, n_items, params)
        dim = int(params["dim"])
        self.register_buffer("user_emb", torch.zeros(n_users, dim))
        self.register_buffer("item_emb", torch.zeros(n_items, dim))
        self.register_buffer("global_bias", torch.tensor(float(params.get("global_bias", 0.0))))
        self.register_buffer(
            "user_bias", torch.zeros(n_users) if params.get("user_bias_path") else None
        )
        self.register_buffer(
            "item_bias", torch.zeros(n_items) if params.get("item_bias_path") else None
        )

    @classmethod
    def embedding_dim(cls, params: dict) -> int | None:
        """``dim``, else the column count of an existing ``user_path`` file (None if absent).
        Config validation calls this, so every existing .npy file is checked here (``npy_shape``)
        before any job."""
        for key in _PATH_PARAMS:
            other = Path(params[key]) if params.get(key) else None
            if other is not None and other.suffix == ".npy" and other.is_file():
                npy_shape(other, key)
        path = Path(params["user_path"]) if params.get("user_path") else None
        if params.get("dim") is not None or path is None or not path.is_file():
            return params.get("dim")
        if path.suffix == ".npy":
            shape = npy_shape(path, "user_path")
        else:
            shape = _parquet_array(path, "user_path").shape
        return int(shape[1]) if len(shape) == 2 else None

    @classmethod
    def build(cls, n_users: int, n_items: int, params: dict) -> Embeddings:
        """Load the files named in params; ``dim`` is set from the files."""
        for key in ("user_path", "item_path"):
            if not params.get(key):
                raise KeyError(f"embeddings: params need {key!r} (a .npy or .parquet file)")
        users = read_array(params["user_path"], n_users, "user_path")
        items = read_array(params["item_path"], n_items, "item_path")
        if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
            raise ValueError(
                f"embeddings: user matrix {users.shape} and item matrix {items.shape} must be 2-D "
                "with the same number of columns"
            )
        model = cls(n_users, n_items, {**params, "dim": int(users.shape[1])})
        model.user_emb.copy_(torch.from_numpy(users))
        model.item_emb.copy_(torch.from_numpy(items))
        for key, buffer, n in (
            ("user_bias_path", model.user_bias, n_users),
            ("item_bias_path", model.item_bias, n_items),
        ):
            if params.get(key):
                bias = read_array(params[key], n, key)
                if bias.ndim != 1:
                    raise ValueError(f"embeddings: {key} file {params[key]} must be 1-D")
                buffer.copy_(torch.from_numpy(bias))
        return model

    def user_embeddings(self) -> torch.Tensor:
        return self.user_emb

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb

    def bias_terms(self) -> dict[str, torch.Tensor]:
        terms = {"global_bias": self.global_bias}
        if self.user_bias is not None:
            terms["user_bias"] = self.user_bias
        if self.item_bias is not None:
            terms["item_bias"] = self.item_bias
        return terms

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise RuntimeError("embeddings: a bring-your-own model has nothing to train")
