"""Entropy collapse: attention entropy and its bound, sigmaReparam, StableMax, representation rank.

The second chapter of the course. Everything the chapter computes lives here:

- attention entropy per query and per head, and the lower bound of
  Zhai et al. (2023, Theorem 3.1) in terms of the spectral norm of ``W_K W_Q^T``;
- :class:`SigmaReparam`, the spectral reparametrisation of a linear layer
  (Zhai et al., 2023) and :func:`apply_sigma_reparam` converting a whole model;
- a small Transformer (:class:`TinyTransformer`) whose attention maps can be read, with
  post-LN, pre-LN or no LayerNorm, optional qk-layernorm (Wortsman et al., 2023) and
  optional sigmaReparam, the copy task it is trained on and the training helper;
- Softmax Collapse (Prieto et al., 2025): :func:`softmax_collapse_fraction`,
  :func:`stablemax`, :func:`perp_grad`, the modular-addition task and its training helper;
- representation collapse: :func:`effective_rank` (Roy & Vetterli, 2007),
  :func:`von_neumann_entropy` (Kim et al., 2023) and :func:`seq_vcr_loss`
  (Arefin et al., 2024);
- the chapter's figures and :func:`entropy_explorer`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._validation import (as_array, check_choice, check_int, check_nonnegative,
                          check_positive, is_tensor)
from .training import History, train_loop

__all__ = [
    # attention entropy and its bound
    "attention_entropy",
    "head_entropy",
    "attention_entropy_lower_bound",
    "extremal_attention",
    "spectral_norm",
    "random_attention",
    "entropy_vs_scale",
    # sigmaReparam
    "SigmaReparam",
    "apply_sigma_reparam",
    # the small Transformer and the copy task
    "MultiHeadSelfAttention",
    "TransformerBlock",
    "TinyTransformer",
    "copy_task_batch",
    "train_copy_task",
    "learning_rate_sweep",
    # softmax collapse
    "stablemax",
    "log_stablemax",
    "stablemax_cross_entropy",
    "softmax_collapse_fraction",
    "perp_grad",
    "apply_perp_grad_",
    "modular_addition_data",
    "ModularMLP",
    "train_modular_addition",
    # representation collapse
    "effective_rank",
    "von_neumann_entropy",
    "seq_vcr_loss",
    "hidden_state_ranks",
    # figures and explorer
    "plot_entropy_vs_scale",
    "plot_attention_maps",
    "plot_copy_runs",
    "plot_lr_sweep",
    "plot_modular_runs",
    "plot_representation_ranks",
    "entropy_explorer",
]


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def _check_dim(dim, ndim: int, name: str = "dim") -> int:
    dim = check_int(dim, name)
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name} must lie in [{-ndim}, {ndim - 1}] for an input with {ndim} dimension(s), got {dim}")
    return dim


def _as_float_tensor(x, name: str) -> torch.Tensor:
    """A floating torch tensor (float64 for numpy input) after the usual checks."""
    if is_tensor(x):
        if not torch.is_floating_point(x):
            x = x.double()
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return x
    return torch.from_numpy(as_array(x, name))


def _back(result: torch.Tensor, like):
    """Return ``result`` as the same kind of object as ``like`` (numpy array or tensor)."""
    if is_tensor(like):
        return result
    out = result.detach().cpu().numpy()
    return out.item() if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------
# attention entropy and the Zhai et al. bound
# ---------------------------------------------------------------------------------------

def attention_entropy(attn, dim: int = -1, *, atol: float = 1e-4):
    """Shannon entropy of each attention row.

    .. math:: \\mathrm{Ent}(A_i) = -\\sum_j A_{ij} \\log A_{ij}

    with ``0 log 0 = 0``. A row spread uniformly over ``T`` keys has the maximum,
    ``log T``; a one-hot row has entropy 0 ("entropy collapse", Zhai et al., 2023).

    Parameters
    ----------
    attn : ndarray or torch.Tensor
        Attention probabilities; the rows along ``dim`` must be non-negative and sum to 1.
    dim : int
        The axis holding the keys (default -1).
    atol : float
        Tolerance on the row sums.

    Returns
    -------
    ndarray, float or torch.Tensor
        The entropies, shape of ``attn`` without ``dim`` (a tensor for tensor input,
        differentiable).
    """
    a = _as_float_tensor(attn, "attn")
    if a.ndim == 0:
        raise ValueError("attn must have at least 1 dimension, got a scalar")
    dim = _check_dim(dim, a.ndim)
    if (a < 0).any():
        raise ValueError("attn must be non-negative (probabilities)")
    if not torch.allclose(a.sum(dim), torch.ones((), dtype=a.dtype), atol=atol):
        raise ValueError(f"attn rows along dim={dim} must sum to 1 (softmax outputs)")
    # adding 0.0 turns the -0.0 of one-hot rows into 0.0
    return _back(-torch.special.xlogy(a, a).sum(dim) + 0.0, attn)


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
    """
    a = _as_float_tensor(attn, "attn")
    if a.ndim not in (3, 4):
        raise ValueError(f"attn must have shape (batch, heads, T, T) or (heads, T, T), got {tuple(a.shape)}")
    if a.ndim == 3:
        a = a.unsqueeze(0)
    ent = attention_entropy(a, dim=-1)
    return _back(ent.mean(dim=(0, 2)), attn)


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
    """
    T = check_int(seq_len, "seq_len", minimum=2)
    s = as_array(scale, "scale")
    if np.any(s < 0):
        raise ValueError("scale must be >= 0")
    beta = np.exp(-s * np.sqrt(T / (T - 1)))
    denom = 1.0 + (T - 1) * beta
    out = np.log(denom) + s * np.sqrt(T * (T - 1)) * beta / denom
    return float(out) if out.ndim == 0 else out


def extremal_attention(seq_len: int, scale: float) -> np.ndarray:
    """The attention row of lowest entropy among logits of norm ``scale``.

    .. math:: a = \\mathrm{softmax}\\Bigl(s\\,\\frac{e_1 - \\mathbf 1/T}{\\lVert e_1 - \\mathbf 1/T\\rVert}\\Bigr)

    Its entropy is exactly :func:`attention_entropy_lower_bound` (Zhai et al., 2023,
    proof of Theorem 3.1).

    Returns
    -------
    ndarray, shape (seq_len,)
    """
    T = check_int(seq_len, "seq_len", minimum=2)
    s = check_nonnegative(scale, "scale")
    direction = -np.full(T, 1.0 / T)
    direction[0] += 1.0
    logits = s * direction / np.linalg.norm(direction)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def spectral_norm(matrix) -> float:
    """Largest singular value ``||W||_2`` of a matrix (by SVD)."""
    w = as_array(matrix, "matrix", ndim=2)
    return float(np.linalg.svd(w, compute_uv=False)[0])


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
    """
    T = check_int(seq_len, "seq_len", minimum=2)
    d = check_int(dim, "dim", minimum=1)
    s = check_nonnegative(scale, "scale")
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    x = rng.normal(size=(T, d))
    x /= np.sqrt(np.linalg.norm(x @ x.T, 2))
    w = rng.normal(size=(d, d // 2 + 1)) @ rng.normal(size=(d // 2 + 1, d))
    w *= s / np.linalg.norm(w, 2)
    logits = x @ w @ x.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def entropy_vs_scale(scales, seq_len: int = 16, dim: int = 16, seed: int = 0) -> dict:
    """Mean and minimum row entropy of :func:`random_attention` across scales, and the bound.

    The same random ``X`` and direction of ``W`` for every scale, so only ``s`` changes.

    Returns
    -------
    dict with arrays ``scale``, ``mean``, ``min`` and ``bound``.
    """
    s = as_array(scales, "scales", ndim=1)
    if np.any(s < 0):
        raise ValueError("scales must be >= 0")
    mean, low = [], []
    for value in s:
        ent = attention_entropy(random_attention(seq_len, dim, value, seed))
        mean.append(ent.mean())
        low.append(ent.min())
    return {"scale": s, "mean": np.array(mean), "min": np.array(low),
            "bound": attention_entropy_lower_bound(seq_len, s)}


# ---------------------------------------------------------------------------------------
# sigmaReparam
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
    """

    def __init__(self, linear: nn.Linear, init_iters: int = 50):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        init_iters = check_int(init_iters, "init_iters", minimum=1)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.power_iteration()
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def apply_sigma_reparam(model: nn.Module, init_iters: int = 50) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``model`` by a :class:`SigmaReparam` wrapper, in place.

    Zhai et al. (2023) reparametrise all linear layers of the Transformer. Returns ``model``.
    (:class:`TinyTransformer` with ``sigma_reparam=True`` applies it to its blocks only,
    leaving the output layer plain; see there.)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(model, nn.Linear):
        return SigmaReparam(model, init_iters)
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, SigmaReparam(child, init_iters))
        else:
            apply_sigma_reparam(child, init_iters)
    return model


# ---------------------------------------------------------------------------------------
# a small Transformer whose attention can be read
# ---------------------------------------------------------------------------------------

class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention that keeps its last attention map.

    .. math:: A = \\mathrm{softmax}\\bigl(Q K^T / \\sqrt{d_h}\\bigr), \\quad Q = X W_Q, K = X W_K

    (Vaswani et al., 2017). With ``qk_layernorm`` the queries and keys are layer-normalised
    per head before the product (Wortsman et al., 2023), which bounds the logits.
    ``last_attention`` holds the detached map of the last forward, shape
    ``(batch, heads, T, T)``.
    """

    def __init__(self, d_model: int, num_heads: int, qk_layernorm: bool = False):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.d_head = num_heads, d_model // num_heads
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q = self.q_norm(self._heads(self.query(x)))
        k = self.k_norm(self._heads(self.key(x)))
        v = self._heads(self.value(x))
        logits = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        attn = torch.softmax(logits.masked_fill(mask, float("-inf")), dim=-1)
        self.last_attention = attn.detach()
        return self.out((attn @ v).transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Attention and MLP sub-layers with post-LN, pre-LN or no LayerNorm.

    ``post``: ``x = LN(x + f(x))`` (Vaswani et al., 2017); ``pre``: ``x = x + f(LN(x))``;
    ``none``: ``x = x + f(x)``.
    """

    def __init__(self, d_model: int, num_heads: int, norm: str = "post", qk_layernorm: bool = False):
        super().__init__()
        self.norm = check_choice(norm, "norm", ("post", "pre", "none"))
        self.attn = MultiHeadSelfAttention(d_model, num_heads, qk_layernorm)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        make = (lambda: nn.LayerNorm(d_model)) if norm != "none" else nn.Identity
        self.ln1, self.ln2 = make(), make()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        LayerNorm on queries and keys (Wortsman et al., 2023).
    sigma_reparam : bool
        Wrap every linear layer of the Transformer blocks (queries, keys, values, attention
        output, both MLP layers) in :class:`SigmaReparam` (Zhai et al., 2023). The token
        and position embeddings (lookup tables) and the output layer (the unembedding,
        which language models usually tie to the embedding) stay as they are: with one
        learned scalar ``gamma`` for all output logits, Adam at a large learning rate
        drives that ``gamma`` to about 0 in the first steps while the model is at chance
        (shrinking the logits toward uniform is then the quickest way to lower the loss),
        and every gradient below the output layer is scaled by it, so training stalls.
    """

    def __init__(self, vocab_size: int, seq_len: int, d_model: int = 32, num_heads: int = 4,
                 num_layers: int = 2, norm: str = "post", qk_layernorm: bool = False,
                 sigma_reparam: bool = False):
        super().__init__()
        vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
        seq_len = check_int(seq_len, "seq_len", minimum=1)
        d_model = check_int(d_model, "d_model", minimum=1)
        num_heads = check_int(num_heads, "num_heads", minimum=1)
        num_layers = check_int(num_layers, "num_layers", minimum=1)
        norm = check_choice(norm, "norm", ("post", "pre", "none"))
        self.token = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, num_heads, norm, qk_layernorm)
                                    for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size)
        if sigma_reparam:
            for block in self.blocks:
                apply_sigma_reparam(block)

    def forward(self, tokens: torch.Tensor, return_hidden: bool = False):
        """Logits ``(batch, T, vocab)``; with ``return_hidden`` also the list of hidden states
        (embedding output, then each block's output)."""
        t = tokens.shape[1]
        x = self.token(tokens) + self.position(torch.arange(t, device=tokens.device))
        hidden = [x]
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        logits = self.head(self.final_norm(x))
        return (logits, hidden) if return_hidden else logits

    def attention_maps(self) -> list[torch.Tensor]:
        """The attention of each layer in the last forward pass, ``(batch, heads, T, T)``."""
        return [block.attn.last_attention for block in self.blocks]


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
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n = check_int(num_tokens, "num_tokens", minimum=1)
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    x = torch.randint(vocab_size, (batch_size, n), generator=generator)
    sep = torch.full((batch_size, 1), vocab_size, dtype=torch.long)
    seq = torch.cat([x, sep, x], dim=1)
    mask = torch.zeros(batch_size, 2 * n, dtype=torch.bool)
    mask[:, n:] = True
    return seq[:, :-1], seq[:, 1:], mask


def train_copy_task(lr: float, *, norm: str = "post", qk_layernorm: bool = False,
                    sigma_reparam: bool = False, num_steps: int = 300, seed: int = 0,
                    batch_size: int = 32, num_tokens: int = 8, vocab_size: int = 30,
                    d_model: int = 32, num_heads: int = 4, num_layers: int = 2,
                    desc: str | None = None, return_model: bool = False):
    """Train a :class:`TinyTransformer` on :func:`copy_task_batch` with Adam and no warmup.

    The setting of the attention-entropy experiments (Zhai et al., 2023; Wortsman et al.,
    2023): Adam with ``betas=(0.9, 0.98)``, a constant learning rate from step 0, cross
    entropy on the copied positions. Every step logs ``loss``, ``entropy`` (mean
    attention entropy over all heads and layers) and ``min_entropy`` (the lowest head).

    Returns
    -------
    History (and the model when ``return_model``).
    """
    lr = check_positive(lr, "lr")
    seed = check_int(seed, "seed", minimum=0)
    torch.manual_seed(seed)
    model = TinyTransformer(vocab_size + 1, 2 * num_tokens, d_model, num_heads, num_layers,
                            norm, qk_layernorm, sigma_reparam)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(seed + 1)

    def step(i):
        inputs, targets, mask = copy_task_batch(batch_size, num_tokens, vocab_size, gen)
        logits = model(inputs)
        loss = F.cross_entropy(logits[mask], targets[mask])
        with torch.no_grad():
            ents = torch.cat([head_entropy(a) for a in model.attention_maps()])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item() if torch.isfinite(loss) else float("nan"),
                "entropy": ents.mean().item(), "min_entropy": ents.min().item()}

    history = train_loop(step, num_steps, desc=desc or f"copy task lr={lr:g}")
    return (history, model) if return_model else history


def learning_rate_sweep(lrs, variants: dict, *, num_steps: int = 200, seed: int = 0,
                        last: int = 20) -> dict:
    """Final copy-task loss for each learning rate and each model variant.

    The learning-rate sensitivity curve of Wortsman et al. (2023): a fix that makes
    training stable shows a flat curve over a wider range of learning rates.

    Parameters
    ----------
    lrs : sequence of float
    variants : dict of str -> dict
        Name -> keyword arguments of :func:`train_copy_task` (``norm``, ``sigma_reparam``, ...).
    num_steps : int
    last : int
        The final loss is the mean over the last ``last`` steps (infinity when a loss in
        that window is NaN or infinite, i.e. the run diverged).

    Returns
    -------
    dict with ``lr`` (array) and one array of final losses per variant name.
    """
    lrs = as_array(lrs, "lrs", ndim=1)
    if np.any(lrs <= 0):
        raise ValueError("lrs must be > 0")
    if not isinstance(variants, dict) or not variants:
        raise TypeError("variants must be a non-empty dict of name -> keyword arguments")
    last = check_int(last, "last", minimum=1)
    out = {"lr": lrs}
    for name, kwargs in variants.items():
        finals = []
        for lr in lrs:
            h = train_copy_task(float(lr), num_steps=num_steps, seed=seed, desc=f"{name} lr={lr:g}", **kwargs)
            tail = h["loss"][-last:]
            finals.append(float(np.mean(tail)) if np.all(np.isfinite(tail)) else float("inf"))
        out[name] = np.array(finals)
    return out


# ---------------------------------------------------------------------------------------
# softmax collapse, StableMax, perpGrad
# ---------------------------------------------------------------------------------------

def _stablemax_s(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x + 1, 1 / (1 - torch.clamp(x, max=0)))


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
    dim : int

    Returns
    -------
    ndarray or torch.Tensor (same shape)
    """
    t = _as_float_tensor(x, "x")
    if t.ndim == 0:
        raise ValueError("x must have at least 1 dimension, got a scalar")
    dim = _check_dim(dim, t.ndim)
    s = _stablemax_s(t)
    return _back(s / s.sum(dim, keepdim=True), x)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log StableMax(x)`` computed as ``log s(x_i) - log sum_j s(x_j)`` (Prieto et al., 2025)."""
    t = _as_float_tensor(x, "x")
    dim = _check_dim(dim, t.ndim)
    s = _stablemax_s(t)
    return _back(torch.log(s) - torch.log(s.sum(dim, keepdim=True)), x)


def stablemax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross entropy with StableMax in place of softmax: mean of ``-log StableMax(z)_y``."""
    if not is_tensor(logits) or logits.ndim != 2:
        raise ValueError("logits must be a 2-D torch tensor (batch, classes)")
    if not is_tensor(targets) or targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must be a tensor of shape ({logits.shape[0]},)")
    return -log_stablemax(logits).gather(1, targets.long()[:, None]).mean()


def softmax_collapse_fraction(logits) -> float:
    """Fraction of samples whose softmax is exactly one-hot in the working precision.

    Softmax Collapse (Prieto et al., 2025): a sample collapses when

    .. math:: \\sum_j \\exp(z_j - \\max_k z_k) = 1

    holds exactly in the logits' dtype, i.e. every non-maximal term is below half an ulp
    of 1. Then the predicted probability of the top class is exactly 1, its cross-entropy
    loss is exactly 0 and the sample stops contributing gradient. For logits ``[20, 0]``:
    ``exp(-20) = 2e-9`` is lost in float32 (eps ``1.2e-7``) but kept in float64.

    Parameters
    ----------
    logits : ndarray or torch.Tensor, shape (n, classes) or (classes,)
        Computed in its own floating dtype (integers are promoted to float64).

    Returns
    -------
    float in [0, 1]
    """
    z = logits if is_tensor(logits) else torch.from_numpy(as_array(logits, "logits", dtype=None))
    if not torch.is_floating_point(z):
        z = z.double()
    if z.ndim not in (1, 2) or z.shape[-1] < 2:
        raise ValueError(f"logits must have shape (n, classes) or (classes,) with >= 2 classes, got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("logits contains NaN or infinite values")
    z = z.detach().reshape(-1, z.shape[-1])
    total = torch.exp(z - z.max(dim=1, keepdim=True).values).sum(dim=1)
    return float((total == 1).double().mean())


def perp_grad(weight, grad):
    """The gradient with its component along the weight removed, rescaled to the old norm.

    ⊥Grad (Prieto et al., 2025):

    .. math::

        g_\\perp = g - \\frac{w \\cdot g}{w \\cdot w} w, \\qquad
        \\tilde g = g_\\perp \\, \\frac{\\lVert g \\rVert}{\\lVert g_\\perp \\rVert}.

    Moving along ``w`` only rescales the logits (the "naive loss minimisation" direction
    that drives Softmax Collapse); ⊥Grad forbids it. Tensors are treated as flat vectors.

    Returns
    -------
    ndarray or torch.Tensor, shape of ``grad``
    """
    w = _as_float_tensor(weight, "weight")
    g = _as_float_tensor(grad, "grad")
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
    """
    for p in parameters:
        if p.grad is not None:
            p.grad.copy_(perp_grad(p.detach(), p.grad))


def modular_addition_data(p: int = 23, train_fraction: float = 0.5, seed: int = 0):
    """All pairs ``(a, b)`` with label ``(a + b) mod p``, split at random into train and test.

    The grokking task (Power et al., 2022; Prieto et al., 2025).

    Returns
    -------
    x_train, y_train, x_test, y_test : LongTensors; ``x`` has shape (n, 2).
    """
    p = check_int(p, "p", minimum=2)
    frac = float(train_fraction)
    if not 0 < frac < 1:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    x = np.stack([a.ravel(), b.ravel()], axis=1)
    y = (x[:, 0] + x[:, 1]) % p
    order = np.random.default_rng(check_int(seed, "seed", minimum=0)).permutation(len(y))
    n_train = int(round(frac * len(y)))
    tr, te = order[:n_train], order[n_train:]
    as_t = lambda arr: torch.as_tensor(arr, dtype=torch.long)  # noqa: E731
    return as_t(x[tr]), as_t(y[tr]), as_t(x[te]), as_t(y[te])


class ModularMLP(nn.Module):
    """MLP on the concatenated one-hot codes of ``a`` and ``b``: ``2p -> width -> width -> p``.

    The architecture of the MLP experiments of Prieto et al. (2025), smaller.
    """

    def __init__(self, p: int, width: int = 128):
        super().__init__()
        self.p = check_int(p, "p", minimum=2)
        width = check_int(width, "width", minimum=1)
        self.net = nn.Sequential(nn.Linear(2 * p, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        one_hot = torch.cat([F.one_hot(x[:, 0], self.p), F.one_hot(x[:, 1], self.p)], dim=1)
        return self.net(one_hot.to(self.net[0].weight.dtype))


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

    Logs ``loss`` every step; every ``eval_every`` steps ``train_acc``, ``test_acc``,
    ``sc_fraction`` (:func:`softmax_collapse_fraction` of the training logits),
    ``zero_loss_fraction`` (training samples whose loss under the run's own loss is exactly
    0 in ``dtype``, so they give no gradient) and ``logit_norm`` (mean logit-vector norm).
    """
    loss = check_choice(loss, "loss", ("softmax", "stablemax"))
    lr = check_positive(lr, "lr")
    x_tr, y_tr, x_te, y_te = modular_addition_data(p, train_fraction, seed)
    torch.manual_seed(check_int(seed, "seed", minimum=0))
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


# ---------------------------------------------------------------------------------------
# representation collapse
# ---------------------------------------------------------------------------------------

def effective_rank(matrix) -> float:
    """Effective rank (Roy & Vetterli, 2007): the exponential of the singular-value entropy.

    .. math:: \\mathrm{erank}(M) = \\exp\\Bigl(-\\sum_k p_k \\log p_k\\Bigr), \\qquad
              p_k = \\sigma_k / \\textstyle\\sum_l \\sigma_l.

    Between 1 (rank one) and ``min(n, d)`` (all singular values equal).

    Parameters
    ----------
    matrix : ndarray or torch.Tensor, shape (n, d), not all zero
    """
    m = as_array(matrix, "matrix", ndim=2)
    sv = np.linalg.svd(m, compute_uv=False)
    if sv.sum() <= 0:
        raise ValueError("matrix must not be all zero")
    p = sv / sv.sum()
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def von_neumann_entropy(features) -> float:
    """Von Neumann entropy of a representation (Kim et al., 2023).

    Rows are L2-normalised, ``rho = Z^T Z / N`` (trace 1), and

    .. math:: \\mathrm{VNE}(Z) = -\\sum_k \\lambda_k \\log \\lambda_k

    over the eigenvalues of ``rho``. 0 when all rows are parallel (complete collapse),
    ``log d`` when the representation is isotropic.

    Parameters
    ----------
    features : ndarray or torch.Tensor, shape (N, d), no zero row
    """
    z = as_array(features, "features", ndim=2, min_rows=1)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("features must not contain an all-zero row")
    z = z / norms
    lam = np.linalg.eigvalsh(z.T @ z / z.shape[0])
    lam = lam[lam > 1e-12]
    return float(-np.sum(lam * np.log(lam)))


def seq_vcr_loss(hidden: torch.Tensor, lambda_var: float = 1.0, lambda_cov: float = 0.04,
                 eps: float = 1e-4) -> torch.Tensor:
    """Seq-VCR regulariser (Arefin et al., 2024): variance and covariance terms per position.

    For each position ``t``, ``C_t`` is the ``d x d`` covariance across the batch of the
    hidden states ``h[:, t, :]``; then

    .. math::

        L = \\frac{1}{T}\\sum_t \\Bigl[\\frac{\\lambda_{var}}{d}\\sum_k
            \\max\\bigl(0, 1 - \\sqrt{C_{t,kk} + \\epsilon}\\bigr)
            + \\frac{\\lambda_{cov}}{d}\\sum_{k \\ne l} C_{t,kl}^2\\Bigr].

    The variance hinge keeps every dimension alive, the covariance term decorrelates them:
    together they keep the effective rank of intermediate representations high.

    Parameters
    ----------
    hidden : torch.Tensor, shape (batch, T, d) or (batch, d); batch >= 2
    """
    if not is_tensor(hidden) or hidden.ndim not in (2, 3):
        raise ValueError("hidden must be a torch tensor of shape (batch, T, d) or (batch, d)")
    if hidden.shape[0] < 2:
        raise ValueError(f"hidden needs a batch of at least 2 to estimate a covariance, got {hidden.shape[0]}")
    lambda_var = check_nonnegative(lambda_var, "lambda_var")
    lambda_cov = check_nonnegative(lambda_cov, "lambda_cov")
    eps = check_positive(eps, "eps")
    h = hidden if hidden.ndim == 3 else hidden[:, None, :]
    b, _, d = h.shape
    h = (h - h.mean(0, keepdim=True)).transpose(0, 1)          # (T, B, d)
    cov = h.transpose(1, 2) @ h / (b - 1)                        # (T, d, d)
    var = torch.diagonal(cov, dim1=1, dim2=2)
    var_term = F.relu(1 - torch.sqrt(var + eps)).sum(1) / d
    off = cov - torch.diag_embed(var)
    cov_term = (off ** 2).sum((1, 2)) / d
    return (lambda_var * var_term + lambda_cov * cov_term).mean()


@torch.no_grad()
def hidden_state_ranks(model: TinyTransformer, tokens: torch.Tensor) -> dict:
    """Effective rank and VNE of each hidden state of ``model`` on ``tokens``.

    Token representations of all positions and samples are stacked into an
    ``(batch * T, d)`` matrix per depth (embedding output, then each block).

    Returns
    -------
    dict with arrays ``effective_rank`` and ``vne`` (one entry per depth).
    """
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"model must be a TinyTransformer, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    _, hidden = model(tokens, return_hidden=True)
    model.train(was_training)
    flat = [h.reshape(-1, h.shape[-1]).double() for h in hidden]
    return {"effective_rank": np.array([effective_rank(h) for h in flat]),
            "vne": np.array([von_neumann_entropy(h) for h in flat])}


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------

def plot_entropy_vs_scale(result: dict):
    """Mean and minimum row entropy against ``s``, with the Theorem 3.1 bound."""
    import matplotlib.pyplot as plt

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


def plot_attention_maps(maps, titles=None, suptitle: str = ""):
    """Heat maps of several attention matrices side by side (rows: queries, columns: keys)."""
    import matplotlib.pyplot as plt

    maps = [as_array(m, "maps", ndim=2) for m in maps]
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


def plot_copy_runs(histories: dict, chance: float | None = None):
    """Loss (log scale) and attention entropy (mean and lowest head) of several copy-task runs."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_ent) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, (name, h) in enumerate(histories.items()):
        color = f"C{k}"
        ax_loss.plot(h.steps("loss"), h["loss"], color=color, label=name)
        ax_ent.plot(h.steps("entropy"), h["entropy"], color=color, label=f"{name}: mean")
        ax_ent.plot(h.steps("min_entropy"), h["min_entropy"], color=color, ls=":", label=f"{name}: lowest head")
    if chance is not None:
        ax_loss.axhline(chance, color="gray", ls="--", lw=1, label="chance")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.legend(fontsize=8)
    ax_ent.set_yscale("log")
    ax_ent.set_xlabel("step")
    ax_ent.set_ylabel("attention entropy (nats)")
    ax_ent.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_lr_sweep(sweep: dict, chance: float | None = None):
    """Final loss against learning rate for each variant (Wortsman et al., 2023, style)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    lrs = sweep["lr"]
    for name, losses in sweep.items():
        if name == "lr":
            continue
        shown = np.where(np.isfinite(losses), losses, np.nan)
        ax.plot(lrs, shown, "o-", label=name)
    if chance is not None:
        ax.axhline(chance, color="gray", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_modular_runs(histories: dict):
    """Accuracy and the fraction of training samples with exactly zero loss, against step.

    A zero per-sample loss means no gradient from that sample: for a softmax model this is
    Softmax Collapse (Prieto et al., 2025).
    """
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_sc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, (name, h) in enumerate(histories.items()):
        ax_acc.plot(h.steps("test_acc"), h["test_acc"], color=f"C{k}", label=f"{name}: test")
        ax_acc.plot(h.steps("train_acc"), h["train_acc"], color=f"C{k}", ls=":", label=f"{name}: train")
        ax_sc.plot(h.steps("zero_loss_fraction"), h["zero_loss_fraction"], color=f"C{k}", label=name)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend(fontsize=7)
    ax_sc.set_xlabel("step")
    ax_sc.set_ylabel("training samples with zero loss")
    ax_sc.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_representation_ranks(ranks: dict):
    """Effective rank and VNE of hidden states against depth, one line per model."""
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_v) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, r in ranks.items():
        depth = np.arange(len(r["effective_rank"]))
        ax_r.plot(depth, r["effective_rank"], "o-", label=name)
        ax_v.plot(depth, r["vne"], "o-", label=name)
    for ax, label in ((ax_r, "effective rank"), (ax_v, "von Neumann entropy (nats)")):
        ax.set_xlabel("depth (0 = embeddings)")
        ax.set_ylabel(label)
        ax.set_xticks(depth)
    ax_r.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# explorer
# ---------------------------------------------------------------------------------------

def _explorer_draw(scale: float, seq_len: int):
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
    """
    from .widgets import Choice, Explorer

    controls = {
        "scale": Choice([0.5, 1, 2, 4, 8, 16, 32, 64], default=4, label="spectral scale s"),
        "seq_len": Choice([4, 8, 16, 32], default=16, label="sequence length T"),
    }
    return Explorer(_explorer_draw, controls, title="Attention entropy vs. the spectral norm",
                    precompute=["scale"])
