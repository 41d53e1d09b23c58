"""SAE training throughput: ``companion.sae.train_sae`` vs a plain TopK SAE loop (Gao et al.).

The baseline is the training loop a reader would write from Gao et al. (2024), "Scaling
and evaluating sparse autoencoders", in plain torch: normalise the activations to unit
mean squared norm per dimension, a dense encoder ``pre = W_enc (x - b_pre) + b_enc``,
``torch.topk`` and a ReLU on the kept values scattered into a dense latent vector, a
dense decoder ``x_hat = W_dec z + b_pre`` (the pre-encoder bias is tied to the decoder
bias), the normalised MSE, ``backward``, the gradient component parallel to each decoder
column removed, an Adam step, and the decoder columns renormalised to unit norm. The
decoder is initialised as a random unit-norm matrix and the encoder as its transpose,
the bias as the mean of the data. No AuxK loss, constant learning rate.

The companion side is ``train_sae`` on a ``TopKSAE`` with ``aux_coef=0`` (the same
algorithm; it also tracks dead latents, logs the batch FVU and L0 each step, keeps a
shared pre-encoder/decoder bias like the baseline and decays the learning rate over the
last 20 % of the steps).

When SAELens is installed (``make parity`` installs it) a second row per width times
SAELens's ``TopKTrainingSAE`` on the same configuration, as the baseline: the same initial
weights (unit-norm decoder, encoder its transpose, bias the data mean; SAELens's own
default would start the decoder at norm 0.1), its ``training_forward_pass`` (dense TopK,
MSE, no dead latents so no AuxK), ``backward``, the same Adam step, on the same batches of
the same normalised activations. SAELens keeps no unit-norm constraint (its default
``rescale_acts_by_decoder_norm`` makes the map independent of the decoder norms instead)
and does not decay the learning rate, so its held-out FVU may differ a little. The note
``within_10pct`` says whether the companion's throughput is at least 90 % of SAELens's
(the course's target).
(The AuxK loss only starts once latents have been dead for ``dead_after = 20000`` tokens,
about 20 steps here, so these short runs would not measure it.)

Both sides get the same toy activations (``d = 384``: sparse non-negative combinations
of 4096 random unit directions plus a mean and a little Gaussian noise), the same batch
indices (same seed) and the same number of steps. Rows report the time of the whole
training run (best of ``repeat`` rounds, each round running every side once, so that a
burst of load from another process hits all sides alike; one round per side was not
enough on a shared 2-core machine), tokens per second, and, as accuracy, the held-out FVU
each side reaches; ``fwd_diff`` is the largest absolute difference between the
companion's forward pass and the baseline's forward formula on the companion's trained
weights (the two compute the same map).
"""

from __future__ import annotations

import torch

from _measure import best_time, on_one_torch_thread
from companion.sae import TopKSAE, train_sae

D = 384
K = 32
LR = 1e-3


def make_activations(n: int, d: int = D, n_features: int = 4096, active: int = 16, seed: int = 0,
                     chunk: int = 2048) -> torch.Tensor:
    """Toy activations ``(n, d)``: ``active`` of ``n_features`` unit directions per token."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n_features, d, generator=gen)
    features /= features.norm(dim=1, keepdim=True)
    mean = 0.5 * torch.randn(d, generator=gen)
    rows = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        coef = torch.zeros(m, n_features)
        idx = torch.randint(0, n_features, (m, active), generator=gen)
        coef.scatter_(1, idx, torch.rand(m, active, generator=gen) * 2)
        rows.append(coef @ features)
    x = torch.cat(rows) + mean + 0.05 * torch.randn(n, d, generator=gen)
    return x.float()


def reference_topk_train(x: torch.Tensor, width: int, k: int, *, steps: int, batch_size: int,
                         lr: float = LR, seed: int = 0) -> dict:
    """Plain TopK SAE training (Gao et al., 2024), written directly in torch.

    Returns the weights in the original units: ``W_enc (width, d)``, ``W_dec (d, width)``,
    ``b_enc (width,)``, ``b_pre (d,)`` (also the decoder bias) and ``scale``.
    """
    n, d = x.shape
    scale = ((x ** 2).sum(1).mean() / d).sqrt()
    xs = x / scale
    gen_init = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d, width, generator=gen_init)
    W_dec = (w_dec / w_dec.norm(dim=0, keepdim=True)).requires_grad_()
    W_enc = W_dec.detach().T.clone().requires_grad_()
    b_enc = torch.zeros(width, requires_grad=True)
    b_pre = xs.mean(0).clone().requires_grad_()
    opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_pre], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        xb = xs[torch.randint(0, n, (batch_size,), generator=gen)]
        pre = (xb - b_pre) @ W_enc.T + b_enc
        values, indices = torch.topk(pre, k, dim=-1)
        z = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
        x_hat = z @ W_dec.T + b_pre
        loss = ((x_hat - xb) ** 2).sum(1).mean() / d
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            W_dec.grad -= (W_dec.grad * W_dec).sum(0, keepdim=True) * W_dec
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=0, keepdim=True)
    return {"W_enc": W_enc.detach(), "W_dec": W_dec.detach(), "b_enc": b_enc.detach(),
            "b_pre": b_pre.detach(), "b_dec": b_pre.detach(), "scale": scale}


@torch.no_grad()
def reference_forward(x: torch.Tensor, weights: dict, k: int) -> torch.Tensor:
    """The TopK SAE map written out: ``s (W_dec TopK(W_enc (x/s - b_pre) + b_enc) + b_dec)``."""
    s = weights["scale"]
    pre = (x / s - weights["b_pre"]) @ weights["W_enc"].T + weights["b_enc"]
    values, indices = torch.topk(pre, k, dim=-1)
    z = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
    return s * (z @ weights["W_dec"].T + weights["b_dec"])


def companion_weights(sae: TopKSAE) -> dict:
    """The companion SAE's parameters under the baseline's names."""
    return {"W_enc": sae.W_enc.detach(), "W_dec": sae.W_dec.detach(), "b_enc": sae.b_lat.detach(),
            "b_pre": sae.b_pre.detach(), "b_dec": sae.b_pre.detach(), "scale": sae.scale}


def companion_topk_train(x: torch.Tensor, width: int, k: int, *, steps: int, batch_size: int,
                         lr: float = LR, seed: int = 0, aux: bool = False) -> TopKSAE:
    sae = TopKSAE(x.shape[1], width, k=k, seed=seed, **({} if aux else {"aux_coef": 0.0}))
    train_sae(sae, x, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    return sae


def saelens_topk_train(x: torch.Tensor, width: int, k: int, *, steps: int, batch_size: int,
                       lr: float = LR, seed: int = 0):
    """SAELens's TopK training SAE stepped by hand (its forward pass and loss, Adam)."""
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    n, d = x.shape
    scale = ((x ** 2).sum(1).mean() / d).sqrt()
    xs = x / scale
    torch.manual_seed(seed)
    model = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=width, k=k, aux_loss_coefficient=0.0))
    gen_init = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d, width, generator=gen_init)
    w_dec = w_dec / w_dec.norm(dim=0, keepdim=True)  # the same initial weights as the other two sides
    with torch.no_grad():  # SAELens's layout: W_enc (d, width), W_dec (width, d)
        model.W_dec.copy_(w_dec.T)
        model.W_enc.copy_(w_dec)
        model.b_enc.zero_()
        model.b_dec.copy_(xs.mean(0))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        xb = xs[torch.randint(0, n, (batch_size,), generator=gen)]
        out = model.training_forward_pass(TrainStepInput(sae_in=xb, coefficients={}, dead_neuron_mask=None,
                                                         n_training_steps=0, is_logging_step=False))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return model


def _have_saelens() -> bool:
    try:
        import sae_lens  # noqa: F401
    except ImportError:
        return False
    return True


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Fraction of variance unexplained, ``sum ||x - x_hat||^2 / sum ||x - mean||^2``."""
    return float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())


def _interleaved_best(sides: dict, repeat: int) -> dict:
    """``{name: (best seconds, last result)}``: ``repeat`` rounds, each running every side once."""
    best = {name: (float("inf"), None) for name in sides}
    for _ in range(max(1, repeat)):
        for name, fn in sides.items():
            seconds, result = best_time(fn, repeat=1)
            best[name] = (min(best[name][0], seconds), result)
    return best


def _run(quick: bool) -> list[dict]:
    if quick:
        configs, batch, steps, repeat, n = [(512, False)], 256, 5, 1, 4096
    else:  # three rounds: the 4096-wide run takes ~5 s per side on the 2-core machine
        configs, batch, steps, repeat, n = [(1024, False), (4096, False)], 1024, 20, 3, 16384
    data = make_activations(n + 2048)  # the last 2048 tokens are held out
    x, x_eval = data[:n], data[n:]
    lens = _have_saelens()
    # warm-up (torch's thread pool, Adam's first step, allocator): not timed
    reference_topk_train(x[:256], 256, K, steps=2, batch_size=128)
    companion_topk_train(x[:256], 256, K, steps=2, batch_size=128)
    if lens:
        saelens_topk_train(x[:256], 256, K, steps=2, batch_size=128)
    rows = []
    for width, aux in configs:
        sides = {"plain": lambda: reference_topk_train(x, width, K, steps=steps, batch_size=batch),
                 "companion": lambda: companion_topk_train(x, width, K, steps=steps, batch_size=batch, aux=aux)}
        if lens:
            sides["saelens"] = lambda: saelens_topk_train(x, width, K, steps=steps, batch_size=batch)
        timed = _interleaved_best(sides, repeat)
        (base_s, weights), (comp_s, sae) = timed["plain"], timed["companion"]
        sae.eval()
        with torch.no_grad():
            x_hat_comp = sae(x_eval)[0]
        fvu_base = fvu(x_eval, reference_forward(x_eval, weights, K))
        fvu_comp = fvu(x_eval, x_hat_comp)
        fwd_diff = float((reference_forward(x_eval, companion_weights(sae), K) - x_hat_comp).abs().max())
        tokens = steps * batch
        config = f"d={D} w={width} k={K} batch={batch} x{steps} steps"
        rows.append({
            "name": f"TopK{'+AuxK' if aux else ''} SAE {config}",
            "baseline_s": base_s,
            "companion_s": comp_s,
            "accuracy": f"eval FVU {fvu_base:.3f} vs {fvu_comp:.3f}",
            "tokens_per_s": f"{tokens / base_s:.0f} -> {tokens / comp_s:.0f}",
            "fwd_diff": f"{fwd_diff:.1e}",
        })
        if lens:
            lens_s, lens_model = timed["saelens"]
            scale = ((x ** 2).sum(1).mean() / D).sqrt()
            with torch.no_grad():
                fvu_lens = fvu(x_eval, scale * lens_model(x_eval / scale))
            rows.append({
                "name": f"vs SAELens TopKTrainingSAE {config}",
                "baseline_s": lens_s,
                "companion_s": comp_s,
                "accuracy": f"eval FVU {fvu_lens:.3f} vs {fvu_comp:.3f}",
                "tokens_per_s": f"{tokens / lens_s:.0f} -> {tokens / comp_s:.0f}",
                "fwd_diff": "-",
                "within_10pct": comp_s <= lens_s / 0.9,
            })
    return rows


def run(quick: bool = False) -> list[dict]:
    """The rows, measured on one torch thread (see ``_measure.on_one_torch_thread``)."""
    return on_one_torch_thread(_run, quick)
