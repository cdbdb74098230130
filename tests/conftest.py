"""Shared test settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests use tiny tensors: one intra-op thread is faster, and immune to busy neighbouring
    cores. The previous thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A synthetic dataset, its split, an MF recommender and one SAE, written by the stages."""
    from recsae.stages import data, recommender, sae

    root = tmp_path_factory.mktemp("tiny")
    settings = {"source": "synthetic", "n_users": 60, "n_items": 40, "interactions_per_user": 12}
    data.prepare(settings, dataset="tiny", raw_dir=str(root / "raw"), out_dir=str(root / "data"),
                 seed=0)  # fmt: skip
    data.split({"test_n": 2, "valid_n": 1}, data_dir=str(root / "data"),
               out_dir=str(root / "split"), seed=0)  # fmt: skip
    dirs = {"data_dir": str(root / "data"), "split_dir": str(root / "split")}
    recommender.train({"model": "mf", "params": {"dim": 8}, "train": {"epochs": 1}},
                      out_dir=str(root / "mf"), seed=0, device="cpu", **dirs)  # fmt: skip
    sae.train({"expansion": 2, "epochs": 1}, model_path=str(root / "mf/model.pt"),
              point_id="tiny/mf/default", out_dir=str(root / "sae"), seed=0, device="cpu",
              **dirs)  # fmt: skip
    return {"root": root, "data": root / "data", "split": root / "split",
            "model": root / "mf/model.pt", "sae": root / "sae/sae.pt"}  # fmt: skip
