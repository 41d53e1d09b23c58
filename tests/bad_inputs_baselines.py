"""Valid baseline calls of the public API, as data, for the bad-input sweep.

``tests/bad_inputs_engine.py`` builds each bad call from a valid one by replacing one
argument. A baseline comes from, in order:

1. ``BASELINES[qualified name]``: explicit keyword arguments (a dict, or a function
   returning one, so every call gets fresh arrays);
2. ``MODULE_VALUES[module][parameter]``: the module's consistent small "world" (e.g. in
   neural_collapse 30 samples, 3 classes, 6 dimensions);
3. ``VALUES[parameter]``: the same for every module;
4. the parameter's default.

Values that are lambdas are called for each use. Keep every baseline fast (well under a
second): small sizes, a few steps. ``INSTANCES`` builds the instance a method is called on
when the class's own baseline does not do. ``SKIP`` lists what the sweep cannot call
(network, minutes of training), with the reason. ``HARMLESS`` declares, with the reason, bad
values that a function accepts by design (say so in its docstring).

Qualified names are ``module.function``, ``module.Class`` and ``module.Class.method``
relative to ``companion`` (``exercises.sae.reference_topk``).
"""

import numpy as np
import torch

from companion.exercises._core import ExerciseFailed


def _rng(seed=0):
    return np.random.default_rng(seed)


def _normal(*shape, seed=0):
    return _rng(seed).normal(size=shape)


def _tensor(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


# ---------------------------------------------------------------------------------------
# Values by parameter name
# ---------------------------------------------------------------------------------------

VALUES = {
    "seed": 0,
    "name": "arg",
    "value": 3,
    "n": 8,
    "k": 2,
    "lr": 0.01,
    "steps": 3,
    "num_steps": 3,
}

MODULE_VALUES = {
    "neural_collapse": {
        "features": lambda: _normal(30, 6),
        "labels": lambda: np.arange(30) % 3,
        "weights": lambda: _normal(3, 6, seed=1),
        "num_classes": 3,
        "n_per_class": 10,
        "lam_w": 1e-3,
        "lam_h": 1e-3,
        "dim": 6,
        "vectors": lambda: _normal(3, 6),
        "x": lambda: _tensor(5, 6).float(),
        "inputs": lambda: _normal(30, 6),
        "beta": 0.5,
    },
    "entropy": {
        "attn": lambda: torch.softmax(_tensor(2, 5, 5), dim=-1),
        "seq_len": 5,
        "scale": 1.0,
        "matrix": lambda: _normal(8, 5),
        "features": lambda: _normal(20, 5),
        "logits": lambda: _tensor(6, 5),
        "targets": lambda: torch.arange(6) % 5,
        "x": lambda: _tensor(6, 5),
        "hidden": lambda: _tensor(2, 6, 8),
        "d_model": 8,
        "num_heads": 2,
        "vocab_size": 10,
        "tokens": lambda: torch.arange(12).reshape(2, 6) % 10,
        "weight": lambda: _tensor(4, 3),
        "grad": lambda: _tensor(4, 3, seed=1),
        "scales": lambda: np.array([0.5, 1.0, 2.0]),
        "p": 5,
    },
    "sae": {
        "x": lambda: _tensor(32, 8),
        "x_hat": lambda: _tensor(32, 8) * 0.9 + 0.1 * _tensor(32, 8, seed=1),
        "latents": lambda: torch.relu(_tensor(32, 16)),
        "n_neurons": 8,
        "d": 8,
        "n_latents": 16,
        "pre": lambda: _tensor(32, 16),
        "z": lambda: torch.relu(_tensor(32, 16)),
        "decoder": lambda: _tensor(16, 8),
        "true_features": lambda: _tensor(10, 8),
        "n": 40,
        "n_features": 10,
        "sparsity": 0.9,
        "width": 8,
    },
    "scaling": {
        "N": lambda: np.array([1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7] * 2),
        "D": lambda: np.array([2e7, 4e7, 8e7, 1.6e8, 3.2e8, 6.4e8] * 2)[::-1].copy(),
        "loss": lambda: 1.69 + 406.4 / np.array([1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7] * 2) ** 0.34
        + 410.7 / np.array([2e7, 4e7, 8e7, 1.6e8, 3.2e8, 6.4e8] * 2)[::-1] ** 0.28,
        "C": 1e21,
        "x": lambda: np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
        "y": lambda: 1.0 + 2.0 / np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]) ** 0.5,
        "num_features": 20,
        "exponent": 1.5,
        "n_train": 10,
        "spectrum": lambda: np.arange(1, 21) ** -1.5,
        "n_values": lambda: np.array([5, 10, 20]),
        "widths": lambda: np.array([2, 4]),
        "width": 4.0,
    },
    "rl": {
        "rewards": lambda: torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
        "group_size": 4,
        "entropy": lambda: torch.rand(8, 3, generator=torch.Generator().manual_seed(0)) + 0.5,
        "success": 0.5,
        "logp": lambda: -torch.rand(8, 3, generator=torch.Generator().manual_seed(0)) - 0.1,
        "old_logp": lambda: -torch.rand(8, 3, generator=torch.Generator().manual_seed(1)) - 0.1,
        "ref_logp": lambda: -torch.rand(8, 3, generator=torch.Generator().manual_seed(2)) - 0.1,
        "advantages": lambda: torch.linspace(-1, 1, 8),
        "mask": lambda: torch.ones(8, 3),
        "logits": lambda: _tensor(8, 5),
        "delta_logits": lambda: _tensor(8, 5, seed=1) * 0.1,
        "cov": lambda: _tensor(8, 3),
        "progress_fraction": 0.5,
        "reference": 1.0,
        "coef": 0.01,
        "target": 1.0,
        "num_actions": 4,
        "n": 8,
        "c": 3,
        "k": 2,
        "H": lambda: np.array([1.0, 0.8, 0.6, 0.4, 0.2]),
        "R": lambda: np.array([0.1, 0.3, 0.45, 0.6, 0.72]),
        "vocab_size": 16,
    },
}

# ---------------------------------------------------------------------------------------
# Explicit baselines
# ---------------------------------------------------------------------------------------


def _nc_mlp():
    from companion.neural_collapse import MLPClassifier

    torch.manual_seed(0)
    return MLPClassifier(in_dim=6, num_classes=3, width=8, feature_dim=4, hidden_layers=1)


def _sae_topk():
    from companion.sae import TopKSAE

    return TopKSAE(8, 16, k=4, seed=0)


class _SaeTokenizer:
    """A stand-in tokenizer for sae.top_contexts (no model to load)."""

    def convert_ids_to_tokens(self, ids):
        return [f"t{i}" for i in ids]


def _sae_tokens(d=2):
    from companion.sae import TokenActivations

    return TokenActivations(_normal(6, d).astype(np.float32), np.array([0, 0, 0, 1, 1, 1]),
                            np.arange(2000, 2006), "minilm", 3)


def _sae_dark_matter():
    from companion.sae import dark_matter

    return dark_matter(_normal(64, 4), _normal(64, 4) * 0.5 + _normal(64, 4, seed=1))


def _sae_context():
    return {"value": 2.5, "left": "the", "token": "cat", "right": "sat", "index": 1, "doc": 0}


def _chinchilla_params():
    from companion.scaling import ChinchillaParams

    return ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def _scaling_fit():
    from companion.scaling import fit_approach2, isoflop_grid

    data = isoflop_grid(points_per_curve=7)
    return fit_approach2(data.N, data.D, data.loss, data.group)


def _scaling_direct_fit():
    from companion.scaling import ChinchillaParams, ScalingFit

    return ScalingFit(method="variable_projection", a=0.5, b=0.5, log10_n_intercept=-1.0, log10_d_intercept=-1.0,
                      params=ChinchillaParams(E=0.01, A=1.0, B=10.0, alpha=0.5, beta=0.5))


def _scaling_sweep_fields():
    """A tiny SweepResult: widths 2 and 4 at three checkpoints, one IsoFLOP design run each."""
    D = np.array([100.0, 200.0, 400.0] * 2)
    return {"N": np.repeat([13.0, 25.0], 3), "D": D, "loss": 0.01 + 1.0 / np.sqrt(D), "width": np.repeat([2, 4], 3),
            "noise_floor": 0.01, "group": np.array([-1, 0, -1, -1, 0, -1]), "budgets": np.array([2e4]), "seed": 0}


def _scaling_sweep():
    from companion.scaling import SweepResult

    return SweepResult(**_scaling_sweep_fields())


def _scaling_iso():
    from companion.scaling import isoflop_grid

    return isoflop_grid(budgets=[1e17, 1e18, 1e19, 1e20], points_per_curve=5)


_SCALING_VP = {"robust": False, "alpha_grid": np.linspace(0.1, 0.6, 6), "beta_grid": np.linspace(0.1, 0.6, 6)}


def _scaling_held_out():
    from companion.scaling import predict_held_out

    return predict_held_out(_scaling_iso(), 1e20, vp_kwargs=dict(_SCALING_VP))


def _modular_task():
    from companion.rl import ModularTask

    return ModularTask(p=5, length=2)


def _rl_prompts():
    return _modular_task().all_prompts()[:6]


def _rl_answers():
    task = _modular_task()
    return task.sample_correct(task.all_prompts()[:6], generator=torch.Generator().manual_seed(0))


def _gru():
    from companion.rl import GRUPolicy

    torch.manual_seed(0)
    return GRUPolicy(vocab_size=_modular_task().vocab_size if hasattr(_modular_task(), "vocab_size") else 16,
                     hidden=8, embed=4)


def _rl_templated_prompts():
    return torch.cat([torch.tensor([[0], [1], [0], [1], [0], [1]]), _rl_prompts()], dim=1)


def _rl_runs():
    """Three seeds' histories with the keys train_grpo logs (no training)."""
    from companion.training import History

    runs = []
    for seed in range(3):
        h = History()
        for step in (0, 1, 2):
            h.log(step, {"reward": 0.5 + 0.1 * seed, "rollouts": 8.0 * step, "eval_entropy": 1.0 - 0.2 * step,
                         "eval_pass@1": 0.5 + 0.1 * step, "eval_pass@2": 0.7 + 0.05 * step})
        runs.append(h)
    return runs


def _raise_type_error(*args, **kwargs):
    raise TypeError("always")


def _entropy_tiny():
    from companion.entropy import TinyTransformer

    torch.manual_seed(0)
    return TinyTransformer(10, 6, d_model=8, num_heads=2, num_layers=1)


def _entropy_runs():
    """What train_copy_ensemble returns for 2 seeds, 4 steps, stats and ranks every 2 steps (no training)."""
    rng = _rng()
    return {"loss": 1 + rng.random((2, 4)), "entropy": 1 + rng.random((2, 4)), "max_logit": 1 + rng.random((2, 4)),
            "stats_steps": np.array([0, 2]), "qk_norm": 1 + rng.random((2, 2)), "logit_bound": rng.random((2, 2)),
            "rank_steps": np.array([0, 2, 4]), "ranks": 1 + rng.random((2, 3, 2))}


def _history():
    from companion.training import History

    h = History()
    for i in range(3):
        h.log(i, {"loss": 1.0 / (i + 1)})
    return h


BASELINES = {
    # neural_collapse
    "neural_collapse.nc_metrics": lambda: {"weights": _normal(3, 6, seed=1)},
    "neural_collapse.imbalanced_mse_solution": lambda: {"n_per_class": np.array([20, 10, 5])},
    "neural_collapse.minority_collapse_threshold": lambda: {"n_per_class": np.array([20, 10, 5])},
    "neural_collapse.ufm_ce_reduced_objective": lambda: {"x": 2.0},
    "neural_collapse.train_ufm": lambda: {"n_per_class": np.array([4, 4, 4]), "lam_w": 5e-3, "lam_h": 5e-3,
                                          "steps": 5},
    "neural_collapse.perturbed_ufm": lambda: {"iterations": 5, "lam_w": 1e-2},
    "neural_collapse.MLPClassifier": {"in_dim": 6, "num_classes": 3, "width": 8, "feature_dim": 4,
                                      "hidden_layers": 1},
    "neural_collapse.train_mlp_nc": lambda: {"features": _normal(30, 6).astype(np.float32), "epochs": 2,
                                             "width": 8, "feature_dim": 4, "hidden_layers": 1, "eval_points": 2},
    "neural_collapse.train_mlp_nc_seeds": lambda: {"features": _normal(30, 6).astype(np.float32),
                                                   "seeds": [0, 1], "epochs": 2, "width": 8, "feature_dim": 4,
                                                   "hidden_layers": 1, "eval_points": 2},
    "neural_collapse.StackedMLP": lambda: {"models": [_nc_mlp(), _nc_mlp()]},
    "neural_collapse.StackedMLP.unstack": {"k": 1},
    "neural_collapse.plot_geometry": lambda: {"weights": _normal(3, 6, seed=1)},
    "neural_collapse.plot_etf": {"num_classes": 3},
    "neural_collapse.plot_perturbation": lambda: {"betas": np.array([0.1, 1.0]), "nc1_optimised": np.array([0.1, 0.2]),
                                                  "nc1_inputs": 0.3},
    "neural_collapse.NCTracker.update_ncc": lambda: {"features": _normal(30, 6), "weights": _normal(3, 6, seed=1)},
    "neural_collapse.StackedMLP.classify": lambda: {"h": _tensor(2, 5, 4)},
    "neural_collapse.plot_nc_history": lambda: {"histories": {"a": [_history(), _history()]}, "keys": ("loss",)},
    "neural_collapse.plot_weight_decay_sweep": lambda: {"weight_decays": np.array([0.0, 1e-3, 1e-2]),
                                                        "final_metrics": {"nc1": np.array([[0.3, 0.2, 0.1], [0.4, 0.2, 0.1]])}},
    "neural_collapse.plot_layer_collapse": lambda: {"layer_names": ["input", "h1", "h"],
                                                    "nc1_by_set": {"train": np.array([[1.0, 0.3, 0.1], [1.1, 0.4, 0.1]])}},
    "neural_collapse.plot_ce_minority_collapse": lambda: {"ratios": np.array([1.0, 10.0, 50.0]),
                                                          "cosines": np.array([[-0.2, 0.1, 0.4], [-0.2, 0.2, 0.5]]),
                                                          "norm_ratios": np.array([[1.0, 0.6, 0.3], [1.0, 0.5, 0.3]])},
    "neural_collapse.plot_minority_collapse": lambda: {"lams": np.array([1e-3, 1e-2]),
                                                       "optimised_norms_sq": np.array([[1.0, 0.5, 0.2], [0.5, 0.1, 0.0]]),
                                                       "n_per_class": np.array([20, 10, 5])},
    "neural_collapse.plot_ufm_check": {"rows": [("a", 1.0, 1.01), ("b", 2.0, 1.98)]},
    # entropy
    "entropy.attention_entropy_lower_bound": {"seq_len": 5, "scale": 1.0},
    "entropy.random_attention": {"seq_len": 5, "dim": 4},
    "entropy.entropy_vs_scale": lambda: {"scales": np.array([0.5, 1.0]), "seq_len": 5, "dim": 4},
    "entropy.SigmaReparam": lambda: {"linear": torch.nn.Linear(4, 3), "init_iters": 3},
    "entropy.SigmaReparam.forward": lambda: {"x": _tensor(2, 4)},
    "entropy.apply_sigma_reparam": lambda: {"model": torch.nn.Sequential(torch.nn.Linear(4, 3)), "init_iters": 3},
    "entropy.MultiHeadSelfAttention.forward": lambda: {"x": _tensor(2, 6, 8)},
    "entropy.TransformerBlock.forward": lambda: {"x": _tensor(2, 6, 8)},
    "entropy.TinyTransformer": {"vocab_size": 10, "seq_len": 6, "d_model": 8, "num_heads": 2, "num_layers": 1},
    "entropy.copy_task_batch": {"batch_size": 4, "num_tokens": 3, "vocab_size": 10},
    "entropy.train_copy_task": {"lr": 1e-3, "num_steps": 2, "batch_size": 4, "num_tokens": 3, "vocab_size": 10,
                                "d_model": 8, "num_heads": 2, "num_layers": 1},
    "entropy.modular_addition_data": {"p": 5},
    "entropy.ModularMLP": {"p": 5, "width": 8},
    "entropy.ModularMLP.forward": lambda: {"x": torch.tensor([[0, 1], [2, 3]])},
    "entropy.train_modular_addition": {"p": 5, "num_steps": 2, "width": 8, "eval_every": 1},
    "entropy.perp_grad": lambda: {"weight": _tensor(4, 3), "grad": _tensor(4, 3, seed=1)},
    "entropy.apply_perp_grad_": lambda: {"parameters": [torch.nn.Parameter(_tensor(4, 3))]},
    "entropy.hidden_state_ranks": lambda: {"model": _entropy_tiny(), "tokens": torch.arange(12).reshape(2, 6) % 10},
    "entropy.stablemax": lambda: {"x": _tensor(6, 5)},
    "entropy.log_stablemax": lambda: {"x": _tensor(6, 5)},
    "entropy.head_entropy": lambda: {"attn": torch.softmax(_tensor(2, 2, 5, 5), dim=-1)},
    "entropy.stablemax_cross_entropy": lambda: {"logits": _tensor(6, 5), "targets": torch.arange(6) % 5},
    "entropy.CopyEnsemble": lambda: {"models": [_entropy_tiny(), _entropy_tiny()]},
    "entropy.CopyEnsemble.forward": lambda: {"tokens": torch.arange(24).reshape(2, 2, 6) % 10},
    "entropy.CopyEnsemble.member": {"k": 1},
    "entropy.train_copy_ensemble": {"lr": 1e-3, "seed_list": [0, 1], "num_steps": 2, "batch_size": 4,
                                    "num_tokens": 3, "vocab_size": 10, "d_model": 8, "num_heads": 2,
                                    "num_layers": 1},
    "entropy.learning_rate_sweep": lambda: {"lrs": np.array([1e-3, 1e-2]), "seed_list": [0], "num_steps": 2, "last": 1,
                                            "variants": {"a": {"batch_size": 4, "num_tokens": 3, "vocab_size": 10,
                                                               "d_model": 8, "num_heads": 2, "num_layers": 1}}},
    "entropy.train_modular_ensemble": {"seed_list": [0, 1], "p": 5, "num_steps": 2, "width": 8, "eval_every": 1},
    "entropy.plot_entropy_vs_scale": lambda: {"result": {"scale": np.array([0.5, 1.0]), "mean": np.array([2.0, 1.5]),
                                                         "min": np.array([1.8, 1.2]), "bound": np.array([1.5, 1.0])}},
    "entropy.plot_attention_maps": lambda: {"maps": [np.eye(3), np.full((3, 3), 1 / 3)], "titles": ["a", "b"]},
    "entropy.plot_copy_ensembles": lambda: {"runs": {"a": _entropy_runs()}, "chance": 2.3, "ceiling": 1.9},
    "entropy.plot_entropy_mechanism": lambda: {"runs": {"a": _entropy_runs()}},
    "entropy.plot_lr_sweep_seeds": lambda: {"sweep": {"lr": np.array([1e-3, 1e-2]),
                                                      "a": np.array([[1.0, 0.5], [2.0, np.inf]])}, "chance": 2.3},
    "entropy.plot_modular_ensembles": lambda: {"runs": {"a": {"steps": np.array([0, 1, 2]),
                                                              "test_acc": _rng().random((2, 3)),
                                                              "zero_loss_fraction": _rng(1).random((2, 3)),
                                                              "logit_norm": 1 + _rng(2).random((2, 3))}}},
    "entropy.plot_rank_during_training": lambda: {"runs": {"a": _entropy_runs()}, "depth": 1},
    # sae
    "sae.TopKSAE": {"d": 8, "n_latents": 16, "k": 4, "seed": 0},
    "sae.ReLUSAE": {"d": 8, "n_latents": 16, "seed": 0},
    "sae.JumpReLUSAE": {"d": 8, "n_latents": 16, "seed": 0},
    "sae.SparseAutoencoder": {"d": 8, "n_latents": 16, "seed": 0},
    "sae.ToyModel": {"n_features": 10, "n_hidden": 4},
    "sae.ToyModel.hidden": lambda: {"x": _tensor(5, 10)},
    "sae.ToyModel.forward": lambda: {"x": _tensor(5, 10)},
    "sae.sample_toy_features": {"n": 20, "n_features": 10, "sparsity": 0.9},
    "sae.train_toy_model": {"n_features": 10, "n_hidden": 4, "steps": 3, "batch_size": 16},
    "sae.train_sae": lambda: {"sae": _sae_topk(), "x": _tensor(64, 8), "steps": 3, "batch_size": 16},
    "sae.train_residual_sae": lambda: {"base": _sae_topk(), "x": _tensor(64, 8), "n_latents": 8, "k": 2,
                                       "steps": 3, "batch_size": 16},
    "sae.reconstruct": lambda: {"sae": _sae_topk(), "x": _tensor(32, 8)},
    "sae.sae_metrics": lambda: {"sae": _sae_topk(), "x": _tensor(32, 8)},
    "sae.BoostedSAE": lambda: {"base": _sae_topk(), "residuals": [_sae_topk()]},
    "sae.BoostedSAE.forward": lambda: {"x": _tensor(32, 8)},
    "sae.TopKSAE.aux_loss": lambda: {"pre": _tensor(32, 16), "error": _tensor(32, 8),
                                     "dead": torch.zeros(16, dtype=torch.bool)},
    "sae.dark_matter": lambda: {"x": _tensor(64, 8), "x_hat": _tensor(64, 8) * 0.5 + _tensor(64, 8, seed=1) * 0.1},
    "sae.split_tokens": {"n": 40},
    "sae.feature_recovery": lambda: {"decoder": _tensor(8, 16), "true_features": _tensor(8, 10)},
    "sae.plot_toy_features": lambda: {"decoder": _tensor(8, 16), "true_features": _tensor(8, 10)},
    "sae.plot_error_norms": lambda: {"norms_small": np.abs(_normal(20)), "norms_large": np.abs(_normal(20, seed=1))},
    "sae.plot_fvu_vs_width": lambda: {"widths": np.array([8, 16, 32]),
                                      "fvus": np.array([[0.5, 0.4, 0.3], [0.52, 0.41, 0.29]])},
    "sae.plot_dark_matter": lambda: {"widths": np.array([8, 16]), "results": [[_sae_dark_matter()] * 2] * 2},
    "sae.plot_boosting": lambda: {"scores": {"SAE": {"prose": [0.8, 0.82], "code": [0.5, 0.52]},
                                             "boosted": {"prose": [0.8, 0.81], "code": [0.7, 0.72]}}},
    "sae.DarkMatter": lambda: {name: getattr(_sae_dark_matter(), name) for name in (
        "fvu", "linear_fvu", "nonlinear_fvu", "r2_vector_pooled", "r2_vector_per_dim", "r2_norm",
        "nonlinear_error", "test_idx")},
    "sae.top_token_indices": lambda: {"values": np.array([0.0, 2.0, 0.5, 2.0, 0.0, 1.0]), "k": 3},
    "sae.top_contexts": lambda: {"acts": _sae_tokens(), "values": np.array([0.0, 2.0, 0.5, 2.0, 0.0, 1.0]),
                                 "k": 3, "window": 1, "tokenizer": _SaeTokenizer()},
    "sae.format_contexts": lambda: {"contexts": [_sae_context()]},
    "sae.plot_latent": lambda: {"values": np.array([0.0, 2.0, 0.5, 1.0]), "contexts": [_sae_context()],
                                "latent": 3, "tokens": [("cat", 0.9), ("dog", 0.5)]},
    "sae.load_tokenizer": {"model": "minilm"},
    "sae.token_view": lambda: {"direction": _normal(384), "k": 3},
    "sae.spliced_similarity": lambda: {"texts": ["the cat sat on the mat", "a dog ran"],
                                       "sae": __import__("companion.sae", fromlist=["x"]).TopKSAE(384, 16, k=2, seed=0),
                                       "model": "minilm", "layer": 1, "ablation_mean": np.zeros(384)},
    "sae.latent_explorer": lambda: {"sae_model": __import__("companion.sae", fromlist=["x"]).TopKSAE(384, 16, k=2,
                                                                                                      seed=0),
                                    "acts": _sae_tokens(384), "latents": [0, 1], "k": 3},
    "sae.toy_sae_run": {"width": 8, "k": 2, "sparsity": 0.9, "steps": 3},
    # scaling
    "scaling.ChinchillaParams": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "scaling.ChinchillaParams.from_array": lambda: {"values": np.array([1.69, 406.4, 410.7, 0.34, 0.28])},
    "scaling.optimal_exponents": lambda: {"params": _chinchilla_params()},
    "scaling.approach2_bias": lambda: {"params": _chinchilla_params(), "width": 4.0, "points_per_curve": 7},
    "scaling.isoflop_grid": {"points_per_curve": 7},
    "scaling.PowerLawFit": {"l_inf": 1.0, "x0": 2.0, "alpha": 0.5},
    "scaling.PowerLawFit.predict": lambda: {"x": np.array([1.0, 2.0])},
    "scaling.fit_approach2": lambda: (lambda d: {"N": d.N, "D": d.D, "loss": d.loss, "groups": d.group})(
        __import__("companion.scaling", fromlist=["isoflop_grid"]).isoflop_grid(points_per_curve=7)),
    "scaling.fit_approach3": lambda: {"starts": np.array([[0.5, 6.0, 6.0, 0.3, 0.3]])},
    "scaling.fit_variable_projection": lambda: {"alpha_grid": np.array([0.2, 0.34, 0.5]),
                                                "beta_grid": np.array([0.2, 0.28, 0.4])},
    "scaling.ScalingFit": {"method": "approach2", "a": 0.5, "b": 0.5, "log10_n_intercept": 0.0,
                           "log10_d_intercept": 0.0},
    "scaling.ScalingFit.optimal_loss": {"C": 1e21},
    "scaling.ScalingFit.optimal": {"C": 1e21},
    "scaling.BootstrapResult.interval": {"name": "N_opt"},
    "scaling.BootstrapResult.std": {"name": "N_opt"},
    "scaling.teacher_student_risk": lambda: {"n_train": 10, "spectrum": np.arange(1, 21) ** -1.5, "trials": 2},
    "scaling.teacher_student_sweep": lambda: {"n_values": np.array([5, 10]), "spectrum": np.arange(1, 21) ** -1.5,
                                              "trials": 2},
    "scaling.teacher_student_width_gap": lambda: {"n_train": 10, "spectrum": np.arange(1, 21) ** -1.5,
                                                  "widths": np.array([2, 4]), "trials": 2},
    "scaling.power_law_spectrum": {"num_features": 20, "exponent": 1.5},
    "scaling.bootstrap": lambda: (lambda d: {"fit": __import__("companion.scaling", fromlist=["x"]).fit_approach2,
                                             "N": d.N, "D": d.D, "loss": d.loss, "n_resamples": 3,
                                             "strata": d.group, "groups": d.group})(
        __import__("companion.scaling", fromlist=["isoflop_grid"]).isoflop_grid(points_per_curve=7)),
    "scaling.plot_power_law_fit": lambda: {"fit": __import__("companion.scaling", fromlist=["x"]).PowerLawFit(1.0, 2.0, 0.5)},
    "scaling.plot_isoflop_fits": lambda: {"data": __import__("companion.scaling", fromlist=["x"]).isoflop_grid(points_per_curve=7),
                                          "fit": _scaling_fit()},
    "scaling.plot_approach2_bias": lambda: {"widths": np.array([2.0, 4.0]), "errors": {"N_opt": np.array([0.1, 0.2])}},
    "scaling.plot_teacher_student": lambda: {"n_values": np.array([5, 10, 20]),
                                             "curves": {"a": np.array([1.0, 0.5, 0.25])}},
    "scaling.IsoflopData": lambda: (lambda d: {"N": d.N, "D": d.D, "loss": d.loss, "group": d.group,
                                               "budgets": d.budgets})(_scaling_iso()),
    "scaling.predict_held_out": lambda: {"iso": _scaling_iso(), "held_out": 1e20, "vp_kwargs": dict(_SCALING_VP)},
    "scaling.BootstrapResult": lambda: {"samples": {"N_opt": np.array([1.0, 2.0, 3.0])}, "budget": 1e24,
                                        "level": 0.95},
    "scaling.SweepResult": _scaling_sweep_fields,
    "scaling.SweepResult.isoflop": lambda: {"budgets": np.array([2e4, 3e4])},
    "scaling.training_sweeps": lambda: {"seed_list": [0], "widths": np.array([2, 3]), "steps": 4, "batch_size": 8,
                                        "min_samples": 8, "checkpoints": 2, "test_size": 16, "budgets": np.array([200.0]),
                                        "show_progress": False},
    "scaling.plot_training_sweep": lambda: {"sweep": _scaling_sweep(), "fit": _scaling_direct_fit(),
                                            "budgets": np.array([2e4, 3e4])},
    "scaling.plot_sweep_seeds": lambda: {"sweeps": [_scaling_sweep(), _scaling_sweep()],
                                         "fits": [_scaling_direct_fit(), _scaling_direct_fit()]},
    "scaling.plot_held_out": lambda: {"designs": [_scaling_iso()], "predictions": [_scaling_held_out()],
                                      "held_out": 1e20, "labels": ["run"]},
    "scaling.plot_chinchilla_fits": lambda: {"data": __import__("companion.data", fromlist=["x"]).load_chinchilla(),
                                             "fits": {"published": _chinchilla_params()}},
    "scaling.plot_bootstrap": lambda: {"results": {"a": __import__("companion.scaling", fromlist=["x"]).BootstrapResult(
        samples={"N_opt": np.array([1.0, 2.0, 3.0])}, budget=1e24, level=0.95)}, "truth": 2.0},
    # rl
    "rl.epo_smoothing_penalty": lambda: {"entropy": torch.rand(8, 3, generator=torch.Generator().manual_seed(0)) + 0.5},
    "rl.steer_weights": lambda: {"advantages": torch.linspace(-1, 1, 8)},
    "rl.adaptive_entropy_coef": {"coef": 0.01, "entropy": 0.5, "target": 1.0},
    "rl.token_entropy": lambda: {"logits": _tensor(8, 3, 5)},
    "rl.policy_loss": lambda: {"advantages": torch.linspace(-1, 1, 8)},
    "rl.token_covariance": lambda: {"advantages": torch.linspace(-1, 1, 8)},
    "rl.logit_update": lambda: {"logits": _tensor(8, 5), "advantages": _tensor(8, 5, seed=2), "lr": 0.1},
    "rl.entropy_change": lambda: {"logits": _tensor(8, 5), "advantages": _tensor(8, 5, seed=2), "lr": 0.1},
    "rl.predicted_entropy_change": lambda: {"logits": _tensor(8, 5), "advantages": _tensor(8, 5, seed=2), "lr": 0.1},
    "rl.ModularTask": {"p": 5, "length": 2},
    "rl.ModularTask.sample_prompts": {"n": 4},
    "rl.ModularTask.target": lambda: {"prompts": _rl_prompts()},
    "rl.ModularTask.reward": lambda: {"prompts": _rl_prompts(), "answers": _rl_answers()},
    "rl.ModularTask.is_correct": lambda: {"prompts": _rl_prompts(), "answers": _rl_answers()},
    "rl.ModularTask.digits": lambda: {"answers": _rl_answers()},
    "rl.ModularTask.sample_correct": lambda: {"prompts": _rl_prompts()},
    "rl.BanditTask.sample_prompts": {"n": 4},
    "rl.BanditTask.reward": lambda: {"prompts": torch.zeros(4, 1, dtype=torch.long),
                                     "answers": torch.tensor([[0], [1], [2], [3]])},
    "rl.BanditTask.is_correct": lambda: {"prompts": torch.zeros(4, 1, dtype=torch.long),
                                         "answers": torch.tensor([[0], [1], [2], [3]])},
    "rl.TemplatedTask": lambda: {"task": _modular_task(), "num_templates": 2},
    "rl.answer_mask": lambda: {"task": _modular_task(), "answers": _rl_answers()},
    "rl.bandit_entropy_trace": {"steps": 3, "group_size": 4},
    "rl.TabularPolicy": {"num_actions": 4},
    "rl.GRUPolicy": {"vocab_size": 16, "hidden": 8, "embed": 4},
    "rl.GRUPolicy.answer_logits": lambda: {"prompts": _rl_prompts(), "answers": _rl_answers()},
    "rl.supervised_warm_start": lambda: {"policy": _gru(), "task": _modular_task(), "steps": 2, "batch_size": 8},
    "rl.train_grpo": lambda: {"policy": _gru(), "task": _modular_task(),
                              "config": __import__("companion.rl", fromlist=["x"]).GRPOConfig(
                                  steps=2, prompts_per_step=2, group_size=2, num_iterations=1, eval_samples=2,
                                  pass_ks=(1,))
                              if "eval_samples" in __import__("companion.rl", fromlist=["x"]).GRPOConfig.__dataclass_fields__
                              else __import__("companion.rl", fromlist=["x"]).GRPOConfig(
                                  steps=2, prompts_per_step=2, group_size=2, num_iterations=1)},
    "rl.evaluate_policy": lambda: {"policy": _gru(), "task": _modular_task(), "n_samples": 2, "ks": (1, 2)},
    "rl.collect_rollouts": lambda: {"policy": _gru(), "task": _modular_task(),
                                    "cfg": __import__("companion.rl", fromlist=["x"]).GRPOConfig(
                                        steps=2, prompts_per_step=2, group_size=2),
                                    "gen": torch.Generator().manual_seed(0)},
    "rl.pass_at_k": {"n": 8, "c": 3, "k": 2},
    "rl.EntropyPerformanceFit": {"a": -1.0, "b": 0.5, "r2": 0.9},
    "rl.EntropyPerformanceFit.predict": lambda: {"H": np.array([0.5, 1.0])},
    "rl.plot_training_curves": lambda: {"histories": _rl_runs()},
    "rl.seed_values": lambda: {"histories": _rl_runs(), "key": "reward"},
    "rl.plot_entropy_prediction": lambda: {"trace": __import__("companion.rl", fromlist=["x"]).bandit_entropy_trace(
        steps=3, group_size=4)},
    "rl.plot_pass_at_k": lambda: {"histories": {"GRPO": _rl_runs()}},
    "rl.plot_interventions": lambda: {"histories": {"GRPO": _rl_runs()}},
    "rl.TemplatedTask.problems": lambda: {"prompts": _rl_templated_prompts()},
    "rl.TemplatedTask.templates": lambda: {"prompts": _rl_templated_prompts()},
    "rl.TemplatedTask.format": lambda: {"problems": _rl_prompts(), "templates": torch.tensor([0, 1, 0, 1, 0, 1])},
    "rl.TemplatedTask.reward": lambda: {"prompts": _rl_templated_prompts(), "answers": _rl_answers()},
    "rl.TemplatedTask.is_correct": lambda: {"prompts": _rl_templated_prompts(), "answers": _rl_answers()},
    "rl.TemplatedTask.sample_correct": lambda: {"prompts": _rl_templated_prompts()},
    "rl.TemplatedTask.sample_prompts": {"n": 4},
    "rl.TabularPolicy.answer_logits": lambda: {"prompts": torch.zeros(4, 1, dtype=torch.long),
                                               "answers": torch.tensor([[0], [1], [2], [3]])},
    "rl.Rollouts": lambda: {"prompts": _rl_prompts()[:4], "answers": _rl_answers()[:4], "mask": torch.ones(4, 2),
                            "rewards": torch.tensor([1.0, 0.0, 1.0, 0.0]), "drawn": 4, "reward": 0.5,
                            "zero_var": 0.0, "length": 2.0, "length_correct": 2.0, "length_wrong": 2.0,
                            "first": (_rl_prompts()[:4], _rl_answers()[:4])},
    # data
    "data.stratified_split": lambda: {"labels": np.arange(40) % 4},
    "data.ChinchillaData": lambda: {"N": np.array([1e6, 2e6]), "D": np.array([2e7, 4e7]), "C": np.array([1.2e14, 4.8e14]),
                                    "loss": np.array([3.0, 2.8])},
    "data.gaussian_mixture": {"num_classes": 3, "n_per_class": 5, "dim": 4},
    # training
    "training.History.log": {"step": 3, "values": {"loss": 0.5}},
    "training.History.steps": {"key": "loss"},
    "training.History.last": {"key": "loss"},
    "training.train_loop": lambda: {"step": lambda i: {"loss": 1.0 / (i + 1)}, "num_steps": 3,
                                    "evaluate": lambda i: {"acc": 0.5}},
    "training.run_seeds": {"run": lambda s: s * 2, "seed_list": [0, 1, 2]},
    "training.progress": {"iterable": [1, 2, 3]},
    "training.seeds": {"n": 3, "base": 1},
    "training.set_seed": {"seed": 3},
    "training.set_threads": {"default": 1},
    "training.thread_limit": {"threads": 1},
    # evidence
    "evidence.Spread": lambda: {"values": np.array([0.2, 0.1, 0.3])},
    "evidence.spread": lambda: {"values": np.array([0.2, 0.1, 0.3])},
    "evidence.claim": lambda: {"statement": "the loss falls in every seed", "holds": np.array([True, True, False]),
                               "at_least": 2},
    "evidence.agreement": lambda: {"holds": np.array([True, False, True])},
    # plotting
    "plotting.subplots": {"ncols": 2, "nrows": 1, "width": 2.0, "height": 2.0},
    "plotting.plot_spread": lambda: {"ax": __import__("matplotlib.pyplot", fromlist=["x"]).subplots()[1],
                                     "x": np.arange(4.0), "values": _normal(3, 4), "label": "a", "alpha": 0.3},
    # widgets
    "widgets.Choice": {"values": [1, 2, 3], "default": 2, "label": "k", "fmt": "{}"},
    "widgets.Choice.text": {"value": 2},
    "widgets.Explorer": lambda: {"draw": _draw, "controls": {"k": __import__("companion.widgets", fromlist=["x"]).Choice([1, 2])},
                                 "title": "t", "dpi": 20},
    "widgets.Explorer.show": {"mode": "static"},
    # _validation
    "_validation.is_tensor": {"x": 3},
    "_validation.as_array": lambda: {"x": _normal(3, 2), "name": "x", "ndim": 2, "min_rows": 1},
    "_validation.as_tensor": lambda: {"x": _normal(3, 2), "name": "x", "ndim": 2},
    "_validation.as_labels": lambda: {"y": np.array([0, 1, 2]), "n": 3, "num_classes": 3},
    "_validation.check_int": {"value": 3, "name": "k", "minimum": 1, "maximum": 5},
    "_validation.check_positive": {"value": 0.5, "name": "lr"},
    "_validation.check_nonnegative": {"value": 0.5, "name": "wd"},
    "_validation.check_fraction": {"value": 0.5, "name": "p"},
    "_validation.check_choice": {"value": "a", "name": "mode", "choices": ("a", "b")},
    "_validation.check_magnitude": lambda: {"x": np.ones(3), "name": "x", "max_abs": 10.0},
    "_validation.Interval": {"kind": int, "left": 0, "right": 5, "closed": "both"},
    "_validation.Options": {"options": {"a", "b"}},
    "_validation.Array": {"ndim": 2, "dtype": "real", "min_size": 1, "low": 0.0, "high": 10.0, "max_abs": 100.0},
    "_validation.Labels": {"high": 3},
    "_validation.TokenIds": {"high": 10},
    "_validation.validate_params": {"constraints": {"x": [int]}},
    "_validation.check_params": lambda: {"values": {"x": np.ones(3), "k": 2},
                                         "constraints": {"x": [__import__("companion._validation", fromlist=["x"]).Array(ndim=1)],
                                                         "k": [int]}},
    # exercises
    "exercises.sae.reference_topk": lambda: {"pre": _tensor(4, 8), "k": 2},
    "exercises.sae.reference_linear_error_r2": lambda: {"x_train": _normal(40, 4), "e_train": _normal(40, 4, seed=1),
                                                        "x_test": _normal(20, 4, seed=2),
                                                        "e_test": _normal(20, 4, seed=3)},
    "exercises.sae.reference_l1_code": lambda: {"a": _normal(6), "lam": 0.5},
    "exercises.sae.reference_auxk_loss": lambda: {"pre": _tensor(12, 10), "error": _tensor(12, 4, seed=1),
                                                  "dead": torch.arange(10) % 3 == 0, "W_dec": _tensor(4, 10, seed=2),
                                                  "k_aux": 2},
    "exercises.scaling.reference_parabola_vertex": lambda: {"log10_d": np.array([1.0, 2.0, 3.0, 4.0]),
                                                            "loss": np.array([3.0, 2.5, 2.4, 2.6])},
    "exercises.scaling.reference_linear_coefficients": lambda: {
        "N": MODULE_VALUES["scaling"]["N"](), "D": MODULE_VALUES["scaling"]["D"](),
        "loss": MODULE_VALUES["scaling"]["loss"](), "alpha": 0.34, "beta": 0.28},
    "exercises.scaling.reference_vertex_offset": {"alpha": 0.34, "beta": 0.28, "width": 4.0, "points": 7},
    "exercises.scaling.reference_predict_budget": lambda: (lambda d: {"N": d.N, "D": d.D, "loss": d.loss, "C": 1e21})(
        __import__("companion.scaling", fromlist=["x"]).isoflop_grid(budgets=[1e17, 1e18, 1e19], points_per_curve=5)),
    "exercises._core.ExerciseCheck": {"exercise_id": "sweep-demo", "points": 1},
    "exercises._core.register": {"exercise_id": "sweep-demo", "points": 1, "chapter": "neural_collapse"},
    "exercises._core.ExerciseCheck.call": {"description": "case", "fn": dict},
    "exercises._core.ExerciseCheck.expect_close": {"description": "case", "got": 1.0, "expected": 1.0},
    "exercises._core.ExerciseCheck.expect_true": {"description": "case", "condition": True},
    "exercises._core.ExerciseCheck.expect_raises": {"description": "case", "fn": _raise_type_error,
                                                    "exception": TypeError},
    "exercises._core.forbidden_functions": {"exercise_id": "nc-nc1"},
    "exercises._core.resolve_implements": {"name": "companion.neural_collapse.nc_metrics"},
}


def _draw(k=1):
    from companion.plotting import subplots

    fig, ax = subplots(width=1.0, height=1.0)
    ax[0].plot([0, k])
    return fig


def _student(*args, **kwargs):
    """A student function that answers nothing: the checks must say so, not crash."""
    return None


for _qual, _param in [
    ("exercises.neural_collapse.check_nc1", "student_nc1"),
    ("exercises.neural_collapse.check_simplex_etf", "student_etf"),
    ("exercises.neural_collapse.check_reduced_objective", "student_objective"),
    ("exercises.neural_collapse.check_collapse_threshold", "student_threshold"),
    ("exercises.entropy.check_attention_entropy", "student_fn"),
    ("exercises.entropy.check_entropy_bound", "student_fn"),
    ("exercises.entropy.check_stablemax", "student_fn"),
    ("exercises.entropy.check_effective_rank", "student_fn"),
    ("exercises.sae.check_fvu", "student_fvu"),
    ("exercises.sae.check_topk", "student_topk"),
    ("exercises.sae.check_effective_features", "student_effective_features"),
    ("exercises.sae.check_linear_error_r2", "student_linear_error_r2"),
    ("exercises.scaling.check_compute_optimal", "student_fn"),
    ("exercises.scaling.check_parabola_vertex", "student_fn"),
    ("exercises.scaling.check_linear_coefficients", "student_fn"),
    ("exercises.rl.check_group_advantages", "student_fn"),
    ("exercises.rl.check_pass_at_k", "student_fn"),
    ("exercises.rl.check_predicted_entropy_change", "student_fn"),
    ("exercises.rl.check_clipped_surrogate", "student_fn"),
]:
    BASELINES[_qual] = {_param: _student}
BASELINES["exercises.rl.check_aggregation"] = {"student_fn": _student, "long_wrong_favoured": "grpo"}

#: Instances the methods are called on (when the class baseline is not the right one).
INSTANCES = {
    "neural_collapse.NCTracker": lambda: __import__("companion.neural_collapse", fromlist=["x"]).NCTracker(3, 6).update(
        _normal(30, 6), np.arange(30) % 3),
    "neural_collapse.UFMResult": lambda: __import__("companion.neural_collapse", fromlist=["x"]).train_ufm(
        np.array([4, 4, 4]), 5e-3, 5e-3, steps=5),
    "neural_collapse.NCMetrics": lambda: __import__("companion.neural_collapse", fromlist=["x"]).nc_metrics(
        _normal(30, 6), np.arange(30) % 3),
    "training.History": _history,
    "scaling.ScalingFit": _scaling_fit,
    "scaling.BootstrapResult": lambda: __import__("companion.scaling", fromlist=["x"]).bootstrap(
        __import__("companion.scaling", fromlist=["x"]).fit_approach2,
        *(lambda d: (d.N, d.D, d.loss))(__import__("companion.scaling", fromlist=["x"]).isoflop_grid(points_per_curve=7)),
        n_resamples=3,
        strata=__import__("companion.scaling", fromlist=["x"]).isoflop_grid(points_per_curve=7).group,
        groups=__import__("companion.scaling", fromlist=["x"]).isoflop_grid(points_per_curve=7).group),
    "sae.SparseAutoencoder": _sae_topk,
    "exercises._core.ExerciseCheck": lambda: __import__("companion.exercises._core", fromlist=["x"]).ExerciseCheck(
        "sweep-demo", points=1),
}

#: What the sweep does not call, and why.
SKIP = {
    "sae.extract_activations": "runs a transformer over a corpus (minutes, model weights)",
    "sae.load_activations": "runs or loads MiniLM activations (minutes on a cold cache)",
    "sae.TokenActivations": "a record of extract_activations' output",
    "sae.toy_setup": "trains the toy model for 1000 steps (cached)",
    "sae.sae_explorer": "an explorer: trains several SAEs",
    "neural_collapse.nc_explorer": "an explorer (precomputed frames)",
    "neural_collapse.NCMetrics": "a record of nc_metrics' output (built by nc_metrics and NCTracker)",
    "neural_collapse.UFMSolution": "a record of ufm_ce_solution's / ufm_mse_solution's output",
    "neural_collapse.ImbalancedSolution": "a record of imbalanced_mse_solution's output",
    "neural_collapse.UFMResult": "a record of train_ufm's output",
    "neural_collapse.PerturbedUFM": "a record of perturbed_ufm's output",
    "entropy.entropy_explorer": "an explorer (precomputed frames)",
    "scaling.scaling_explorer": "an explorer (precomputed frames)",
    "rl.rl_explorer": "an explorer (precomputed frames)",
    "scaling.training_sweep": "one seed of training_sweeps (swept there); its sizes pass through **kwargs, which "
                              "the sweep cannot shrink, so every call would train 1500 steps",
    "widgets.Explorer.widget": "needs a running kernel (ipywidgets)",
    "training.set_threads": "changes the process's thread count",
    "sae.toy_sae_run": "trains the cached toy model (1000 steps) before the SAE",
    "data.load_digits": "no arguments to get wrong but a dtype",
}

#: (qualified name, parameter or "*", bad kind or "*") -> why accepting that value is right.
HARMLESS = {
    ("_validation.is_tensor", "x", "*"): "is_tensor answers False for anything that is not a tensor",
    ("_validation.check_params", "values", "none"): "a value of None is checked against the constraints",
    ("training.progress", "iterable", "*"): "tqdm wraps any iterable (or None with total=) as given",
    ("training.History.log", "step", "huge"): "a large step number is a step number",
    ("widgets.Choice", "default", "*"): "default=None picks the middle value",
    ("evidence.claim", "at_least", "none"): "None means every seed",
    ("training.seeds", "base", "none"): "None means COMPANION_SEED",
    ("training.set_seed", "seed", "none"): "None means COMPANION_SEED",
    ("training.thread_limit", "threads", "none"): "None means COMPANION_THREADS or 1",
    ("plotting.plot_spread", "label", "*"): "any label is drawn as text",
    ("plotting.plot_spread", "color", "*"): "matplotlib validates colours when it draws",
    ("evidence.Spread", "values", "extra_dim"): "values has shape (n_seeds, ...): one curve per seed",
    ("evidence.spread", "values", "extra_dim"): "values has shape (n_seeds, ...): one curve per seed",
    ("evidence.claim", "holds", "extra_dim"): "holds of any shape is flattened, one verdict per entry (docstring)",
    ("_validation.Array", "dtype", "none"): "dtype=None accepts any kind of entries (docstring)",
    ("_validation.as_tensor", "x", "empty"): "an empty array converts to an empty tensor; sizes are the caller's constraint",
    ("_validation.as_array", "dtype", "none"): "dtype=None keeps the input's dtype (docstring)",
    ("_validation.Labels", "ndim", "none"): "ndim=None accepts any number of dimensions",
    ("_validation.Labels", "high", "string"): "a string names the parameter holding the bound (docstring)",
    ("_validation.TokenIds", "high", "string"): "a string names the parameter holding the bound (docstring)",
    ("_validation.Interval", "left", "*"): "any real number is a bound",
    ("_validation.Interval", "right", "*"): "any real number is a bound",
    ("_validation.check_int", "minimum", "negative"): "any integer is a bound",
    ("_validation.check_int", "maximum", "negative"): "any integer is a bound",
    ("_validation.check_magnitude", "x", "empty"): "an empty array has no entry too large",
    ("_validation.check_magnitude", "x", "extra_dim"): "entries are checked whatever the shape",
    ("_validation.check_magnitude", "x", "scalar"): "entries are checked whatever the shape",
    ("rl.token_entropy", "logits", "extra_dim"): "entropy over the last axis, any leading shape (docstring)",
    ("rl.token_entropy", "logits", "flat"): "entropy over the last axis, any leading shape (docstring)",
    ("rl.softmax_entropy", "logits", "extra_dim"): "entropy over the last axis, any leading shape (docstring)",
    ("rl.softmax_entropy", "logits", "flat"): "entropy over the last axis, any leading shape (docstring)",
    ("rl.EntropyPerformanceFit.predict", "H", "extra_dim"): "the law is evaluated entrywise, any shape (docstring)",
    ("rl.EntropyPerformanceFit.predict", "H", "scalar"): "the law is evaluated entrywise, any shape (docstring)",
    ("rl.Rollouts", "length_correct", "nan"): "NaN means the draw has no correct answer (docstring)",
    ("rl.Rollouts", "length_wrong", "nan"): "NaN means the draw has no wrong answer (docstring)",
    ("rl.Rollouts", "prompts", "out_of_range"): "a record: ids are checked against the task's vocabulary where "
                                                "they are used (docstring)",
    ("rl.Rollouts", "answers", "out_of_range"): "a record: ids are checked against the task's vocabulary where "
                                                "they are used (docstring)",
    ("rl.seed_values", "index", "negative"): "negative indices count from the end, as in Python (-1, the default, "
                                             "is the last value)",
    ("scaling.teacher_student_risk", "n_train", "none"): "n_train=None is the infinite-data limit (docstring)",
    ("scaling.PowerLawFit.predict", "x", "scalar"): "elementwise: x of any shape (docstring)",
    ("scaling.PowerLawFit.predict", "x", "extra_dim"): "elementwise: x of any shape (docstring)",
    ("scaling.PowerLawFit.predict", "x", "empty"): "elementwise: an empty x gives an empty result",
    ("scaling.chinchilla_loss", "N", "scalar"): "N and D broadcast together: any shapes (docstring)",
    ("scaling.chinchilla_loss", "N", "extra_dim"): "N and D broadcast together: any shapes (docstring)",
    ("scaling.chinchilla_loss", "D", "scalar"): "N and D broadcast together: any shapes (docstring)",
    ("scaling.chinchilla_loss", "D", "extra_dim"): "N and D broadcast together: any shapes (docstring)",
    ("scaling.ScalingFit", "a", "nan"): "NaN marks a degenerate direct fit without an interior optimum (docstring)",
    ("scaling.ScalingFit", "b", "nan"): "NaN marks a degenerate direct fit without an interior optimum (docstring)",
    ("scaling.ScalingFit", "log10_n_intercept", "nan"): "NaN marks a degenerate direct fit (docstring)",
    ("scaling.ScalingFit", "log10_d_intercept", "nan"): "NaN marks a degenerate direct fit (docstring)",
    ("scaling.fit_approach3", "starts", "flat"): "a single start may be given as one row of 5 (docstring)",
    ("scaling.fit_variable_projection", "alpha_grid", "mismatch"): "the two exponent grids are independent: "
                                                                    "any lengths (docstring)",
    ("scaling.fit_variable_projection", "beta_grid", "mismatch"): "the two exponent grids are independent: "
                                                                   "any lengths (docstring)",
    ("entropy.attention_entropy", "attn", "extra_dim"): "entropies along dim of an array of any shape (docstring)",
    ("entropy.attention_entropy", "dim", "negative"): "dim=-1 is the last axis, the default (docstring)",
    ("entropy.stablemax", "x", "extra_dim"): "StableMax along dim of logits of any shape (docstring)",
    ("entropy.stablemax", "x", "flat"): "StableMax along dim of logits of any shape (docstring)",
    ("entropy.stablemax", "dim", "negative"): "dim=-1 is the last axis, the default (docstring)",
    ("entropy.log_stablemax", "x", "extra_dim"): "log StableMax along dim of logits of any shape (docstring)",
    ("entropy.log_stablemax", "x", "flat"): "log StableMax along dim of logits of any shape (docstring)",
    ("entropy.log_stablemax", "dim", "negative"): "dim=-1 is the last axis, the default (docstring)",
    ("entropy.softmax_collapse_fraction", "logits", "flat"): "1-D logits are one sample (docstring)",
    ("entropy.SigmaReparam.forward", "x", "extra_dim"): "inputs (..., in_features) as nn.Linear (docstring)",
    ("entropy.SigmaReparam.forward", "x", "nan"): "a layer propagates NaN to the loss, where training records "
                                                  "divergence (docstring)",
    ("entropy.SigmaReparam.forward", "x", "inf"): "a layer propagates inf to the loss, where training records "
                                                  "divergence (docstring)",
    ("entropy.MultiHeadSelfAttention.forward", "x", "nan"): "a layer propagates NaN (docstring)",
    ("entropy.MultiHeadSelfAttention.forward", "x", "inf"): "a layer propagates inf (docstring)",
    ("entropy.MultiHeadSelfAttention.forward", "x", "huge"): "a layer propagates overflow (docstring)",
    ("entropy.TransformerBlock.forward", "x", "nan"): "a layer propagates NaN (docstring)",
    ("entropy.TransformerBlock.forward", "x", "inf"): "a layer propagates inf (docstring)",
    ("entropy.TransformerBlock.forward", "x", "huge"): "a layer propagates overflow (docstring)",
    ("exercises.sae.reference_l1_code", "a", "empty"): "elementwise: an empty a gives an empty code (docstring)",
    ("exercises.sae.reference_l1_code", "a", "extra_dim"): "elementwise: a may have any shape (docstring)",
    ("sae.effective_features", "latents", "flat"): "a 1-D array is read as the mean absolute activations (docstring)",
    ("sae.superposition_ratio", "latents", "flat"): "a 1-D array is read as the mean absolute activations "
                                                    "(effective_features' docstring)",
    ("neural_collapse.imbalanced_mse_solution", "n_per_class", "out_of_range"):
        "n_per_class holds sample counts, not class ids: a million samples is a count (docstring)",
    ("neural_collapse.minority_collapse_threshold", "n_per_class", "out_of_range"):
        "n_per_class holds sample counts, not class ids: a million samples is a count (docstring)",
    ("neural_collapse.plot_minority_collapse", "n_per_class", "out_of_range"):
        "n_per_class holds sample counts, not class ids: a million samples is a count (docstring)",
    ("neural_collapse.train_ufm", "n_per_class", "out_of_range"):
        "n_per_class holds sample counts, not class ids: a million samples is a count (docstring)",
    ("neural_collapse.NCTracker.update_ncc", "features", "empty"):
        "an empty batch adds nothing to a streaming pass (update() accepts it too; docstring)",
}

#: Parameter-name prefixes -> a valid value (the exercise checks take a student function).
PREFIX_VALUES = {"student": _student}

#: Functions whose calls take long enough (> ~0.2 s each) that the unit test leaves them to
#: tools/bad_input_sweep.py (which sweeps everything).
SLOW = {
    "neural_collapse.train_mlp_nc", "neural_collapse.train_mlp_nc_seeds", "neural_collapse.train_ufm",
    "neural_collapse.UFMResult.class_feature_norms_sq", "neural_collapse.UFMResult.metrics",
    "neural_collapse.plot_etf", "neural_collapse.plot_ufm_check",
    "entropy.train_copy_task", "entropy.train_modular_addition", "entropy.adam_spectral_growth",
    "sae.train_toy_model", "scaling.fit_variable_projection", "scaling.fit_approach3", "scaling.bootstrap",
    "rl.train_grpo", "rl.supervised_warm_start",
}

#: bad kind -> why it is harmless wherever it is accepted (none so far).
HARMLESS_KINDS = {}

#: fnmatch pattern of "qualified name:parameter" -> exception types that are the documented
#: answer to a bad value of that parameter.
EXPECTED_ERRORS = {
    # a check answers any student function with its one-line verdict and AssertionError
    "exercises.*.check_*:*": (AssertionError,),
    # inside a check, a wrong student result is reported as ExerciseFailed (-> AssertionError)
    "exercises._core.ExerciseCheck.expect_close:got": (ExerciseFailed,),
    "exercises._core.ExerciseCheck.expect_true:condition": (ExerciseFailed,),
    "exercises._core.ExerciseCheck.call:fn": (ExerciseFailed,),
    "exercises._core.ExerciseCheck.expect_raises:fn": (ExerciseFailed,),
    # a legal reference value that the student's result does not match fails the case
    "exercises._core.ExerciseCheck.expect_close:expected": (ExerciseFailed,),
    # History is a mapping of logged names: an unknown name is a KeyError that lists the names
    "training.History.*:key": (KeyError,),
}

#: fnmatch pattern -> exceptions a baseline may raise and still be a valid call.
BASELINE_ERRORS = {
    "exercises.*.check_*": (AssertionError,),
}
