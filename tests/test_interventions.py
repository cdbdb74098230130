"""Concept editing on a hand-built catalogue where SAE neuron c is concept c, and the evaluation
entry point end to end on the same stand-ins."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from recsae.config import resolve_metrics_config
from recsae.data.tables import Split
from recsae.interventions import (
    ConceptEditor,
    choose_concepts,
    run_interventions,
    sae_decode,
    sae_encode,
)
from recsae.metrics.alignment import auroc_matrix, build_concepts
from recsae.recommenders.base import Recommender, register, save_checkpoint
from recsae.sae.config import SAEPoint
from recsae.stages import sae_evaluation

N_CONCEPTS, PER_CONCEPT, N_USERS = 3, 30, 30


@register("test_interventions_dot")
class TinyDot(Recommender):
    """Dot-product stand-in: logits U V^T + item bias."""

    objective = None

    def __init__(self, n_users, n_items, params):
        super().__init__(n_users, n_items, params)
        self.users = nn.Parameter(torch.zeros(n_users, params["dim"]))
        self.items = nn.Parameter(torch.zeros(n_items, params["dim"]))
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    def user_embeddings(self):
        return self.users

    def item_embeddings(self):
        return self.items

    def score_pairs(self, user_emb, item_emb, users=None, items=None):
        return (user_emb * item_emb).sum(1) + (0 if items is None else self.item_bias[items])

    def score_matrix(self, user_emb, item_emb, users=None, items=None):
        return user_emb @ item_emb.T + (0 if items is None else self.item_bias[items])

    def training_loss(self, batch):
        raise NotImplementedError


class SplitSAE(nn.Module):
    """Exact 'SAE': latents = (relu(x), relu(-x)); neuron j < d is the positive part of dim j."""

    def __init__(self, dim):
        super().__init__()
        self.input_dim, self.width = dim, 2 * dim

    def encode(self, x, return_stats=False):
        z = torch.relu(torch.cat([x, -x], dim=1))
        return (z, None) if return_stats else z

    def decode(self, z, stats=None):
        return z[:, : self.input_dim] - z[:, self.input_dim :]


class StatsSAE(SplitSAE):
    """SplitSAE on per-row standardised inputs; decode needs the stats of encode."""

    def encode(self, x, return_stats=False):
        mean, std = x.mean(1, keepdim=True), x.std(1, keepdim=True)
        z = super().encode((x - mean) / std)
        return (z, (mean, std)) if return_stats else z

    def decode(self, z, stats=None):
        if stats is None:
            raise ValueError("stats needed")
        return super().decode(z) * stats[1] + stats[0]


def catalogue(seed=0):
    """Items: concept c = dimension c; user u prefers concept u % 3. -> model, split, labels."""
    rng = np.random.default_rng(seed)
    n_items = N_CONCEPTS * PER_CONCEPT
    item_concept = np.repeat(np.arange(N_CONCEPTS), PER_CONCEPT)
    items = rng.normal(scale=0.05, size=(n_items, N_CONCEPTS))
    items[np.arange(n_items), item_concept] = 1 + 0.5 * rng.random(n_items)
    user_concept = np.arange(N_USERS) % N_CONCEPTS
    users = 0.2 + 1.5 * np.eye(N_CONCEPTS)[user_concept] + rng.normal(scale=0.02, size=(N_USERS, 3))
    model = TinyDot(N_USERS, n_items, {"dim": N_CONCEPTS})
    with torch.no_grad():
        model.users.copy_(torch.as_tensor(users))
        model.items.copy_(torch.as_tensor(items))
    parts = {"train": [], "valid": [], "test": []}
    for u, c in enumerate(user_concept):
        own = np.flatnonzero(item_concept == c)
        own = own[np.argsort(-items[own, c])]  # test items: the two strongest of the concept
        rest = rng.permutation(own[2:])
        other = rng.choice(np.flatnonzero(item_concept == (c + 1) % N_CONCEPTS))
        for part, chosen in (
            ("train", [*rest[:4], other]),
            ("valid", rest[4:5]),
            ("test", own[:2]),
        ):
            parts[part] += [(u, int(i)) for i in chosen]
    frames = {
        part: pd.DataFrame(rows, columns=["user", "item"]).assign(rating=1.0, timestamp=0)
        for part, rows in parts.items()
    }
    split = Split(n_users=N_USERS, n_items=n_items, **frames)
    labels = pd.DataFrame(
        {"id": np.arange(n_items), "family": "genre", "concept": item_concept.astype(str)}
    )
    return model.eval(), split, labels


def monotone(values, increasing=True):
    pairs = zip(values, values[1:], strict=False)
    return all(a <= b if increasing else a >= b for a, b in pairs)


def test_set_neuron_modes_and_errors():
    z = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    assert ConceptEditor.set_neuron(z, 1, -1.0).tolist() == [[1.0, -1.0], [0.0, -1.0]]
    assert ConceptEditor.set_neuron(z, 0, 0.5, mode="add").tolist() == [[1.5, 2.0], [0.5, 3.0]]
    assert z.tolist() == [[1.0, 2.0], [0.0, 3.0]]  # not modified in place
    with pytest.raises(ValueError, match="mode"):
        ConceptEditor.set_neuron(z, 0, 1.0, mode="mul")
    with pytest.raises(ValueError, match="out of range"):
        ConceptEditor.set_neuron(z, 2, 1.0)


@pytest.mark.parametrize("sae_cls", [SplitSAE, StatsSAE])
def test_roundtrip_edit_and_keep_error(sae_cls):
    model, split, _ = catalogue()
    sae = sae_cls(N_CONCEPTS)
    x = model.items.detach()
    assert torch.allclose(sae_decode(sae, sae_encode(sae, x, 7), x, 7), x, atol=1e-6)
    editor = ConceptEditor(model, sae, level_scale="absolute", keep_error=True)
    ids = [0, 5, 40]
    assert torch.equal(editor.reconstruct("item", ids), x[ids])
    z = editor.encode_items(ids)
    assert torch.allclose(editor.decode_items(z, ids), x[ids], atol=1e-6)
    assert torch.allclose(editor.edit_items(ids, 1, 0.0, mode="add"), x[ids], atol=1e-6)
    top = editor.rerank(
        editor.edit_users([0, 1], 0, 0.0, "add"), split.matrix("train"), [0, 1], k=5
    )
    assert top.shape == (2, 5)
    assert not set(top[0].tolist()) & set(split.train.loc[split.train.user == 0, "item"])


def test_level_scale_and_neuron_for_concept():
    model, _, labels = catalogue()
    editor = ConceptEditor(model, SplitSAE(N_CONCEPTS), level_scale="max")
    members = labels.loc[labels.concept == "1", "id"]
    neuron, auroc = editor.neuron_for_concept(members)
    assert neuron == 1 and auroc == pytest.approx(1.0)
    assert editor.raw_level(-1.0, 1, "item") == pytest.approx(
        -float(model.items[:, 1].detach().max())
    )
    assert editor.raw_level(2.0, 0, "user") == pytest.approx(
        2 * float(model.users[:, 0].detach().max())
    )
    with pytest.raises(ValueError, match="member"):
        editor.neuron_for_concept([])
    with pytest.raises(ValueError, match="level_scale"):
        ConceptEditor(model, SplitSAE(N_CONCEPTS), level_scale="relative")


CFG = {
    "n_concepts": 1,
    "audience_size": 5,
    "top_k": 10,
    "cost_k": 5,
    "filter_levels": [0.0, -0.5, -1.0],
    "nudge_levels": [0.5, 1.0, 2.0],
    "promotion_levels": [0.5, 1.0, 2.0],
    "promotion_mode": "set",
    "promotion_th": 5,
    "promotion_targets": 3,
}


def run(seed=0):
    model, split, labels = catalogue()
    editor = ConceptEditor(model, SplitSAE(N_CONCEPTS))
    concepts = build_concepts(labels, split.n_items)
    auroc = auroc_matrix(editor.latents("item"), concepts.labels)
    matrices = {p: split.matrix(p) for p in ("train", "valid", "test")}
    return run_interventions(editor, matrices, concepts, auroc, np.arange(N_USERS), CFG, seed)


def test_filtering_nudging_promotion_effects_and_costs():
    out = run()
    (entry,) = out["concepts"]
    assert entry["concept"] == "0" and entry["neuron"] == 0 and entry["auroc"] == pytest.approx(1.0)
    filt = entry["filtering"]
    assert len(filt["users"]) == 5 and all(u % 3 == 0 for u in filt["users"])
    shares = [row["share"] for row in filt["levels"]]
    assert filt["share_original"] == 1.0 and filt["share_reconstructed"] == 1.0
    assert shares[-1] == 0.0 and monotone(shares, increasing=False)
    last = filt["levels"][-1]
    assert last["overlap@10"] == 0.0 and last["delta_ndcg@5"] < 0 and last["off_target_change"] > 0
    assert last["raw_level"] == pytest.approx(-float(catalogue()[0].users[:, 0].detach().max()))

    nudge = entry["nudging"]
    assert all(u % 3 != 0 for u in nudge["users"])
    nudged = [row["share"] for row in nudge["levels"]]
    assert nudged[-1] > nudge["share_original"] and monotone(nudged)

    promo = entry["promotion"]
    assert promo["targets"] and all(
        t["original_mean_rank"] > CFG["promotion_th"] for t in promo["targets"]
    )
    success = [row["success"] for row in promo["levels"]]
    assert success[-1] == 1.0 and monotone(success)
    assert promo["levels"][-1]["mean_rank"] < min(t["original_mean_rank"] for t in promo["targets"])
    assert {"ndcg@5", "delta_ndcg@5", "overlap@10", "off_target_change"} <= set(promo["levels"][0])

    summary = out["summary"]
    assert summary["filtering"]["levels"][-1]["share"] == 0.0
    assert summary["promotion"]["n_concepts"] == 1
    assert out == run()  # seeded


def test_choose_concepts_by_auroc_and_precision_one_per_family():
    labels = pd.DataFrame(
        {
            "id": np.arange(40) % 20,
            "family": ["decade"] * 20 + ["genre"] * 20,
            "concept": ["1930s"] * 5 + ["1990s"] * 15 + ["Horror"] * 8 + ["Drama"] * 12,
        }
    )
    concepts = build_concepts(labels, 20)  # columns: decade=1930s, decade=1990s, genre=Drama, ...
    names = [f"{f}={c}" for f, c in zip(concepts.family, concepts.name, strict=True)]
    assert names == ["decade=1930s", "decade=1990s", "genre=Drama", "genre=Horror"]
    # neurons (rows) x concepts: 1930s has the top AUROC but a poor precision
    auroc = np.array([[0.99, 0.6, 0.5, 0.7], [0.5, 0.8, 0.6, 0.9], [0.6, 0.5, 0.7, 0.95]])
    precision = np.array([[0.1, 0.5, 0.4, 0.2], [0.2, 0.9, 0.5, 0.8], [0.3, 0.4, 0.6, 0.5]])
    # best products per concept: 1930s .18 (n2), 1990s .72 (n1), Drama .42 (n2), Horror .72 (n1)
    assert choose_concepts(concepts, auroc, precision, 3) == [(1, 1), (3, 1)]
    assert choose_concepts(concepts, auroc, precision, 1) == [(1, 1)]
    assert choose_concepts(concepts, auroc, precision, 3, ["genre=Drama", "decade=1930s"]) == [
        (2, 2),
        (0, 2),
    ]
    with pytest.raises(ValueError, match="genre=Western"):
        choose_concepts(concepts, auroc, precision, 3, ["genre=Western"])


def test_no_concepts_no_interventions():
    model, split, labels = catalogue()
    editor = ConceptEditor(model, SplitSAE(N_CONCEPTS))
    none = build_concepts(labels.iloc[:0], split.n_items)
    matrices = {p: split.matrix(p) for p in ("train", "valid", "test")}
    out = run_interventions(editor, matrices, none, np.zeros((6, 0)), np.arange(N_USERS), CFG, 0)
    assert out["concepts"] == [] and out["summary"]["filtering"]["levels"] == []


def write_dataset(tmp_path):
    model, split, labels = catalogue()
    data, split_dir = tmp_path / "data", tmp_path / "split"
    data.mkdir()
    split_dir.mkdir()
    (data / "stats.json").write_text(json.dumps({"n_users": N_USERS, "n_items": split.n_items}))
    for part in ("train", "valid", "test"):
        getattr(split, part).to_parquet(split_dir / f"{part}.parquet")
    planted = labels.assign(family="planted_cluster")
    users = pd.DataFrame(
        {
            "id": np.arange(N_USERS),
            "family": "gender",
            "concept": np.where(np.arange(N_USERS) % 2, "F", "M"),
        }
    )
    concepts = pd.concat(
        [labels.assign(entity="item"), planted.assign(entity="item"), users.assign(entity="user")]
    )
    concepts[["entity", "id", "family", "concept"]].to_parquet(data / "concepts.parquet")
    save_checkpoint(model, tmp_path / "model.pt")
    point = SAEPoint.resolve({"holdout_fraction": 0.5}, model.user_embeddings().shape[1])
    torch.save({"extra": {"seed": 0, "sae_cfg": point.to_dict()}}, tmp_path / "sae.pt")
    return data, split_dir


def test_evaluate_sae_end_to_end(tmp_path, monkeypatch):
    data, split_dir = write_dataset(tmp_path)
    monkeypatch.setattr(sae_evaluation, "load_sae", lambda path, device: SplitSAE(N_CONCEPTS))
    cfg = {"agreement_k": 10, "overlap_ks": [5, 10], "ks": [5], "interventions": CFG}
    cfg["active_min_interactions"] = 0  # the toy items have 0-4 training interactions each
    out_m, out_i = tmp_path / "m" / "metrics.json", tmp_path / "m" / "interventions.json"
    files = {
        "model_path": tmp_path / "model.pt",
        "sae_path": tmp_path / "sae.pt",
        "data_dir": data,
        "split_dir": split_dir,
        "metrics_out": out_m,
        "interventions_out": out_i,
    }
    sae_evaluation.evaluate(cfg, **files, seed=0, device="cpu")
    metrics, interventions = json.loads(out_m.read_text()), json.loads(out_i.read_text())
    summary = metrics["summary"]
    assert metrics["heldout"] == {
        "users": "heldout",
        "n_users": 15,
        "holdout_fraction": 0.5,
        "holdout_seed": 0,
    }
    assert summary["score_recovered"] == pytest.approx(1.0) and summary["rbo_ext"] == pytest.approx(
        1.0
    )
    assert summary["rbo10"] == pytest.approx(1 - 0.9**10) and summary[
        "kendall_tau"
    ] == pytest.approx(1.0)
    assert summary["fvu_users"] == pytest.approx(0.0, abs=1e-10) and summary["delta_ndcg@5"] == 0.0
    assert summary["coverage_items"] > 0.5 and summary["planted_auroc"] == pytest.approx(1.0)
    assert summary["planted_precision_r"] is not None and summary["coverage_users"] is not None
    assert summary["probe_ceiling_items"] > 0.5 and summary["ceiling_share_items"] is not None
    assert {"sparse_probe_k1_items", "sparse_probe_k5_users", "concept_auroc_items"} <= set(summary)
    assert {"ms_mean", "ms_alive", "l0_items", "dead_fraction", "overlap@5", "hr@5", "mpr"} <= set(
        summary
    )
    assert len(metrics["monosemanticity"]["per_neuron"]) == 2 * N_CONCEPTS
    assert metrics["config"]["interventions"]["top_k"] == 10 and metrics["seed"] == 0
    assert interventions["summary"]["filtering"]["levels"][-1]["share"] == 0.0
    with pytest.raises(ValueError, match="differs from the SAE"):
        sae_evaluation.evaluate({**cfg, "holdout_fraction": 0.2}, **files, seed=0, device="cpu")


def test_metrics_config_errors():
    assert resolve_metrics_config(None)["interventions"]["audience_size"] == 20
    with pytest.raises(ValueError, match=r"^metrics: .*'ms_topk' was unexpected"):
        resolve_metrics_config({"ms_topk": 3})
    with pytest.raises(ValueError, match=r"^metrics\.interventions: .*'levels' was unexpected"):
        resolve_metrics_config({"interventions": {"levels": [1]}})
    with pytest.raises(ValueError, match="overlap_ks"):
        resolve_metrics_config({"overlap_ks": [50]})
    with pytest.raises(ValueError, match=r"^metrics\.interventions\.concepts\[0\]: 'Horror'"):
        resolve_metrics_config({"interventions": {"concepts": ["Horror"]}})
    named = {"interventions": {"concepts": ["genre=Horror"]}}
    assert resolve_metrics_config(named)["interventions"]["concepts"] == ["genre=Horror"]


def test_evaluate_sae_with_the_recommenders_probe_ceiling_file(tmp_path, monkeypatch):
    """The once-per-recommender ceiling file gives the metrics of an evaluation that computes
    the ceiling itself, byte for byte; a file made with other settings is refused."""
    data, split_dir = write_dataset(tmp_path)
    monkeypatch.setattr(sae_evaluation, "load_sae", lambda path, device: SplitSAE(N_CONCEPTS))
    cfg = {"ks": [5], "interventions": CFG, "active_min_interactions": 0, "probe_folds": 3}
    common = {"model_path": tmp_path / "model.pt", "data_dir": data, "split_dir": split_dir}
    ceiling = tmp_path / "probe_ceiling.json"
    sae_evaluation.probe_ceilings(cfg, **common, out=ceiling, seed=1, device="cpu")
    written = json.loads(ceiling.read_text())
    assert written["seed"] == 1 and written["config"]["probe_folds"] == 3
    assert len(written["items"]) > 0 and len(written["users"]) == 2  # gender=F, gender=M

    def run(name, **extra):
        out = tmp_path / name
        sae_evaluation.evaluate(
            cfg,
            **common,
            sae_path=tmp_path / "sae.pt",
            metrics_out=out / "metrics.json",
            interventions_out=out / "interventions.json",
            device="cpu",
            **{"seed": 1, **extra},
        )
        return (out / "metrics.json").read_bytes(), (out / "interventions.json").read_bytes()

    assert run("from_file", ceiling_path=str(ceiling)) == run("computed")
    probes = json.loads((tmp_path / "computed" / "metrics.json").read_text())["probes"]
    assert probes["items"]["per_concept"]["ceiling"] == written["items"]
    with pytest.raises(ValueError, match="probe_folds"):
        sae_evaluation.evaluate(
            {**cfg, "probe_folds": 4},
            **common,
            sae_path=tmp_path / "sae.pt",
            metrics_out=tmp_path / "x" / "m.json",
            interventions_out=tmp_path / "x" / "i.json",
            seed=1,
            device="cpu",
            ceiling_path=str(ceiling),
        )
    with pytest.raises(ValueError, match="seed 1"):
        run("other_seed", ceiling_path=str(ceiling), seed=2)
