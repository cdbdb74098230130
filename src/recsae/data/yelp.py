"""Yelp Open Dataset: user -> business star ratings, business categories as concepts.

The licence requires accepting Yelp's terms, so there is no public download address. Settings:
``url`` (your own download link) or ``archive`` (a local yelp_dataset.zip / .tar / .tar.gz, a
zip that wraps the tar is unpacked too). Alternatively place the two JSON files in the raw dir or
under ``<mirror>/yelp/``. Concepts: business categories (comma-separated, family "category").
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from recsae.data.parsing import read_json_lines
from recsae.data.registry import DatasetSpec, RawData, Resource, local_archive, register_dataset
from recsae.errors import DataError

REVIEWS = "yelp_academic_dataset_review.json"
BUSINESSES = "yelp_academic_dataset_business.json"
LICENCE = "Yelp Dataset Terms of Use: non-commercial, academic use only; accept them first."
HOW_TO_GET = (
    "The Yelp Open Dataset needs its terms accepted: open "
    "https://business.yelp.com/data/resources/open-dataset/ , accept the terms, download the JSON "
    "archive (yelp_dataset.zip or .tar), then set datasets.<name>.archive to its local path "
    "(or datasets.<name>.url to your download link)."
)


def resources(settings: dict) -> list[Resource]:
    local = local_archive(settings)
    url = settings.get("url")
    if local is not None:
        filename = local.name
    elif url:
        filename = Path(urlparse(url).path).name or "yelp_dataset.tar"
    else:
        filename = "yelp_dataset.tar"
    return [Resource("yelp", filename, url, (REVIEWS, BUSINESSES), local=local)]


def read(raw_dir: Path, settings: dict, seed: int) -> RawData:
    """Reviews (user_id, business_id, stars, date) and business names and categories."""
    raw_dir = Path(raw_dir)
    reviews = read_json_lines(
        raw_dir / REVIEWS,
        {"user_id": "str", "business_id": "str", "stars": "float", "date": "str"},
    )
    when = pd.to_datetime(reviews["date"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    if when.isna().any():
        row = int(when.isna().to_numpy().nonzero()[0][0])
        raise DataError(
            f"{raw_dir / REVIEWS}: review {row + 1}: date {reviews['date'].iloc[row]!r} "
            "is not 'YYYY-MM-DD HH:MM:SS'"
        )
    interactions = pd.DataFrame(
        {
            "user": reviews["user_id"],
            "item": reviews["business_id"],
            "rating": reviews["stars"],
            "timestamp": (when - pd.Timestamp(0)) // pd.Timedelta(seconds=1),
        }
    )
    business = read_json_lines(
        raw_dir / BUSINESSES, {"business_id": "str"}, optional={"name": "str", "categories": "str"}
    )
    listed = business.dropna(subset=["categories"])
    categories = listed.assign(concept=listed["categories"].str.split(",")).explode("concept")
    categories = categories.assign(concept=categories["concept"].str.strip())
    categories = categories[categories["concept"] != ""]
    unlisted = ~interactions["item"].isin(business["business_id"])
    return RawData(
        interactions=interactions,
        items=pd.DataFrame(
            {"raw_id": business["business_id"], "title": business["name"], "year": None}
        ),
        users=None,
        concepts=pd.DataFrame(
            {
                "entity": "item",
                "raw_id": categories["business_id"],
                "family": "category",
                "concept": categories["concept"],
            }
        ),
        stats={"n_interactions_without_metadata": int(unlisted.sum())},
    )


SPEC = register_dataset(
    DatasetSpec(
        name="yelp",
        description="Yelp Open Dataset reviews (stars) with business categories.",
        licence=LICENCE,
        homepage="https://business.yelp.com/data/resources/open-dataset/",
        resources=resources,
        read=read,
        settings={
            "url": {
                "description": "yelp: a download URL you obtained after accepting Yelp's terms.",
                "type": "string",
                "pattern": "^https?://[^/?#]+/",
            }
        },
        how_to_get=HOW_TO_GET,
    )
)
