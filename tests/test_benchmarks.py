"""The benchmark harness and the baselines it compares against (not the timings)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _load("run")


def test_every_benchmark_module_has_run():
    modules = harness.discover()
    assert {"bench_chapters", "bench_neural_collapse"} <= {m.stem for m in modules}
    for path in modules:
        assert callable(harness.load(path).run), path.name


def test_rows_are_checked_and_ratios_computed():
    row = harness.normalise("bench_x", {"name": "f", "baseline_s": 3.0, "companion_s": 1.5,
                                        "accuracy": 0.0, "peak_mib": 12})
    assert row["ratio"] == pytest.approx(2.0)
    assert row["notes"] == "peak_mib=12"
    assert harness.normalise("bench_x", {"name": "g", "baseline_s": 1.0, "companion_s": 1.0,
                                         "accuracy": "-", "ratio": 5.0})["ratio"] == 5.0
    with pytest.raises(ValueError, match="accuracy"):
        harness.normalise("bench_x", {"name": "f", "baseline_s": 1.0, "companion_s": 1.0})
    text = harness.table([row])
    assert "2.00x" in text and "bench_x" in text.splitlines()[2]
    assert harness.table([row], markdown=True).startswith("| benchmark |")


def test_only_filters_modules():
    assert [m.stem for m in harness.discover(["chapters"])] == ["bench_chapters"]
    assert harness.discover(["no-such-benchmark"]) == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_class_reference_agrees_with_the_companion(dtype):
    """Two independent computations of NC1-NC4 (the benchmark's baseline and the package)."""
    bench = _load("bench_neural_collapse")
    features, labels, weights, bias = bench.make_problem(3_000, 24, dtype, seed=1)
    reference = bench.reference_nc_metrics(features, labels, weights, bias)
    from companion.neural_collapse import nc_metrics
    assert bench.largest_difference(nc_metrics(features, labels, weights, bias), reference) < 1e-9
    import torch
    tracked = bench.tracked_nc_metrics(torch.from_numpy(features), torch.from_numpy(labels), weights, bias)
    assert bench.largest_difference(tracked, reference) < 1e-9
    assert 0 < reference["ncc_mismatch"] < 1, "the problem should make NC4 non-trivial"


def test_reference_detects_a_wrong_value():
    """The agreement measure is not vacuous: perturbing one metric shows up."""
    bench = _load("bench_neural_collapse")
    features, labels, weights, bias = bench.make_problem(2_000, 16, np.float64)
    reference = bench.reference_nc_metrics(features, labels, weights, bias)
    from companion.neural_collapse import nc_metrics
    import dataclasses
    metrics = nc_metrics(features, labels, weights, bias)
    metrics = dataclasses.replace(metrics, cdnv=metrics.cdnv * 1.01)
    assert bench.largest_difference(metrics, reference) == pytest.approx(0.01, rel=1e-6)


def test_sae_reference_agrees_with_the_companion():
    """The plain TopK SAE loop and ``train_sae`` compute the same map and train alike."""
    import torch
    bench = _load("bench_sae")
    data = bench.make_activations(2_048 + 512, d=32, n_features=128, active=4, seed=2)
    x, x_eval = data[:2_048], data[2_048:]
    sae = bench.companion_topk_train(x, 64, 4, steps=30, batch_size=128, lr=3e-3)
    with torch.no_grad():
        x_hat = sae(x_eval)[0]
    forward = bench.reference_forward(x_eval, bench.companion_weights(sae), 4)
    assert torch.allclose(forward, x_hat, atol=1e-5)
    weights = bench.reference_topk_train(x, 64, 4, steps=30, batch_size=128, lr=3e-3)
    fvu_ref = bench.fvu(x_eval, bench.reference_forward(x_eval, weights, 4))
    fvu_comp = bench.fvu(x_eval, x_hat)
    assert fvu_ref < 0.9 and fvu_comp < 0.9, "both should learn something in 30 steps"
    assert abs(fvu_ref - fvu_comp) < 0.05


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_rl_loop_reference_agrees_with_policy_loss(loss_type):
    """The per-sequence loop and ``policy_loss``: same loss and gradient (float64)."""
    import torch
    bench = _load("bench_rl")
    logp, old_logp, adv, mask, lengths = bench.make_batch(12, 40, seed=3, dtype=torch.float64)
    eps_low, eps_high = bench.EPS[loss_type]
    ref_loss, ref_grad = bench.loss_and_grad(
        lambda lp: bench.reference_policy_loss(lp, old_logp, adv, lengths, loss_type, eps_low, eps_high), logp)
    from companion.rl import policy_loss
    loss, grad = bench.loss_and_grad(
        lambda lp: policy_loss(lp, old_logp, adv, mask, loss_type=loss_type, epsilon=eps_low,
                               epsilon_high=eps_high)[0], logp)
    assert float(abs(loss - ref_loss)) < 1e-12
    assert float((grad - ref_grad).abs().max()) < 1e-12
    assert float(ref_grad.abs().max()) > 0
    assert float(grad[mask == 0].abs().max()) == 0.0, "padding must get no gradient"
    # the three aggregations differ on a batch of unequal lengths: the comparison is not vacuous
    others = {t: float(bench.reference_policy_loss(logp, old_logp, adv, lengths, t)) for t in bench.LOSS_TYPES}
    assert len({round(v, 9) for v in others.values()}) == 3
