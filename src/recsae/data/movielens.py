"""MovieLens (GroupLens): ml-100k, ml-1m, ml-20m, ml-25m, ml-32m, ml-latest-small.

Settings: ``variant`` (default ml-1m). Concepts: genres (family "genre", "(no genres listed)" and
ml-100k's "unknown" flag left out) and release decade (family "decade", e.g. "1990s", from the
year in the title, else ml-100k's release date). Users: age, gender, occupation where the variant
has them (ml-100k, ml-1m; ml-1m's age is the lower bound of its age group and its occupation code
is mapped to the README's name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsae.data.parsing import read_table
from recsae.data.registry import DatasetSpec, RawData, Resource, local_archive, register_dataset
from recsae.errors import DataError

BASE_URL = "https://files.grouplens.org/datasets/movielens"
LICENCE = (
    "GroupLens research licence: research use only, no redistribution without permission, no "
    "commercial use; cite Harper & Konstan (2015), ACM TiiS 5(4):19."
)
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRE = {"unknown", "(no genres listed)"}
OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """``md5``/``sha256``: pinned digests of the zip (others: GroupLens's ``<zip>.md5`` is
    fetched and checked); ``key_sha256``: pinned sha256 of the extracted key files."""

    layout: str  # "100k" | "dat" | "csv"
    key_files: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    key_sha256: dict[str, str] = field(default_factory=dict)


VARIANTS = {
    "ml-100k": Variant(
        "100k",
        ("u.data", "u.item", "u.user"),
        md5="0e33842e24a9c977be4e0107933c0723",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        key_sha256={
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        },
    ),
    "ml-1m": Variant(
        "dat",
        ("ratings.dat", "movies.dat", "users.dat"),
        md5="c4d9eecfca2ab87c1945afe126590906",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        key_sha256={
            "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
            "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
        },
    ),
    "ml-20m": Variant("csv", ("ratings.csv", "movies.csv")),
    "ml-25m": Variant("csv", ("ratings.csv", "movies.csv")),
    "ml-32m": Variant("csv", ("ratings.csv", "movies.csv")),
    "ml-latest-small": Variant("csv", ("ratings.csv", "movies.csv")),
}


def _variant(settings: dict) -> tuple[str, Variant]:
    name = settings.get("variant", "ml-1m")
    if name not in VARIANTS:
        raise DataError(f"movielens: unknown variant {name!r}; known: {sorted(VARIANTS)}")
    return name, VARIANTS[name]


def resources(settings: dict) -> list[Resource]:
    name, variant = _variant(settings)
    return [
        Resource(
            mirror_name=name,
            filename=f"{name}.zip",
            url=f"{BASE_URL}/{name}.zip",
            key_files=variant.key_files,
            md5=variant.md5,
            sha256=variant.sha256,
            local=local_archive(settings),
            md5_beside=True,
            key_sha256=variant.key_sha256,
        )
    ]


def read(raw_dir: Path, settings: dict, seed: int) -> RawData:
    """Ratings (explicit 0.5..5 stars), movies with genres and decade, users where present."""
    _, variant = _variant(settings)
    reader = {"100k": _read_100k, "dat": _read_1m, "csv": _read_csv}[variant.layout]
    return reader(Path(raw_dir))


_RATINGS = {"user": "int", "item": "int", "rating": "float", "timestamp": "int"}


def _read_100k(raw_dir: Path) -> RawData:
    ratings = read_table(raw_dir / "u.data", _RATINGS, sep="\t")
    flags = {g: "int" for g in GENRES_100K}
    movies = read_table(
        raw_dir / "u.item",
        {"raw_id": "int", "title": "str", "release": "str", "video": "str", "url": "str", **flags},
        sep="|",
        encoding="latin-1",
    )
    flag_matrix = movies[list(GENRES_100K)].to_numpy()
    rows, cols = np.nonzero(flag_matrix == 1)
    genres = pd.DataFrame(
        {"raw_id": movies["raw_id"].to_numpy()[rows], "concept": np.asarray(GENRES_100K)[cols]}
    )
    year = _title_year(movies["title"]).fillna(_release_year(movies["release"]))
    users = read_table(
        raw_dir / "u.user",
        {"raw_id": "int", "age": "int", "gender": "str", "occupation": "str", "zip": "str"},
        sep="|",
        encoding="latin-1",
    )
    items = movies[["raw_id", "title"]].assign(year=year)
    return _raw(ratings, items, genres, users.drop(columns="zip"))


def _read_1m(raw_dir: Path) -> RawData:
    ratings = read_table(raw_dir / "ratings.dat", _RATINGS, sep="::")
    movies = read_table(
        raw_dir / "movies.dat",
        {"raw_id": "int", "title": "str", "genres": "str"},
        sep="::",
        encoding="latin-1",
    )
    users = read_table(
        raw_dir / "users.dat",
        {"raw_id": "int", "gender": "str", "age": "int", "occupation": "int", "zip": "str"},
        sep="::",
        encoding="latin-1",
    )
    occupation = pd.Series(OCCUPATIONS_1M)
    users = users.assign(occupation=users["occupation"].map(occupation))
    return _raw(
        ratings,
        movies[["raw_id", "title"]].assign(year=_title_year(movies["title"])),
        _split_genres(movies),
        users[["raw_id", "age", "gender", "occupation"]],
    )


def _read_csv(raw_dir: Path) -> RawData:
    ratings = read_table(
        raw_dir / "ratings.csv",
        _RATINGS,
        sep=",",
        header=("userId", "movieId", "rating", "timestamp"),
    )
    movies = read_table(
        raw_dir / "movies.csv",
        {"raw_id": "int", "title": "str", "genres": "str"},
        sep=",",
        header=("movieId", "title", "genres"),
        quoted=True,
    )
    items = movies[["raw_id", "title"]].assign(year=_title_year(movies["title"]))
    return _raw(ratings, items, _split_genres(movies), None)


def _split_genres(movies: pd.DataFrame) -> pd.DataFrame:
    """raw_id, concept from a ``|``-separated genres column."""
    genres = movies[["raw_id", "genres"]].dropna()
    genres = genres.assign(concept=genres["genres"].str.split("|")).explode("concept")
    return genres[["raw_id", "concept"]]


def _title_year(titles: pd.Series) -> pd.Series:
    """The year in a trailing ``(1995)`` of the title (nullable Int64)."""
    year = titles.str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.to_numeric(year, errors="coerce").astype("Int64")


def _release_year(dates: pd.Series) -> pd.Series:
    """The year of an ml-100k release date like ``01-Jan-1995`` (nullable Int64)."""
    year = dates.str.extract(r"(\d{4})\s*$", expand=False)
    return pd.to_numeric(year, errors="coerce").astype("Int64")


def _raw(
    ratings: pd.DataFrame, items: pd.DataFrame, genres: pd.DataFrame, users: pd.DataFrame | None
) -> RawData:
    genres = genres[~genres["concept"].isin(NO_GENRE)].assign(family="genre")
    dated = items.dropna(subset=["year"])
    decades = pd.DataFrame(
        {
            "raw_id": dated["raw_id"],
            "family": "decade",
            "concept": (dated["year"] // 10 * 10).astype(int).astype(str) + "s",
        }
    )
    concepts = pd.concat([genres, decades], ignore_index=True).assign(entity="item")
    return RawData(interactions=ratings, items=items, users=users, concepts=concepts)


SPEC = register_dataset(
    DatasetSpec(
        name="movielens",
        description="MovieLens explicit ratings (GroupLens); variant chosen by `variant`.",
        licence=LICENCE,
        homepage="https://grouplens.org/datasets/movielens/",
        resources=resources,
        read=read,
        settings={
            "variant": {
                "description": "movielens: ml-100k | ml-1m | ml-20m | ml-25m | ml-32m | "
                "ml-latest-small.",
                "enum": list(VARIANTS),
            }
        },
    )
)
