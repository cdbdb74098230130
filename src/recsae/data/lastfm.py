"""Last.FM HetRec 2011 (hetrec2011-lastfm-2k): user -> artist listening counts, user tags.

The rating is the listening count (``weight``); ``min_rating`` is then a play-count threshold.
There are no timestamps (0). Concepts: each artist's ``top_tags`` (default 3) most used tags
(by number of tag assignments, ties by tag id), family "tag". Files are tab-separated with a
header; user_*.dat and tags.dat use CRLF and tags.dat is ISO-8859-1, artists.dat is UTF-8.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsae.data.parsing import read_table
from recsae.data.registry import DatasetSpec, RawData, Resource, local_archive, register_dataset

NAME = "hetrec2011-lastfm-2k"
URL = f"https://files.grouplens.org/datasets/hetrec2011/{NAME}.zip"
SHA256 = "6738f48195667ff03caaab4d32ca9a3133d8cc026b7c3cdaf6ce1010e913c59c"
KEY_FILES = ("user_artists.dat", "artists.dat", "tags.dat", "user_taggedartists.dat")
KEY_SHA256 = {
    "user_artists.dat": "001400dc3c7d2667fca6e4ea6dc6acc31a9dd28ad5cd0f74cea988c019934d3b",
    "artists.dat": "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648",
    "tags.dat": "e95175f259be4c0c47644ae23d66131cd6d5767142a1405000e79f5584691d70",
    "user_taggedartists.dat": "d31fe938fcfeed6f0059f37a36b156f63674d073fc2553e5cc9dc1595e365bc7",
}
LICENCE = (
    "Non-commercial use (Last.fm via GroupLens HetRec 2011); cite Last.fm (http://www.lastfm.com) "
    "and the HetRec'11 workshop (Cantador, Brusilovsky, Kuflik, RecSys 2011)."
)


def resources(settings: dict) -> list[Resource]:
    return [
        Resource(
            mirror_name=NAME,
            filename=f"{NAME}.zip",
            url=URL,
            key_files=KEY_FILES,
            sha256=SHA256,
            local=local_archive(settings),
            key_sha256=KEY_SHA256,
        )
    ]


def read(raw_dir: Path, settings: dict, seed: int) -> RawData:
    """Interactions (user, artist, weight as rating), artists (name as title), top tags."""
    raw_dir = Path(raw_dir)
    plays = read_table(
        raw_dir / "user_artists.dat",
        {"user": "int", "item": "int", "rating": "float"},
        header=("userID", "artistID", "weight"),
    )
    artists = read_table(
        raw_dir / "artists.dat",
        {"raw_id": "int", "title": "str", "url": "str", "picture_url": "str"},
        header=("id", "name", "url", "pictureURL"),
    )
    tags = read_table(
        raw_dir / "tags.dat",
        {"tag": "int", "concept": "str"},
        header=("tagID", "tagValue"),
        encoding="latin-1",
    )
    tagged = read_table(
        raw_dir / "user_taggedartists.dat",
        {"user": "int", "raw_id": "int", "tag": "int", "day": "int", "month": "int", "year": "int"},
        header=("userID", "artistID", "tagID", "day", "month", "year"),
    )
    top_n = int(settings.get("top_tags", 3))
    return RawData(
        interactions=plays.assign(timestamp=0),
        items=artists[["raw_id", "title"]].assign(year=None),
        users=None,
        concepts=top_tags(tagged, tags, top_n),
    )


def top_tags(tagged: pd.DataFrame, tags: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """entity, raw_id, family "tag", concept: each artist's ``top_n`` most assigned tags.

    ``tagged``: raw_id (artist), tag (id), one row per assignment; ``tags``: tag, concept.
    """
    counts = tagged.groupby(["raw_id", "tag"]).size().rename("n").reset_index()
    counts = counts.sort_values(["raw_id", "n", "tag"], ascending=[True, False, True])
    best = counts.groupby("raw_id").head(top_n).merge(tags, on="tag", how="inner")
    return best.assign(entity="item", family="tag")[["entity", "raw_id", "family", "concept"]]


SPEC = register_dataset(
    DatasetSpec(
        name="lastfm",
        description="Last.FM HetRec 2011: 1,892 users x 17,632 artists, play counts and tags.",
        licence=LICENCE,
        homepage="https://grouplens.org/datasets/hetrec-2011/",
        resources=resources,
        read=read,
        settings={
            "top_tags": {
                "description": "lastfm: each artist's most used tags kept as concepts.",
                "type": "integer",
                "minimum": 1,
            }
        },
    )
)
