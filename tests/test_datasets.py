"""Readers on tiny files in each upstream format, canonical preparation and its errors."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from data_fixtures import (
    amazon2018_files,
    amazon2023_files,
    lastfm_files,
    ml1m_files,
    ml100k_files,
    mlcsv_files,
    write_canonical,
    write_files,
    yelp_files,
)

from recsae.data.parsing import MalformedInputError
from recsae.data.prepare import prepare_dataset, prepare_raw
from recsae.data.registry import RawData, dataset_names, get_dataset
from recsae.data.tables import CanonicalTableError, validate_canonical


def prepare(tmp_path, files, settings, name="ds"):
    raw = write_files(tmp_path / "raw", files)
    stats = prepare_dataset(name, settings, raw, tmp_path / "data", seed=0)
    tables = {
        t: pd.read_parquet(tmp_path / "data" / f"{t}.parquet")
        for t in ("interactions", "items", "users", "concepts")
    }
    validate_canonical(tmp_path / "data")
    return stats, tables


def item_concepts(tables, raw_id, family):
    items, concepts = tables["items"], tables["concepts"]
    item = int(items.loc[items["raw_id"] == raw_id, "item"].iloc[0])
    rows = concepts[(concepts["entity"] == "item") & (concepts["id"] == item)]
    return sorted(rows.loc[rows["family"] == family, "concept"])


def test_registry_lists_every_source():
    assert {"movielens", "lastfm", "amazon2018", "amazon2023", "yelp", "synthetic"} <= set(
        dataset_names()
    )
    assert get_dataset("movielens").licence
    with pytest.raises(KeyError, match="unknown dataset source 'nope'"):
        get_dataset("nope")


def test_ml100k_latin1_items_genres_decades_users(tmp_path):
    stats, t = prepare(tmp_path, ml100k_files(), {"source": "movielens", "variant": "ml-100k"})
    assert (stats["n_users"], stats["n_items"], stats["n_interactions"]) == (2, 3, 4)
    assert stats["raw"]["n_items_catalogue"] == 4
    items = t["items"].set_index("raw_id")
    assert items.loc["10", "title"] == "Misérables, Les (1995)"
    assert items.loc["10", "popularity"] == 2 and items.loc["10", "year"] == 1995
    assert pd.isna(items.loc["30", "year"])
    assert item_concepts(t, "10", "genre") == ["Drama", "Romance"]
    assert item_concepts(t, "20", "decade") == ["1990s"]
    assert item_concepts(t, "30", "genre") == []  # the "unknown" flag is not a concept
    users = t["users"].set_index("raw_id")
    assert users.loc["2", "occupation"] == "other" and users.loc["1", "age"] == 24
    inter = t["interactions"]
    assert inter.dtypes.astype(str).to_dict() == {
        "user": "int64", "item": "int64", "rating": "float32", "timestamp": "int64"
    }  # fmt: skip


def test_ml1m_dat_files(tmp_path):
    stats, t = prepare(tmp_path, ml1m_files(), {"source": "movielens", "variant": "ml-1m"})
    assert stats["n_interactions"] == 3
    assert item_concepts(t, "661", "genre") == ["Animation", "Children's", "Musical"]
    assert item_concepts(t, "1193", "decade") == ["1970s"]
    users = t["users"].set_index("raw_id")
    assert users.loc["1", "occupation"] == "K-12 student" and users.loc["2", "age"] == 56
    assert t["users"].columns.tolist() == ["user", "raw_id", "age", "gender", "occupation"]


def test_movielens_csv_variant_quoted_titles(tmp_path):
    _, t = prepare(tmp_path, mlcsv_files(), {"source": "movielens", "variant": "ml-latest-small"})
    assert "American President, The (1995)" in set(t["items"]["title"])
    assert sorted(t["interactions"]["rating"]) == [2.5, 4.0, 4.5]
    assert set(t["concepts"]["concept"]) >= {"Comedy", "1990s"}


def test_lastfm_crlf_files_and_top_tags(tmp_path):
    stats, t = prepare(tmp_path, lastfm_files(), {"source": "lastfm", "top_tags": 2})
    assert (stats["n_users"], stats["n_items"], stats["n_interactions"]) == (2, 2, 3)
    assert stats["raw"]["n_items_catalogue"] == 3
    assert sorted(t["interactions"]["rating"]) == [5.0, 11690.0, 13883.0]
    assert (t["interactions"]["timestamp"] == 0).all()
    # artist 51: "new wave" twice, "metal" (id 1) and "café" (id 4) once: ties by tag id
    assert item_concepts(t, "51", "tag") == ["metal", "new wave"]
    assert item_concepts(t, "52", "tag") == ["trip-hop"]
    assert t["items"].set_index("raw_id").loc["51", "title"] == "Duran Duran"


def test_lastfm_threshold_on_play_counts(tmp_path):
    stats, _ = prepare(tmp_path, lastfm_files(), {"source": "lastfm", "min_rating": 100})
    assert stats["n_interactions"] == 2 and stats["raw"]["n_interactions"] == 3


def test_amazon2018_python_literal_meta(tmp_path):
    settings = {"source": "amazon2018", "category": "Toys"}
    stats, t = prepare(tmp_path, amazon2018_files("Toys"), settings)
    assert stats["n_interactions"] == 3
    assert item_concepts(t, "A1", "category") == ["Balls", "Sports"]  # root "Toys" left out
    assert item_concepts(t, "A1", "brand") == ["Acme"]
    assert item_concepts(t, "A2", "category") == ["Outdoor"]
    assert item_concepts(t, "A2", "brand") == []
    assert t["items"].set_index("raw_id").loc["A1", "year"] == 2012


def test_amazon2023_ms_timestamps_and_store(tmp_path):
    settings = {"source": "amazon2023", "category": "All_Beauty", "min_rating": 4}
    stats, t = prepare(tmp_path, amazon2023_files("All_Beauty"), settings)
    assert stats["n_interactions"] == 1
    assert t["interactions"]["timestamp"].tolist() == [1588687728]
    assert item_concepts(t, "B1", "brand") == ["Suds"]
    assert item_concepts(t, "B1", "category") == ["Skin"]


def test_yelp_reviews_and_categories(tmp_path):
    _, t = prepare(tmp_path, yelp_files(), {"source": "yelp"})
    assert sorted(t["interactions"]["timestamp"]) == [1325604498, 1531001351]
    assert item_concepts(t, "b1", "category") == ["Pizza", "Restaurants"]
    assert t["items"].set_index("raw_id").loc["b2", "title"] == "Dentist"


# --- preparation rules ----------------------------------------------------------------------


def _raw(rows):
    return RawData(interactions=pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]))


def test_dedup_keeps_latest_then_threshold(tmp_path):
    raw = _raw([("a", "x", 5, 1), ("a", "x", 2, 9), ("a", "y", 4, 3), ("b", "y", 5, 4)])
    stats = prepare_raw(raw, {"min_rating": 4}, tmp_path, dataset="d")
    inter = pd.read_parquet(tmp_path / "interactions.parquet")
    assert stats["after_dedup"]["n_interactions"] == 3
    assert len(inter) == 2 and stats["raw"]["n_interactions"] == 4


def test_iterative_kcore(tmp_path):
    # z and w have one user each; once they go, user c (2 items at first) has only x left
    rows = [(u, i, 1, 0) for u, i in ["ax", "ay", "az", "bx", "by", "cx", "cw"]]
    stats = prepare_raw(_raw(rows), {"kcore": {"user": 2, "item": 2}}, tmp_path, dataset="d")
    assert (stats["n_users"], stats["n_items"], stats["n_interactions"]) == (2, 2, 4)
    assert set(pd.read_parquet(tmp_path / "users.parquet")["raw_id"]) == {"a", "b"}
    assert set(pd.read_parquet(tmp_path / "items.parquet")["raw_id"]) == {"x", "y"}
    validate_canonical(tmp_path)


def test_empty_after_filtering_names_the_setting(tmp_path):
    raw = _raw([("a", "x", 1, 0), ("b", "y", 2, 0)])
    with pytest.raises(ValueError, match="min_rating=4"):
        prepare_raw(raw, {"min_rating": 4}, tmp_path, dataset="d")
    with pytest.raises(ValueError, match="kcore"):
        prepare_raw(raw, {"kcore": {"user": 5, "item": 0}}, tmp_path, dataset="d")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("u.data", "1\t10\t5\t1\n1\t2x\t5\t2\n", r"u\.data, line 2: field 'item'"),
        ("u.data", "1\t10\t5\t1\n2\t20\t3\n", r"u\.data, line 2: missing field 'timestamp'"),
        ("u.data", "1\t10\t5\t1\n\n3\t20\t3\t1\t9\n", r"u\.data, line 3: expected 4 fields"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, name, content, expected):
    files = ml100k_files() | {name: content.encode()}
    with pytest.raises(MalformedInputError, match=expected):
        prepare(tmp_path, files, {"source": "movielens", "variant": "ml-100k"})


def test_missing_csv_column_names_file(tmp_path):
    files = mlcsv_files() | {"ratings.csv": b"userId,movieId,timestamp\n1,1,5\n"}
    with pytest.raises(MalformedInputError, match=r"ratings\.csv, line 1.*missing column.*rating"):
        prepare(tmp_path, files, {"source": "movielens", "variant": "ml-latest-small"})


def test_malformed_json_line_names_file_and_line(tmp_path):
    settings = {"source": "amazon2018", "category": "Toys"}
    files = amazon2018_files("Toys")
    lines = gzip.decompress(files["Toys_5.json.gz"]).decode().splitlines()
    lines[1] = json.dumps({"reviewerID": "U1", "asin": "A2", "unixReviewTime": 200})
    bad_reviews = gzip.compress(("\n".join(lines) + "\n").encode())
    with pytest.raises(
        MalformedInputError, match=r"Toys_5\.json\.gz, line 2: missing key 'overall'"
    ):
        prepare(tmp_path / "a", files | {"Toys_5.json.gz": bad_reviews}, settings)
    bad_meta = gzip.compress(b'{"asin": "A1"}\n{not json\n')
    with pytest.raises(MalformedInputError, match=r"meta_Toys\.json\.gz, line 2"):
        prepare(tmp_path / "b", files | {"meta_Toys.json.gz": bad_meta}, settings)


def test_validate_canonical_rejects_hand_written_tables(tmp_path):
    data = write_canonical(tmp_path / "ok", pd.DataFrame({"user": [0, 1], "item": [0, 1]}))
    assert validate_canonical(data)["n_users"] == 2
    pd.DataFrame({"user": [0, 2], "item": [0, 1], "rating": 1.0, "timestamp": 0}).to_parquet(
        data / "interactions.parquet"
    )
    with pytest.raises(CanonicalTableError, match="interactions.parquet.*'user'"):
        validate_canonical(data)
    (data / "users.parquet").unlink()
    with pytest.raises(CanonicalTableError, match="users.parquet"):
        validate_canonical(data)


def test_concept_ids_of_another_type_are_reported(tmp_path):
    raw = _raw([(1, 10, 1, 0)])
    raw.concepts = pd.DataFrame(
        {"entity": ["item"], "raw_id": ["10"], "family": ["genre"], "concept": ["Drama"]}
    )
    with pytest.raises(ValueError, match="no item concept raw_id matches"):
        prepare_raw(raw, {}, tmp_path, dataset="d")


# --- issue 13: raw files from releases no one here prepared ---------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1\t10\t5\t1\n99999999999999999999\t20\t3\t2\n",
         r"u\.data, line 2: field 'user' is not a valid int: '99999999999999999999'"),
        ("1\t10\t5\t1\n2\t20\tnan\t2\n", r"u\.data, line 2: field 'rating' .*'nan'"),
        ("1\t10\t5\t1\n2\t20\tinf\t2\n", r"u\.data, line 2: field 'rating' .*'inf'"),
        ("", r"u\.data: the file is empty"),
    ],
)  # fmt: skip
def test_bad_numbers_and_empty_files_name_file_and_line(tmp_path, content, expected):
    """Item 7: overflowing ids, nan / inf ratings and an empty file name the file and line."""
    files = ml100k_files() | {"u.data": content.encode()}
    with pytest.raises(MalformedInputError, match=expected):
        prepare(tmp_path, files, {"source": "movielens", "variant": "ml-100k"})


def test_utf8_copy_of_a_latin1_file_is_read_correctly(tmp_path):
    """Item 7: a UTF-8 re-encoded u.item is detected, not garbled into 'MisÃ©rables'."""
    files = ml100k_files()
    files["u.item"] = files["u.item"].decode("latin-1").encode("utf-8")
    _, t = prepare(tmp_path, files, {"source": "movielens", "variant": "ml-100k"})
    assert "Misérables, Les (1995)" in set(t["items"]["title"])


def test_empty_json_lines_file_is_named(tmp_path):
    files = yelp_files() | {"yelp_academic_dataset_review.json": b""}
    with pytest.raises(MalformedInputError, match=r"review\.json: the file is empty"):
        prepare(tmp_path, files, {"source": "yelp"})


def test_reviews_without_metadata_are_counted(tmp_path):
    """Item 9: reviews whose business is not in the business file are counted in stats.json."""
    lines = yelp_files()["yelp_academic_dataset_review.json"].decode().splitlines()
    extra = json.loads(lines[0]) | {"review_id": "r3", "business_id": "gone", "user_id": "u3"}
    reviews = "\n".join([*lines, json.dumps(extra)]) + "\n"
    files = yelp_files() | {"yelp_academic_dataset_review.json": reviews.encode()}
    stats, _ = prepare(tmp_path, files, {"source": "yelp"})
    assert stats["n_interactions_without_metadata"] == 1
    assert json.loads((tmp_path / "data" / "stats.json").read_text())[
        "n_interactions_without_metadata"
    ] == 1
