"""The dataset layer: raw files -> canonical tables -> seeded split.

* ``registry``: dataset sources by name (one module each: movielens, lastfm, amazon, yelp,
  synthetic).
* ``fetch.fetch_raw``: download / mirror / pre-placed files, verified and extracted.
* ``prepare.prepare_dataset``: canonical tables (see ``tables``) and stats.json.
* ``split.make_split``: train / valid / test parquet files.
"""
