"""Neural-collapse metrics: ``nc_metrics`` and the streaming ``NCTracker`` vs a per-class loop.

The baseline is the implementation a reader would write from the definitions (and the one
Papyan, Han & Donoho's public code follows): loop over the classes, take each class's
features, accumulate ``Sigma_W`` and the class means, build ``Sigma_B`` as a ``d x d``
matrix, pseudo-invert it, then loop over pairs of classes for the CDNV and the cosines and
over classes again for the nearest-class-mean agreement (NC4). It computes in float64 per
class, whatever the input precision.

Both sides get the same synthetic features (``C = 10`` Gaussian classes around random
means, a classifier near the means so that NC4 is not trivial), in float32 and float64.
Rows report time (best of three runs; a single run for the largest problem), the largest relative difference over the nine
metrics (``accuracy``), and the peak extra memory of one run (resident memory sampled by
a thread, which also sees torch's allocations; tracemalloc's figure is in the notes).
The tracker is fed batches of 10,000 rows as torch tensors, two passes (the second for
NC4), as a training loop would.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from _measure import best_time, peak_memory
from companion.neural_collapse import NCTracker, nc_metrics

NUM_CLASSES = 10
BATCH = 10_000
METRICS = ("nc1", "nc1_trace_ratio", "cdnv", "equinorm_means", "equinorm_weights", "equiangularity",
           "max_angle", "self_duality", "ncc_mismatch")


def make_problem(n: int, d: int, dtype, seed: int = 0):
    """Features ``(n, d)``, labels, a classifier ``(C, d)`` and bias, partially collapsed."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=0.15, size=(NUM_CLASSES, d))
    labels = rng.integers(0, NUM_CLASSES, size=n)
    labels[:NUM_CLASSES] = np.arange(NUM_CLASSES)  # every class present
    features = (means[labels] + rng.normal(scale=1.5, size=(n, d))).astype(dtype)
    weights = means + rng.normal(scale=0.05, size=means.shape)
    bias = rng.normal(scale=0.5, size=NUM_CLASSES)
    return features, labels, weights, bias


def reference_nc_metrics(features, labels, weights, bias) -> dict:
    """The per-class-loop reference (float64 per class; Sigma_B pseudo-inverted as d x d)."""
    n, d = features.shape
    counts, means = np.zeros(NUM_CLASSES), np.zeros((NUM_CLASSES, d))
    sigma_w, variances = np.zeros((d, d)), np.zeros(NUM_CLASSES)
    for c in range(NUM_CLASSES):
        h_c = features[labels == c].astype(np.float64)
        counts[c] = len(h_c)
        means[c] = h_c.mean(axis=0)
        centred = h_c - means[c]
        sigma_w += centred.T @ centred
        variances[c] = np.mean(np.sum(centred**2, axis=1))
    sigma_w /= n
    global_mean = counts @ means / n
    m = means - global_mean  # (C, d) centred class means
    sigma_b = m.T @ m / NUM_CLASSES
    eigenvalues, eigenvectors = np.linalg.eigh(sigma_b)
    keep = eigenvalues > eigenvalues.max() * 1e-10
    sigma_b_pinv = (eigenvectors[:, keep] / eigenvalues[keep]) @ eigenvectors[:, keep].T

    pairs = [(c, k) for c in range(NUM_CLASSES) for k in range(c + 1, NUM_CLASSES)]
    cdnv = np.mean([(variances[c] + variances[k]) / (2 * np.sum((means[c] - means[k]) ** 2)) for c, k in pairs])
    norms = np.linalg.norm(m, axis=1)
    cosines = np.array([m[c] @ m[k] / (norms[c] * norms[k])
                        for c in range(NUM_CLASSES) for k in range(NUM_CLASSES) if c != k])
    w_norms = np.linalg.norm(weights, axis=1)

    wrong = 0
    for c in range(NUM_CLASSES):
        h_c = features[labels == c].astype(np.float64)
        distances = np.stack([np.sum((h_c - means[k]) ** 2, axis=1) for k in range(NUM_CLASSES)], axis=1)
        wrong += int(np.sum(np.argmax(h_c @ weights.T + bias, axis=1) != np.argmin(distances, axis=1)))
    return {
        "nc1": np.trace(sigma_w @ sigma_b_pinv) / NUM_CLASSES,
        "nc1_trace_ratio": np.trace(sigma_w) / np.trace(sigma_b),
        "cdnv": cdnv,
        "equinorm_means": norms.std() / norms.mean(),
        "equinorm_weights": w_norms.std() / w_norms.mean(),
        "equiangularity": cosines.std(),
        "max_angle": np.mean(np.abs(cosines + 1 / (NUM_CLASSES - 1))),
        "self_duality": np.sum((weights / np.linalg.norm(weights) - m / np.linalg.norm(m)) ** 2),
        "ncc_mismatch": wrong / n,
    }


def tracked_nc_metrics(features: torch.Tensor, labels: torch.Tensor, weights, bias):
    """Two streaming passes over batches, as in a training loop."""
    tracker = NCTracker(num_classes=NUM_CLASSES, dim=features.shape[1])
    for start in range(0, features.shape[0], BATCH):
        tracker.update(features[start:start + BATCH], labels[start:start + BATCH])
    for start in range(0, features.shape[0], BATCH):
        tracker.update_ncc(features[start:start + BATCH], weights=weights, bias=bias)
    return tracker.compute(weights, bias)


def largest_difference(metrics, reference: dict) -> float:
    values = metrics.as_dict()
    return max(abs(values[k] - reference[k]) / max(abs(reference[k]), 1e-12) for k in METRICS)


def run(quick: bool = False) -> list[dict]:
    sizes = [(5_000, 64), (20_000, 256)] if quick else [(10_000, 128), (100_000, 512)]
    rows = []
    for n, d in sizes:
        for dtype in (np.float32, np.float64):
            features, labels, weights, bias = make_problem(n, d, dtype)
            features_t, labels_t = torch.from_numpy(features), torch.from_numpy(labels)
            repeat = 1 if n * d > 10_000_000 else 3  # the largest problem: one run, timed and traced
            implementations = {
                "reference": lambda: reference_nc_metrics(features, labels, weights, bias),
                "nc_metrics": lambda: nc_metrics(features, labels, weights, bias),
                "NCTracker": lambda: tracked_nc_metrics(features_t, labels_t, weights, bias),
            }
            seconds, memory, results = {}, {}, {}
            for name, fn in implementations.items():
                start = time.perf_counter()
                *memory[name], results[name] = peak_memory(fn)
                seconds[name] = time.perf_counter() - start
                if repeat > 1:
                    seconds[name], results[name] = best_time(fn, repeat=repeat)
            base_rss, base_traced = memory["reference"]
            for name in ("nc_metrics", "NCTracker"):
                rss, traced = memory[name]
                rows.append({
                    "name": f"{name} {n}x{d} {np.dtype(dtype).name}",
                    "baseline_s": seconds["reference"],
                    "companion_s": seconds[name],
                    "accuracy": f"max rel diff {largest_difference(results[name], results['reference']):.1e}",
                    "peak_mib": f"{_mib(base_rss)} -> {_mib(rss)}",
                    "traced_mib": f"{base_traced:.0f} -> {traced:.0f}",
                })
    return rows


def _mib(value) -> str:
    return "-" if value is None else f"{value:.0f}"
