"""The SAE module: variants, standardisation, decoder constraints, checkpoints, loss functions."""

import math

import pytest
import torch

from recsae.sae import losses
from recsae.sae.config import SAE_DEFAULTS, SAEConfig, SAEPoint
from recsae.sae.model import build_sae, load_sae, load_sae_extra, save_sae
from recsae.sae.variants.matryoshka import prefix_sizes


def make(input_dim=16, seed=0, **settings):
    point = SAEPoint.resolve(settings, input_dim)
    return build_sae(SAEConfig.from_point(point, input_dim), seed=seed)


def data(n=32, d=16, seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 0.3 + 0.1


def test_shapes_and_tied_decoder():
    sae = make(width=40)
    assert (sae.input_dim, sae.width) == (16, 40)
    assert sae.decoder_weight is None
    assert torch.equal(sae.decoder, sae.encoder_weight.T)
    out = sae(data())
    assert out.z.shape == (32, 40) and out.pre_acts.shape == (32, 40)
    assert out.x_hat.shape == (32, 16) and (out.z >= 0).all()
    names = {n for n, _ in sae.named_parameters()}
    assert names == {"pre_bias", "encoder_weight", "latent_bias"}


def test_width_from_expansion_and_config_errors():
    assert make(expansion=1.1, input_dim=20).width == 22
    with pytest.raises(ValueError, match="'variant'"):
        SAEPoint.resolve({"variant": "gated"}, 16)
    with pytest.raises(ValueError, match="unknown sae config key"):
        SAEPoint.resolve({"bta": 1}, 16)
    with pytest.raises(ValueError, match="'k'"):
        SAEPoint.resolve({"variant": "topk", "width": 8, "k": 9}, 16)
    with pytest.raises(ValueError, match="'tied'"):
        SAEPoint.resolve({"tied": 1}, 16)
    point = SAEPoint.resolve({"width": 64}, 16)
    assert SAEPoint.resolve(point.to_dict(), 16) == point
    assert point.aux_k == 8 and point.expansion is None
    with pytest.raises(ValueError, match="disagree"):
        SAEPoint.resolve({"width": 64, "expansion": 2.0}, 16)
    assert list(point.to_dict()) == list(SAE_DEFAULTS)


def test_topk_exactly_k_active():
    sae = make(variant="topk", width=64, k=8)
    z = sae.encode(data(n=100))
    assert ((z > 0).sum(dim=1) == 8).all()


def test_batchtopk_training_and_inference_threshold():
    sae = make(variant="batchtopk", width=64, k=4)
    x = data(n=50)
    sae.train()
    z = sae(x).z
    assert int((z > 0).sum()) == 4 * 50
    assert int(sae.activation.threshold_updates) == 1
    selected = z[z > 0]
    assert float(sae.activation.threshold) == pytest.approx(float(selected.min().detach()))
    sae(data(n=50, seed=2))
    assert int(sae.activation.threshold_updates) == 2
    sae.eval()
    pre = sae.pre_activations(sae.standardize(x)[0])
    z_inf = sae.encode(x)
    thr = sae.activation.threshold
    assert torch.equal(z_inf > 0, pre > thr)
    assert torch.equal(z_inf[z_inf > 0], pre[pre > thr])


def test_standardisation_is_undone_exactly():
    d = 6
    sae = make(input_dim=d, width=2 * d, tied=False, normalize_decoder="none")
    eye = torch.eye(d)
    with torch.no_grad():
        sae.encoder_weight.copy_(torch.cat([eye, -eye]))
        sae.decoder_weight.copy_(torch.cat([eye, -eye], dim=1))
    x = data(n=10, d=d) * 5 + 3
    out = sae(x)
    assert out.x_norm.mean(dim=1).abs().max() < 1e-5
    torch.testing.assert_close(out.x_hat, x)
    z, stats = sae.encode(x, return_stats=True)
    torch.testing.assert_close(sae.decode(z, stats), x)
    with pytest.raises(ValueError, match="standardize"):
        sae.decode(z)


def test_without_standardisation_decode_needs_no_stats():
    sae = make(standardize=False, width=24)
    x = data()
    torch.testing.assert_close(sae.decode(sae.encode(x)), sae(x).x_hat)


def test_untied_unit_norm_decoder():
    sae = make(tied=False, width=32, normalize_decoder="unit_norm")
    with torch.no_grad():
        sae.decoder_weight.mul_(3.0)
    sae.normalize_decoder_()
    torch.testing.assert_close(sae.decoder_weight.norm(dim=0), torch.ones(32))
    weighted = make(tied=False, width=32, normalize_decoder="weighted_l1")
    assert weighted.l1_weights().shape == (32,)
    assert make(width=32).l1_weights() is None


def test_matryoshka_prefixes():
    assert prefix_sizes([0.25, 0.5, 1.0], 64) == (16, 32, 64)
    assert prefix_sizes([0.25, 0.5], 64) == (16, 32, 64)
    assert prefix_sizes([8, 0.5], 64) == (8, 32, 64)
    with pytest.raises(ValueError, match="matryoshka_prefixes"):
        prefix_sizes([0.5, 0.25], 64)
    sae = make(variant="matryoshka", width=32)
    assert sae.config.prefix_sizes == (8, 16, 32)
    x = data()
    out = sae(x)
    recons = sae.decode_prefixes(out.z, out.stats)
    assert len(recons) == 3
    torch.testing.assert_close(recons[-1], out.x_hat)
    z8 = out.z.clone()
    z8[:, 8:] = 0
    torch.testing.assert_close(recons[0], sae.decode(z8, out.stats))
    v = data(n=20, seed=3)
    out_v = sae(v)
    loss = losses.matryoshka_embedding_loss(recons, x, sae.decode_prefixes(out_v.z, out_v.stats), v)
    expected = 0.0
    for m in (8, 16, 32):
        zu, zv = out.z.clone(), out_v.z.clone()
        zu[:, m:] = 0
        zv[:, m:] = 0
        expected += ((sae.decode(zu, out.stats) - x) ** 2).mean()
        expected += ((sae.decode(zv, out_v.stats) - v) ** 2).mean()
    torch.testing.assert_close(loss, expected)


def test_matryoshka_over_batchtopk():
    sae = make(variant="matryoshka", matryoshka_base="batchtopk", width=32, k=3)
    sae.train()
    assert int((sae(data(n=10)).z > 0).sum()) == 30


def test_dead_latent_tracking():
    sae = make(width=4)
    sae.update_activity(torch.tensor([True, False, True, False]))
    sae.update_activity(torch.tensor([False, False, True, False]))
    assert sae.steps_since_active.tolist() == [1, 2, 0, 2]
    assert sae.dead_mask(2).tolist() == [False, True, False, True]


@pytest.mark.parametrize(
    "cfg",
    [
        {"variant": "relu"},
        {"variant": "batchtopk", "k": 4, "tied": False},
        {"variant": "matryoshka", "matryoshka_base": "batchtopk", "k": 4},
    ],
)
def test_checkpoint_round_trip(tmp_path, cfg):
    sae = make(width=32, **cfg)
    sae.train()
    sae(data())
    sae.update_activity(torch.zeros(32, dtype=torch.bool))
    path = tmp_path / "sae.pt"
    save_sae(sae, path, extra={"point_id": "variant~relu", "sae_cfg": {"beta": 1.0}})
    raw = torch.load(path, weights_only=True)
    assert raw["config"] == sae.config.to_dict()
    loaded = load_sae(path)
    assert not loaded.training and loaded.config == sae.config
    state, loaded_state = sae.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    sae.eval()
    x = data(seed=5)
    torch.testing.assert_close(loaded.encode(x), sae.encode(x))
    assert load_sae_extra(path)["point_id"] == "variant~relu"


def test_seeded_init_is_deterministic():
    a, b, c = make(width=32, seed=3), make(width=32, seed=3), make(width=32, seed=4)
    assert torch.equal(a.encoder_weight, b.encoder_weight)
    assert not torch.equal(a.encoder_weight, c.encoder_weight)


def test_loss_functions_by_hand():
    z = torch.tensor([[0.0, 0.2], [0.1, 0.4]])
    rho = 0.1
    kl = 0.0
    for rho_hat in (0.05, 0.3):
        kl += rho * math.log(rho / rho_hat) + (1 - rho) * math.log((1 - rho) / (1 - rho_hat))
    assert float(losses.kl_sparsity_loss(z, rho)) == pytest.approx(kl, rel=1e-5)
    dead = torch.zeros(2, 2)
    expected_clamped = 2 * (
        rho * math.log(rho / 1e-6) + (1 - rho) * math.log((1 - rho) / (1 - 1e-6))
    )
    assert float(losses.kl_sparsity_loss(dead, rho)) == pytest.approx(expected_clamped, rel=1e-4)
    assert float(losses.l1_loss(z)) == pytest.approx(0.7 / 4)
    w = torch.tensor([2.0, 1.0])
    assert float(losses.l1_loss(z, w)) == pytest.approx((0.1 * 2 + 0.6) / 4)
    r, o = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0])
    bce = (
        -sum(
            torch.sigmoid(t) * math.log(torch.sigmoid(s))
            + (1 - torch.sigmoid(t)) * math.log(1 - torch.sigmoid(s))
            for s, t in zip(r, o, strict=True)
        )
        / 2
    )
    assert float(losses.pairwise_prediction_loss(r, o, "bce")) == pytest.approx(
        float(bce), rel=1e-5
    )
    assert float(losses.pairwise_prediction_loss(r, o, "mse")) == pytest.approx((0.25 + 1.0) / 2)
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert float(losses.fraction_variance_unexplained(x.mean(0).expand(2, 2), x)) == pytest.approx(
        1.0
    )


def test_auxk_latents_only_use_dead():
    pre = torch.tensor([[3.0, 2.0, 1.0, -1.0], [0.5, 4.0, 2.0, 1.0]])
    dead = torch.tensor([False, True, False, True])
    aux = losses.auxk_latents(pre, dead, k_aux=2)
    assert aux.tolist() == [[0.0, 2.0, 0.0, 0.0], [0.0, 4.0, 0.0, 1.0]]
    residual = torch.ones(2, 3)
    none_dead = torch.zeros(4, dtype=torch.bool)
    assert float(losses.auxk_loss(torch.zeros(2, 3), residual, none_dead)) == 0.0
    assert float(losses.auxk_loss(torch.zeros(2, 3), residual, dead)) == 1.0
