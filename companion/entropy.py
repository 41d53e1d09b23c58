"""Entropy collapse: attention entropy and its bound, sigmaReparam, StableMax, representation rank.

The second chapter of the course. Everything the chapter computes lives here, in the
order of the chapter's sections:

1. attention entropy per query and per head, and the lower bound of Zhai et al. (2023,
   Theorem 3.1) in terms of the spectral norm of ``W_K W_Q^T``, with its causal form;
2. :class:`SigmaReparam`, the spectral reparametrisation of a linear layer (Zhai et al.,
   2023), and why Adam grows one scalar slowly (:func:`adam_spectral_growth`); a small
   Transformer (:class:`TinyTransformer`) whose attention maps can be read, with post-LN,
   pre-LN or no LayerNorm, optional qk-layernorm (Wortsman et al., 2024) and optional
   sigmaReparam, the copy task it is trained on, and seed ensembles trained as one
   batched model (:func:`train_copy_ensemble`);
3. the learning-rate sensitivity curve (:func:`learning_rate_sweep`);
4. Softmax Collapse (Prieto et al., 2025): :func:`softmax_collapse_fraction`,
   :func:`stablemax`, :func:`perp_grad`, the modular-addition task and its training helpers;
5. representation collapse: :func:`effective_rank` (Roy and Vetterli, 2007),
   :func:`von_neumann_entropy` (Kim et al., 2023) and :func:`seq_vcr_loss` (Arefin et
   al., 2025);

then the chapter's figures and :func:`entropy_explorer`. Every public function declares
its parameters' constraints at its entry (:func:`companion._validation.validate_params`),
so bad input ends in a ``ValueError``/``TypeError`` naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._validation import (Array, Interval, Labels, Options, TokenIds, _Invalid, as_array, as_tensor,
                          check_int, check_params, is_tensor, validate_params)
from .training import History, progress, train_loop

__all__ = [
    # 1. attention entropy and its bound
    "attention_entropy",
    "head_entropy",
    "attention_entropy_lower_bound",
    "extremal_attention",
    "spectral_norm",
    "random_attention",
    "entropy_vs_scale",
    "causal_entropy_ceiling",
    "causal_entropy_lower_bound",
    # 2. entropy collapse during training: sigmaReparam, the small Transformer, the copy task
    "SigmaReparam",
    "apply_sigma_reparam",
    "adam_spectral_growth",
    "MultiHeadSelfAttention",
    "TransformerBlock",
    "TinyTransformer",
    "copy_task_batch",
    "train_copy_task",
    "CopyEnsemble",
    "train_copy_ensemble",
    # 3. learning-rate sensitivity
    "learning_rate_sweep",
    # 4. softmax collapse
    "stablemax",
    "log_stablemax",
    "stablemax_cross_entropy",
    "softmax_collapse_fraction",
    "softmax_collapse_gap",
    "perp_grad",
    "apply_perp_grad_",
    "modular_addition_data",
    "ModularMLP",
    "train_modular_addition",
    "train_modular_ensemble",
    # 5. representation collapse
    "effective_rank",
    "von_neumann_entropy",
    "seq_vcr_loss",
    "hidden_state_ranks",
    # figures and explorer
    "plot_entropy_vs_scale",
    "plot_copy_ensembles",
    "plot_attention_maps",
    "plot_entropy_mechanism",
    "plot_lr_sweep_seeds",
    "plot_modular_ensembles",
    "plot_rank_during_training",
    "entropy_explorer",
]


# ---------------------------------------------------------------------------------------
# helpers: the constraints shared by the module's declarations, conversions
# ---------------------------------------------------------------------------------------

#: Magnitude bound on hidden states (Seq-VCR squares their covariances): the fourth power
#: of such entries stays far from float32's overflow.
_MAX_ACTIVATION = 1e6
#: The input of an attention layer or a block, ``(batch, T, d_model)``. Non-finite entries
#: (and entries so large that their products overflow) are propagated, not rejected, as by
#: torch's layers: inside a diverging training run they reach the loss, where the training
#: loops record the divergence (as NaN).
_LAYER_INPUT = Array(ndim=3, shape=(None, None, "self.d_model"), min_size=1, finite=False, tensor=True)


_POSITIVE_INT = Interval(int, 1, None)
_NONNEGATIVE_INT = Interval(int, 0, None)
_SEED = [Interval(int, 0, None)]
#: Adam's learning rate: above 10 every weight moves by more than its own scale in one step
#: (a typo, not an experiment; the chapter's sweep ends at 0.3).
_LR = [Interval(float, 0, 10, closed="right")]
_NORM = [Options(("post", "pre", "none"))]
_SIGMA_REPARAM = [Options((False, True, "none", "all", "qk"))]
_DEVICE = [str, torch.device, None]
_DESC = [str, None]
_SEED_LIST = [Array(ndim=1, dtype="integer", min_size=1, low=0)]
#: A reference level drawn in a figure (a chance loss, an entropy ceiling), in nats.
_CHANCE = [Interval(float, 0, 1e6), None]


class _AdamBetas(Array):
    """Adam's two averaging coefficients, each in ``[0, 1)`` (1 divides by zero in the bias correction)."""

    def __init__(self):
        super().__init__(shape=(2,))

    def _check(self, value, name, context):
        super()._check(value, name, context)
        b = self._numpy(value)
        if np.any(b < 0) or np.any(b >= 1):
            raise _Invalid("two numbers in [0, 1)", str(b.tolist()))

    def _describe(self):
        return "two numbers in [0, 1)"


def _check_dim(dim, ndim: int, name: str = "dim") -> int:
    dim = check_int(dim, name)
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name} must lie in [{-ndim}, {ndim - 1}] for an input with {ndim} dimension(s), got {dim}")
    return dim


def _check_last_axis(x, name: str, size: int) -> None:
    """``x.shape[-1]`` must be ``size`` (the features a layer was built for)."""
    if x.shape[-1] != size:
        raise ValueError(f"{name} must have {size} entries along its last axis, got shape {tuple(x.shape)}")


def _check_length(tokens, name: str, seq_len: int) -> None:
    """Sequences no longer than the position embeddings."""
    if tokens.shape[-1] > seq_len:
        raise ValueError(f"{name} must have at most seq_len={seq_len} positions, got shape {tuple(tokens.shape)}")


def _check_mapping(value, name: str) -> None:
    """A non-empty dict (runs or histories by name, results by key)."""
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")


def _back(result: torch.Tensor, like):
    """Return ``result`` as the same kind of object as ``like`` (numpy array or tensor)."""
    if is_tensor(like):
        return result
    out = result.detach().cpu().numpy()
    return out.item() if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------
# 1. Attention entropy and the bound of Zhai et al. (chapter Section 1)
# ---------------------------------------------------------------------------------------

@validate_params({
    "attn": [Array(min_size=1, low=0.0)],
    "dim": [int],
    "atol": [Interval(float, 0, None)],
})
def attention_entropy(attn, dim: int = -1, *, atol: float = 1e-4):
    """Shannon entropy of each attention row.

    .. math:: \\mathrm{Ent}(A_i) = -\\sum_j A_{ij} \\log A_{ij}

    with ``0 log 0 = 0``. A row spread uniformly over ``T`` keys has the maximum,
    ``log T``; a one-hot row has entropy 0 ("entropy collapse", Zhai et al., 2023).

    Parameters
    ----------
    attn : ndarray or torch.Tensor
        Attention probabilities, any number of dimensions; the rows along ``dim`` must be
        non-negative and sum to 1.
    dim : int
        The axis holding the keys (default -1, the last; negative values count from the end).
    atol : float
        Tolerance on the row sums.

    Returns
    -------
    ndarray, float or torch.Tensor
        The entropies, shape of ``attn`` without ``dim`` (a tensor for tensor input,
        differentiable).

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> round(attention_entropy(np.full(8, 1 / 8)), 4)       # uniform over 8 keys: log 8
    2.0794
    >>> attention_entropy(np.array([[1.0, 0.0], [0.5, 0.5]])).round(4)
    array([0.    , 0.6931])
    """
    a = _probability_rows(attn, dim, atol)
    # adding 0.0 turns the -0.0 of one-hot rows into 0.0
    return _back(-torch.special.xlogy(a, a).sum(dim) + 0.0, attn)


def _probability_rows(attn, dim: int, atol: float) -> torch.Tensor:
    """``attn`` as a tensor whose rows along ``dim`` sum to 1 (checked)."""
    a = as_tensor(attn, "attn")
    if a.ndim == 0:
        raise ValueError("attn must have at least 1 dimension, got a scalar")
    dim = _check_dim(dim, a.ndim)
    if not torch.allclose(a.sum(dim), torch.ones((), dtype=a.dtype), atol=atol):
        raise ValueError(f"attn rows along dim={dim} must sum to 1 (softmax outputs)")
    return a


@validate_params({"attn": [Array(ndim=(3, 4), min_size=1, low=0.0)]})
def head_entropy(attn):
    """Mean attention entropy of each head, averaged over the batch and the queries.

    .. math:: \\mathrm{Ent}_h = \\frac{1}{B T} \\sum_{b, i} \\mathrm{Ent}(A^{(b, h)}_i)

    the quantity Zhai et al. (2023) track per head during training.

    Parameters
    ----------
    attn : ndarray or torch.Tensor, shape (batch, heads, T_q, T_k) or (heads, T_q, T_k)

    Returns
    -------
    ndarray or torch.Tensor, shape (heads,)

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> uniform, one_hot = np.full((4, 4), 1 / 4), np.eye(4)
    >>> head_entropy(np.stack([uniform, one_hot])).round(4)     # (heads, T, T): one value per head
    array([1.3863, 0.    ])
    """
    a = as_tensor(attn, "attn")
    if a.ndim == 3:
        a = a.unsqueeze(0)                                        # (B, H, T, T)
    ent = attention_entropy(a, dim=-1)                            # (B, H, T)
    return _back(ent.mean(dim=(0, 2)), attn)


_SCALE = [Interval(float, 0, None), Array(min_size=1, low=0.0)]


def _zhai_bound(n, s):
    """Theorem 3.1 for ``n`` keys and scale ``s`` (broadcasting, no validation)."""
    s = np.minimum(s, 1e4)      # the bound is exactly 0 in double precision from s of a few hundred
    beta = np.exp(-s * np.sqrt(n / (n - 1)))
    denom = 1.0 + (n - 1) * beta
    return np.log(denom) + s * np.sqrt(n * (n - 1)) * beta / denom


@validate_params({"seq_len": [Interval(int, 2, None)], "scale": _SCALE})
def attention_entropy_lower_bound(seq_len: int, scale):
    """Lower bound on attention entropy (Zhai et al., 2023, Theorem 3.1).

    With ``s = sigma * sigma_x`` where ``sigma = ||W_K W_Q^T||_2`` and
    ``sigma_x = ||X X^T||_2``, and :math:`\\beta = \\exp(-s\\sqrt{T/(T-1)})`,

    .. math::

        \\mathrm{Ent}(A_i) \\ge \\log\\bigl(1 + (T-1)\\beta\\bigr)
            + \\frac{s\\sqrt{T(T-1)}\\,\\beta}{1 + (T-1)\\beta}.

    The bound is attained by the softmax of the centred one-hot logits of norm ``s``
    (see :func:`extremal_attention`); it equals ``log T`` at ``s = 0`` and decays like
    ``s exp(-s sqrt(T/(T-1)))`` for large ``s``: a large spectral norm permits collapse.

    Parameters
    ----------
    seq_len : int
        ``T``, the number of keys (>= 2).
    scale : float or array-like
        ``s >= 0``.

    Returns
    -------
    float or ndarray

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> round(attention_entropy_lower_bound(16, 0.0), 4)        # s = 0: log 16
    2.7726
    >>> attention_entropy_lower_bound(16, [1.0, 10.0]).round(4)
    array([2.7168, 0.0056])
    """
    out = _zhai_bound(seq_len, as_array(scale, "scale"))
    return float(out) if out.ndim == 0 else out


@validate_params({"seq_len": [Interval(int, 2, None)], "scale": [Interval(float, 0, None)]})
def extremal_attention(seq_len: int, scale: float) -> np.ndarray:
    """The attention row of lowest entropy among logits of norm ``scale``.

    .. math:: a = \\mathrm{softmax}\\Bigl(s\\,\\frac{e_1 - \\mathbf 1/T}{\\lVert e_1 - \\mathbf 1/T\\rVert}\\Bigr)

    Its entropy is exactly :func:`attention_entropy_lower_bound` (Zhai et al., 2023,
    proof of Theorem 3.1).

    Returns
    -------
    ndarray, shape (seq_len,)

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> a = extremal_attention(8, 5.0)
    >>> a.round(4)
    array([0.9677, 0.0046, 0.0046, 0.0046, 0.0046, 0.0046, 0.0046, 0.0046])
    >>> bool(np.isclose(attention_entropy(a), attention_entropy_lower_bound(8, 5.0)))
    True
    """
    direction = -np.full(seq_len, 1.0 / seq_len)
    direction[0] += 1.0
    logits = float(scale) * direction / np.linalg.norm(direction)
    p = np.exp(logits - logits.max())
    return p / p.sum()


@validate_params({"matrix": [Array(ndim=2, min_size=1)]})
def spectral_norm(matrix) -> float:
    """Largest singular value ``||W||_2`` of a matrix (by SVD).

    Examples
    --------
    >>> spectral_norm(np.diag([3.0, 1.0]))
    3.0
    """
    return float(np.linalg.svd(as_array(matrix, "matrix"), compute_uv=False)[0])


@validate_params({"seq_len": [Interval(int, 2, None)], "dim": [_POSITIVE_INT],
                  "scale": [Interval(float, 0, None)], "seed": _SEED})
def random_attention(seq_len: int = 16, dim: int = 16, scale: float = 1.0, seed: int = 0):
    """Attention of random tokens through random ``W_Q``, ``W_K`` scaled to a target ``s``.

    Draws ``X`` (``seq_len x dim``, normalised so ``||X X^T||_2 = 1``) and ``W = W_Q W_K^T``
    (normalised so ``||W||_2 = 1``), multiplies ``W`` by ``scale``, and returns
    ``A = softmax(X W X^T)`` row by row. Then ``s = sigma * sigma_x = scale`` exactly, so
    :func:`attention_entropy_lower_bound` with ``scale`` bounds every row (Zhai et al.,
    2023, Theorem 3.1).

    Returns
    -------
    ndarray, shape (seq_len, seq_len)

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> a = random_attention(seq_len=8, dim=8, scale=4.0, seed=0)
    >>> a.shape, bool(np.allclose(a.sum(1), 1))
    ((8, 8), True)
    """
    T, d = seq_len, dim
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, d))                                   # (T, d)
    x /= np.sqrt(np.linalg.norm(x @ x.T, 2))
    w = rng.normal(size=(d, d // 2 + 1)) @ rng.normal(size=(d // 2 + 1, d))   # (d, d), rank d/2 + 1
    w *= scale / np.linalg.norm(w, 2)
    logits = x @ w @ x.T                                          # (T, T)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


@validate_params({"scales": [Array(ndim=1, min_size=1, low=0.0)], "seq_len": [Interval(int, 2, None)],
                  "dim": [_POSITIVE_INT], "seed": _SEED})
def entropy_vs_scale(scales, seq_len: int = 16, dim: int = 16, seed: int = 0) -> dict:
    """Mean and minimum row entropy of :func:`random_attention` across scales, and the bound.

    The same random ``X`` and direction of ``W`` for every scale, so only ``s`` changes.

    Returns
    -------
    dict with arrays ``scale``, ``mean``, ``min`` and ``bound``.

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> r = entropy_vs_scale([0.5, 8.0], seq_len=8, dim=8, seed=0)
    >>> bool(np.all(r["min"] >= r["bound"]))                     # Theorem 3.1 holds row by row
    True
    """
    s = as_array(scales, "scales")
    mean, low = [], []
    for value in s:
        ent = attention_entropy(random_attention(seq_len, dim, value, seed))
        mean.append(ent.mean())
        low.append(ent.min())
    return {"scale": s, "mean": np.array(mean), "min": np.array(low),
            "bound": attention_entropy_lower_bound(seq_len, s)}


@validate_params({"seq_len": [_POSITIVE_INT]})
def causal_entropy_ceiling(seq_len: int) -> float:
    """The largest mean attention entropy a causal head can have over ``T`` queries.

    Query ``i`` (1-based) sees only keys ``1..i``, so its entropy is at most ``log i`` and
    the mean over the ``T`` queries is at most

    .. math:: \\frac{1}{T}\\sum_{i=1}^{T} \\log i = \\frac{\\log T!}{T},

    about 1.92 for ``T = 16``, not ``log T`` (2.77). It is attained by uniform causal
    attention (every logit equal).

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> round(causal_entropy_ceiling(16), 4)
    1.917
    """
    return float(math.lgamma(seq_len + 1) / seq_len)


@validate_params({"seq_len": [_POSITIVE_INT], "scale": _SCALE})
def causal_entropy_lower_bound(seq_len: int, scale):
    """Theorem 3.1 of Zhai et al. (2023) under a causal mask, averaged over the queries.

    Query ``i`` attends over ``i`` keys with logits of norm at most ``s``, so its entropy
    is at least :func:`attention_entropy_lower_bound` ``(i, s)`` (0 for ``i = 1``); the
    mean over the ``T`` queries is at least

    .. math:: \\frac{1}{T}\\sum_{i=2}^{T} B(i, s),

    which equals :func:`causal_entropy_ceiling` at ``s = 0``.

    Parameters
    ----------
    seq_len : int
    scale : float or array-like, ``s >= 0``

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> round(causal_entropy_lower_bound(16, 0.0), 4)          # s = 0: the causal ceiling
    1.917
    """
    s = as_array(scale, "scale")
    keys = np.arange(2, seq_len + 1).reshape(-1, *([1] * s.ndim))     # (T - 1, *s.shape)
    out = _zhai_bound(keys, s).sum(0) / seq_len
    return float(out) if np.ndim(out) == 0 else out


def _causal_bound_torch(seq_len: int, s: torch.Tensor) -> torch.Tensor:
    """:func:`causal_entropy_lower_bound` on a tensor of scales (no validation)."""
    total = torch.zeros_like(s)
    for i in range(2, seq_len + 1):
        beta = torch.exp(-s * math.sqrt(i / (i - 1)))
        denom = 1 + (i - 1) * beta
        total = total + torch.log(denom) + s * math.sqrt(i * (i - 1)) * beta / denom
    return total / seq_len


# ---------------------------------------------------------------------------------------
# 2. Entropy collapse during training: sigmaReparam, a small Transformer, the copy task (Section 2)
# ---------------------------------------------------------------------------------------

class SigmaReparam(nn.Module):
    """A linear layer with spectrally reparametrised weights (Zhai et al., 2023).

    .. math:: \\hat W = \\frac{\\gamma}{\\sigma(W)} W

    where ``sigma(W)`` is the spectral norm estimated by power iteration (one step per
    forward pass in training mode; the vectors ``u``, ``v`` carry no gradient, the
    estimate ``u^T W v`` does) and ``gamma`` is a learnable scalar initialised to
    ``sigma(W_init)``, so ``W_hat = W`` at initialisation. The spectral norm of ``W_hat``
    is then ``gamma``: attention logits can only grow as fast as a single scalar, which
    keeps attention entropy away from collapse.

    Parameters
    ----------
    linear : nn.Linear
        The layer to wrap (its weight and bias are reused, not copied).
    init_iters : int
        Power-iteration steps at construction (so the first estimate is accurate).

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> layer = SigmaReparam(nn.Linear(4, 3))
    >>> x = torch.ones(2, 4)
    >>> bool(torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias)))   # W_hat = W at initialisation
    True
    """

    def __init__(self, linear: nn.Linear, init_iters: int = 50):
        super().__init__()
        check_params({"linear": linear, "init_iters": init_iters},
                     {"linear": [nn.Linear], "init_iters": [_POSITIVE_INT]})
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        w = self.weight.detach()
        gen = torch.Generator().manual_seed(0)
        u = torch.randn(w.shape[0], generator=gen, dtype=w.dtype).to(w.device)
        self.register_buffer("u", F.normalize(u, dim=0))
        self.register_buffer("v", torch.zeros(w.shape[1], dtype=w.dtype, device=w.device))
        for _ in range(init_iters):
            self.power_iteration()
        self.gamma = nn.Parameter(self.sigma().detach().clone())

    @torch.no_grad()
    def power_iteration(self) -> None:
        """One step: ``v <- W^T u / ||W^T u||``, ``u <- W v / ||W v||``."""
        w = self.weight.detach()
        self.v.copy_(F.normalize(w.t() @ self.u, dim=0))
        self.u.copy_(F.normalize(w @ self.v, dim=0))

    def sigma(self) -> torch.Tensor:
        """The spectral-norm estimate ``u^T W v`` (differentiable in ``W``)."""
        return torch.dot(self.u, self.weight @ self.v)

    def effective_weight(self) -> torch.Tensor:
        """``W_hat = gamma / sigma(W) * W``."""
        return self.gamma / self.sigma() * self.weight

    @validate_params({"x": [Array(min_size=1, finite=False, tensor=True)]})
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x W_hat^T + b`` on inputs ``(..., in_features)``; one power-iteration step in training mode.

        Non-finite entries are propagated, not rejected, as by ``nn.Linear``: inside a
        diverging training run they reach the loss, where the training loops record the
        divergence (as NaN).
        """
        _check_last_axis(x, "x", self.in_features)
        if self.training:
            self.power_iteration()
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


@validate_params({"model": [nn.Module], "init_iters": [_POSITIVE_INT]})
def apply_sigma_reparam(model: nn.Module, init_iters: int = 50) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``model`` by a :class:`SigmaReparam` wrapper, in place.

    Zhai et al. (2023) reparametrise all linear layers of the Transformer. Returns ``model``.
    (:class:`TinyTransformer` with ``sigma_reparam=True`` applies it to its blocks only,
    leaving the output layer plain; see there.)

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> apply_sigma_reparam(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))[0]
    SigmaReparam(in_features=4, out_features=4)
    """
    if isinstance(model, nn.Linear):
        return SigmaReparam(model, init_iters)
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, SigmaReparam(child, init_iters))
        else:
            apply_sigma_reparam(child, init_iters)
    return model


@validate_params({"dim": [_POSITIVE_INT], "lr": _LR, "num_steps": [_POSITIVE_INT],
                  "sigma0": [Interval(float, 0, 1e6, closed="right")]})
def adam_spectral_growth(dim: int = 32, lr: float = 1e-2, num_steps: int = 100, sigma0: float = 1.0) -> dict:
    """How fast Adam grows a weight's spectral norm, plain and under sigmaReparam.

    A ``dim x dim`` weight starts at ``W_0 = sigma0 u u^T`` (``u = 1/sqrt(dim)``, so
    ``||W_0||_2 = sigma0``) and Adam (default betas, ``eps = 1e-8``) minimises
    ``-u^T W_hat u``, a loss that rewards a larger spectral norm. ``plain``: ``W_hat = W``;
    ``sigma_reparam``: ``W_hat = gamma W / sigma(W)`` (:class:`SigmaReparam`). Adam moves
    every entry of a plain weight by about ``lr`` per step, in a coherent pattern, so the
    spectral norm grows by about ``lr * dim`` per step; under sigmaReparam the spectral
    norm is ``gamma``, one scalar, which grows by about ``lr`` per step (Zhai et al., 2023).

    Returns
    -------
    dict with arrays ``plain`` and ``sigma_reparam``: ``||W_hat||_2`` after each step
    (``num_steps + 1`` values, the first is ``sigma0``).

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> r = adam_spectral_growth(dim=8, lr=1e-2, num_steps=10)     # deterministic, float64
    >>> round(float(r["plain"][-1]), 3), round(float(r["sigma_reparam"][-1]), 3)  # 1 + 10 lr dim, 1 + 10 lr
    (1.8, 1.1)
    """
    d, n = dim, num_steps
    u = torch.full((d,), 1.0 / math.sqrt(d), dtype=torch.float64)
    out = {}
    for kind in ("plain", "sigma_reparam"):
        layer = nn.Linear(d, d, bias=False).double()
        with torch.no_grad():
            layer.weight.copy_(sigma0 * torch.outer(u, u))
        if kind == "sigma_reparam":
            layer = SigmaReparam(layer)
        opt = torch.optim.Adam(layer.parameters(), lr=lr)
        norms = [sigma0]
        for _ in range(n):
            if kind == "sigma_reparam":
                layer.power_iteration()          # what its forward does in training mode
                w_hat = layer.effective_weight()
            else:
                w_hat = layer.weight
            loss = -(u @ w_hat @ u)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                w_now = layer.effective_weight() if kind == "sigma_reparam" else layer.weight
                norms.append(float(torch.linalg.matrix_norm(w_now, ord=2)))
        out[kind] = np.array(norms)
    return out


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention that keeps its last attention map.

    .. math:: A = \\mathrm{softmax}\\bigl(Q K^T / \\sqrt{d_h}\\bigr), \\quad Q = X W_Q, K = X W_K

    (Vaswani et al., 2017). With ``qk_layernorm`` the queries and keys are layer-normalised
    per head before the product (Wortsman et al., 2024), which bounds the logits.
    ``last_attention`` holds the detached map of the last forward, shape
    ``(batch, heads, T, T)``.

    References
    ----------
    - vaswani2017attention: Vaswani et al. (2017), "Attention Is All You Need".
    - wortsman2023small: Wortsman et al. (2024), "Small-scale proxies for large-scale Transformer training instabilities".
    """

    def __init__(self, d_model: int, num_heads: int, qk_layernorm: bool = False):
        super().__init__()
        _check_heads(d_model, num_heads, qk_layernorm)
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.q_norm = nn.LayerNorm(self.d_head) if qk_layernorm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.d_head) if qk_layernorm else nn.Identity()
        self.last_attention: torch.Tensor | None = None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.d_head).transpose(1, 2)

    @validate_params({"x": [_LAYER_INPUT]})
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention of ``x`` ``(batch, T, d_model)``; same shape out.

        Non-finite entries, and entries so large that products overflow, are propagated,
        not rejected (see :class:`SigmaReparam`).
        """
        b, t, d = x.shape
        q = self.q_norm(self._heads(self.query(x)))                 # (B, H, T, d_h)
        k = self.k_norm(self._heads(self.key(x)))
        v = self._heads(self.value(x))
        logits = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)    # (B, H, T, T)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        attn = torch.softmax(logits.masked_fill(mask, float("-inf")), dim=-1)
        self.last_attention = attn.detach()
        return self.out((attn @ v).transpose(1, 2).reshape(b, t, d))  # (B, T, d)


def _check_heads(d_model, num_heads, qk_layernorm) -> None:
    """Width, heads (dividing the width) and the qk-layernorm switch of an attention layer."""
    check_params({"d_model": d_model, "num_heads": num_heads, "qk_layernorm": qk_layernorm},
                 {"d_model": [_POSITIVE_INT], "num_heads": [_POSITIVE_INT], "qk_layernorm": ["boolean"]})
    if d_model % num_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")


class TransformerBlock(nn.Module):
    """Attention and MLP sub-layers with post-LN, pre-LN or no LayerNorm.

    ``post``: ``x = LN(x + f(x))`` (Vaswani et al., 2017); ``pre``: ``x = x + f(LN(x))``;
    ``none``: ``x = x + f(x)``.

    References
    ----------
    - vaswani2017attention: Vaswani et al. (2017), "Attention Is All You Need".
    """

    def __init__(self, d_model: int, num_heads: int, norm: str = "post", qk_layernorm: bool = False):
        super().__init__()
        _check_heads(d_model, num_heads, qk_layernorm)
        check_params({"norm": norm}, {"norm": _NORM})
        self.d_model, self.norm = d_model, norm
        self.attn = MultiHeadSelfAttention(d_model, num_heads, qk_layernorm)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        make = (lambda: nn.LayerNorm(d_model)) if norm != "none" else nn.Identity
        self.ln1, self.ln2 = make(), make()

    @validate_params({"x": [_LAYER_INPUT]})
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block on ``x`` ``(batch, T, d_model)``; same shape out.

        Non-finite entries, and entries so large that products overflow, are propagated,
        not rejected (see :class:`SigmaReparam`).
        """
        if self.norm == "post":
            x = self.ln1(x + self.attn(x))
            return self.ln2(x + self.mlp(x))
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """A 1-2 layer causal Transformer for toy sequence tasks, with readable attention.

    Parameters
    ----------
    vocab_size, seq_len : int
        Tokens and maximum length (learned position embeddings).
    d_model, num_heads, num_layers : int
        Width, heads per layer, depth.
    norm : {"post", "pre", "none"}
        LayerNorm placement (pre-LN adds a final LayerNorm before the output layer).
    qk_layernorm : bool
        LayerNorm on queries and keys (Wortsman et al., 2024).
    sigma_reparam : bool or {"none", "all", "qk"}
        ``True`` or ``"all"``: wrap every linear layer of the Transformer blocks (queries,
        keys, values, attention output, both MLP layers) in :class:`SigmaReparam` (Zhai et
        al., 2023). ``"qk"``: only the query and key projections, so that only the
        attention logits are reparametrised (the ablation that isolates entropy collapse
        from the other effects of the reparametrisation). The token
        and position embeddings (lookup tables) and the output layer (the unembedding,
        which language models usually tie to the embedding) stay as they are: with one
        learned scalar ``gamma`` for all output logits, Adam at a large learning rate
        drives that ``gamma`` to about 0 in the first steps while the model is at chance
        (shrinking the logits toward uniform is then the quickest way to lower the loss),
        and every gradient below the output layer is scaled by it, so training stalls.

    References
    ----------
    - vaswani2017attention: Vaswani et al. (2017), "Attention Is All You Need".
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".
    - wortsman2023small: Wortsman et al. (2024), "Small-scale proxies for large-scale Transformer training instabilities".

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model = TinyTransformer(vocab_size=10, seq_len=6, d_model=8, num_heads=2)
    >>> model(torch.zeros(3, 6, dtype=torch.long)).shape            # (batch, T, vocab)
    torch.Size([3, 6, 10])
    >>> [tuple(a.shape) for a in model.attention_maps()]            # (batch, heads, T, T) per layer
    [(3, 2, 6, 6), (3, 2, 6, 6)]
    """

    def __init__(self, vocab_size: int, seq_len: int, d_model: int = 32, num_heads: int = 4,
                 num_layers: int = 2, norm: str = "post", qk_layernorm: bool = False,
                 sigma_reparam: bool = False):
        super().__init__()
        check_params({"vocab_size": vocab_size, "seq_len": seq_len, "num_layers": num_layers,
                      "norm": norm, "sigma_reparam": sigma_reparam},
                     {"vocab_size": [Interval(int, 2, None)], "seq_len": [_POSITIVE_INT],
                      "num_layers": [_POSITIVE_INT], "norm": _NORM, "sigma_reparam": _SIGMA_REPARAM})
        _check_heads(d_model, num_heads, qk_layernorm)
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.token = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, num_heads, norm, qk_layernorm)
                                    for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size)
        self.sigma_reparam = {False: "none", True: "all"}.get(sigma_reparam, sigma_reparam)
        for block in self.blocks:
            if self.sigma_reparam == "all":
                apply_sigma_reparam(block)
            elif self.sigma_reparam == "qk":
                block.attn.query = SigmaReparam(block.attn.query)
                block.attn.key = SigmaReparam(block.attn.key)

    @validate_params({"tokens": [TokenIds(high="self.vocab_size", ndim=2, min_size=1, tensor=True)],
                      "return_hidden": ["boolean"]})
    def forward(self, tokens: torch.Tensor, return_hidden: bool = False):
        """Logits ``(batch, T, vocab)`` of token ids ``(batch, T)``, ``T <= seq_len``; with
        ``return_hidden`` also the list of hidden states (embedding output, then each
        block's output), each ``(batch, T, d_model)``."""
        _check_length(tokens, "tokens", self.seq_len)
        t = tokens.shape[1]
        x = self.token(tokens) + self.position(torch.arange(t, device=tokens.device))   # (B, T, d)
        hidden = [x]
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        logits = self.head(self.final_norm(x))
        return (logits, hidden) if return_hidden else logits

    def attention_maps(self) -> list[torch.Tensor]:
        """The attention of each layer in the last forward pass, ``(batch, heads, T, T)``."""
        return [block.attn.last_attention for block in self.blocks]


@validate_params({"batch_size": [_POSITIVE_INT], "num_tokens": [_POSITIVE_INT],
                  "vocab_size": [Interval(int, 2, None)], "generator": [torch.Generator, None]})
def copy_task_batch(batch_size: int = 32, num_tokens: int = 8, vocab_size: int = 30,
                    generator: torch.Generator | None = None):
    """A batch of the copy task: ``x_1..x_n, SEP, x_1..x_n``, predicted token by token.

    Tokens are uniform on ``{0, ..., vocab_size - 1}`` and the separator is ``vocab_size``
    (so the model needs ``vocab_size + 1`` embeddings). The model reads the sequence
    without its last token and predicts the next one; only the ``n`` copied positions
    are scored, so chance level is ``log(vocab_size)``.

    Returns
    -------
    inputs : LongTensor (batch, 2 n)
    targets : LongTensor (batch, 2 n)
    mask : BoolTensor (batch, 2 n), True on the scored positions.

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".

    Examples
    --------
    >>> inputs, targets, mask = copy_task_batch(1, num_tokens=3, vocab_size=10,
    ...                                         generator=torch.Generator().manual_seed(0))
    >>> inputs.tolist(), targets.tolist()            # x, SEP = 10, x; targets shifted by one
    ([[4, 9, 3, 10, 4, 9]], [[9, 3, 10, 4, 9, 3]])
    >>> mask.tolist()                                # the copied tokens are scored
    [[False, False, False, True, True, True]]
    """
    n = num_tokens
    x = torch.randint(vocab_size, (batch_size, n), generator=generator)
    sep = torch.full((batch_size, 1), vocab_size, dtype=torch.long)
    seq = torch.cat([x, sep, x], dim=1)
    mask = torch.zeros(batch_size, 2 * n, dtype=torch.bool)
    mask[:, n:] = True
    return seq[:, :-1], seq[:, 1:], mask


#: The copy-task model and data arguments shared by the training functions.
_COPY_TASK = {
    "norm": _NORM, "qk_layernorm": ["boolean"], "sigma_reparam": _SIGMA_REPARAM,
    "num_steps": [_POSITIVE_INT], "batch_size": [_POSITIVE_INT], "num_tokens": [_POSITIVE_INT],
    "vocab_size": [Interval(int, 2, None)], "d_model": [_POSITIVE_INT], "num_heads": [_POSITIVE_INT],
    "num_layers": [_POSITIVE_INT], "desc": _DESC,
}


@validate_params({"lr": _LR, "seed": _SEED, "return_model": ["boolean"], **_COPY_TASK})
def train_copy_task(lr: float, *, norm: str = "post", qk_layernorm: bool = False,
                    sigma_reparam: bool = False, num_steps: int = 300, seed: int = 0,
                    batch_size: int = 32, num_tokens: int = 8, vocab_size: int = 30,
                    d_model: int = 32, num_heads: int = 4, num_layers: int = 2,
                    desc: str | None = None, return_model: bool = False):
    """Train a :class:`TinyTransformer` on :func:`copy_task_batch` with Adam and no warmup.

    The setting of the attention-entropy experiments (Zhai et al., 2023; Wortsman et al.,
    2024): Adam with ``betas=(0.9, 0.98)``, a constant learning rate from step 0, cross
    entropy on the copied positions. Every step logs ``loss``, ``entropy`` (mean
    attention entropy over all heads and layers) and ``min_entropy`` (the lowest head).

    Returns
    -------
    History (and the model when ``return_model``).

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".
    - wortsman2023small: Wortsman et al. (2024), "Small-scale proxies for large-scale Transformer training instabilities".
    """
    torch.manual_seed(seed)
    model = TinyTransformer(vocab_size + 1, 2 * num_tokens, d_model, num_heads, num_layers,
                            norm, qk_layernorm, sigma_reparam)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(seed + 1)

    def step(i):
        inputs, targets, mask = copy_task_batch(batch_size, num_tokens, vocab_size, gen)
        logits = model(inputs)                                   # (B, T, vocab)
        loss = F.cross_entropy(logits[mask], targets[mask])
        with torch.no_grad():
            ents = torch.cat([_entropy_rows(a).mean((0, 2)) for a in model.attention_maps()])   # (L * H,)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item() if torch.isfinite(loss) else float("nan"),
                "entropy": ents.mean().item(), "min_entropy": ents.min().item()}

    history = train_loop(step, num_steps, desc=desc or f"copy task lr={lr:g}")
    return (history, model) if return_model else history


# ---------------------------------------------------------------------------------------
# 2. (continued) Seed ensembles: several TinyTransformers trained as one batched model
# ---------------------------------------------------------------------------------------

class _Adam:
    """Adam (Kingma & Ba) with one learning rate per ensemble member.

    The update is the one of ``torch.optim.Adam`` (bias-corrected moments,
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)``), applied to tensors whose first axis indexes
    independent models, each with its own learning rate.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.lr = lr                     # tensor (E,)
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (v.sqrt() / math.sqrt(c2)).add_(self.eps)
            lr = self.lr.to(p.dtype).view(-1, *([1] * (p.ndim - 1)))
            p.sub_(lr / c1 * m / denom)

    def zero_grad(self):
        for p in self.params:
            p.grad = None


def _ensemble_perp_grad_(params) -> None:
    """:func:`perp_grad` for every member (first axis) of every stacked parameter, in place."""
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            w, g = p.reshape(p.shape[0], -1), p.grad.reshape(p.shape[0], -1)
            tiny = torch.finfo(g.dtype).tiny
            coef = (w * g).sum(1, keepdim=True) / ((w * w).sum(1, keepdim=True) + tiny)
            g_perp = g - coef * w
            g_perp = g_perp * (g.norm(dim=1, keepdim=True) / (g_perp.norm(dim=1, keepdim=True) + tiny))
            p.grad.copy_(g_perp.reshape(p.shape))


def _tiny_config(model: TinyTransformer) -> dict:
    """The constructor arguments of a :class:`TinyTransformer`."""
    attn = model.blocks[0].attn
    return dict(vocab_size=model.token.num_embeddings, seq_len=model.position.num_embeddings,
                d_model=model.token.embedding_dim, num_heads=attn.num_heads, num_layers=len(model.blocks),
                norm=model.blocks[0].norm, qk_layernorm=isinstance(attn.q_norm, nn.LayerNorm),
                sigma_reparam=model.sigma_reparam)


class CopyEnsemble:
    """``E`` independent :class:`TinyTransformer` s evaluated as one batched model.

    Built from a list of models of the same configuration (one per seed, or per seed and
    learning rate), whose parameters and buffers are stacked along a new first axis
    (as ``torch.func.stack_module_state`` does); the forward pass is written with batched
    matrix products, so ``E`` small models cost little more than one on a CPU. Member
    ``k`` computes exactly what ``models[k]`` computes (tested), including
    :class:`SigmaReparam`'s power iteration in training mode.

    Parameters
    ----------
    models : list of TinyTransformer (same configuration)
    device : torch.device or str, optional

    Examples
    --------
    >>> models = [TinyTransformer(10, 6, d_model=8, num_heads=2) for _ in range(3)]
    >>> ens = CopyEnsemble(models)
    >>> logits, hidden, record = ens.forward(torch.zeros(3, 4, 6, dtype=torch.long))   # (E, B, T)
    >>> tuple(logits.shape)                                                             # (E, B, T, vocab)
    (3, 4, 6, 10)
    """

    def __init__(self, models, device=None):
        check_params({"models": models, "device": device}, {"models": [list, tuple], "device": _DEVICE})
        models = list(models)
        if not models or not all(isinstance(m, TinyTransformer) for m in models):
            raise TypeError("models must be a non-empty list of TinyTransformer")
        first = models[0]
        self.num_layers = len(first.blocks)
        self.norm = first.blocks[0].norm
        self.qk_layernorm = isinstance(first.blocks[0].attn.q_norm, nn.LayerNorm)
        self.num_heads, self.d_head = first.blocks[0].attn.num_heads, first.blocks[0].attn.d_head
        self.config = _tiny_config(first)
        if any(_tiny_config(m) != self.config for m in models):
            raise ValueError("models must all have the same configuration")
        self.vocab_size, self.seq_len = self.config["vocab_size"], self.config["seq_len"]
        states = [m.state_dict() for m in models]
        buffers = {n for n, _ in first.named_buffers()}
        self.params, self.buffers = {}, {}
        for name in states[0]:
            stacked = torch.stack([s[name].detach() for s in states]).to(device).clone()
            if name in buffers:
                self.buffers[name] = stacked
            else:
                self.params[name] = stacked.requires_grad_(True)
        self.size = len(models)
        self.training = True

    # -- building blocks ------------------------------------------------------------------
    def _has(self, name):
        return name in self.params or name in self.buffers

    def _weight(self, name):
        """The weight of linear layer ``name`` (sigmaReparam-scaled where wrapped), (E, out, in)."""
        w = self.params[name + ".weight"]
        if name + ".gamma" not in self.params:
            return w
        u, v = self.buffers[name + ".u"], self.buffers[name + ".v"]
        if self.training:
            with torch.no_grad():
                wd = w.detach()
                v.copy_(F.normalize(torch.einsum("eoi,eo->ei", wd, u), dim=1))
                u.copy_(F.normalize(torch.einsum("eoi,ei->eo", wd, v), dim=1))
        sigma = torch.einsum("eo,eoi,ei->e", u, w, v)
        return (self.params[name + ".gamma"] / sigma)[:, None, None] * w

    def _linear(self, name, x, weights):
        w = weights.get(name)
        if w is None:
            w = weights[name] = self._weight(name)
        shape = x.shape
        out = torch.baddbmm(self.params[name + ".bias"][:, None, :], x.reshape(shape[0], -1, shape[-1]),
                            w.transpose(1, 2))
        return out.reshape(*shape[:-1], out.shape[-1])

    def _layer_norm(self, name, x):
        e = x.shape[0]
        extra = [1] * (x.ndim - 2)
        y = F.layer_norm(x, x.shape[-1:])
        return y * self.params[name + ".weight"].view(e, *extra, -1) + self.params[name + ".bias"].view(e, *extra, -1)

    def _attention(self, prefix, x, weights, record):
        e, b, t, d = x.shape
        h, dh = self.num_heads, self.d_head
        heads = lambda z: z.view(e, b, t, h, dh).transpose(2, 3)          # noqa: E731  (E, B, H, T, dh)
        q = heads(self._linear(prefix + ".query", x, weights))
        k = heads(self._linear(prefix + ".key", x, weights))
        v = heads(self._linear(prefix + ".value", x, weights))
        if self.qk_layernorm:
            q, k = self._layer_norm(prefix + ".q_norm", q), self._layer_norm(prefix + ".k_norm", k)
        logits = q @ k.transpose(-2, -1) / math.sqrt(dh)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        attn = torch.softmax(logits.masked_fill(mask, float("-inf")), dim=-1)
        record.append((x, logits.detach().masked_fill(mask, float("-inf")), attn.detach()))
        return self._linear(prefix + ".out", (attn @ v).transpose(2, 3).reshape(e, b, t, d), weights)

    @validate_params({"tokens": [TokenIds(high="self.vocab_size", ndim=3, shape=("self.size", None, None),
                                          min_size=1, tensor=True)]})
    def forward(self, tokens: torch.Tensor):
        """Logits ``(E, B, T, vocab)`` of every member on its tokens ``(E, B, T)``, ``T <= seq_len``.

        Returns ``(logits, hidden, record)``: ``hidden`` the list of hidden states
        (embedding output, then each block), ``record`` one ``(attention input, masked
        logits, attention)`` triple per layer.
        """
        _check_length(tokens, "tokens", self.seq_len)
        e, b, t = tokens.shape
        weights, record = {}, []
        idx = torch.arange(e, device=tokens.device)[:, None, None]
        x = self.params["token.weight"][idx, tokens] + self.params["position.weight"][:, None, :t]
        hidden = [x]
        for layer in range(self.num_layers):
            pre = f"blocks.{layer}"
            mlp = lambda z: self._linear(pre + ".mlp.2", F.gelu(self._linear(pre + ".mlp.0", z, weights)), weights)  # noqa: E731
            if self.norm == "post":
                x = self._layer_norm(pre + ".ln1", x + self._attention(pre + ".attn", x, weights, record))
                x = self._layer_norm(pre + ".ln2", x + mlp(x))
            elif self.norm == "pre":
                x = x + self._attention(pre + ".attn", self._layer_norm(pre + ".ln1", x), weights, record)
                x = x + mlp(self._layer_norm(pre + ".ln2", x))
            else:
                x = x + self._attention(pre + ".attn", x, weights, record)
                x = x + mlp(x)
            hidden.append(x)
        out = self._layer_norm("final_norm", x) if self._has("final_norm.weight") else x
        return self._linear("head", out, weights), hidden, record

    @torch.no_grad()
    def qk_spectral_norms(self) -> torch.Tensor:
        """``||W_Q^h (W_K^h)^T||_2 / sqrt(d_h)`` for every member, layer and head, ``(E, L, H)``.

        The matrix whose spectral norm bounds the logits of head ``h`` (Zhai et al.,
        2023): logits are ``x_i^T W_Q^h (W_K^h)^T x_j / sqrt(d_h)`` plus bias terms (the
        biases are left out). With sigmaReparam the reparametrised weights are used.
        """
        was, self.training = self.training, False
        out = []
        for layer in range(self.num_layers):
            wq = self._weight(f"blocks.{layer}.attn.query")      # (E, d, d): rows are outputs
            wk = self._weight(f"blocks.{layer}.attn.key")
            e, d, _ = wq.shape
            wq = wq.view(e, self.num_heads, self.d_head, d)
            wk = wk.view(e, self.num_heads, self.d_head, d)
            m = wq.transpose(-2, -1) @ wk                         # (E, H, d, d)
            out.append(torch.linalg.matrix_norm(m, ord=2) / math.sqrt(self.d_head))
        self.training = was
        return torch.stack(out, 1)

    def member(self, k: int) -> TinyTransformer:
        """Member ``k`` as a plain :class:`TinyTransformer` (a copy, on the CPU)."""
        k = check_int(k, "k", minimum=0, maximum=self.size - 1)
        model = TinyTransformer(**self.config)
        state = {n: t[k].detach().cpu() for n, t in {**self.params, **self.buffers}.items()}
        model.load_state_dict(state)
        return model


def _logit_norm_bound(logits: torch.Tensor) -> torch.Tensor:
    """Theorem 3.1 row by row at each row's own logit norm, for causal logits (-inf masked).

    Row ``i`` has ``n_i`` visible keys and centred logits of norm ``r_i``; softmax is
    shift-invariant, so its entropy is at least ``B(n_i, r_i)`` (0 when ``n_i = 1``).
    Returns the mean over the rows, the same shape as the logits without the last two axes.
    """
    valid = torch.isfinite(logits)
    n = valid.sum(-1, keepdim=True).to(torch.float64)
    z = torch.where(valid, logits, torch.zeros((), dtype=logits.dtype, device=logits.device)).double()
    mean = z.sum(-1, keepdim=True) / n
    r = (((z - mean) * valid) ** 2).sum(-1, keepdim=True).sqrt()
    n_safe = torch.clamp(n, min=2.0)
    beta = torch.exp(-r * torch.sqrt(n_safe / (n_safe - 1)))
    denom = 1 + (n_safe - 1) * beta
    b = torch.log(denom) + r * torch.sqrt(n_safe * (n_safe - 1)) * beta / denom
    return torch.where(n >= 2, b, torch.zeros_like(b))[..., 0].mean(-1)


def _entropy_rows(attn: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(attn, attn).sum(-1)


def _centred_effective_rank(h: torch.Tensor) -> float:
    h = h.reshape(-1, h.shape[-1]).double()
    sv = torch.linalg.svdvals(h - h.mean(0, keepdim=True))
    p = sv / sv.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _attention_logs(record) -> dict:
    """Per member ``(E,)``: mean head entropy, lowest head entropy, largest attention logit."""
    ents = torch.stack([_entropy_rows(a).mean((1, 3)) for _, _, a in record], 1)             # (E, L, H)
    max_logit = torch.stack([lg.flatten(1).amax(1) for _, lg, _ in record], 1).amax(1)       # (E,)
    return {"entropy": ents.mean((1, 2)).cpu().numpy(), "min_entropy": ents.flatten(1).amin(1).cpu().numpy(),
            "max_logit": max_logit.cpu().numpy()}


def _bound_logs(ens: CopyEnsemble, record, seq_len: int) -> dict:
    """Per member ``(E,)``: the spectral quantities of Theorem 3.1 (see ``stats_every`` of
    :func:`train_copy_ensemble`); NaN for ``qk_norm``, ``scale`` and ``bound`` under qk-layernorm."""
    e = ens.size
    out = {"logit_bound": torch.stack([_logit_norm_bound(lg).mean(1) for _, lg, _ in record], 1)
           .mean((1, 2)).cpu().numpy()}
    if ens.qk_layernorm:
        return {**out, **{k: np.full(e, np.nan) for k in ("qk_norm", "scale", "bound")}}
    norms = ens.qk_spectral_norms()                                                        # (E, L, H)
    sx = torch.stack([torch.linalg.matrix_norm(x.detach(), ord=2) ** 2 for x, _, _ in record], 1)   # (E, L, B)
    s = norms[:, :, :, None] * sx[:, :, None, :]                                           # (E, L, H, B)
    return {**out, "qk_norm": norms.flatten(1).amax(1).cpu().numpy(),
            "scale": s.mean(3).flatten(1).amax(1).cpu().numpy(),
            "bound": _causal_bound_torch(seq_len, s.double()).mean((1, 2, 3)).cpu().numpy()}


def _learning_rates(lr, members: int) -> np.ndarray:
    """One learning rate per member, each in (0, 10] (see ``_LR``), from a number or a sequence."""
    lrs = np.full(members, float(lr)) if np.ndim(lr) == 0 else as_array(lr, "lr")
    if lrs.shape != (members,):
        raise ValueError(f"lr must be a number or one value per seed ({members}), got {lrs.shape[0]} values")
    if np.any(lrs <= 0) or np.any(lrs > 10):
        raise ValueError(f"lr must hold learning rates in (0, 10], got {lrs.tolist()}")
    return lrs


@validate_params({
    "lr": [*_LR, Array(ndim=1, min_size=1)],
    "seed_list": _SEED_LIST,
    "seq_vcr": [Interval(float, 0, 1e3)],
    "stats_every": [_NONNEGATIVE_INT],
    "rank_every": [_NONNEGATIVE_INT],
    "device": _DEVICE,
    **_COPY_TASK,
})
def train_copy_ensemble(lr, seed_list, *, norm: str = "post", qk_layernorm: bool = False,
                        sigma_reparam=False, seq_vcr: float = 0.0, num_steps: int = 300,
                        batch_size: int = 32, num_tokens: int = 8, vocab_size: int = 30,
                        d_model: int = 32, num_heads: int = 4, num_layers: int = 2,
                        stats_every: int = 0, rank_every: int = 0, device=None,
                        desc: str | None = None) -> dict:
    """Train one :class:`TinyTransformer` per seed on the copy task, all at once.

    Member ``k`` is the model and the data stream of ``train_copy_task(lr, seed=seed_list[k])``
    (same initialisation, same batches, Adam with ``betas=(0.9, 0.98)``, no warmup); the
    members are trained together as one :class:`CopyEnsemble`, which is several times
    faster than one run after another for models this small.

    Parameters
    ----------
    lr : float or sequence of float
        One learning rate for every member, or one per member (a learning-rate sweep).
    seed_list : sequence of int
        One seed per member.
    sigma_reparam : bool or {"none", "all", "qk"}
        See :class:`TinyTransformer`.
    seq_vcr : float
        Weight of :func:`seq_vcr_loss` on the output of the first block (Arefin et al.,
        2024); 0 turns it off.
    stats_every : int
        Every ``stats_every`` steps (0: never) log ``qk_norm`` (largest
        ``||W_Q^h W_K^h^T||_2 / sqrt(d_h)`` over heads and layers), ``scale`` (the ``s`` of
        Theorem 3.1: that norm times ``||X X^T||_2`` of the layer's input, averaged over the
        batch) and ``bound``, the causal form of the bound
        (:func:`causal_entropy_lower_bound`), averaged like the entropy over layers, heads
        and sequences, and ``logit_bound``, the same theorem applied row by row at each
        row's measured (centred) logit norm, averaged the same way (a lower bound on
        ``entropy`` that uses the logits actually produced). Not logged with qk-layernorm
        (the logits are not bilinear in ``X``).
    rank_every : int
        Every ``rank_every`` steps (0: never) log ``ranks``: the effective rank of the
        centred hidden states (all positions of a fixed probe batch of 64 sequences) at
        every depth.
    device : torch.device or str, optional
        Where to train (default CPU). Models this small are often faster on a CPU.

    Returns
    -------
    dict of numpy arrays with the members along the first axis: ``loss``, ``entropy``
    (mean head entropy), ``min_entropy`` (lowest head), ``max_logit`` (largest attention
    logit), each ``(E, num_steps)``; with ``stats_every``: ``stats_steps``, ``qk_norm``,
    ``scale``, ``bound``; with ``rank_every``: ``rank_steps`` and ``ranks``
    ``(E, n, num_layers + 1)``; and ``"ensemble"``, the trained :class:`CopyEnsemble`.

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".
    - wortsman2023small: Wortsman et al. (2024), "Small-scale proxies for large-scale Transformer training instabilities".
    - arefin2024seq: Arefin et al. (2025), "Seq-VCR: Preventing Collapse in Intermediate Transformer Representations
      for Enhanced Reasoning".
    """
    seed_list = [int(seed) for seed in seed_list]
    e = len(seed_list)
    lrs = _learning_rates(lr, e)
    device = torch.device("cpu") if device is None else torch.device(device)
    models = []
    for seed in seed_list:
        torch.manual_seed(seed)
        models.append(TinyTransformer(vocab_size + 1, 2 * num_tokens, d_model, num_heads, num_layers,
                                      norm, qk_layernorm, sigma_reparam))
    ens = CopyEnsemble(models, device)
    opt = _Adam(ens.params.values(), torch.as_tensor(np.array(lrs), dtype=torch.float32, device=device), betas=(0.9, 0.98))
    gens = [torch.Generator().manual_seed(seed + 1) for seed in seed_list]
    probe = torch.stack([copy_task_batch(64, num_tokens, vocab_size, torch.Generator().manual_seed(seed + 2))[0]
                         for seed in seed_list]).to(device)
    T = 2 * num_tokens
    logs = {k: np.full((e, num_steps), np.nan) for k in ("loss", "entropy", "min_entropy", "max_logit")}
    stats_steps, stats = [], []
    rank_steps, ranks = [], []

    def log_ranks(step):
        with torch.no_grad():
            ens.training = False
            _, hidden, _ = ens.forward(probe)
            ens.training = True
        rank_steps.append(step)
        ranks.append([[_centred_effective_rank(h[k]) for h in hidden] for k in range(e)])

    if rank_every:
        log_ranks(0)
    for i in progress(range(num_steps), desc=desc or "copy task (seed ensemble)"):
        batches = [copy_task_batch(batch_size, num_tokens, vocab_size, g) for g in gens]
        inputs, targets, mask = (torch.stack(parts).to(device) for parts in zip(*batches))   # (E, B, T)
        logits, hidden, record = ens.forward(inputs)                                         # (E, B, T, vocab)
        per_member = F.cross_entropy(logits[mask].view(e, -1, logits.shape[-1]).transpose(1, 2),
                                     targets[mask].view(e, -1), reduction="none").mean(1)    # (E,)
        total = per_member.sum()
        if seq_vcr > 0:
            # unchecked call: a diverging run is recorded (NaN loss), not stopped
            total = total + seq_vcr * sum(seq_vcr_loss.__wrapped__(hidden[1][k]) for k in range(e))
        with torch.no_grad():
            logs["loss"][:, i] = per_member.detach().cpu().numpy()
            for key, values in _attention_logs(record).items():
                logs[key][:, i] = values
            if stats_every and i % stats_every == 0:
                stats_steps.append(i)
                stats.append(_bound_logs(ens, record, T))
        opt.zero_grad()
        total.backward()
        opt.step()
        if rank_every and (i + 1) % rank_every == 0:
            log_ranks(i + 1)
    out = dict(logs)
    if stats_steps:
        out["stats_steps"] = np.array(stats_steps)
        for k in ("qk_norm", "scale", "bound", "logit_bound"):
            out[k] = np.stack([row[k] for row in stats], 1)
    if rank_every:
        out["rank_steps"], out["ranks"] = np.array(rank_steps), np.array(ranks).transpose(1, 0, 2)
    out["ensemble"] = ens
    return out


# ---------------------------------------------------------------------------------------
# 3. Learning-rate sensitivity (Section 3)
# ---------------------------------------------------------------------------------------

@validate_params({"lrs": [Array(ndim=1, min_size=1)], "variants": [dict], "seed_list": _SEED_LIST,
                  "num_steps": [_POSITIVE_INT], "last": [_POSITIVE_INT], "device": _DEVICE})
def learning_rate_sweep(lrs, variants: dict, *, seed_list=(0, 1, 2), num_steps: int = 200,
                        last: int = 20, device=None) -> dict:
    """Final copy-task loss for each learning rate, seed and model variant.

    The learning-rate sensitivity curve of Wortsman et al. (2023): a fix that makes
    training stable shows a flat curve over a wider range of learning rates. Every
    (learning rate, seed) pair of a variant is one member of a single
    :func:`train_copy_ensemble` run.

    Parameters
    ----------
    lrs : sequence of float
    variants : dict of str -> dict
        Name -> keyword arguments of :func:`train_copy_ensemble` (``norm``, ``sigma_reparam``, ...).
    seed_list : sequence of int
    num_steps : int
    last : int
        The final loss is the mean over the last ``last`` steps (infinity when a loss in
        that window is NaN or infinite, i.e. the run diverged).

    Returns
    -------
    dict with ``lr`` (array) and, per variant name, final losses of shape ``(seeds, lrs)``.

    References
    ----------
    - wortsman2023small: Wortsman et al. (2024), "Small-scale proxies for large-scale Transformer training instabilities".
    """
    lrs = as_array(lrs, "lrs")
    if np.any(lrs <= 0) or np.any(lrs > 10):
        raise ValueError(f"lrs must hold learning rates in (0, 10], got {lrs.tolist()}")
    _check_variants(variants)
    if last > num_steps:
        raise ValueError(f"last must be at most num_steps={num_steps}, got {last}")
    seed_list = [int(seed) for seed in seed_list]
    n_s, n_l = len(seed_list), len(lrs)
    out = {"lr": lrs}
    for name, kwargs in variants.items():
        run = train_copy_ensemble(np.repeat(lrs[None, :], n_s, 0).ravel(), np.repeat(seed_list, n_l),
                                  num_steps=num_steps, device=device, desc=f"LR sweep: {name}", **kwargs)
        tail = run["loss"][:, -last:]
        finals = np.where(np.all(np.isfinite(tail), 1), np.nanmean(np.where(np.isfinite(tail), tail, 0), 1), np.inf)
        out[name] = finals.reshape(n_s, n_l)
    return out


def _check_variants(variants: dict) -> None:
    """Names -> keyword arguments of :func:`train_copy_ensemble` (the model's switches)."""
    _check_mapping(variants, "variants")
    allowed = set(_COPY_TASK) | {"seq_vcr", "stats_every", "rank_every"}
    allowed -= {"num_steps", "desc"}
    for name, kwargs in variants.items():
        if not isinstance(kwargs, dict):
            raise TypeError(f"variants[{name!r}] must be a dict of keyword arguments, got {type(kwargs).__name__}")
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"variants[{name!r}] has unknown arguments {sorted(unknown)}; allowed: {sorted(allowed)}")


# ---------------------------------------------------------------------------------------
# 4. Softmax Collapse, StableMax and perpGrad in the output layer (Section 4)
# ---------------------------------------------------------------------------------------

def _stablemax_s(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x + 1, 1 / (1 - torch.clamp(x, max=0)))


@validate_params({"x": [Array(min_size=1)], "dim": [int]})
def stablemax(x, dim: int = -1):
    """StableMax (Prieto et al., 2025), a softmax whose tails decay polynomially.

    .. math::

        s(x) = \\begin{cases} x + 1 & x \\ge 0 \\\\ 1 / (1 - x) & x < 0 \\end{cases},
        \\qquad \\mathrm{StableMax}(x)_i = \\frac{s(x_i)}{\\sum_j s(x_j)}.

    Unlike ``exp``, ``s`` grows linearly, so the probabilities of a large-logit row do not
    round to exactly one hot in floating point and the cross-entropy gradient does not
    vanish (no Softmax Collapse).

    Parameters
    ----------
    x : ndarray or torch.Tensor
        Logits, any number of dimensions (at least one).
    dim : int
        The axis StableMax normalises (default -1, the last; negative values count from the end).

    Returns
    -------
    ndarray or torch.Tensor (same shape)

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> stablemax(np.array([0.0, 1.0, -1.0])).round(4)          # s = [1, 2, 1/2]
    array([0.2857, 0.5714, 0.1429])
    >>> stablemax(np.array([1000.0, 0.0])).round(4)             # no rounding to one-hot
    array([0.999, 0.001])
    """
    t = _logit_tensor(x, dim)
    s = _stablemax_s(t)
    return _back(s / s.sum(dim, keepdim=True), x)


def _logit_tensor(x, dim: int) -> torch.Tensor:
    """``x`` as a tensor of at least one dimension, with ``dim`` one of its axes."""
    t = as_tensor(x, "x")
    if t.ndim == 0:
        raise ValueError("x must have at least 1 dimension, got a scalar")
    _check_dim(dim, t.ndim)
    return t


@validate_params({"x": [Array(min_size=1)], "dim": [int]})
def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log StableMax(x)`` computed as ``log s(x_i) - log sum_j s(x_j)`` (Prieto et al., 2025).

    ``x`` and ``dim`` as in :func:`stablemax` (any shape, along ``dim``).

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> np.exp(log_stablemax(np.array([0.0, 1.0, -1.0]))).round(4)
    array([0.2857, 0.5714, 0.1429])
    """
    t = _logit_tensor(x, dim)
    s = _stablemax_s(t)
    return _back(torch.log(s) - torch.log(s.sum(dim, keepdim=True)), x)


@validate_params({
    "logits": [Array(ndim=2, shape=("n", None), min_size=1, tensor=True)],
    "targets": [Labels(high=lambda args: args["logits"].shape[1], shape=("n",), tensor=True)],
})
def stablemax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross entropy with StableMax in place of softmax: mean of ``-log StableMax(z)_y``.

    Parameters
    ----------
    logits : torch.Tensor, shape (n, classes)
    targets : torch.Tensor of int, shape (n,), entries in ``[0, classes)``

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> round(stablemax_cross_entropy(torch.tensor([[0.0, 1.0, -1.0]]), torch.tensor([1])).item(), 4)   # -log(4/7)
    0.5596
    """
    return -log_stablemax(logits).gather(1, targets.long()[:, None]).mean()


@validate_params({"logits": [Array(ndim=(1, 2), min_size=2)]})
def softmax_collapse_fraction(logits) -> float:
    """Fraction of samples whose softmax is exactly one-hot in the working precision.

    Softmax Collapse (Prieto et al., 2025): a sample collapses when

    .. math:: \\sum_j \\exp(z_j - \\max_k z_k) = 1

    holds exactly in the logits' dtype, i.e. every non-maximal term is below half an ulp
    of 1 (from a two-class gap of ``log(2 / eps)``, see :func:`softmax_collapse_gap`). Then
    the predicted probability of the top class is exactly 1 and its cross-entropy loss is
    exactly 0. The gradient with respect to the logits, ``softmax(z) - e_y``, is *not*
    zero: its correct-class component ``p_y - 1`` is exactly 0, while the others,
    ``p_j ~ exp(z_j - z_y)``, stay tiny but nonzero until they underflow (a gap of about 104
    in float32). For logits ``[20, 0]``: ``exp(-20) = 2e-9`` is lost in the sum in float32
    (eps ``1.2e-7``) but kept in float64.

    Parameters
    ----------
    logits : ndarray or torch.Tensor, shape (n, classes) or (classes,)
        Computed in its own floating dtype (integers are promoted to float64). A 1-D input
        is one sample.

    Returns
    -------
    float in [0, 1]

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> softmax_collapse_fraction(np.array([[20.0, 0.0]], dtype=np.float32))
    1.0
    >>> softmax_collapse_fraction(np.array([[20.0, 0.0]], dtype=np.float64))
    0.0
    """
    z = logits if is_tensor(logits) else torch.from_numpy(as_array(logits, "logits", dtype=None))
    if z.shape[-1] < 2 or z.numel() == 0:
        raise ValueError(f"logits must have shape (n, classes) or (classes,) with n >= 1 and >= 2 classes, "
                         f"got {tuple(z.shape)}")
    if not torch.is_floating_point(z):
        z = z.double()
    z = z.detach().reshape(-1, z.shape[-1])                                  # (n, classes)
    total = torch.exp(z - z.max(dim=1, keepdim=True).values).sum(dim=1)
    return float((total == 1).double().mean())


@validate_params({"dtype": [Options((torch.float16, torch.float32, torch.float64))],
                  "tol": [Interval(float, 0, None, closed="neither")]})
def softmax_collapse_gap(dtype=torch.float32, tol: float = 1e-4) -> float:
    """The smallest logit gap ``g`` at which the two-class softmax of ``[g, 0]`` collapses.

    Found by bisection on :func:`softmax_collapse_fraction` in ``dtype``; the closed form
    is ``g* = log(2 / eps)`` with ``eps`` the machine epsilon of ``dtype`` (``1 + x``
    rounds to 1 once ``x <= eps / 2``): about 16.6 in float32 and 36.7 in float64
    (Prieto et al., 2025).

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> round(softmax_collapse_gap(torch.float32), 2), round(float(np.log(2 / np.finfo(np.float32).eps)), 2)
    (16.64, 16.64)
    """
    collapsed = lambda g: softmax_collapse_fraction(torch.tensor([g, 0.0], dtype=dtype)) == 1.0  # noqa: E731
    lo, hi = 0.0, 200.0
    for _ in range(100):                    # 200 / 2**100 is below any float's resolution: no endless loop
        if hi - lo <= tol:
            break
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if collapsed(mid) else (mid, hi)
    return hi


@validate_params({"weight": [Array(min_size=1, max_abs=1e15)], "grad": [Array(min_size=1, max_abs=1e15)]})
def perp_grad(weight, grad):
    """The gradient with its component along the weight removed, rescaled to the old norm.

    ⊥Grad (Prieto et al., 2025):

    .. math::

        g_\\perp = g - \\frac{w \\cdot g}{w \\cdot w} w, \\qquad
        \\tilde g = g_\\perp \\, \\frac{\\lVert g \\rVert}{\\lVert g_\\perp \\rVert}.

    Moving along ``w`` only rescales the logits (the "naive loss minimisation" direction
    that drives Softmax Collapse); ⊥Grad forbids it. Tensors are treated as flat vectors.

    Entries are bounded by ``1e15`` in magnitude, so that the squared norms do not
    overflow in float32.

    Returns
    -------
    ndarray or torch.Tensor, shape of ``grad``

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> perp_grad(np.array([1.0, 0.0]), np.array([1.0, 1.0])).round(4)    # along w removed, norm kept
    array([0.    , 1.4142])
    """
    w = as_tensor(weight, "weight")
    g = as_tensor(grad, "grad")
    if w.shape != g.shape:
        raise ValueError(f"weight and grad must have the same shape, got {tuple(w.shape)} and {tuple(g.shape)}")
    wf, gf = w.reshape(-1), g.reshape(-1)
    tiny = torch.finfo(gf.dtype).tiny
    g_perp = gf - torch.dot(wf, gf) / (torch.dot(wf, wf) + tiny) * wf
    g_perp = g_perp * (gf.norm() / (g_perp.norm() + tiny))
    return _back(g_perp.reshape(g.shape), grad)


@torch.no_grad()
def apply_perp_grad_(parameters) -> None:
    """Replace each parameter's ``.grad`` by :func:`perp_grad` of it, in place.

    Call between ``loss.backward()`` and ``optimizer.step()`` (Prieto et al., 2025, apply it
    to every parameter tensor separately).

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> w = nn.Parameter(torch.tensor([1.0, 0.0]))
    >>> w.grad = torch.tensor([1.0, 1.0])
    >>> apply_perp_grad_([w])
    >>> w.grad
    tensor([0.0000, 1.4142])
    """
    parameters = _tensor_list(parameters, "parameters")
    for p in parameters:
        if p.grad is not None:
            p.grad.copy_(perp_grad(p.detach(), p.grad))


def _tensor_list(values, name: str) -> list:
    """An iterable of tensors (``model.parameters()``, a list of tensors) as a list."""
    if isinstance(values, (str, bytes)) or is_tensor(values) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be an iterable of tensors, got {type(values).__name__}")
    values = list(values)
    if not all(is_tensor(v) for v in values):
        raise TypeError(f"{name} must be an iterable of tensors, got an entry of type "
                        f"{next(type(v).__name__ for v in values if not is_tensor(v))}")
    return values


@validate_params({"p": [Interval(int, 2, None)], "train_fraction": [Interval(float, 0, 1, closed="neither")],
                  "seed": _SEED})
def modular_addition_data(p: int = 23, train_fraction: float = 0.5, seed: int = 0):
    """All pairs ``(a, b)`` with label ``(a + b) mod p``, split at random into train and test.

    The grokking task (Power et al., 2022; Prieto et al., 2025).

    Returns
    -------
    x_train, y_train, x_test, y_test : LongTensors; ``x`` has shape (n, 2).

    References
    ----------
    - power2022grokking: Power et al. (2022), "Grokking: Generalization Beyond Overfitting on Small Algorithmic
      Datasets".
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> x_tr, y_tr, x_te, y_te = modular_addition_data(p=5, train_fraction=0.6, seed=0)
    >>> len(y_tr), len(y_te), bool(torch.all(y_tr == (x_tr[:, 0] + x_tr[:, 1]) % 5))
    (15, 10, True)
    """
    frac = float(train_fraction)
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    x = np.stack([a.ravel(), b.ravel()], axis=1)
    y = (x[:, 0] + x[:, 1]) % p
    order = np.random.default_rng(seed).permutation(len(y))
    n_train = int(round(frac * len(y)))
    tr, te = order[:n_train], order[n_train:]
    as_t = lambda arr: torch.as_tensor(arr, dtype=torch.long)  # noqa: E731
    return as_t(x[tr]), as_t(y[tr]), as_t(x[te]), as_t(y[te])


class ModularMLP(nn.Module):
    """MLP on the concatenated one-hot codes of ``a`` and ``b``: ``2p -> width -> width -> p``.

    The architecture of the MLP experiments of Prieto et al. (2025), smaller.

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".

    Examples
    --------
    >>> ModularMLP(5, width=8)(torch.tensor([[0, 1], [2, 4]])).shape     # (n, p) logits
    torch.Size([2, 5])
    """

    def __init__(self, p: int, width: int = 128, bias: bool = True):
        super().__init__()
        check_params({"p": p, "width": width, "bias": bias},
                     {"p": [Interval(int, 2, None)], "width": [_POSITIVE_INT], "bias": ["boolean"]})
        self.p = p
        self.net = nn.Sequential(nn.Linear(2 * p, width, bias=bias), nn.ReLU(), nn.Linear(width, width, bias=bias),
                                 nn.ReLU(), nn.Linear(width, p, bias=bias))

    @validate_params({"x": [Labels(high="self.p", ndim=2, shape=(None, 2), min_size=1, tensor=True)]})
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, p)`` of the pairs ``x`` ``(n, 2)``, entries in ``[0, p)``."""
        one_hot = torch.cat([F.one_hot(x[:, 0], self.p), F.one_hot(x[:, 1], self.p)], dim=1)   # (n, 2p)
        return self.net(one_hot.to(self.net[0].weight.dtype))


#: The modular-addition arguments shared by the training functions.
_MODULAR_TASK = {
    "p": [Interval(int, 2, None)], "train_fraction": [Interval(float, 0, 1, closed="neither")],
    "loss": [Options(("softmax", "stablemax"))], "perp": ["boolean"], "lr": _LR, "betas": [_AdamBetas()],
    "width": [_POSITIVE_INT], "num_steps": [_POSITIVE_INT], "eval_every": [_POSITIVE_INT], "desc": _DESC,
}


@validate_params({"dtype": [Options((torch.float32, torch.float64))], "seed": _SEED, **_MODULAR_TASK})
def train_modular_addition(*, p: int = 23, train_fraction: float = 0.5, loss: str = "softmax",
                           perp: bool = False, lr: float = 1e-2, num_steps: int = 2000,
                           width: int = 64, betas=(0.9, 0.99), dtype=torch.float32, seed: int = 0,
                           eval_every: int = 50, desc: str | None = None) -> History:
    """Full-batch training on modular addition with Adam and no weight decay.

    The setting where Prieto et al. (2025) see Softmax Collapse: with cross entropy on a
    softmax and no regularisation, once the training set is fitted the cheapest way to
    lower the loss is to scale the logits up ("naive loss minimisation"); in float32 the
    softmax then rounds to one hot, gradients vanish and generalisation stalls.
    ``loss="stablemax"`` (StableMax cross entropy) or ``perp=True`` (⊥Grad) are their fixes.
    This single-run version uses MLP biases and Adam's default epsilon (``1e-8``); the
    chapter uses :func:`train_modular_ensemble`, closer to the paper's code (bias-free MLP,
    epsilon ``1e-25``, a float64 control) and over several seeds at once.

    Logs ``loss`` every step; every ``eval_every`` steps ``train_acc``, ``test_acc``,
    ``sc_fraction`` (:func:`softmax_collapse_fraction` of the training logits),
    ``zero_loss_fraction`` (training samples whose loss under the run's own loss is exactly
    0 in ``dtype``, so they give no gradient) and ``logit_norm`` (mean logit-vector norm).

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".
    """
    x_tr, y_tr, x_te, y_te = modular_addition_data(p, train_fraction, seed)
    torch.manual_seed(seed)
    model = ModularMLP(p, width).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas), weight_decay=0.0)
    criterion = F.cross_entropy if loss == "softmax" else stablemax_cross_entropy

    def per_sample(z, y):
        log_p = torch.log_softmax(z, dim=1) if loss == "softmax" else log_stablemax(z)
        return -log_p.gather(1, y[:, None])[:, 0]

    def step(i):
        value = criterion(model(x_tr), y_tr)
        opt.zero_grad(set_to_none=True)
        value.backward()
        if perp:
            apply_perp_grad_(model.parameters())
        opt.step()
        return {"loss": value.item()}

    @torch.no_grad()
    def evaluate(i):
        z_tr, z_te = model(x_tr), model(x_te)
        return {"train_acc": (z_tr.argmax(1) == y_tr).double().mean().item(),
                "test_acc": (z_te.argmax(1) == y_te).double().mean().item(),
                "sc_fraction": softmax_collapse_fraction(z_tr),
                "zero_loss_fraction": (per_sample(z_tr, y_tr) == 0).double().mean().item(),
                "logit_norm": z_tr.norm(dim=1).mean().item()}

    name = desc or f"mod-{p} {loss}{' + perpgrad' if perp else ''}"
    return train_loop(step, num_steps, evaluate=evaluate, eval_every=eval_every, desc=name)


class _ModularEnsemble:
    """``E`` bias-free MLPs ``2p -> width -> width -> p`` (ReLU) as stacked weights.

    Member ``k`` is initialised as ``ModularMLP(p, width, bias=False)`` after
    ``torch.manual_seed(seed_list[k])``.
    """

    def __init__(self, p, width, seed_list, dtype, device):
        self.p = p
        mats = []
        for seed in seed_list:
            torch.manual_seed(seed)
            net = ModularMLP(p, width, bias=False).net
            mats.append([net[0].weight, net[2].weight, net[4].weight])
        self.weights = [torch.stack([m[j].detach() for m in mats]).to(device=device, dtype=dtype).requires_grad_(True)
                        for j in range(3)]

    def __call__(self, x):                      # x: (E, n, 2) integer pairs
        h = torch.cat([F.one_hot(x[..., 0], self.p), F.one_hot(x[..., 1], self.p)], -1).to(self.weights[0].dtype)
        h = torch.relu(h @ self.weights[0].transpose(1, 2))
        h = torch.relu(h @ self.weights[1].transpose(1, 2))
        return h @ self.weights[2].transpose(1, 2)


@validate_params({"seed_list": _SEED_LIST, "loss_dtype": [Options((torch.float32, torch.float64))],
                  "eps": [Interval(float, 0, 1, closed="neither")], "device": _DEVICE, **_MODULAR_TASK})
def train_modular_ensemble(seed_list, *, p: int = 23, train_fraction: float = 0.5, loss: str = "softmax",
                           perp: bool = False, loss_dtype=torch.float32, lr: float = 1e-2,
                           betas=(0.9, 0.99), eps: float = 1e-25, width: int = 64, num_steps: int = 2000,
                           eval_every: int = 50, device=None, desc: str | None = None) -> dict:
    """Full-batch modular addition without weight decay, one bias-free MLP per seed, trained together.

    The setting of Prieto et al. (2025, their MLP experiments, smaller): cross entropy on a
    softmax, Adam with ``betas=(0.9, 0.99)``, no weight decay and a tiny Adam epsilon (their
    code's default is ``1e-25``; ``1e-30`` in their precision experiment), so that the update
    is not damped when gradients become tiny and it is Softmax Collapse, not epsilon, that
    stops learning. The MLP has no biases, as theirs, so scaling every weight by ``c``
    scales the logits by ``c**3`` ("naive loss minimisation" is a direction in weight
    space, the one ⊥Grad removes). Member ``k`` uses seed ``seed_list[k]`` for its weights
    and for its train/test split (:func:`modular_addition_data`).

    Parameters
    ----------
    loss : {"softmax", "stablemax"}
    perp : bool
        Apply ⊥Grad (:func:`perp_grad`) to every weight of every member before the step.
    loss_dtype : torch.dtype
        The dtype in which the logits enter the loss (the model stays float32): float64 is
        the paper's control, in which the softmax does not round to one-hot.
    eps : float
        Adam's epsilon.
    device : torch.device or str, optional

    Returns
    -------
    dict of numpy arrays: ``loss`` ``(E, num_steps)``; ``steps`` (evaluation steps) and, each
    ``(E, len(steps))``: ``train_acc``, ``test_acc``, ``sc_fraction``
    (:func:`softmax_collapse_fraction` of the training logits in ``loss_dtype``),
    ``zero_loss_fraction`` (training samples whose loss is exactly 0 in ``loss_dtype``) and
    ``logit_norm`` (mean norm of the training logit vectors).

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".
    """
    seed_list = [int(seed) for seed in seed_list]
    device = torch.device("cpu") if device is None else torch.device(device)
    e = len(seed_list)
    splits = [modular_addition_data(p, train_fraction, seed) for seed in seed_list]
    x_tr, y_tr, x_te, y_te = (torch.stack(parts).to(device) for parts in zip(*splits))   # x: (E, n, 2)
    model = _ModularEnsemble(p, width, seed_list, torch.float32, device)
    opt = _Adam(model.weights, torch.full((e,), lr, device=device), betas=tuple(betas), eps=eps)

    def per_sample(z, y):
        z = z.to(loss_dtype)
        log_p = torch.log_softmax(z, dim=-1) if loss == "softmax" else log_stablemax(z)
        return -log_p.gather(-1, y[..., None])[..., 0]                     # (E, n)

    logs = {k: [] for k in ("train_acc", "test_acc", "sc_fraction", "zero_loss_fraction", "logit_norm")}
    steps, losses = [], np.full((e, num_steps), np.nan)

    @torch.no_grad()
    def evaluate(step):
        z_tr, z_te = model(x_tr), model(x_te)
        steps.append(step)
        logs["train_acc"].append((z_tr.argmax(-1) == y_tr).double().mean(1).cpu().numpy())
        logs["test_acc"].append((z_te.argmax(-1) == y_te).double().mean(1).cpu().numpy())
        logs["sc_fraction"].append(np.array([softmax_collapse_fraction(z_tr[k].to(loss_dtype)) for k in range(e)]))
        logs["zero_loss_fraction"].append((per_sample(z_tr, y_tr) == 0).double().mean(1).cpu().numpy())
        logs["logit_norm"].append(z_tr.norm(dim=-1).mean(1).cpu().numpy())

    evaluate(0)
    for i in progress(range(num_steps), desc=desc or f"mod-{p} {loss} (seed ensemble)"):
        per_member = per_sample(model(x_tr), y_tr).mean(1)
        opt.zero_grad()
        per_member.sum().backward()
        if perp:
            _ensemble_perp_grad_(model.weights)
        opt.step()
        losses[:, i] = per_member.detach().cpu().numpy()
        if (i + 1) % eval_every == 0:
            evaluate(i + 1)
    out = {"loss": losses, "steps": np.array(steps)}
    out.update({k: np.stack(v, 1) for k, v in logs.items()})
    return out


# ---------------------------------------------------------------------------------------
# 5. Collapse of the representations (Section 5)
# ---------------------------------------------------------------------------------------

@validate_params({"matrix": [Array(ndim=2, min_size=1)]})
def effective_rank(matrix) -> float:
    """Effective rank (Roy & Vetterli, 2007): the exponential of the singular-value entropy.

    .. math:: \\mathrm{erank}(M) = \\exp\\Bigl(-\\sum_k p_k \\log p_k\\Bigr), \\qquad
              p_k = \\sigma_k / \\textstyle\\sum_l \\sigma_l.

    Between 1 (rank one) and ``min(n, d)`` (all singular values equal).

    Parameters
    ----------
    matrix : ndarray or torch.Tensor, shape (n, d), not all zero

    References
    ----------
    - roy2007effective: Roy and Vetterli (2007), "The effective rank: A measure of effective dimensionality".

    Examples
    --------
    >>> round(effective_rank(np.eye(4)), 4), round(effective_rank(np.diag([3.0, 1.0])), 4)
    (4.0, 1.7548)
    """
    sv = np.linalg.svd(as_array(matrix, "matrix"), compute_uv=False)
    if sv.sum() <= 0:
        raise ValueError("matrix must not be all zero")
    p = sv / sv.sum()
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


@validate_params({"features": [Array(ndim=2, min_size=1)]})
def von_neumann_entropy(features) -> float:
    """Von Neumann entropy of a representation (Kim et al., 2023).

    Rows are L2-normalised, ``rho = Z^T Z / N`` (trace 1), and

    .. math:: \\mathrm{VNE}(Z) = -\\sum_k \\lambda_k \\log \\lambda_k

    over the eigenvalues of ``rho``. 0 when all rows are parallel (complete collapse),
    ``log d`` when the representation is isotropic.

    Parameters
    ----------
    features : ndarray or torch.Tensor, shape (N, d), no zero row

    References
    ----------
    - kim2023vne: Kim et al. (2023), "VNE: An Effective Method for Improving Deep Representation by Manipulating
      Eigenvalue Distribution".

    Examples
    --------
    >>> round(von_neumann_entropy(np.eye(3)), 4)                   # isotropic: log 3
    1.0986
    >>> round(von_neumann_entropy(np.ones((5, 3))), 4)             # all rows parallel
    0.0
    """
    z = as_array(features, "features")
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("features must not contain an all-zero row")
    z = z / norms
    lam = np.linalg.eigvalsh(z.T @ z / z.shape[0])
    lam = lam[lam > 1e-12]
    return float(-np.sum(lam * np.log(lam)))


@validate_params({
    "hidden": [Array(ndim=(2, 3), min_rows=2, max_abs=_MAX_ACTIVATION, tensor=True)],
    "lambda_var": [Interval(float, 0, 1e6)],
    "lambda_cov": [Interval(float, 0, 1e6)],
    "eps": [Interval(float, 0, 1e6, closed="right")],
})
def seq_vcr_loss(hidden: torch.Tensor, lambda_var: float = 1.0, lambda_cov: float = 0.04,
                 eps: float = 1e-4) -> torch.Tensor:
    """Seq-VCR regulariser (Arefin et al., 2025): variance and covariance terms per position.

    For each position ``t``, ``C_t`` is the ``d x d`` covariance across the batch of the
    hidden states ``h[:, t, :]``; then

    .. math::

        L = \\frac{1}{T}\\sum_t \\Bigl[\\frac{\\lambda_{var}}{d}\\sum_k
            \\max\\bigl(0, 1 - \\sqrt{C_{t,kk} + \\epsilon}\\bigr)
            + \\frac{\\lambda_{cov}}{d}\\sum_{k \\ne l} C_{t,kl}^2\\Bigr].

    The variance hinge keeps every dimension alive, the covariance term decorrelates them:
    together they keep the effective rank of intermediate representations high.
    Difference from the paper: Arefin et al. apply the loss to a learned projection of the
    hidden states into a wider space; here it acts on the hidden states directly (the
    chapter applies it to the output of the first block, weight ``seq_vcr`` of
    :func:`train_copy_ensemble`).

    Parameters
    ----------
    hidden : torch.Tensor, shape (batch, T, d) or (batch, d); batch >= 2
        Finite, entries of magnitude at most ``1e6`` (squared covariances must not
        overflow in float32).
    lambda_var, lambda_cov : float in [0, 1e6]
    eps : float in (0, 1e6]

    References
    ----------
    - arefin2024seq: Arefin et al. (2025), "Seq-VCR: Preventing Collapse in Intermediate Transformer Representations
      for Enhanced Reasoning".

    Examples
    --------
    >>> h = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])            # (batch, d): dimension 2 is dead
    >>> round(seq_vcr_loss(h).item(), 4)                        # variance hinge of that dimension, / d
    0.495
    """
    h = hidden if hidden.ndim == 3 else hidden[:, None, :]          # (B, T, d)
    b, _, d = h.shape
    h = (h - h.mean(0, keepdim=True)).transpose(0, 1)          # (T, B, d)
    cov = h.transpose(1, 2) @ h / (b - 1)                        # (T, d, d)
    var = torch.diagonal(cov, dim1=1, dim2=2)
    var_term = F.relu(1 - torch.sqrt(var + eps)).sum(1) / d
    off = cov - torch.diag_embed(var)
    cov_term = (off ** 2).sum((1, 2)) / d
    return (lambda_var * var_term + lambda_cov * cov_term).mean()


@torch.no_grad()
@validate_params({
    "model": [TinyTransformer],
    "tokens": [TokenIds(high=lambda args: args["model"].vocab_size, ndim=2, min_size=1, tensor=True)],
})
def hidden_state_ranks(model: TinyTransformer, tokens: torch.Tensor) -> dict:
    """Effective rank and VNE of each hidden state of ``model`` on ``tokens``.

    Token representations of all positions and samples are stacked into an
    ``(batch * T, d)`` matrix per depth (embedding output, then each block).

    Returns
    -------
    dict with arrays ``effective_rank`` and ``vne`` (one entry per depth).

    References
    ----------
    - roy2007effective: Roy and Vetterli (2007), "The effective rank: A measure of effective dimensionality".
    - kim2023vne: Kim et al. (2023), "VNE: An Effective Method for Improving Deep Representation by Manipulating
      Eigenvalue Distribution".

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model = TinyTransformer(vocab_size=10, seq_len=6, d_model=8, num_heads=2, num_layers=1)
    >>> hidden_state_ranks(model, torch.arange(12).reshape(2, 6) % 10)["effective_rank"].shape   # depths 0, 1
    (2,)
    """
    _check_length(tokens, "tokens", model.seq_len)
    was_training = model.training
    model.eval()
    _, hidden = model(tokens, return_hidden=True)
    model.train(was_training)
    flat = [h.reshape(-1, h.shape[-1]).double() for h in hidden]
    return {"effective_rank": np.array([effective_rank(h) for h in flat]),
            "vne": np.array([von_neumann_entropy(h) for h in flat])}


# ---------------------------------------------------------------------------------------
# figures, in the order of the chapter
# ---------------------------------------------------------------------------------------

def _check_runs(runs, name: str, keys, *, top: bool = False) -> None:
    """A non-empty dict of results by name, each holding ``keys`` (``top``: ``runs`` itself holds them)."""
    _check_mapping(runs, name)
    for label, run in ([(None, runs)] if top else runs.items()):
        where = name if label is None else f"{name}[{label!r}]"
        if not (isinstance(run, (dict, History))):
            raise TypeError(f"{where} must be a dict of results (or a History), got {type(run).__name__}")
        missing = [k for k in keys if k not in run]
        if missing:
            raise ValueError(f"{where} lacks {missing}")


@validate_params({"result": [dict]})
def plot_entropy_vs_scale(result: dict):
    """Mean and minimum row entropy against ``s``, with the Theorem 3.1 bound (``result`` of :func:`entropy_vs_scale`).

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".
    """
    import matplotlib.pyplot as plt

    _check_runs(result, "result", ("scale", "mean", "min", "bound"), top=True)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    s = result["scale"]
    ax.plot(s, result["mean"], "o-", label="mean row entropy")
    ax.plot(s, result["min"], "s-", label="lowest row entropy")
    ax.plot(s, result["bound"], "k--", label="lower bound (Zhai et al., Thm 3.1)")
    ax.set_xscale("log")
    ax.set_xlabel(r"$s = \|W_K W_Q^\top\|_2 \, \|X X^\top\|_2$")
    ax.set_ylabel("attention entropy (nats)")
    ax.legend()
    fig.tight_layout()
    return fig


@validate_params({"runs": [dict], "chance": _CHANCE, "ceiling": _CHANCE})
def plot_copy_ensembles(runs: dict, chance: float | None = None, ceiling: float | None = None):
    """Loss and mean attention entropy of several :func:`train_copy_ensemble` runs.

    One colour per variant: the line is the mean over seeds, the band the range of the
    seeds (:func:`companion.plotting.plot_spread`). ``chance`` draws the chance loss,
    ``ceiling`` the causal entropy ceiling (:func:`causal_entropy_ceiling`).

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".
    """
    from .plotting import plot_spread, subplots

    _check_runs(runs, "runs", ("loss", "entropy"))
    fig, (ax_loss, ax_ent) = subplots(2, width=5.5, height=3.8)
    for k, (name, run) in enumerate(runs.items()):
        steps = np.arange(run["loss"].shape[1])
        plot_spread(ax_loss, steps, run["loss"], label=name, color=f"C{k}")
        plot_spread(ax_ent, steps, run["entropy"], label=name, color=f"C{k}")
    if chance is not None:
        ax_loss.axhline(chance, color="gray", ls="--", lw=1, label="chance")
    if ceiling is not None:
        ax_ent.axhline(ceiling, color="gray", ls=":", lw=1, label="causal ceiling")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.legend(fontsize=7)
    ax_ent.set_xlabel("step")
    ax_ent.set_ylabel("mean attention entropy (nats)")
    ax_ent.legend(fontsize=7)
    fig.tight_layout()
    return fig


@validate_params({"maps": [list, tuple], "titles": [list, tuple, None], "suptitle": [str]})
def plot_attention_maps(maps, titles=None, suptitle: str = ""):
    """Heat maps of several attention matrices side by side (rows: queries, columns: keys).

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".
    """
    import matplotlib.pyplot as plt

    maps = [as_array(m, "maps", ndim=2) for m in maps]
    if not maps:
        raise ValueError("maps must hold at least one attention matrix")
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"titles must have one entry per map ({len(maps)}), got {len(titles)}")
    fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.8), squeeze=False)
    for k, (ax, m) in enumerate(zip(axes[0], maps)):
        ax.imshow(m, cmap="viridis", vmin=0, vmax=1)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


@validate_params({"runs": [dict]})
def plot_entropy_mechanism(runs: dict):
    """What drives entropy collapse, per variant and over seeds.

    Left: the largest ``||W_Q^h W_K^h^T||_2 / sqrt(d_h)`` over heads and layers; middle: the
    largest attention logit; right: the measured mean entropy (solid) with the lower
    bound of Theorem 3.1 applied at the measured logit norms (dashed). Runs logged with
    ``stats_every`` only; qk-layernorm runs have no ``qk_norm``.

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".
    """
    from .plotting import plot_spread, subplots

    _check_runs(runs, "runs", ("stats_steps", "qk_norm", "max_logit", "entropy", "logit_bound"))
    fig, (ax_w, ax_l, ax_e) = subplots(3, width=4.2, height=3.5)
    for k, (name, run) in enumerate(runs.items()):
        color = f"C{k}"
        st = run["stats_steps"]
        if np.all(np.isfinite(run["qk_norm"])):
            plot_spread(ax_w, st, run["qk_norm"], label=name, color=color)
        plot_spread(ax_l, np.arange(run["max_logit"].shape[1]), np.abs(run["max_logit"]), label=name, color=color)
        plot_spread(ax_e, st, run["entropy"][:, st], label=f"{name}: entropy", color=color)
        plot_spread(ax_e, st, np.maximum(run["logit_bound"], 1e-6), label=f"{name}: bound", color=color, ls="--")
    ax_w.set_ylabel(r"largest $\|W_Q^h W_K^{h\top}\|_2/\sqrt{d_h}$")
    ax_l.set_ylabel("largest attention logit")
    ax_e.set_ylabel("entropy and its bound (nats)")
    for ax in (ax_w, ax_l, ax_e):
        ax.set_xlabel("step")
        ax.set_yscale("log")
    ax_w.legend(fontsize=7)
    ax_e.legend(fontsize=6)
    fig.tight_layout()
    return fig


@validate_params({"sweep": [dict], "chance": _CHANCE})
def plot_lr_sweep_seeds(sweep: dict, chance: float | None = None):
    """Final loss against learning rate, mean and range over seeds, one line per variant (:func:`learning_rate_sweep`).

    References
    ----------
    - wortsman2023small: Wortsman et al. (2024), "Small-scale proxies for large-scale Transformer training instabilities".
    """
    from .plotting import plot_spread, subplots

    _check_runs(sweep, "sweep", ("lr",), top=True)
    fig, (ax,) = subplots(1, width=6, height=3.8)
    lrs = sweep["lr"]
    for k, (name, losses) in enumerate((n, v) for n, v in sweep.items() if n != "lr"):
        shown = np.where(np.isfinite(losses), losses, 10 * (chance or 10.0))
        plot_spread(ax, lrs, shown, label=name, color=f"C{k}", marker="o")
    if chance is not None:
        ax.axhline(chance, color="gray", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@validate_params({"runs": [dict]})
def plot_modular_ensembles(runs: dict):
    """Test accuracy, zero-loss fraction and logit norm of :func:`train_modular_ensemble` runs (mean and range).

    References
    ----------
    - prieto2025grokking: Prieto et al. (2025), "Grokking at the Edge of Numerical Stability".
    """
    from .plotting import plot_spread, subplots

    _check_runs(runs, "runs", ("steps", "test_acc", "zero_loss_fraction", "logit_norm"))
    fig, (ax_acc, ax_sc, ax_norm) = subplots(3, width=4.2, height=3.5)
    for k, (name, run) in enumerate(runs.items()):
        color = f"C{k}"
        plot_spread(ax_acc, run["steps"], run["test_acc"], label=name, color=color)
        plot_spread(ax_sc, run["steps"], run["zero_loss_fraction"], label=name, color=color)
        plot_spread(ax_norm, run["steps"][1:], run["logit_norm"][:, 1:], label=name, color=color)
    ax_acc.set_ylabel("test accuracy")
    ax_sc.set_ylabel("training samples with zero loss")
    ax_norm.set_ylabel("mean logit norm (training set)")
    ax_norm.set_yscale("log")
    for ax in (ax_acc, ax_sc, ax_norm):
        ax.set_xlabel("step")
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    return fig


@validate_params({"runs": [dict], "depth": [_NONNEGATIVE_INT]})
def plot_rank_during_training(runs: dict, depth: int = 1):
    """Effective rank of the centred hidden states at ``depth`` against step (mean and range over seeds).

    ``runs`` holds :func:`train_copy_ensemble` results logged with ``rank_every``.

    References
    ----------
    - roy2007effective: Roy and Vetterli (2007), "The effective rank: A measure of effective dimensionality".
    - arefin2024seq: Arefin et al. (2025), "Seq-VCR: Preventing Collapse in Intermediate Transformer Representations
      for Enhanced Reasoning".
    """
    from .plotting import plot_spread, subplots

    _check_runs(runs, "runs", ("rank_steps", "ranks"))
    depths = min(run["ranks"].shape[2] for run in runs.values())
    if depth >= depths:
        raise ValueError(f"depth must be below the number of logged depths ({depths}), got {depth}")
    fig, (ax,) = subplots(1, width=6, height=3.6)
    for k, (name, run) in enumerate(runs.items()):
        plot_spread(ax, run["rank_steps"], run["ranks"][:, :, depth], label=name, color=f"C{k}", marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel(f"effective rank, centred states at depth {depth}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# explorer
# ---------------------------------------------------------------------------------------

def _draw_entropy_explorer(scale: float, seq_len: int):
    import matplotlib.pyplot as plt

    attn = random_attention(seq_len, 16, scale, seed=0)
    ent = attention_entropy(attn)
    bound = attention_entropy_lower_bound(seq_len, scale)
    extremal = extremal_attention(seq_len, scale)
    fig, (ax_map, ax_ent) = plt.subplots(1, 2, figsize=(8.5, 3.4))
    ax_map.imshow(attn, cmap="viridis", vmin=0, vmax=1)
    ax_map.set_xlabel("key")
    ax_map.set_ylabel("query")
    ax_map.set_title(f"softmax(X W X^T), s = {scale:g}", fontsize=9)
    ax_ent.bar(np.arange(seq_len), ent, color="C0", label="row entropy")
    ax_ent.axhline(np.log(seq_len), color="gray", ls=":", label="log T (uniform)")
    ax_ent.axhline(bound, color="k", ls="--", label=f"bound = entropy of extremal row ({attention_entropy(extremal):.3f})")
    ax_ent.set_xlabel("query")
    ax_ent.set_ylabel("entropy (nats)")
    ax_ent.set_ylim(0, np.log(seq_len) * 1.35)
    ax_ent.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    text = (f"T = {seq_len}, s = {scale:g}: mean entropy {ent.mean():.3f}, lowest {ent.min():.3f}, "
            f"bound {bound:.3f}, log T {np.log(seq_len):.3f}")
    return fig, text


def entropy_explorer():
    """Explorer: spectral scale ``s`` and sequence length ``T`` -> attention map, row entropies and the bound.

    The attention is :func:`random_attention` (random tokens and a random ``W_Q W_K^T``
    scaled so that ``s = ||W_K W_Q^T||_2 ||X X^T||_2`` is the slider's value); the dashed
    line is :func:`attention_entropy_lower_bound`. The static book precomputes the scale
    slider (8 frames) at ``T = 16``.

    References
    ----------
    - zhai2023stabilizing: Zhai et al. (2023), "Stabilizing Transformer Training by Preventing Attention Entropy Collapse".
    """
    from .widgets import Choice, Explorer

    controls = {
        "scale": Choice([0.5, 1, 2, 4, 8, 16, 32, 64], default=4, label="spectral scale s"),
        "seq_len": Choice([4, 8, 16, 32], default=16, label="sequence length T"),
    }
    return Explorer(_draw_entropy_explorer, controls, title="Attention entropy vs. the spectral norm",
                    precompute=["scale"])
