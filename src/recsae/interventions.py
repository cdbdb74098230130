"""Post-hoc control of a frozen recommender through SAE latents, without retraining.

Public API (notebook use)::

    from recsae.interventions import ConceptEditor
    editor = ConceptEditor(recommender, sae, level_scale="max")
    neuron, auroc = editor.neuron_for_concept(horror_item_ids)          # best-aligned neuron
    users = torch.tensor([3, 17])
    z = editor.encode_users(users)                                      # (B, H) latents
    z = editor.set_neuron(z, neuron, editor.raw_level(-1.0, neuron, "user"), mode="set")
    edited = editor.decode_users(z, users)                              # (B, d) user embeddings
    top30 = editor.rerank(edited, split.matrix("train"), users, k=30)   # (B, 30) item ids
    # or in one step: edited = editor.edit_users(users, neuron, -1.0, mode="set")

Levels: with ``level_scale="max"`` a level is a multiple of the neuron's largest activation over all
users (user edits) or all items (item edits), so levels mean the same across SAEs of different
scale; with ``"absolute"`` it is the raw latent value (the paper's convention). ``mode="set"``
overwrites the latent, ``mode="add"`` adds to it. With ``keep_error=True`` an edit keeps the SAE's
reconstruction error: edited = x + decode(z_edited) - decode(z), so a no-op edit returns x exactly;
by default (the paper's protocol) the edited embedding is decode(z_edited).

The SAE is used as given (put it in eval mode). ``run_interventions`` is the benchmark protocol
(docs/method.md, "Metrics") on held-out users, per concept:
* filtering: the ``audience_size`` held-out users with the highest share of the concept in their
  train history (ties: lower id; only users with share > 0, so the audience may be smaller);
  the concept neuron is SET to each of ``filter_levels`` in their latents; effect = the
  concept's mean share in their top-k lists.
* nudging: the ``audience_size`` held-out users with the lowest share (ties: lower id); each of
  ``nudge_levels`` is ADDED to the concept neuron; effect = the concept's share in the top-k.
* promotion: targets = up to ``promotion_targets`` concept items (seeded sample) that no audience
  user (filtering audience) has in train/valid and that every audience user ranks below ``th``;
  the item's concept neuron is SET (``promotion_mode``) to each of ``promotion_levels``; effect =
  share of the audience whose rank of the item becomes <= th + 10 ("success"), and mean new rank.
Top-k lists rank all items minus the user's TRAIN items. Every level also reports its cost, against
the ORIGINAL (no SAE) model: ndcg@K and delta_ndcg@K on the users' TEST items (train + valid
excluded, ``recsae.metrics.accuracy.RankingTask``, prepared once per audience), overlap@k of the
edited and original top-k, and off_target_change = mean over users and over all OTHER kept item
concepts of |share in edited top-k - share in original top-k|; filtering rows add selectivity
(``recsae.metrics.selectivity``). ``share_reconstructed`` is the share after encode/decode without
an edit, separating the edit's effect from reconstruction error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recsae.metrics.accuracy import RankingTask
from recsae.metrics.agreement import exclusion_mask, overlap_at, topk_lists
from recsae.metrics.alignment import Concepts, auroc_matrix
from recsae.metrics.selectivity import selectivity
from recsae.seeding import numpy_rng

ENTITIES = ("user", "item")


@torch.no_grad()
def sae_encode(sae, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """(N, H) latents of embeddings x (N, d), in batches of rows."""
    return torch.cat([sae.encode(x[s : s + batch_size]) for s in range(0, len(x), batch_size)])


@torch.no_grad()
def sae_decode(sae, z: torch.Tensor, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """(N, d) decoding of latents z (N, H) that belong to inputs x (N, d).

    x supplies the per-row statistics of SAEs that standardise each input (``encode(x,
    return_stats=True)`` / ``decode(z, stats)``); the baselines of ``recsae.methods`` return
    and take None.
    """
    if z.shape[0] != x.shape[0]:
        raise ValueError(f"latents have {z.shape[0]} rows, inputs {x.shape[0]}")
    out = []
    for s in range(0, len(z), batch_size):
        _, stats = sae.encode(x[s : s + batch_size], return_stats=True)
        out.append(sae.decode(z[s : s + batch_size], stats))
    return torch.cat(out)


class ConceptEditor:
    """Encode, edit one latent, decode and re-rank with a frozen recommender and its SAE."""

    def __init__(
        self,
        recommender,
        sae,
        level_scale: str = "max",
        keep_error: bool = False,
        batch_size: int = 4096,
    ):
        if level_scale not in ("max", "absolute"):
            raise ValueError(f"level_scale must be 'max' or 'absolute', got {level_scale!r}")
        self.model, self.sae = recommender, sae
        self.level_scale, self.keep_error, self.batch_size = level_scale, keep_error, batch_size
        with torch.no_grad():
            self.embeddings = {
                "user": recommender.user_embeddings().detach(),
                "item": recommender.item_embeddings().detach(),
            }
        dim = self.embeddings["item"].shape[1]
        if getattr(sae, "input_dim", dim) != dim:
            raise ValueError(f"SAE input_dim {sae.input_dim} does not match embedding size {dim}")
        self.device = self.embeddings["item"].device
        self._latents: dict[str, torch.Tensor] = {}

    def encode_users(self, ids) -> torch.Tensor:
        """(B, H) latents of users ``ids`` (B,)."""
        return sae_encode(self.sae, self._inputs("user", ids), self.batch_size)

    def encode_items(self, ids) -> torch.Tensor:
        """(B, H) latents of items ``ids`` (B,)."""
        return sae_encode(self.sae, self._inputs("item", ids), self.batch_size)

    def decode_users(self, z: torch.Tensor, ids) -> torch.Tensor:
        """(B, d) user embeddings decoded from (edited) latents z (B, H) of users ``ids``."""
        return sae_decode(self.sae, z, self._inputs("user", ids), self.batch_size)

    def decode_items(self, z: torch.Tensor, ids) -> torch.Tensor:
        """(B, d) item embeddings decoded from (edited) latents z (B, H) of items ``ids``."""
        return sae_decode(self.sae, z, self._inputs("item", ids), self.batch_size)

    def latents(self, entity: str) -> torch.Tensor:
        """(n_entities, H) latents of every user or item (cached)."""
        if entity not in self._latents:
            self._latents[entity] = sae_encode(
                self.sae, self._inputs(entity, None), self.batch_size
            )
        return self._latents[entity]

    @staticmethod
    def set_neuron(z: torch.Tensor, neuron: int, level: float, mode: str = "set") -> torch.Tensor:
        """Copy of latents z (B, H) with column ``neuron`` set to (mode "set") or increased by
        (mode "add") the raw value ``level``."""
        if mode not in ("set", "add"):
            raise ValueError(f"mode must be 'set' or 'add', got {mode!r}")
        if not 0 <= neuron < z.shape[1]:
            raise ValueError(f"neuron {neuron} out of range for {z.shape[1]} latents")
        out = z.clone()
        out[:, neuron] = level if mode == "set" else out[:, neuron] + level
        return out

    def raw_level(self, level: float, neuron: int, entity: str) -> float:
        """The raw latent value of ``level`` under this editor's ``level_scale``."""
        if self.level_scale == "absolute":
            return float(level)
        return float(level) * float(self.latents(entity)[:, neuron].max())

    def edit(self, entity: str, ids, neuron: int, level: float, mode: str = "set") -> torch.Tensor:
        """(B, d) embeddings of users/items ``ids`` with ``neuron`` edited to (scaled) ``level``."""
        x = self._inputs(entity, ids)
        z = sae_encode(self.sae, x, self.batch_size)
        raw = self.raw_level(level, neuron, entity)
        edited = sae_decode(self.sae, self.set_neuron(z, neuron, raw, mode), x, self.batch_size)
        if self.keep_error:
            return x + edited - sae_decode(self.sae, z, x, self.batch_size)
        return edited

    def edit_users(self, ids, neuron: int, level: float, mode: str = "set") -> torch.Tensor:
        """(B, d) user embeddings with ``neuron`` edited; see ``edit``."""
        return self.edit("user", ids, neuron, level, mode)

    def edit_items(self, ids, neuron: int, level: float, mode: str = "set") -> torch.Tensor:
        """(B, d) item embeddings with ``neuron`` edited; see ``edit``."""
        return self.edit("item", ids, neuron, level, mode)

    def reconstruct(self, entity: str, ids) -> torch.Tensor:
        """(B, d) encode/decode of users/items ``ids``, no edit (x itself with keep_error)."""
        x = self._inputs(entity, ids)
        if self.keep_error:
            return x.clone()
        return sae_decode(self.sae, sae_encode(self.sae, x, self.batch_size), x, self.batch_size)

    @torch.no_grad()
    def scores(self, users, user_emb=None, item_emb=None) -> torch.Tensor:
        """(B, n_items) logits of users ``ids`` (B,), optionally with replacement user_emb (B, d)
        and item table item_emb (n_items, d); the recommender's own tables by default."""
        users = self._ids(users)
        user_emb = self.embeddings["user"][users] if user_emb is None else user_emb
        item_emb = self.embeddings["item"] if item_emb is None else item_emb
        items = torch.arange(item_emb.shape[0], device=self.device)
        return self.model.score_matrix(user_emb, item_emb, users=users, items=items)

    def rerank(self, user_emb, exclude: sp.csr_matrix | None, users, k: int = 30, item_emb=None):
        """(B, k) top-k item ids for user_emb (B, d) of users ``ids`` (B,), skipping the items
        stored in ``exclude[users]`` (e.g. the train matrix)."""
        users = self._ids(users)
        mask = None if exclude is None else exclusion_mask(exclude, users.cpu(), self.device)
        return topk_lists(self.scores(users, user_emb, item_emb), k, mask)

    def neuron_for_concept(self, members, entity: str = "item") -> tuple[int, float]:
        """(neuron, AUROC): the neuron whose activation best separates ``members`` (ids of the
        users/items that have the concept) from the others."""
        latents = self.latents(entity)
        label = np.zeros(latents.shape[0])
        label[np.asarray(members, dtype=np.int64)] = 1.0
        if label.sum() in (0, len(label)):
            raise ValueError("a concept needs at least one member and one non-member")
        auroc = auroc_matrix(latents, sp.csr_matrix(label[:, None]))[:, 0]
        return int(auroc.argmax()), float(auroc.max())

    def _ids(self, ids) -> torch.Tensor:
        if not torch.is_tensor(ids):
            ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
        return ids.to(self.device, torch.long)

    def _inputs(self, entity: str, ids) -> torch.Tensor:
        if entity not in ENTITIES:
            raise ValueError(f"entity must be one of {ENTITIES}, got {entity!r}")
        table = self.embeddings[entity]
        return table if ids is None else table[self._ids(ids)]


@dataclass
class _Audience:
    """One audience's ranking context: rows (n_users,) its row of each user id (-1 elsewhere),
    train_mask (B, I) its training items, ranking its test-item evaluation."""

    rows: torch.Tensor
    train_mask: torch.Tensor
    ranking: RankingTask


class _Protocol:
    """One intervention run: the masks, the item concept labels and the cost measures."""

    def __init__(
        self,
        editor: ConceptEditor,
        train: sp.csr_matrix,
        seen: sp.csr_matrix,
        test: sp.csr_matrix,
        concepts: Concepts,
        cfg: dict,
    ):
        self.editor, self.cfg = editor, cfg
        self.train, self.seen, self.test = train, seen, test
        self.labels = torch.as_tensor(concepts.dense(), device=editor.device)  # (I, C)
        self.k, self.cost_k = cfg["top_k"], cfg["cost_k"]
        self.audiences: dict[bytes, _Audience] = {}

    def lists(self, scores: torch.Tensor, users: np.ndarray) -> torch.Tensor:
        """(B, k) top-k of scores (B, I) without the users' train items."""
        return topk_lists(scores, self.k, self.audience(users).train_mask)

    def shares(self, lists: torch.Tensor) -> torch.Tensor:
        """(B, C) share of every concept in lists (B, k)."""
        return self.labels[lists].to(torch.float64).mean(1)

    def audience(self, users: np.ndarray) -> _Audience:
        """The prepared ranking context of ``users``, built on first use and reused for every
        edit of that audience."""
        key = np.asarray(users, dtype=np.int64).tobytes()
        if key not in self.audiences:
            device = self.editor.device
            rows = torch.full((self.seen.shape[0],), -1, dtype=torch.long, device=device)
            rows[torch.as_tensor(users, device=device)] = torch.arange(len(users), device=device)
            self.audiences[key] = _Audience(
                rows=rows,
                train_mask=exclusion_mask(self.train, users, device),
                ranking=RankingTask(
                    self.seen, self.test, [self.cost_k], users=users, device=device
                ),
            )
        return self.audiences[key]

    def ndcg(self, scores: torch.Tensor, users: np.ndarray) -> float:
        """NDCG@cost_k on the test items of ``users`` ranked by their rows of scores (B, I)."""
        audience = self.audience(users)
        result = audience.ranking.evaluate(lambda batch: scores[audience.rows[batch]])
        return float(result[f"ndcg@{self.cost_k}"])

    def baseline(self, users: np.ndarray) -> tuple[torch.Tensor, tuple]:
        """Original scores (B, I) and (top-k lists, concept shares, ndcg) of the unedited model."""
        scores = self.editor.scores(users)
        lists = self.lists(scores, users)
        return scores, (lists, self.shares(lists), self.ndcg(scores, users))

    def row(
        self,
        level: float,
        raw: float,
        scores: torch.Tensor,
        users: np.ndarray,
        base: tuple,
        concept: int,
        filtering: bool = False,
    ) -> dict:
        """Effect (concept share) and cost of one edited score matrix (B, I); a filtering edit
        also its selectivity."""
        base_lists, base_shares, base_ndcg = base
        lists = self.lists(scores, users)
        edited = self.shares(lists)
        change = (edited - base_shares).abs()
        others = [c for c in range(change.shape[1]) if c != concept]
        ndcg = self.ndcg(scores, users)
        out = {
            "level": level,
            "raw_level": raw,
            "share": float(self.labels[lists, concept].to(torch.float64).mean()),
            f"ndcg@{self.cost_k}": ndcg,
            f"delta_ndcg@{self.cost_k}": ndcg - base_ndcg,
            f"overlap@{self.k}": float(overlap_at(lists, base_lists, self.k).mean()),
            "off_target_change": float(change[:, others].mean()) if others else 0.0,
        }
        if filtering:
            out["selectivity"] = selectivity(base_shares, edited, concept)
        return out

    def user_edit(self, users: np.ndarray, neuron: int, concept: int, levels, mode: str) -> dict:
        """Filtering (mode "set") or nudging (mode "add") of ``neuron`` in the users' latents."""
        _, base = self.baseline(users)
        recon_lists = self.lists(
            self.editor.scores(users, self.editor.reconstruct("user", users)), users
        )
        rows = []
        for level in levels:
            scores = self.editor.scores(users, self.editor.edit_users(users, neuron, level, mode))
            raw = self.editor.raw_level(level, neuron, "user")
            rows.append(self.row(level, raw, scores, users, base, concept, mode == "set"))
        return {
            "users": users.tolist(),
            "mode": mode,
            "share_original": float(base[1][:, concept].mean()),
            "share_reconstructed": float(self.shares(recon_lists)[:, concept].mean()),
            f"ndcg@{self.cost_k}_original": base[2],
            "levels": rows,
        }

    def promotion(self, users: np.ndarray, neuron: int, concept: int, seed: int) -> dict:
        """Raise ``neuron`` in sampled target items of ``concept``; success = rank <= th + 10."""
        th, mode = self.cfg["promotion_th"], self.cfg["promotion_mode"]
        device = self.editor.device
        scores, base = self.baseline(users)
        candidates_scores = scores.masked_fill(self.audience(users).train_mask, float("-inf"))
        rank = _ranks(candidates_scores, scores)
        unseen = torch.as_tensor(np.asarray(self.seen[users].sum(0)).ravel() == 0, device=device)
        eligible = self.labels[:, concept] & unseen & (rank > th).all(0)
        candidates = torch.nonzero(eligible).ravel().cpu().numpy()
        out = {"users": users.tolist(), "th": th, "mode": mode, "targets": [], "levels": []}
        if len(candidates) == 0:
            return out | {
                "reason": "no concept item outside every audience user's top-th and history"
            }
        rng = numpy_rng(seed, "promotion_targets", concept)
        n_targets = min(self.cfg["promotion_targets"], len(candidates))
        user_ids = torch.as_tensor(users, device=device)
        user_emb = self.editor.embeddings["user"][user_ids]
        for item in np.sort(rng.choice(candidates, size=n_targets, replace=False)).tolist():
            rows = []
            for level in self.cfg["promotion_levels"]:
                item_emb = self.editor.edit_items([item], neuron, level, mode)
                new = scores.clone()
                item_ids = torch.tensor([item], device=device)
                new[:, item] = self.editor.model.score_matrix(
                    user_emb, item_emb, users=user_ids, items=item_ids
                )[:, 0]
                # candidates scoring above the new score, not counting the item itself
                new_rank = 1 + (candidates_scores > new[:, item : item + 1]).sum(1)
                new_rank -= (scores[:, item] > new[:, item]).long()
                row = self.row(
                    level, self.editor.raw_level(level, neuron, "item"), new, users, base, concept
                )
                row["success"] = float((new_rank <= th + 10).to(torch.float64).mean())
                row["mean_rank"] = float(new_rank.to(torch.float64).mean())
                rows.append(row)
            out["targets"].append(
                {
                    "item": item,
                    "original_mean_rank": float(rank[:, item].double().mean()),
                    "levels": rows,
                }
            )
        out["levels"] = _mean_rows([t["levels"] for t in out["targets"]])
        return out


def _ranks(candidate_scores: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """(B, I) rank 1 + #(candidates scoring strictly higher) of every item's score (B, I) among
    candidate_scores (B, I) (non-candidates at -inf)."""
    ascending = candidate_scores.sort(dim=1).values.contiguous()
    return 1 + scores.shape[1] - torch.searchsorted(ascending, scores.contiguous(), right=True)


def _mean_rows(groups: list[list[dict]]) -> list[dict]:
    """Per-level mean of numeric fields over groups of equally long row lists."""
    groups = [g for g in groups if g]
    if not groups:
        return []
    return [
        {key: float(np.mean([g[i][key] for g in groups])) for key in groups[0][i]}
        for i in range(len(groups[0]))
    ]


def run_interventions(
    editor: ConceptEditor,
    matrices: dict[str, sp.csr_matrix],
    concepts: Concepts,
    item_auroc: np.ndarray,
    users: np.ndarray,
    cfg: dict,
    seed: int,
    item_precision: np.ndarray | None = None,
) -> dict:
    """Filtering, promotion and nudging on the item concepts of ``choose_concepts``: the ones
    cfg["concepts"] names, else the ``n_concepts`` best captured (item_auroc and item_precision
    (H, C), columns as ``concepts``; no precision: AUROC alone), at most one per family.

    ``matrices``: binary (n_users, n_items) CSR "train", "valid", "test"; ``users``: the held-out
    users (those with fewer than top_k candidate items are left out). cfg keys: top_k, cost_k,
    n_concepts, concepts (optional), audience_size, filter_levels, nudge_levels,
    promotion_levels, promotion_mode, promotion_th, promotion_targets. Returns
    {"concepts": [...], "summary": {...}}.
    """
    if len(concepts) == 0:
        return {"concepts": [], "summary": _summary([])}
    train = matrices["train"]
    seen = (train + matrices["valid"]).tocsr()
    protocol = _Protocol(editor, train, seen, matrices["test"], concepts, cfg)
    counts = np.asarray(train[users].sum(1)).ravel()
    enough = train.shape[1] - counts >= cfg["top_k"]
    users, counts = users[enough], counts[enough]
    history = (
        np.asarray((train[users] @ concepts.labels).todense()) / np.maximum(counts, 1)[:, None]
    )  # (U, C)
    precision = np.ones_like(item_auroc) if item_precision is None else item_precision
    chosen = choose_concepts(
        concepts, item_auroc, precision, cfg["n_concepts"], cfg.get("concepts")
    )
    entries = []
    for c, neuron in chosen:
        share = history[:, c]
        heavy = np.argsort(-share, kind="stable")[: cfg["audience_size"]]
        heavy = np.sort(users[heavy[share[heavy] > 0]])
        light = np.sort(users[np.argsort(share, kind="stable")[: cfg["audience_size"]]])
        entry = {
            "family": concepts.family[c],
            "concept": concepts.name[c],
            "neuron": neuron,
            "auroc": float(item_auroc[neuron, c]),
        }
        if item_precision is not None:
            entry["precision"] = float(item_precision[neuron, c])
        if len(heavy):
            entry["filtering"] = protocol.user_edit(heavy, neuron, c, cfg["filter_levels"], "set")
            entry["promotion"] = protocol.promotion(heavy, neuron, c, seed)
        else:
            entry["filtering"] = entry["promotion"] = {
                "reason": "no held-out user has this concept in train"
            }
        entry["nudging"] = protocol.user_edit(light, neuron, c, cfg["nudge_levels"], "add")
        entries.append(entry)
    return {"concepts": entries, "summary": _summary(entries)}


def concept_name(family: str, concept: str) -> str:
    """The ``family=value`` name of a concept (as ``metrics.interventions.concepts`` lists it)."""
    return f"{family}={concept}"


def choose_concepts(
    concepts: Concepts,
    auroc: np.ndarray,
    precision: np.ndarray,
    n_concepts: int,
    names: list[str] | None = None,
) -> list[tuple[int, int]]:
    """(concept column, neuron) pairs to intervene on, from auroc and precision (H, C).

    A concept's neuron maximises AUROC x top-k precision (first on ties), so it both separates
    the concept from the catalogue and fires on the concept's items first. ``names``
    (``family=value``) picks those concepts, in that order; without names, the ``n_concepts``
    concepts with the highest AUROC x precision, at most one per family (ties: column order).
    """
    capture = auroc * precision  # (H, C)
    columns = {
        concept_name(f, c): j
        for j, (f, c) in enumerate(zip(concepts.family, concepts.name, strict=True))
    }
    if names:
        unknown = [name for name in names if name not in columns]
        if unknown:
            raise ValueError(
                f"metrics.interventions.concepts: {unknown} not among the item concepts kept for "
                f"alignment (concepts with too few items are skipped); known: {sorted(columns)}"
            )
        picked = [columns[name] for name in names]
    else:
        picked, families = [], set()
        for j in np.argsort(-capture.max(0), kind="stable").tolist():
            if len(picked) < n_concepts and concepts.family[j] not in families:
                picked.append(j)
                families.add(concepts.family[j])
    return [(j, int(capture[:, j].argmax())) for j in picked]


def _summary(entries: list[dict]) -> dict:
    """Per experiment: means over concepts of the baseline shares and of every level's row."""
    out = {}
    for name in ("filtering", "nudging", "promotion"):
        runs = [e[name] for e in entries if e[name].get("levels")]
        out[name] = {"n_concepts": len(runs), "levels": _mean_rows([r["levels"] for r in runs])}
        for key in ("share_original", "share_reconstructed"):
            if runs and key in runs[0]:
                out[name][key] = float(np.mean([r[key] for r in runs]))
    return out
