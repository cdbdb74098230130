"""Synthetic interactions driven by planted concepts (no download), with their ground truth.

Every item has a cluster (genre-like), an era and a popularity level; every user has a preferred
cluster, a preferred era and a popularity taste. User u picks items without replacement with

    p(i | u) = (1 - noise) * theta_u[c_i] * phi_u[e_i] * pop_i ** gamma_u / Z_u + noise / n_items

where theta_u puts ``cluster_focus`` of its mass on u's preferred cluster and spreads the rest
with a Dirichlet(``preference_alpha``), phi_u does the same over eras with ``era_focus``,
pop_i = exp(``popularity_skew`` * N(0, 1)) and its tercile-like bucket is the item's popularity
level, and gamma_u = ``popularity_gamma`` * (level_u + 1) / ((n_levels + 1) / 2) grows with the
user's popularity taste (niche .. mainstream). Per-user counts are log-normal with mean
``interactions_per_user``. Sampling draws from the mixture per user and keeps the first distinct
draws (vectorised NumPy, linear in the interactions; see ``_sample``; small data use a dense
Gumbel-top-k of the same distribution): ML-20M size (138k x 27k,
20M interactions) takes well under a minute.

Concepts (families planted_cluster, planted_era, planted_popularity) are written for items and
users; ground_truth.json describes the model, the settings and the realised concentration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsae.data.registry import DatasetSpec, RawData, Resource, register_dataset
from recsae.errors import DataError
from recsae.seeding import numpy_rng

START_TIMESTAMP = 946_684_800  # 2000-01-01
TIME_SPAN = 10 * 365 * 86_400
_CHUNK_ELEMENTS = 1 << 24
_TINY = np.float32(1e-30)
_ROUNDS = 8
_DENSE_LIMIT = 1 << 26  # users x items up to which the dense Gumbel-top-k is used
_MARGIN = 0.25


@dataclass(frozen=True)
class SyntheticSettings:
    """Generator settings; every field is a config key of a ``source: synthetic`` dataset."""

    n_users: int = 1000
    n_items: int = 500
    interactions_per_user: float = 50.0
    interactions_sigma: float = 0.5
    min_interactions_per_user: int = 10
    n_clusters: int = 8
    n_eras: int = 4
    n_popularity_levels: int = 3
    cluster_focus: float = 0.7
    era_focus: float = 0.5
    preference_alpha: float = 0.5
    popularity_skew: float = 1.0
    popularity_gamma: float = 1.0
    noise: float = 0.1

    @classmethod
    def from_settings(cls, settings: dict) -> SyntheticSettings:
        values = {k: settings[k] for k in cls.__dataclass_fields__ if k in settings}
        out = cls(**values)
        for key in ("n_users", "n_items", "n_clusters", "n_eras", "n_popularity_levels"):
            if int(getattr(out, key)) != getattr(out, key) or getattr(out, key) < 1:
                raise DataError(f"synthetic: {key} must be a positive integer")
        for key in ("cluster_focus", "era_focus", "noise"):
            if not 0.0 <= getattr(out, key) <= 1.0:
                raise DataError(f"synthetic: {key} must be in [0, 1]")
        if out.interactions_per_user <= 0 or out.preference_alpha <= 0:
            raise DataError("synthetic: interactions_per_user and preference_alpha must be > 0")
        if out.n_items < 2:
            raise DataError("synthetic: n_items must be at least 2")
        return out


def resources(settings: dict) -> list[Resource]:
    return []


def read(raw_dir: Path, settings: dict, seed: int) -> RawData:
    """Generate the dataset for ``settings`` and ``seed`` (``raw_dir`` is not used)."""
    return generate(SyntheticSettings.from_settings(settings), seed)


def generate(cfg: SyntheticSettings, seed: int) -> RawData:
    """Planted-concept interactions (user, item ints, rating 1.0, timestamp) and their truth."""
    rng = numpy_rng(seed, "synthetic")
    n_u, n_i, n_lv = cfg.n_users, cfg.n_items, cfg.n_popularity_levels
    item_cluster = rng.integers(cfg.n_clusters, size=n_i)
    item_era = rng.integers(cfg.n_eras, size=n_i)
    log_pop = cfg.popularity_skew * rng.standard_normal(n_i)
    item_level = np.minimum((np.argsort(np.argsort(log_pop)) * n_lv) // n_i, n_lv - 1)

    user_cluster = rng.integers(cfg.n_clusters, size=n_u)
    user_era = rng.integers(cfg.n_eras, size=n_u)
    user_level = rng.integers(n_lv, size=n_u)
    theta = _preferences(rng, user_cluster, cfg.n_clusters, cfg.cluster_focus, cfg.preference_alpha)
    phi = _preferences(rng, user_era, cfg.n_eras, cfg.era_focus, cfg.preference_alpha)

    mu = np.log(cfg.interactions_per_user) - cfg.interactions_sigma**2 / 2
    counts = np.rint(rng.lognormal(mu, cfg.interactions_sigma, size=n_u)).astype(np.int64)
    counts = np.clip(counts, min(cfg.min_interactions_per_user, n_i // 2), max(n_i // 2, 1))

    model = (theta, phi, user_level, item_cluster, item_era, log_pop)
    users, items = _sample(rng, cfg, model, counts)
    timestamps = START_TIMESTAMP + rng.integers(TIME_SPAN, size=len(users))
    interactions = pd.DataFrame(
        {"user": users, "item": items, "rating": 1.0, "timestamp": timestamps.astype(np.int64)}
    )
    labels = {
        "planted_cluster": (_labels("cluster", cfg.n_clusters), item_cluster, user_cluster),
        "planted_era": (_labels("era", cfg.n_eras), item_era, user_era),
        "planted_popularity": (_labels("pop", n_lv), item_level, user_level),
    }
    concepts = pd.concat(
        [
            pd.DataFrame(
                {"entity": entity, "raw_id": np.arange(len(codes)), "family": family,
                 "concept": names[codes]}
            )
            for family, (names, item_codes, user_codes) in labels.items()
            for entity, codes in (("item", item_codes), ("user", user_codes))
        ],
        ignore_index=True,
    )  # fmt: skip
    truth = _ground_truth(cfg, seed, labels, users, items)
    return RawData(
        interactions=interactions,
        items=pd.DataFrame(
            {"raw_id": np.arange(n_i), "title": [f"item {i}" for i in range(n_i)], "year": None}
        ),
        users=pd.DataFrame({"raw_id": np.arange(n_u)}),
        concepts=concepts,
        extra_json={"ground_truth.json": truth},
    )


def _preferences(
    rng: np.random.Generator, preferred: np.ndarray, k: int, focus: float, alpha: float
) -> np.ndarray:
    """(n, k) rows summing to 1: ``focus`` on the preferred column + the rest ~ Dirichlet."""
    rest = rng.dirichlet(np.full(k, alpha), size=len(preferred))
    pref = (1.0 - focus) * rest
    pref[np.arange(len(preferred)), preferred] += focus
    return pref


def _sample(rng, cfg, model, counts):
    """Sequential sampling without replacement per user; returns (users, items) int64 arrays.

    p(i | u) is a mixture: uniform with weight ``noise``, else a (cluster, era) component with
    weight theta_u[c] phi_u[e] S_ce(gamma_u) and inside it item i with weight pop_i ** gamma_u
    (S_ce: the component's summed weight; gamma takes one value per popularity level). Each round
    draws every unfinished user's missing items (with a margin) from p(. | u) with replacement and
    keeps, in draw order, the first occurrences of items the user does not have yet: the first k
    distinct items of an i.i.d. stream are a sample of k without replacement, so the result has
    the distribution of the Gumbel-top-k over the catalogue while the work stays linear in the
    interactions. Users still short after ``_ROUNDS`` rounds (counts close to the catalogue size)
    finish with an exact Gumbel-top-k over the items they do not have yet.
    Up to ``_DENSE_LIMIT`` users x items the whole sample is one dense Gumbel-top-k (same
    distribution; cheap at that size, and the data of small configs stay as they were).
    ``model``: theta, phi, user_level, item_cluster, item_era, log_pop.
    """
    theta, phi, user_level, item_cluster, item_era, log_pop = model
    n_u, n_i, n_e = len(counts), len(item_cluster), cfg.n_eras
    if n_u * n_i <= _DENSE_LIMIT:
        return _gumbel_top_k(rng, cfg, model, np.arange(n_u), counts, np.zeros(0, np.int64))
    n_comp = cfg.n_clusters * n_e
    component = item_cluster * n_e + item_era
    order = np.argsort(component, kind="stable")
    bounds = np.searchsorted(component[order], np.arange(n_comp + 1))
    gammas = _gamma(cfg, np.arange(cfg.n_popularity_levels))
    shifted = log_pop[order] - log_pop.max()
    cdf = np.zeros((len(gammas), n_i + 1))
    cdf[:, 1:] = np.cumsum(np.exp(gammas[:, None] * shifted[None, :]), axis=1)
    mass = cdf[:, bounds[1:]] - cdf[:, bounds[:-1]]  # (levels, n_comp)
    comp_ids = np.arange(n_comp)
    floored = np.maximum(theta, 1e-30), np.maximum(phi, 1e-30)  # as in _gumbel_top_k
    mix = floored[0][:, comp_ids // n_e] * floored[1][:, comp_ids % n_e] * mass[user_level]
    mix_cdf = np.cumsum(mix, axis=1)
    mix_cdf = (mix_cdf / mix_cdf[:, -1:] + np.arange(n_u)[:, None]).ravel()

    def draw(users: np.ndarray) -> np.ndarray:
        comp = np.searchsorted(mix_cdf, users + rng.random(len(users)), side="right")
        comp = np.clip(comp - users * n_comp, 0, n_comp - 1)
        position = np.empty(len(users), dtype=np.int64)
        share = rng.random(len(users))
        levels = user_level[users]
        for level in range(len(gammas)):
            sel = np.flatnonzero(levels == level)
            lo, hi = bounds[comp[sel]], bounds[comp[sel] + 1]
            value = cdf[level, lo] + share[sel] * (cdf[level, hi] - cdf[level, lo])
            found = np.searchsorted(cdf[level], value, side="right") - 1
            position[sel] = np.clip(found, lo, hi - 1)
        items = order[position]
        noisy = np.flatnonzero(rng.random(len(users)) < cfg.noise)
        items[noisy] = rng.integers(n_i, size=len(noisy))
        return items

    keys = np.zeros(0, dtype=np.int64)
    have = np.zeros(n_u, dtype=np.int64)
    out_users, out_items = [], []
    todo = np.flatnonzero(counts > 0)
    for _ in range(_ROUNDS):
        if len(todo) == 0:
            break
        missing = counts[todo] - have[todo]
        n_draws = missing + np.ceil(_MARGIN * missing).astype(np.int64) + 2
        users = np.repeat(todo, n_draws)
        items = draw(users)
        new = users * n_i + items
        fresh = np.zeros(len(new), dtype=bool)
        fresh[np.unique(new, return_index=True)[1]] = True
        if len(keys):
            pos = np.minimum(np.searchsorted(keys, new), len(keys) - 1)
            fresh &= keys[pos] != new
        kept = np.flatnonzero(fresh)
        before = np.cumsum(fresh) - fresh  # fresh draws before each draw
        rank = before - before[np.repeat(np.cumsum(n_draws) - n_draws, n_draws)]
        kept = kept[rank[kept] < np.repeat(missing, n_draws)[kept]]
        out_users.append(users[kept])
        out_items.append(items[kept])
        have += np.bincount(users[kept], minlength=n_u)
        keys = np.sort(np.concatenate([keys, new[kept]]))
        todo = todo[have[todo] < counts[todo]]
    if len(todo):
        users, items = _gumbel_top_k(rng, cfg, model, todo, counts[todo] - have[todo], keys)
        out_users.append(users)
        out_items.append(items)
    users, items = np.concatenate(out_users), np.concatenate(out_items)
    by_user = np.argsort(users, kind="stable")
    return users[by_user].astype(np.int64), items[by_user].astype(np.int64)


def _gumbel_top_k(rng, cfg, model, todo, k, keys):
    """The rest of the sample of users ``todo`` (k (len(todo),) items each): Gumbel-top-k over
    the items that are not in ``keys`` (sorted user * n_items + item of the items they have);
    O(len(todo) * n_items). ``model``: theta, phi, user_level, item_cluster, item_era, log_pop."""
    theta, phi, user_level, item_cluster, item_era, log_pop = model
    n_i = len(item_cluster)
    rows = max(1, _CHUNK_ELEMENTS // n_i)
    gamma = _gamma(cfg, user_level).astype(np.float32)
    log_theta = np.log(np.maximum(theta, 1e-30)).astype(np.float32)
    log_phi = np.log(np.maximum(phi, 1e-30)).astype(np.float32)
    log_pop = log_pop.astype(np.float32)
    out_users, out_items = [], []
    for lo in range(0, len(todo), rows):
        users, need = todo[lo : lo + rows], k[lo : lo + rows]
        logits = (
            log_theta[users][:, item_cluster]
            + log_phi[users][:, item_era]
            + gamma[users, None] * log_pop[None, :]
        )
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob *= (1.0 - cfg.noise) / prob.sum(axis=1, keepdims=True)
        prob += cfg.noise / n_i
        uniform = rng.random((len(users), n_i), dtype=np.float32)
        with np.errstate(divide="ignore"):  # items of probability 0 get key -inf
            gumbel = np.log(prob) - np.log(-np.log(np.maximum(uniform, _TINY)))
        np.maximum(gumbel, np.finfo(np.float32).min, out=gumbel)  # owned items alone are -inf
        first, last = np.searchsorted(keys, users * n_i), np.searchsorted(keys, (users + 1) * n_i)
        owned = np.concatenate([keys[a:b] for a, b in zip(first, last, strict=True)])
        gumbel[np.repeat(np.arange(len(users)), last - first), owned % n_i] = -np.inf
        top = np.argpartition(-gumbel, need.max() - 1, axis=1)[:, : need.max()]
        order = np.argsort(-np.take_along_axis(gumbel, top, axis=1), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        keep = np.arange(need.max())[None, :] < need[:, None]
        out_users.append(np.broadcast_to(users[:, None], top.shape)[keep])
        out_items.append(top[keep])
    return np.concatenate(out_users), np.concatenate(out_items)


def _gamma(cfg: SyntheticSettings, level):
    """Popularity exponent of users at popularity taste ``level`` (scalar or array)."""
    return cfg.popularity_gamma * (level + 1) / ((cfg.n_popularity_levels + 1) / 2)


def _per_label(names: np.ndarray, codes: np.ndarray) -> dict[str, int]:
    return dict(zip(names.tolist(), np.bincount(codes, minlength=len(names)).tolist(), strict=True))


def _labels(prefix: str, n: int) -> np.ndarray:
    width = len(str(n - 1))
    return np.array([f"{prefix}_{i:0{width}d}" for i in range(n)])


def _ground_truth(cfg, seed, labels, users, items) -> dict:
    """The model, the settings and the realised concentration on each planted concept."""
    realised = {}
    for family, (names, item_codes, user_codes) in labels.items():
        hit = item_codes[items] == user_codes[users]
        share = np.bincount(users, weights=hit, minlength=cfg.n_users) / np.maximum(
            np.bincount(users, minlength=cfg.n_users), 1
        )
        item_share = np.bincount(item_codes, minlength=len(names)) / cfg.n_items
        realised[family] = {
            "mean_share_on_user_concept": float(share.mean()),
            "chance_share": float(item_share[user_codes].mean()),
            "items_per_concept": _per_label(names, item_codes),
            "users_per_concept": _per_label(names, user_codes),
        }
    return {
        "model": (
            "p(i|u) = (1 - noise) * theta_u[cluster_i] * phi_u[era_i] * pop_i^gamma_u / Z_u "
            "+ noise / n_items, sampled without replacement"
        ),
        "seed": seed,
        "settings": asdict(cfg),
        "families": {
            "planted_cluster": "item: its cluster; user: the cluster with cluster_focus of its "
            "preference mass",
            "planted_era": "item: its era; user: the era with era_focus of its preference mass",
            "planted_popularity": "item: popularity level (pop_0 least popular); user: popularity "
            "taste level, gamma_u grows with it",
        },
        "gamma_by_user_level": {
            str(name): _gamma(cfg, level)
            for level, name in enumerate(labels["planted_popularity"][0])
        },
        "realised": realised,
    }


# the config keys of a synthetic dataset (SyntheticSettings' fields), as schema fragments
SETTINGS = {
    "n_users": {"description": "synthetic: users.", "type": "integer", "minimum": 1},
    "n_items": {"description": "synthetic: items.", "type": "integer", "minimum": 1},
    "interactions_per_user": {
        "description": "synthetic: mean interactions per user (log-normal).",
        "type": "number",
        "exclusiveMinimum": 0,
    },
    "interactions_sigma": {
        "description": "synthetic: sigma of the log-normal interaction counts.",
        "type": "number",
        "minimum": 0,
    },
    "min_interactions_per_user": {
        "description": "synthetic: least interactions per user.",
        "type": "integer",
        "minimum": 1,
    },
    "n_clusters": {
        "description": "synthetic: planted item clusters (genre-like).",
        "type": "integer",
        "minimum": 1,
    },
    "n_eras": {"description": "synthetic: planted eras.", "type": "integer", "minimum": 1},
    "n_popularity_levels": {
        "description": "synthetic: planted popularity levels.",
        "type": "integer",
        "minimum": 1,
    },
    "cluster_focus": {
        "description": "synthetic: share of a user's preference on their cluster.",
        "type": "number",
        "minimum": 0,
        "maximum": 1,
    },
    "era_focus": {
        "description": "synthetic: share of a user's preference on their era.",
        "type": "number",
        "minimum": 0,
        "maximum": 1,
    },
    "preference_alpha": {
        "description": "synthetic: Dirichlet concentration of the rest of the preference.",
        "type": "number",
        "exclusiveMinimum": 0,
    },
    "popularity_skew": {
        "description": "synthetic: log-normal skew of item popularity.",
        "type": "number",
        "minimum": 0,
    },
    "popularity_gamma": {
        "description": "synthetic: how strongly mainstream users follow popularity.",
        "type": "number",
        "minimum": 0,
    },
    "noise": {
        "description": "synthetic: share of uniformly random interactions.",
        "type": "number",
        "minimum": 0,
        "maximum": 1,
    },
}

SPEC = register_dataset(
    DatasetSpec(
        name="synthetic",
        description="Planted-concept synthetic interactions with known ground truth.",
        licence="Generated data; no restrictions.",
        homepage="",
        resources=resources,
        read=read,
        settings=SETTINGS,
    )
)
