"""benchmarks/anchor_recbole.py (RecBole itself is not needed): the split written as RecBole's
atomic file keeps each user's valid and test item last, and RecBole's test scores land on the
suite's ids."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsae.data.tables import Split

REPO = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location("anchor", REPO / "benchmarks/anchor_recbole.py")
anchor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(anchor)


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def toy_split() -> Split:
    """User 0: train items 3 (t 5), 1 and 2 (both t 7), valid 4 (t 7), test 0 (t 9).
    User 1: train 2 (t 1), valid 0 (t 2), test 1 (t 2)."""
    train = frame([(0, 3, 1.0, 5), (0, 2, 1.0, 7), (0, 1, 1.0, 7), (1, 2, 1.0, 1)])
    valid = frame([(0, 4, 1.0, 7), (1, 0, 1.0, 2)])
    test = frame([(0, 0, 1.0, 9), (1, 1, 1.0, 2)])
    return Split(n_users=2, n_items=5, train=train, valid=valid, test=test)


def test_atomic_file_orders_train_then_valid_then_test(tmp_path):
    path = tmp_path / "d" / "d.inter"
    anchor.write_atomic(toy_split(), path)
    written = pd.read_csv(path, sep="\t")
    assert list(written.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    ordered = written.sort_values(["user_id:token", "timestamp:float"])
    sequences = ordered.groupby("user_id:token")["item_id:token"].apply(list).to_dict()
    # RecBole's leave-one-out takes the last item as test and the one before as valid
    assert sequences == {0: [3, 1, 2, 4, 0], 1: [2, 0, 1]}
    assert not written.duplicated(["user_id:token", "timestamp:float"]).any()


def test_recbole_scores_land_on_the_suites_ids(tmp_path):
    # RecBole's rows are users [1, 0] and its columns items [4, 0, 2, 1] (item 3 never seen)
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], dtype=np.float32)
    np.savez(tmp_path / "test_scores.npz", scores=scores, users=[1, 0], items=[4, 0, 2, 1])
    score_fn = anchor.recbole_score_fn(tmp_path, toy_split())
    got = score_fn(torch.tensor([0, 1]))
    expected = torch.tensor([[6.0, 8.0, 7.0, -torch.inf, 5.0], [2.0, 4.0, 3.0, -torch.inf, 1.0]])
    assert torch.equal(got, expected)
