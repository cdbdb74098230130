"""How the report names an item: its title, else the dataset's own id (an Amazon product's
ASIN when the metadata file is missing), else its dense index."""

from __future__ import annotations

import pandas as pd


def item_names(items: pd.DataFrame) -> list[str]:
    """One name per row of an items table (index: item id; columns title, raw_id, year, any of
    them absent): ``title (year)``, else ``raw_id``, else ``item <id>``."""
    empty = pd.Series(pd.NA, index=items.index)
    titles = items["title"] if "title" in items else empty
    raw_ids = items["raw_id"] if "raw_id" in items else empty
    years = items["year"] if "year" in items else empty
    names = []
    for item, title, raw_id, year in zip(items.index, titles, raw_ids, years, strict=True):
        if pd.notna(title) and str(title).strip():
            name = str(title)
            if pd.notna(year) and str(year) not in name:
                name = f"{name} ({year})"
        elif pd.notna(raw_id) and str(raw_id).strip():
            name = str(raw_id)
        else:
            name = f"item {item}"
        names.append(name)
    return names
