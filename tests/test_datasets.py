"""Readers on tiny files in each upstream format, canonical preparation and its errors."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from data_fixtures import (
    amazon2014_files,
    amazon2018_files,
    amazon2018_product_files,
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
    assert {
        "movielens",
        "lastfm",
        "amazon2014",
        "amazon2018",
        "amazon2023",
        "yelp",
        "synthetic",
    } <= set(dataset_names())
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
    # quartile edges of the reviewed prices 12.5 and 30 (B3 has no review): 16.875 first
    assert item_concepts(t, "B1", "price") == ["$12.50–$16.88"]
    assert item_concepts(t, "B1", "sales_rank") == []  # the 2023 metadata has no rank


def test_yelp_reviews_and_categories(tmp_path):
    stats, t = prepare(tmp_path, yelp_files(), {"source": "yelp"})
    assert sorted(t["interactions"]["timestamp"]) == [1325604498, 1531001351]
    assert item_concepts(t, "b1", "category") == ["Pizza", "Restaurants"]
    assert t["items"].set_index("raw_id").loc["b2", "title"] == "Dentist"
    assert item_concepts(t, "b1", "city") == ["Tucson, AZ"]
    assert item_concepts(t, "b1", "state") == ["AZ"]
    assert item_concepts(t, "b1", "price") == ["$$"]
    assert item_concepts(t, "b2", "city") == ["Reno, NV"]
    assert item_concepts(t, "b2", "price") == []  # "None" in the file
    assert (stats["n_businesses_listed"], stats["n_businesses_with_price"]) == (3, 1)


def test_yelp_business_without_city_or_attributes(tmp_path):
    from recsae.data.yelp import BUSINESSES, price_range, read_businesses

    raw = write_files(tmp_path, yelp_files())
    _, concepts = read_businesses(raw / BUSINESSES)
    b3 = concepts[concepts["raw_id"] == "b3"]
    assert sorted(zip(b3["family"], b3["concept"], strict=True)) == [
        ("category", "Bars"), ("state", "NV")
    ]  # fmt: skip
    assert price_range({"attributes": {"RestaurantsPriceRange2": "4"}}) == "$$$$"
    assert price_range({"attributes": {"RestaurantsPriceRange2": 5}}) is None


def test_amazon2014_category_paths_sales_rank_and_price(tmp_path):
    settings = {"source": "amazon2014", "category": "Toys_and_Games", "price_buckets": 2,
                "sales_rank_buckets": 2}  # fmt: skip
    stats, t = prepare(tmp_path, amazon2014_files(), settings)
    assert stats["n_interactions"] == 3
    assert item_concepts(t, "T1", "category") == ["Balls", "Sports"]  # both paths, root left out
    assert item_concepts(t, "T2", "category") == []
    # one brand in two spellings: the shorter label wins the tie
    assert item_concepts(t, "T1", "brand") == item_concepts(t, "T2", "brand") == ["ACME"]
    # two prices, two buckets: the halves of [3.5, 20] split at the median 11.75
    assert item_concepts(t, "T1", "price") == ["$3.50–$11.75"]
    assert item_concepts(t, "T2", "price") == ["over $11.75–$20"]
    assert item_concepts(t, "T1", "sales_rank") == ["sales rank 100–2,550"]
    assert item_concepts(t, "T2", "sales_rank") == ["sales rank 2,551–5,000"]


def test_amazon2018_products_merged_brands_normalised_and_bucketed(tmp_path):
    settings = {"source": "amazon2018", "category": "Magazines", "sales_rank_buckets": 2}
    stats, t = prepare(tmp_path, amazon2018_product_files(), settings)
    on_disk = json.loads((tmp_path / "data" / "stats.json").read_text())
    assert on_disk["metadata_lines"] == 9 and on_disk["metadata_duplicate_lines"] == 2
    # P1's price is on its second line only: the merge keeps the first non-empty value
    assert item_concepts(t, "P1", "price") == ["$10–$20"]
    brands = {p: item_concepts(t, p, "brand") for p in ("P1", "P2", "P3", "P4", "P5", "P6")}
    assert brands["P1"] == brands["P2"] == brands["P3"] == ["Meredith"]  # P7 spells it too
    assert brands["P4"] == brands["P5"] == ["F&W Publications"]
    assert brands["P6"] == ["Hearst"]
    assert (stats["brand_spellings"], stats["brands_after_merging_spellings"]) == (6, 3)
    assert item_concepts(t, "P1", "category") == ["Cooking, Food & Wine"]
    assert item_concepts(t, "P6", "category") == []  # a path repeating its root
    assert pd.isna(t["items"].set_index("raw_id").loc["P3", "title"])  # HTML debris
    assert stats["reviewed_products_with_price"] == 5  # P6's price is page debris


def test_price_buckets_are_the_quantiles_of_the_reviewed_prices(tmp_path):
    """The partition of the reviewed products into price buckets equals pandas' qcut into
    quartiles (repeated edges dropped); P7, with metadata but no review, plays no part."""
    stats, t = prepare(
        tmp_path, amazon2018_product_files(), {"source": "amazon2018", "category": "Magazines"}
    )
    prices = pd.Series({"P1": 10.0, "P2": 20.0, "P3": 20.0, "P4": 40.0, "P5": 1250.0})
    expected = pd.qcut(prices, 4, duplicates="drop")
    found = pd.Series({p: item_concepts(t, p, "price")[0] for p in prices.index})
    assert (pd.factorize(found)[0] == pd.factorize(expected)[0]).all()
    edges = np.unique(np.quantile(prices, [0, 0.25, 0.5, 0.75, 1]))
    assert edges.tolist() == [10, 20, 40, 1250]
    assert sorted(found.unique()) == ["$10–$20", "over $20–$40", "over $40–$1,250"]
    assert item_concepts(t, "P6", "price") == []
    # ranks in a string, in a list, and absent (P3, P6): quartiles of 12, 1500, 300, 40
    ranks = pd.Series({"P1": 12, "P2": 1500, "P4": 300, "P5": 40})
    expected = pd.qcut(ranks, 4)
    found = pd.Series({p: item_concepts(t, p, "sales_rank")[0] for p in ranks.index})
    assert (pd.factorize(found)[0] == pd.factorize(expected)[0]).all()
    assert item_concepts(t, "P3", "sales_rank") == []


@pytest.mark.parametrize(
    ("spellings", "same"),
    [
        (["Meredith", "Meredith Corporation", "MEREDITH", "meredith corp."], True),
        (["Trusted Media Brands, Inc.", "Trusted Media Brands, Inc", "trusted media brands"], True),
        (["F&amp;W Publications", "F&W Publications", "F & W Publications LLC"], True),
        (["T.G.I. Friday's", "TGI Fridays"], True),
        (["Condé Nast", "Conde Nast", "CONDE NAST"], True),
        (["Conde Nast", "Conde Nast Publications"], False),
        (["Co", "Corp"], False),  # a name that is only a suffix stays itself
    ],
)
def test_brand_key_merges_spellings_of_one_brand(spellings, same):
    from recsae.data.amazon import brand_key

    keys = {brand_key(s) for s in spellings}
    assert (len(keys) == 1) is same


def test_review_sources_state_leave_last_out():
    for name in ("amazon2014", "amazon2018", "amazon2023", "yelp"):
        assert get_dataset(name).default_split == {
            "protocol": "leave_last_out",
            "test_n": 1,
            "valid_n": 1,
        }
    assert get_dataset("movielens").default_split == {}


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
    assert (
        json.loads((tmp_path / "data" / "stats.json").read_text())[
            "n_interactions_without_metadata"
        ]
        == 1
    )
