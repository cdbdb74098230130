"""Per-user splits: determinism, no leakage, exact sizes, small users, leave-last-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_fixtures import random_interactions, write_canonical

from recsae.data.split import make_split
from recsae.data.tables import CanonicalTableError, load_split
from recsae.errors import DataError

PER_USER = np.array([20, 3, 7, 6, 12, 1, 30, 8])
SETTINGS = {"protocol": "random_holdout", "test_n": 5, "valid_n": 1}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    frame = random_interactions(len(PER_USER), 40, PER_USER)
    return write_canonical(tmp_path_factory.mktemp("canonical"), frame)


def split(data_dir, tmp_path, settings=SETTINGS, seed=0, name="split"):
    stats = make_split(data_dir, settings, seed, tmp_path / name)
    return stats, load_split(data_dir, tmp_path / name)


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"], frame["item"], strict=True))


def test_same_seed_same_split_other_seed_differs(data_dir, tmp_path):
    _, a = split(data_dir, tmp_path, name="a")
    _, b = split(data_dir, tmp_path, name="b")
    _, c = split(data_dir, tmp_path, seed=1, name="c")
    pd.testing.assert_frame_equal(a.test, b.test)
    pd.testing.assert_frame_equal(a.train, b.train)
    assert pairs(a.test) != pairs(c.test)


def test_no_leakage_and_partition(data_dir, tmp_path):
    stats, s = split(data_dir, tmp_path)
    train, valid, test = pairs(s.train), pairs(s.valid), pairs(s.test)
    assert not train & test and not train & valid and not valid & test
    all_pairs = pairs(pd.read_parquet(data_dir / "interactions.parquet"))
    assert train | valid | test == all_pairs
    assert stats["n_train"] + stats["n_valid"] + stats["n_test"] == len(all_pairs)


def test_exact_sizes_and_small_users_train_only(data_dir, tmp_path):
    stats, s = split(data_dir, tmp_path)
    eligible = np.flatnonzero(PER_USER >= 5 + 1 + 1)
    assert sorted(s.test["user"].unique()) == eligible.tolist()
    assert (s.test.groupby("user").size() == 5).all()
    assert (s.valid.groupby("user").size() == 1).all()
    assert stats["n_small_users"] == int((PER_USER < 7).sum())
    small = np.flatnonzero(PER_USER < 7)
    counts = s.train.groupby("user").size()
    assert all(counts[u] == PER_USER[u] for u in small)


def test_small_users_drop(data_dir, tmp_path):
    stats, s = split(data_dir, tmp_path, {**SETTINGS, "small_users": "drop"})
    small = set(np.flatnonzero(PER_USER < 7))
    assert not small & set(s.train["user"])
    assert stats["n_dropped_interactions"] == int(PER_USER[PER_USER < 7].sum())


def test_fractions(data_dir, tmp_path):
    settings = {**SETTINGS, "test_fraction": 0.2, "valid_fraction": 0.1}
    _, s = split(data_dir, tmp_path, settings)
    sizes = s.test.groupby("user").size()
    assert sizes[0] == 4 and sizes[6] == 6 and sizes[1] == 1  # 20 * .2, 30 * .2, max(1, .6)
    assert s.valid.groupby("user").size()[6] == 2  # round(.1 * 24)


def test_leave_last_out_takes_the_latest(data_dir, tmp_path):
    settings = {"protocol": "leave_last_out", "test_n": 2, "valid_n": 1}
    _, s = split(data_dir, tmp_path, settings)
    for user in np.flatnonzero(PER_USER >= 4):
        last_train = s.train.loc[s.train["user"] == user, "timestamp"].max()
        valid = s.valid.loc[s.valid["user"] == user, "timestamp"]
        test = s.test.loc[s.test["user"] == user, "timestamp"]
        assert len(test) == 2 and len(valid) == 1
        assert last_train < valid.min() and valid.max() < test.min()


def test_unknown_setting_and_bad_tables_are_rejected(data_dir, tmp_path):
    with pytest.raises(ValueError, match=r"split_settings: .*'tets_n' was unexpected"):
        make_split(data_dir, {**SETTINGS, "tets_n": 3}, 0, tmp_path / "x")
    bad = write_canonical(tmp_path / "bad", pd.DataFrame({"user": [0, 1], "item": [0, 1]}))
    pd.DataFrame({"user": [0, 0], "item": [0, 0], "rating": 1.0, "timestamp": 0}).to_parquet(
        bad / "interactions.parquet"
    )
    with pytest.raises(CanonicalTableError):
        make_split(bad, SETTINGS, 0, tmp_path / "y")


def test_vectorised_split_is_fast_at_scale(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items, n = 10_000, 3_000, 300_000
    codes = np.unique(rng.integers(0, n_users * n_items, size=n))
    frame = pd.DataFrame({"user": codes // n_items, "item": codes % n_items})
    data = write_canonical(tmp_path / "big", frame)
    stats, _ = split(data, tmp_path)
    assert stats["n_test"] == 5 * stats["n_eval_users"]


def test_split_without_any_user_to_evaluate_stops(data_dir, tmp_path):
    """Issue 13 item 9: a split that leaves no test user names the dataset, counts, settings."""
    with pytest.raises(DataError) as err:
        make_split(data_dir, {**SETTINGS, "min_train": 100}, 0, tmp_path / "x")
    message = str(err.value)
    assert message.startswith("test: the split leaves no user to evaluate: 8 users, 8 of them")
    assert "min_train=100" in message and "split settings" in message
    assert not (tmp_path / "x" / "test.parquet").exists()


def raw_ids(data_dir, entity: str) -> dict[int, str]:
    table = pd.read_parquet(data_dir / f"{entity}s.parquet")
    return dict(zip(table[entity], table["raw_id"].astype(str), strict=True))


def write_test_file(path, rows, header="user_id,item_id"):
    path.write_text(header + "\n" + "".join(f"{u},{i}\n" for u, i in rows))
    return path


def test_file_protocol_reads_the_test_pairs_and_draws_valid_from_the_rest(data_dir, tmp_path):
    """Every named pair (raw ids) is test, nothing else is; valid_n more per test user from its
    other interactions; users without a test row stay in train."""
    inter = pd.read_parquet(data_dir / "interactions.parquet")
    users, items = raw_ids(data_dir, "user"), raw_ids(data_dir, "item")
    chosen = inter.groupby("user").head(2)
    chosen = chosen[chosen["user"].isin([0, 2, 6])]
    rows = [(users[u], items[i]) for u, i in zip(chosen["user"], chosen["item"], strict=True)]
    test_file = write_test_file(tmp_path / "test.csv", rows)
    settings = {"protocol": "file", "test_file": str(test_file), "valid_n": 2}
    stats, s = split(data_dir, tmp_path, settings)
    assert pairs(s.test) == pairs(chosen)
    assert sorted(s.valid["user"].unique()) == [0, 2, 6]
    assert (s.valid.groupby("user").size() == 2).all()
    assert not pairs(s.valid) & pairs(s.test) and not pairs(s.train) & pairs(s.valid)
    assert pairs(s.train) | pairs(s.valid) | pairs(s.test) == pairs(inter)
    assert stats["n_eval_users"] == 3
    _, none = split(data_dir, tmp_path, {**settings, "valid_n": 0}, name="no_valid")
    assert none.valid.empty and pairs(none.test) == pairs(chosen)
    _, again = split(data_dir, tmp_path, settings, name="again")
    pd.testing.assert_frame_equal(again.valid, s.valid)


def test_file_protocol_keeps_min_train(data_dir, tmp_path):
    """User 1 has 3 interactions: 1 test, then at most 3 - 1 - min_train(1) = 1 valid."""
    inter = pd.read_parquet(data_dir / "interactions.parquet")
    users, items = raw_ids(data_dir, "user"), raw_ids(data_dir, "item")
    first = inter[inter["user"] == 1].iloc[0]
    test_file = write_test_file(tmp_path / "t.csv", [(users[1], items[int(first["item"])])])
    settings = {"protocol": "file", "test_file": str(test_file), "valid_n": 5}
    _, s = split(data_dir, tmp_path, settings)
    assert len(s.valid) == 1 and len(s.train[s.train["user"] == 1]) == 1


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown_user", "line 3: unknown user 'nobody'"),
        ("unknown_item", "line 2: unknown item 'no-item'"),
        ("repeat", "line 3: the pair"),
        ("never", "line 2: user"),
        ("header", "line 1: the header must be user_id,item_id"),
    ],
)
def test_file_protocol_refuses_bad_rows_naming_the_line(data_dir, tmp_path, case, message):
    inter = pd.read_parquet(data_dir / "interactions.parquet")
    users, items = raw_ids(data_dir, "user"), raw_ids(data_dir, "item")
    good = (users[0], items[int(inter[inter["user"] == 0]["item"].iloc[0])])
    unseen = sorted(set(items) - set(inter[inter["user"] == 0]["item"]))[0]
    rows, header = {
        "unknown_user": ([good, ("nobody", good[1])], "user_id,item_id"),
        "unknown_item": ([(good[0], "no-item")], "user_id,item_id"),
        "repeat": ([good, good], "user_id,item_id"),
        "never": ([(users[0], items[unseen])], "user_id,item_id"),
        "header": ([good], "user,item"),
    }[case]
    test_file = write_test_file(tmp_path / "bad.csv", rows, header)
    with pytest.raises(DataError, match=message) as err:
        split(data_dir, tmp_path, {"protocol": "file", "test_file": str(test_file)})
    assert str(test_file) in str(err.value) and "\n" not in str(err.value)


def test_exported_test_pairs_reproduce_the_split(data_dir, tmp_path):
    """``recsae export-test-pairs`` writes a split's test pairs in raw ids; protocol file on that
    file gives the same test set, and with valid_n 0 the same train set."""
    from recsae.cli import main

    settings = {"protocol": "random_holdout", "test_n": 2, "valid_n": 0}
    _, first = split(data_dir, tmp_path, settings, seed=4, name="first")
    out = tmp_path / "pairs.csv"
    args = ["export-test-pairs", "--data-dir", str(data_dir), "--out", str(out)]
    assert main([*args, "--split-dir", str(tmp_path / "first")]) == 0
    assert out.read_text().splitlines()[0] == "user_id,item_id"
    again_settings = {"protocol": "file", "test_file": str(out), "valid_n": 0}
    _, again = split(data_dir, tmp_path, again_settings, name="again")
    assert pairs(again.test) == pairs(first.test) and pairs(again.train) == pairs(first.train)


def _canonical(folder, frame, source):
    from recsae.data.prepare import prepare_raw
    from recsae.data.registry import RawData

    prepare_raw(RawData(interactions=frame.assign(rating=1.0)), {"source": source}, folder,
                dataset=source)  # fmt: skip
    return folder


def test_review_sources_default_to_leave_last_out(tmp_path):
    """With no split block, Amazon and Yelp data are split by time: each user's latest
    interaction is the test item, the one before it the validation item."""
    frame = random_interactions(len(PER_USER), 40, PER_USER, seed=3)
    for source in ("amazon2014", "amazon2018", "amazon2023", "yelp"):
        data = _canonical(tmp_path / source, frame, source)
        stats, s = split(data, tmp_path, settings={}, name=f"{source}-split")
        used = stats["config"]
        assert (used["protocol"], used["test_n"], used["valid_n"]) == ("leave_last_out", 1, 1)
        canonical = pd.read_parquet(data / "interactions.parquet")
        ranked = canonical.sort_values("timestamp", ascending=False).groupby("user")
        latest, second = ranked.nth(0), ranked.nth(1)
        evaluated = np.flatnonzero(PER_USER >= 3)
        assert stats["n_eval_users"] == len(evaluated)
        assert pairs(s.test) == pairs(latest[latest["user"].isin(evaluated)])
        assert pairs(s.valid) == pairs(second[second["user"].isin(evaluated)])


def test_config_keys_override_the_source_default_one_by_one():
    from recsae.data.split import resolve_split_settings

    full = resolve_split_settings({"test_n": 2}, "amazon2018")
    assert (full["protocol"], full["test_n"], full["valid_n"]) == ("leave_last_out", 2, 1)
    assert resolve_split_settings({}, "movielens")["protocol"] == "random_holdout"
    assert resolve_split_settings({}, "custom")["test_n"] == 5
    assert resolve_split_settings({"protocol": "random_holdout"}, "yelp")["test_n"] == 1


def test_workflow_passes_the_source_default_to_the_split_job():
    from recsae import workflow

    config = workflow.validate_config(
        {
            "datasets": {
                "gifts": {"source": "amazon2018", "category": "Gift_Cards"},
                "movies": {"source": "movielens", "variant": "ml-100k"},
                "fixed": {"source": "amazon2018", "category": "Books", "split": {"test_n": 3}},
            },
            "models": {"m": {"model": "mf"}},
        }
    )
    gifts, movies, fixed = (workflow.split_settings(config, d) for d in config["datasets"])
    assert (gifts["protocol"], gifts["test_n"], gifts["valid_n"]) == ("leave_last_out", 1, 1)
    assert (movies["protocol"], movies["test_n"]) == ("random_holdout", 5)
    assert (fixed["protocol"], fixed["test_n"]) == ("leave_last_out", 3)


def test_no_user_to_evaluate_names_the_settings_that_would_work(tmp_path):
    two_each = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": [0, 1, 1, 2, 0],
                             "timestamp": [1, 2, 3, 4, 5]})  # fmt: skip
    data = _canonical(tmp_path / "two", two_each, "yelp")
    with pytest.raises(DataError) as err:
        make_split(data, {}, 0, tmp_path / "x")
    message = str(err.value)
    assert "split.protocol=leave_last_out, test_n=1" in message
    assert "test_n: 1, valid_n: 0, min_train: 1} evaluates the 2 users with >= 2" in message
    assert "valid_n: 1," not in message  # no user has the 3 interactions that would need
    stats = make_split(data, {"valid_n": 0}, 0, tmp_path / "y")
    assert stats["n_eval_users"] == 2

    singles = pd.DataFrame({"user": [0, 1], "item": [0, 1], "timestamp": [1, 2]})
    data = _canonical(tmp_path / "one", singles, "yelp")
    with pytest.raises(DataError, match="every user has a single interaction"):
        make_split(data, {}, 0, tmp_path / "z")
