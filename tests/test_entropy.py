"""Unit tests of companion.entropy: the papers' numbers, closed forms, invariances."""

import math

import numpy as np
import pytest
import torch

from companion import entropy as E


# --- attention entropy and the bound ------------------------------------------------------

def test_attention_entropy_uniform_and_one_hot():
    T = 7
    uniform = np.full((3, T), 1.0 / T)
    np.testing.assert_allclose(E.attention_entropy(uniform), np.log(T), rtol=1e-12)
    one_hot = np.eye(T)
    np.testing.assert_allclose(E.attention_entropy(one_hot), 0.0, atol=1e-15)


def test_attention_entropy_dim_and_tensor_agree():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5, 5))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    by_numpy = E.attention_entropy(p)
    by_torch = E.attention_entropy(torch.from_numpy(p)).numpy()
    np.testing.assert_allclose(by_numpy, by_torch, rtol=1e-12)
    # the same rows laid along another axis
    np.testing.assert_allclose(E.attention_entropy(np.moveaxis(p, -1, 1), dim=1), by_numpy, rtol=1e-12)
    # independent computation with scipy
    from scipy.stats import entropy as scipy_entropy
    np.testing.assert_allclose(by_numpy, scipy_entropy(p, axis=-1), rtol=1e-10)


def test_attention_entropy_is_differentiable():
    logits = torch.randn(4, 6, requires_grad=True)
    E.attention_entropy(torch.softmax(logits, -1)).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_attention_entropy_validation():
    with pytest.raises(ValueError, match="attn"):
        E.attention_entropy(np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="attn"):
        E.attention_entropy(np.array([1.5, -0.5]))
    with pytest.raises(ValueError, match="dim"):
        E.attention_entropy(np.full((2, 2), 0.5), dim=2)
    with pytest.raises(TypeError, match="attn"):
        E.attention_entropy("uniform")


def test_head_entropy_averages_batch_and_queries():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(6), size=(2, 3, 6))          # (batch, heads, T, T)
    per_head = E.head_entropy(p)
    assert per_head.shape == (3,)
    np.testing.assert_allclose(per_head, E.attention_entropy(p).mean(axis=(0, 2)))
    with pytest.raises(ValueError, match="attn"):
        E.head_entropy(p[0, 0])


@pytest.mark.parametrize("T, s, expected", [(2, 1, 0.494200), (8, 1, 1.979691), (8, 5, 0.205592),
                                            (16, 3, 1.767526), (64, 10, 0.029206)])
def test_lower_bound_paper_values(T, s, expected):
    assert E.attention_entropy_lower_bound(T, s) == pytest.approx(expected, abs=1e-6)
    # the bound is the exact entropy of the extremal attention row
    assert E.attention_entropy(E.extremal_attention(T, s)) == pytest.approx(expected, abs=1e-6)


def test_lower_bound_limits_and_monotonicity():
    for T in (2, 5, 64):
        assert E.attention_entropy_lower_bound(T, 0.0) == pytest.approx(math.log(T), rel=1e-12)
    s = np.linspace(0, 30, 200)
    bound = E.attention_entropy_lower_bound(16, s)
    assert np.all(np.diff(bound) < 0) and bound[-1] < 1e-8


def test_extremal_row_has_norm_s_logits_and_is_minimal():
    T, s = 6, 2.5
    a = E.extremal_attention(T, s)
    logits = np.log(a) - np.log(a).mean()
    assert np.linalg.norm(logits) == pytest.approx(s, rel=1e-10)
    rng = np.random.default_rng(2)
    for _ in range(200):  # any other zero-mean logit vector of norm s has higher entropy
        z = rng.normal(size=T)
        z = s * (z - z.mean()) / np.linalg.norm(z - z.mean())
        p = np.exp(z) / np.exp(z).sum()
        assert E.attention_entropy(p) >= E.attention_entropy_lower_bound(T, s) - 1e-12


def test_random_attention_respects_the_bound():
    for s in (0.5, 4.0, 50.0, 300.0):
        a = E.random_attention(12, 8, s, seed=3)
        assert E.attention_entropy(a).min() >= E.attention_entropy_lower_bound(12, s) - 1e-12
    res = E.entropy_vs_scale([0.1, 10, 1000], seq_len=12, dim=8)
    assert np.all(res["min"] >= res["bound"] - 1e-12) and res["mean"][0] > res["mean"][-1]


def test_lower_bound_validation():
    with pytest.raises(ValueError, match="seq_len"):
        E.attention_entropy_lower_bound(1, 1.0)
    with pytest.raises(ValueError, match="scale"):
        E.attention_entropy_lower_bound(4, -1.0)
    with pytest.raises(TypeError, match="seq_len"):
        E.attention_entropy_lower_bound(4.5, 1.0)


# --- sigmaReparam -------------------------------------------------------------------------

def test_sigma_reparam_identity_at_init_and_spectral_norm():
    torch.manual_seed(0)
    linear = torch.nn.Linear(20, 30)
    w0 = linear.weight.detach().clone()
    layer = E.SigmaReparam(linear)
    svd_sigma = torch.linalg.matrix_norm(w0.double(), 2).item()
    assert layer.sigma().item() == pytest.approx(svd_sigma, abs=1e-3)
    layer.eval()
    torch.testing.assert_close(layer.effective_weight(), w0)
    x = torch.randn(5, 20)
    torch.testing.assert_close(layer(x), linear(x))
    layer.train()
    layer(x)  # one more power-iteration step: still W_hat = W
    torch.testing.assert_close(layer.effective_weight(), w0, atol=1e-5, rtol=1e-5)


def test_sigma_reparam_power_iteration_tracks_svd_after_training_changes():
    torch.manual_seed(1)
    layer = E.SigmaReparam(torch.nn.Linear(16, 16))
    with torch.no_grad():
        layer.weight.mul_(3.0).add_(0.1 * torch.randn(16, 16))
    for _ in range(60):
        layer(torch.randn(2, 16))
    svd_sigma = torch.linalg.matrix_norm(layer.weight.detach(), 2).item()
    assert layer.sigma().item() == pytest.approx(svd_sigma, abs=1e-3)
    # the effective weight's spectral norm is gamma
    eff = torch.linalg.matrix_norm(layer.effective_weight().detach(), 2).item()
    assert eff == pytest.approx(layer.gamma.item(), rel=1e-3)


def test_sigma_reparam_gradients_and_no_grad_buffers():
    layer = E.SigmaReparam(torch.nn.Linear(8, 4))
    layer(torch.randn(3, 8)).sum().backward()
    assert layer.weight.grad is not None and layer.gamma.grad is not None
    assert not layer.u.requires_grad and not layer.v.requires_grad
    # gradient of the output through W_hat is orthogonal to scaling W (W_hat is scale invariant)
    w = layer.weight.detach()
    assert abs(torch.sum(layer.weight.grad * w).item()) < 1e-5 * layer.weight.grad.norm().item() * w.norm().item() + 1e-6


def test_apply_sigma_reparam_converts_every_linear():
    model = E.TinyTransformer(10, 6, d_model=8, num_heads=2, num_layers=2)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    x = torch.randint(10, (2, 6))
    model.eval()
    before = model(x)
    E.apply_sigma_reparam(model)
    model.eval()
    assert sum(isinstance(m, E.SigmaReparam) for m in model.modules()) == n_linear
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="model"):
        E.apply_sigma_reparam("model")
    with pytest.raises(TypeError, match="linear"):
        E.SigmaReparam(torch.nn.Conv1d(2, 2, 1))


def test_tiny_transformer_sigma_reparam_wraps_the_blocks_not_embedding_or_output():
    torch.manual_seed(0)
    plain = E.TinyTransformer(10, 6, d_model=8, num_heads=2, num_layers=2)
    torch.manual_seed(0)
    model = E.TinyTransformer(10, 6, d_model=8, num_heads=2, num_layers=2, sigma_reparam=True)
    # every linear layer of the attention and MLP sub-layers (q, k, v, out, 2 MLP) is wrapped
    for block in model.blocks:
        wrapped = [m for m in block.modules() if isinstance(m, E.SigmaReparam)]
        assert len(wrapped) == 6 and not any(isinstance(m, torch.nn.Linear) for m in block.modules())
    # the output layer (unembedding) keeps a plain weight, without a gamma
    assert type(model.head) is torch.nn.Linear
    # same initialisation, same function at step 0
    x = torch.randint(10, (2, 6))
    plain.eval(), model.eval()
    torch.testing.assert_close(model(x), plain(x), atol=1e-5, rtol=1e-5)


def test_sigma_reparam_post_ln_learns_where_post_ln_collapses():
    # Zhai et al. (2023): at a learning rate too high for post-LN (entropy collapse, loss at
    # chance), the sigmaReparam model keeps its attention soft long enough to learn to copy
    torch.set_num_threads(1)
    base = E.train_copy_task(1e-1, num_steps=200, seed=0)
    fixed = E.train_copy_task(1e-1, sigma_reparam=True, num_steps=200, seed=0)
    assert base["loss"][-20:].mean() > 0.9 * math.log(30) and base["min_entropy"][30] < 0.1
    assert fixed["loss"][-20:].mean() < 0.5 and fixed["min_entropy"][30] > 0.3


# --- the transformer and the copy task ----------------------------------------------------

def test_copy_task_batch_structure():
    x, y, mask = E.copy_task_batch(4, num_tokens=5, vocab_size=9, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == mask.shape == (4, 10)
    assert torch.all(x[:, 5] == 9)                      # the separator
    assert torch.equal(y[:, 5:], x[:, :5])               # scored targets are the copied tokens
    assert mask[:, 5:].all() and not mask[:, :5].any()
    assert torch.equal(x[:, 1:], y[:, :-1])              # next-token shift


@pytest.mark.parametrize("norm", ["post", "pre", "none"])
@pytest.mark.parametrize("qk", [False, True])
def test_transformer_attention_is_causal_and_stochastic(norm, qk):
    torch.manual_seed(0)
    model = E.TinyTransformer(12, 8, d_model=16, num_heads=4, num_layers=2, norm=norm, qk_layernorm=qk)
    logits, hidden = model(torch.randint(12, (3, 8)), return_hidden=True)
    assert logits.shape == (3, 8, 12) and len(hidden) == 3
    for a in model.attention_maps():
        assert a.shape == (3, 4, 8, 8)
        torch.testing.assert_close(a.sum(-1), torch.ones(3, 4, 8))
        assert torch.all(a.triu(1) == 0)                 # causal
    with pytest.raises(ValueError, match="norm"):
        E.TinyTransformer(12, 8, norm="side")


def test_train_copy_task_logs_entropy_and_learns_at_moderate_lr():
    torch.set_num_threads(1)
    h = E.train_copy_task(1e-2, num_steps=120, seed=0)
    assert set(["loss", "entropy", "min_entropy"]) <= set(h.keys())
    assert h["entropy"][0] <= math.log(16) and np.all(h["min_entropy"] <= h["entropy"] + 1e-12)
    assert h["loss"][-10:].mean() < 0.5 * math.log(30)


# --- softmax collapse, StableMax, perpGrad -------------------------------------------------

def test_stablemax_paper_values():
    np.testing.assert_allclose(E.stablemax(np.array([0.0, 1.0, -1.0])), [0.285714, 0.571429, 0.142857], atol=1e-6)
    np.testing.assert_allclose(E.stablemax(np.array([2.0, 0.0, -3.0])), [0.705882, 0.235294, 0.058824], atol=1e-6)


def test_stablemax_properties():
    x = torch.randn(4, 7, dtype=torch.float64)
    p = E.stablemax(x)
    torch.testing.assert_close(p.sum(-1), torch.ones(4, dtype=torch.float64))
    assert torch.equal(p.argmax(-1), x.argmax(-1))                 # order preserving
    torch.testing.assert_close(torch.exp(E.log_stablemax(x)), p)
    np.testing.assert_allclose(E.stablemax(x.numpy().T, dim=0), p.numpy().T)
    # s is continuous at 0 with slope 1 on both sides, unlike exp it grows linearly
    big = E.stablemax(torch.tensor([[1e4, 0.0]], dtype=torch.float32))
    assert big[0, 1] > 0                                             # no collapse to one hot
    y = torch.tensor([0, 3, 6, 1])
    ref = -torch.log(p[torch.arange(4), y]).mean()
    torch.testing.assert_close(E.stablemax_cross_entropy(x, y), ref)


def test_softmax_collapse_float32_vs_float64():
    assert E.softmax_collapse_fraction(np.array([20.0, 0.0], dtype=np.float32)) == 1.0
    assert E.softmax_collapse_fraction(np.array([20.0, 0.0], dtype=np.float64)) == 0.0
    assert E.softmax_collapse_fraction(torch.tensor([[20.0, 0.0], [1.0, 0.0]])) == 0.5
    # collapse means the cross entropy of the top class is exactly zero
    z = torch.tensor([[20.0, 0.0, -3.0]])
    assert torch.nn.functional.cross_entropy(z, torch.tensor([0])).item() == 0.0
    with pytest.raises(ValueError, match="logits"):
        E.softmax_collapse_fraction(np.array([1.0]))


def test_perp_grad_orthogonal_and_norm_preserving():
    rng = np.random.default_rng(0)
    w, g = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    gp = E.perp_grad(w, g)
    assert abs(np.sum(gp * w)) < 1e-10
    assert np.linalg.norm(gp) == pytest.approx(np.linalg.norm(g), rel=1e-12)
    # a gradient along w has no orthogonal part except numerics; an orthogonal one is unchanged
    g_orth = g - np.sum(g * w) / np.sum(w * w) * w
    np.testing.assert_allclose(E.perp_grad(w, g_orth), g_orth, rtol=1e-10)
    with pytest.raises(ValueError, match="shape"):
        E.perp_grad(w, g[:2])


def test_apply_perp_grad_in_place():
    lin = torch.nn.Linear(4, 3)
    lin(torch.randn(6, 4)).pow(2).sum().backward()
    g_before = lin.weight.grad.clone()
    E.apply_perp_grad_(lin.parameters())
    assert abs(torch.sum(lin.weight.grad * lin.weight).item()) < 1e-5
    assert lin.weight.grad.norm().item() == pytest.approx(g_before.norm().item(), rel=1e-5)


def test_modular_addition_data_split():
    x_tr, y_tr, x_te, y_te = E.modular_addition_data(7, 0.5, seed=0)
    assert len(y_tr) + len(y_te) == 49
    assert torch.equal((x_tr.sum(1)) % 7, y_tr) and torch.equal((x_te.sum(1)) % 7, y_te)
    pairs = {tuple(r) for r in torch.cat([x_tr, x_te]).tolist()}
    assert len(pairs) == 49
    with pytest.raises(ValueError, match="train_fraction"):
        E.modular_addition_data(7, 1.0)


def test_modular_training_logs_collapse_quantities():
    torch.set_num_threads(1)
    h = E.train_modular_addition(p=7, num_steps=60, eval_every=20, lr=3e-2)
    for key in ("loss", "train_acc", "test_acc", "sc_fraction", "zero_loss_fraction", "logit_norm"):
        assert key in h
    assert h["train_acc"][-1] == 1.0 and h["logit_norm"][-1] > h["logit_norm"][0]


# --- representation collapse --------------------------------------------------------------

def test_effective_rank_values():
    assert E.effective_rank(np.diag([3.0, 1.0])) == pytest.approx(1.754765, abs=1e-6)
    assert E.effective_rank(np.eye(5)) == pytest.approx(5.0, rel=1e-12)
    assert E.effective_rank(np.outer([1.0, 2, 3], [4.0, 5])) == pytest.approx(1.0, rel=1e-9)
    # invariant to orthogonal transforms and to scale
    rng = np.random.default_rng(0)
    m = rng.normal(size=(8, 5))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert E.effective_rank(3 * q @ m) == pytest.approx(E.effective_rank(m), rel=1e-9)
    with pytest.raises(ValueError, match="matrix"):
        E.effective_rank(np.zeros((3, 3)))


def test_von_neumann_entropy_values():
    z = np.array([[1.0, 0], [2, 0], [0, 1], [0, 3]])
    assert E.von_neumann_entropy(z) == pytest.approx(math.log(2), abs=1e-12)
    assert E.von_neumann_entropy(np.ones((5, 3))) == pytest.approx(0.0, abs=1e-9)
    assert E.von_neumann_entropy(np.eye(4)) == pytest.approx(math.log(4), rel=1e-12)
    with pytest.raises(ValueError, match="features"):
        E.von_neumann_entropy(np.zeros((2, 2)))


def test_seq_vcr_loss():
    torch.manual_seed(0)
    # whitened features (unit variance, no covariance) have zero Seq-VCR loss up to eps
    n, d = 4096, 4
    h = torch.randn(n, 3, d, dtype=torch.float64)
    h = (h - h.mean(0)) / h.std(0)
    assert E.seq_vcr_loss(h, eps=1e-12).item() < 0.01
    # collapsed features (all samples equal) pay the full variance hinge lambda_var
    collapsed = torch.ones(8, 3, d, dtype=torch.float64)
    assert E.seq_vcr_loss(collapsed, lambda_var=2.0, eps=1e-12).item() == pytest.approx(2.0, rel=1e-5)
    # perfectly correlated dimensions pay the covariance term: C_kl = 1 off diagonal
    x = torch.randn(4096, 1, 1, dtype=torch.float64)
    x = (x - x.mean()) / x.std()
    corr = x.repeat(1, 1, 3)
    expected = 0.5 * 6 / 3   # lambda_cov * sum over 6 off-diagonal entries of 1 / d
    assert E.seq_vcr_loss(corr, lambda_var=0.0, lambda_cov=0.5).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="hidden"):
        E.seq_vcr_loss(torch.ones(1, 3, 2))


def test_hidden_state_ranks_shapes():
    model = E.TinyTransformer(10, 6, d_model=8, num_heads=2, num_layers=2)
    r = E.hidden_state_ranks(model, torch.randint(10, (4, 6)))
    assert r["effective_rank"].shape == (3,) and np.all(r["effective_rank"] <= 8 + 1e-9)
    assert np.all(r["vne"] <= math.log(8) + 1e-9)


# --- figures and explorer -----------------------------------------------------------------

def test_figures_and_explorer():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = E.entropy_vs_scale([0.5, 5, 50])
    for fig in (E.plot_entropy_vs_scale(res), E.plot_attention_maps([np.eye(3)], titles=["a"])):
        assert fig.axes[0].get_xlabel()
        plt.close(fig)
    ex = E.entropy_explorer()
    fig, text = ex.render()
    assert "bound" in text and fig.axes[0].get_xlabel() == "key"
    plt.close(fig)
    assert len(ex.controls["scale"].values) <= 12


# --- causal ceiling and causal bound --------------------------------------------------------

def test_causal_entropy_ceiling_values():
    assert E.causal_entropy_ceiling(1) == 0.0
    assert E.causal_entropy_ceiling(16) == pytest.approx(math.lgamma(17) / 16, rel=1e-12)
    assert E.causal_entropy_ceiling(16) == pytest.approx(1.91699, abs=1e-5)
    # attained by uniform causal attention
    T = 9
    attn = np.tril(np.ones((T, T)))
    attn /= attn.sum(1, keepdims=True)
    assert E.attention_entropy(attn).mean() == pytest.approx(E.causal_entropy_ceiling(T), rel=1e-12)
    with pytest.raises(ValueError, match="seq_len"):
        E.causal_entropy_ceiling(0)


def test_causal_lower_bound_is_ceiling_at_zero_and_holds_for_random_causal_logits():
    for T in (2, 5, 16):
        assert E.causal_entropy_lower_bound(T, 0.0) == pytest.approx(E.causal_entropy_ceiling(T), rel=1e-12)
    values = E.causal_entropy_lower_bound(16, np.array([0.0, 1.0, 3.0, 10.0]))
    assert np.all(np.diff(values) < 0)
    expected = np.mean([0.0] + [E.attention_entropy_lower_bound(i, 3.0) for i in range(2, 17)])
    assert E.causal_entropy_lower_bound(16, 3.0) == pytest.approx(expected, rel=1e-12)
    # independent check: causal rows whose logits have norm <= s
    rng = np.random.default_rng(3)
    T, s = 12, 4.0
    for _ in range(20):
        ents = []
        for i in range(1, T + 1):
            z = rng.normal(size=i)
            z *= s * rng.uniform() / max(np.linalg.norm(z), 1e-12)
            p = np.exp(z - z.max())
            ents.append(E.attention_entropy(p / p.sum()))
        assert np.mean(ents) >= E.causal_entropy_lower_bound(T, s) - 1e-12
    with pytest.raises(ValueError, match="scale"):
        E.causal_entropy_lower_bound(4, -1.0)


def test_logit_norm_bound_below_entropy_and_tight_for_the_extremal_row():
    torch.manual_seed(0)
    T = 10
    logits = 5 * torch.randn(3, 2, T, T, dtype=torch.float64)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    masked = logits.masked_fill(mask, float("-inf"))
    attn = torch.softmax(masked, -1)
    ent = -torch.special.xlogy(attn, attn).sum(-1).mean(-1)
    bound = E._logit_norm_bound(masked)
    assert bound.shape == (3, 2) and torch.all(bound <= ent + 1e-12)
    # a single full row equal to the extremal logits: the bound is its entropy
    z = torch.from_numpy(np.log(E.extremal_attention(6, 2.5)))[None, None, None, :]
    z = z - z.mean()
    row = E._logit_norm_bound(z)
    assert float(row) == pytest.approx(E.attention_entropy_lower_bound(6, 2.5), rel=1e-9)


# --- seed ensembles -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(norm="post"), dict(norm="post", sigma_reparam=True),
                                    dict(norm="post", sigma_reparam="qk"), dict(norm="pre", qk_layernorm=True),
                                    dict(norm="none")])
def test_copy_ensemble_members_equal_single_runs(kwargs):
    torch.set_num_threads(1)
    single = np.array([E.train_copy_task(3e-2, seed=s, num_steps=6, **kwargs)["loss"] for s in (0, 3)])
    ens = E.train_copy_ensemble(3e-2, [0, 3], num_steps=6, **kwargs)
    np.testing.assert_allclose(ens["loss"], single, rtol=1e-4, atol=1e-5)
    # member k, read back as a plain model, computes what the ensemble computes
    tokens = torch.stack([E.copy_task_batch(4, generator=torch.Generator().manual_seed(k))[0] for k in range(2)])
    e = ens["ensemble"]
    e.training = False
    with torch.no_grad():
        logits, _, _ = e.forward(tokens)
        for k in range(2):
            torch.testing.assert_close(e.member(k).eval()(tokens[k]), logits[k], atol=1e-5, rtol=1e-5)


def test_tiny_transformer_sigma_reparam_qk_wraps_only_queries_and_keys():
    model = E.TinyTransformer(12, 8, sigma_reparam="qk")
    attn = model.blocks[0].attn
    assert isinstance(attn.query, E.SigmaReparam) and isinstance(attn.key, E.SigmaReparam)
    assert isinstance(attn.value, torch.nn.Linear) and isinstance(attn.out, torch.nn.Linear)
    assert isinstance(model.blocks[1].mlp[0], torch.nn.Linear)
    with pytest.raises(ValueError, match="sigma_reparam"):
        E.TinyTransformer(12, 8, sigma_reparam="mlp")


def test_ensemble_adam_equals_torch_adam_per_member():
    torch.manual_seed(0)
    w0 = torch.randn(3, 4, 5)
    grads = [torch.randn(3, 4, 5) for _ in range(4)]
    lrs = torch.tensor([1e-3, 1e-2, 1e-1])
    w = w0.clone().requires_grad_(True)
    opt = E._Adam([w], lrs, betas=(0.9, 0.98), eps=1e-8)
    for g in grads:
        w.grad = g.clone()
        opt.step()
    for k in range(3):
        p = w0[k].clone().requires_grad_(True)
        ref = torch.optim.Adam([p], lr=float(lrs[k]), betas=(0.9, 0.98), eps=1e-8)
        for g in grads:
            p.grad = g[k].clone()
            ref.step()
        torch.testing.assert_close(w[k].detach(), p.detach(), rtol=1e-5, atol=1e-7)


def test_ensemble_perp_grad_equals_perp_grad_per_member():
    torch.manual_seed(1)
    w = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    w.grad = torch.randn(3, 4, 6, dtype=torch.float64)
    expected = torch.stack([E.perp_grad(w[k].detach(), w.grad[k]) for k in range(3)])
    E._ensemble_perp_grad_([w])
    torch.testing.assert_close(w.grad, expected)


def test_qk_spectral_norms_match_a_direct_svd():
    torch.manual_seed(2)
    models = [E.TinyTransformer(12, 8, d_model=16, num_heads=2) for _ in range(2)]
    ens = E.CopyEnsemble(models)
    norms = ens.qk_spectral_norms()
    assert norms.shape == (2, 2, 2)
    for k, m in enumerate(models):
        for layer, block in enumerate(m.blocks):
            wq, wk = block.attn.query.weight.detach(), block.attn.key.weight.detach()
            for h in range(2):
                sl = slice(8 * h, 8 * (h + 1))
                direct = np.linalg.norm((wq[sl].T @ wk[sl]).numpy(), 2) / math.sqrt(8)
                assert float(norms[k, layer, h]) == pytest.approx(direct, rel=1e-5)


def test_train_copy_ensemble_logs_and_validation():
    torch.set_num_threads(1)
    r = E.train_copy_ensemble([1e-2, 1e-1], [0, 0], num_steps=12, stats_every=5, rank_every=6, seq_vcr=0.5)
    assert r["loss"].shape == r["entropy"].shape == r["min_entropy"].shape == r["max_logit"].shape == (2, 12)
    assert list(r["stats_steps"]) == [0, 5, 10] and r["bound"].shape == r["logit_bound"].shape == (2, 3)
    assert np.all(r["min_entropy"] <= r["entropy"] + 1e-9)
    assert np.all(r["entropy"] <= E.causal_entropy_ceiling(16) + 1e-6)
    assert np.all(r["logit_bound"] <= r["entropy"][:, r["stats_steps"]] + 1e-6)
    assert list(r["rank_steps"]) == [0, 6, 12] and r["ranks"].shape == (2, 3, 3)
    assert np.allclose(r["loss"][:, 0], r["loss"][0, 0])          # same seed, same start
    assert r["loss"][0, -1] != r["loss"][1, -1]                   # different learning rates
    qk = E.train_copy_ensemble(1e-2, [0], num_steps=3, stats_every=1, qk_layernorm=True, norm="pre")
    assert np.all(np.isnan(qk["bound"])) and np.all(np.isfinite(qk["logit_bound"]))
    with pytest.raises(ValueError, match="lr"):
        E.train_copy_ensemble([1e-2, 1e-2, 1e-2], [0, 1], num_steps=2)
    with pytest.raises((TypeError, ValueError), match="seed_list"):   # an empty list has no integer dtype
        E.train_copy_ensemble(1e-2, [], num_steps=2)


def test_learning_rate_sweep_shapes():
    torch.set_num_threads(1)
    sweep = E.learning_rate_sweep([1e-3, 1e-2], {"a": dict(norm="post")}, seed_list=[0, 1, 2], num_steps=3, last=2)
    assert sweep["a"].shape == (3, 2) and np.all(np.isfinite(sweep["a"]))


def test_modular_ensemble_member_init_and_logs():
    torch.set_num_threads(1)
    ens = E._ModularEnsemble(7, 16, [0, 4], torch.float32, torch.device("cpu"))
    x = torch.tensor([[1, 2], [3, 6]])
    torch.manual_seed(4)
    ref = E.ModularMLP(7, 16, bias=False)
    torch.testing.assert_close(ens(torch.stack([x, x]))[1], ref(x))
    r = E.train_modular_ensemble([0, 1], p=7, num_steps=40, eval_every=20, lr=3e-2)
    for key in ("train_acc", "test_acc", "sc_fraction", "zero_loss_fraction", "logit_norm"):
        assert r[key].shape == (2, 3)
    assert list(r["steps"]) == [0, 20, 40] and r["loss"].shape == (2, 40)
    assert np.all(r["train_acc"][:, -1] == 1.0) and np.all(r["logit_norm"][:, -1] > r["logit_norm"][:, 0])
    r64 = E.train_modular_ensemble([0], p=7, num_steps=5, eval_every=5, loss_dtype=torch.float64, perp=True)
    assert np.all(r64["zero_loss_fraction"] == 0)
    with pytest.raises(ValueError, match="loss_dtype"):
        E.train_modular_ensemble([0], p=7, num_steps=1, loss_dtype=torch.float16)


def test_softmax_collapse_gap_matches_the_rounding_rule():
    for dtype, np_dtype in ((torch.float32, np.float32), (torch.float64, np.float64)):
        gap = E.softmax_collapse_gap(dtype)
        assert gap == pytest.approx(np.log(2 / np.finfo(np_dtype).eps), abs=1e-3)
        assert E.softmax_collapse_fraction(torch.tensor([gap + 0.01, 0.0], dtype=dtype)) == 1.0
        assert E.softmax_collapse_fraction(torch.tensor([gap - 0.01, 0.0], dtype=dtype)) == 0.0
    with pytest.raises(ValueError, match="dtype"):
        E.softmax_collapse_gap(torch.int32)


def test_softmax_collapse_zeroes_only_the_correct_class_gradient():
    z = torch.tensor([[20.0, 0.0, -1.0]], requires_grad=True)
    torch.nn.functional.cross_entropy(z, torch.tensor([0])).backward()
    assert z.grad[0, 0] == 0.0
    np.testing.assert_allclose(z.grad[0, 1:].numpy(), np.exp([-20.0, -21.0]), rtol=1e-5)


@pytest.mark.parametrize("dim, lr, steps, sigma0", [(32, 1e-2, 30, 1.0), (8, 3e-2, 20, 2.0)])
def test_adam_spectral_growth_plain_is_dim_times_faster(dim, lr, steps, sigma0):
    r = E.adam_spectral_growth(dim, lr, steps, sigma0)
    assert r["plain"].shape == r["sigma_reparam"].shape == (steps + 1,)
    assert r["plain"][-1] == pytest.approx(sigma0 + steps * lr * dim, rel=1e-4)
    assert r["sigma_reparam"][-1] == pytest.approx(sigma0 + steps * lr, rel=1e-4)
    with pytest.raises(ValueError, match="lr"):
        E.adam_spectral_growth(4, -1.0)


def test_ensemble_figures_have_labelled_axes():
    import matplotlib
    matplotlib.use("Agg")
    torch.set_num_threads(1)
    runs = {"a": E.train_copy_ensemble(1e-2, [0, 1], num_steps=4, stats_every=2, rank_every=2)}
    mod = {"m": E.train_modular_ensemble([0, 1], p=5, num_steps=4, eval_every=2)}
    sweep = {"lr": np.array([1e-3, 1e-2]), "a": np.array([[1.0, 0.5], [2.0, np.inf]])}
    for fig in (E.plot_copy_ensembles(runs, chance=3.4, ceiling=1.9), E.plot_entropy_mechanism(runs),
                E.plot_lr_sweep_seeds(sweep, chance=3.4), E.plot_modular_ensembles(mod),
                E.plot_rank_during_training(runs)):
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
        matplotlib.pyplot.close(fig)


# ---------------------------------------------------------------------------------------
# bad input: each ends in a ValueError/TypeError naming the argument
# ---------------------------------------------------------------------------------------

def _tiny():
    torch.manual_seed(0)
    return E.TinyTransformer(10, 6, d_model=8, num_heads=2, num_layers=1)


@pytest.mark.parametrize("tokens, error", [
    (torch.tensor([[0, 1, 10]]), ValueError),              # id == vocab_size
    (torch.tensor([[0, -1, 2]]), ValueError),              # negative id
    (torch.tensor([[0.0, 1.5]]), TypeError),               # float ids
    (torch.zeros(2, 7, dtype=torch.long), ValueError),     # longer than seq_len
    (torch.zeros(6, dtype=torch.long), ValueError),        # no batch axis
    (np.zeros((1, 6), dtype=np.int64), TypeError),         # not a tensor
])
def test_token_ids_are_checked(tokens, error):
    model = _tiny()
    with pytest.raises(error, match="tokens"):
        model(tokens)
    with pytest.raises(error, match="tokens"):
        E.hidden_state_ranks(model, tokens)


def test_ensemble_tokens_are_checked():
    ens = E.CopyEnsemble([_tiny(), _tiny()])
    with pytest.raises(ValueError, match="tokens"):
        ens.forward(torch.full((2, 1, 6), 10))
    with pytest.raises(ValueError, match="tokens"):
        ens.forward(torch.zeros(3, 1, 6, dtype=torch.long))    # three members' tokens for two
    with pytest.raises(ValueError, match="models"):
        E.CopyEnsemble([_tiny(), E.TinyTransformer(10, 6, d_model=16, num_heads=2, num_layers=1)])


def test_stablemax_cross_entropy_checks_targets():
    logits = torch.randn(4, 5)
    for bad in (torch.tensor([0, 1, 5, 2]), torch.tensor([0, -1, 2, 3])):
        with pytest.raises(ValueError, match="targets"):
            E.stablemax_cross_entropy(logits, bad)
    with pytest.raises(TypeError, match="targets"):
        E.stablemax_cross_entropy(logits, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="targets"):
        E.stablemax_cross_entropy(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="logits"):
        E.stablemax_cross_entropy(logits[:, :0], torch.tensor([0, 1, 2, 3]))


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), 1e30])
def test_seq_vcr_loss_rejects_non_finite_and_overflowing_hidden(fill):
    hidden = torch.randn(4, 3, 8)
    hidden[1, 2, 3] = fill
    with pytest.raises(ValueError, match="hidden"):
        E.seq_vcr_loss(hidden)
    with pytest.raises(ValueError, match="lambda_cov"):
        E.seq_vcr_loss(torch.randn(4, 3, 8), lambda_cov=float("nan"))


@pytest.mark.parametrize("cls", [E.MultiHeadSelfAttention, E.TransformerBlock])
def test_attention_layers_check_their_sizes(cls):
    with pytest.raises(ValueError, match="num_heads"):
        cls(8, 0)
    with pytest.raises(ValueError, match="num_heads"):
        cls(8, 3)                                             # does not divide d_model
    with pytest.raises(TypeError, match="d_model"):
        cls("8", 2)
    with pytest.raises(TypeError, match="qk_layernorm"):
        cls(8, 2, qk_layernorm="yes")
    layer = cls(8, 2)
    with pytest.raises(ValueError, match="x"):
        layer(torch.randn(2, 5, 4))                           # wrong width
    with pytest.raises(TypeError, match="x"):
        layer(torch.randn(2, 5, 8, dtype=torch.complex64))


def test_bounds_at_huge_scales_are_zero_not_nan():
    assert E.attention_entropy_lower_bound(8, 1e300) == 0.0
    assert E.causal_entropy_lower_bound(8, 1e300) == 0.0
    np.testing.assert_allclose(E.causal_entropy_lower_bound(16, np.array([0.0, 2.0])),
                               [sum(E.attention_entropy_lower_bound(i, s) for i in range(2, 17)) / 16
                                for s in (0.0, 2.0)], rtol=1e-12)


def test_training_arguments_are_checked():
    with pytest.raises(ValueError, match="lr"):
        E.train_copy_ensemble(1e308, [0], num_steps=1)
    with pytest.raises(ValueError, match="betas"):
        E.train_modular_ensemble([0], p=5, num_steps=1, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="variants"):
        E.learning_rate_sweep([1e-3], {"a": {"nrom": "pre"}}, seed_list=[0], num_steps=1, last=1)
    with pytest.raises(ValueError, match="last"):
        E.learning_rate_sweep([1e-3], {"a": {}}, seed_list=[0], num_steps=2, last=3)
    with pytest.raises(ValueError, match="tol"):
        E.softmax_collapse_gap(torch.float32, tol=0.0)
    assert E.softmax_collapse_gap(torch.float64, tol=1e-300) == pytest.approx(np.log(2 / np.finfo(np.float64).eps),
                                                                             abs=1e-3)   # capped bisection ends
