"""companion.rl.policy_loss against TRL's ``GRPOTrainer._compute_loss`` on the same inputs.

TRL's method is called unbound on a small stand-in for the trainer that holds only the
attributes the loss reads, and whose ``_get_per_token_logps_and_entropies`` returns our
log-probabilities and entropies; so both sides see the same float64 tensors (random
variable-length batches, right padding with finite garbage in the padded positions).
Loss values must agree to 1e-12 and gradients with respect to the log-probabilities to
1e-12; the clip diagnostics must equal TRL's logged metrics.
"""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from companion import rl

from conftest import require  # tests/parity/conftest.py (pytest puts this folder first on sys.path)

trl = require("trl")
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402


class _Accelerator:
    num_processes = 1
    sync_gradients = True

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather

    @staticmethod
    def reduce(x, reduction="sum"):
        return x


class _StubTrainer:
    """The attributes ``GRPOTrainer._compute_loss`` reads, and nothing else."""

    def __init__(self, logp, entropy, *, loss_type, epsilon, epsilon_high, importance_sampling_level="token",
                 beta=0.0, use_bias_correction_kl=True, max_completion_length, entropy_coef=0.0):
        self._logp, self._entropy = logp, entropy
        self.loss_type = loss_type
        self.epsilon_low, self.epsilon_high = epsilon, epsilon_high
        self.importance_sampling_level = importance_sampling_level
        self.beta = beta
        self.max_completion_length = max_completion_length
        self.top_entropy_quantile = 1.0
        self.off_policy_mask_threshold = None
        self.use_vllm = False
        self.vllm_importance_sampling_correction = False
        self.aux_loss_enabled = False
        self.current_gradient_accumulation_steps = 1
        self.accelerator = _Accelerator()
        self.model = SimpleNamespace(training=True)
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._entropy_bonus_enabled = entropy_coef != 0.0
        self.entropy_coef = entropy_coef
        self.use_adaptive_entropy = False
        self.args = SimpleNamespace(use_bias_correction_kl=use_bias_correction_kl, delta=None,
                                    steps_per_generation=1)

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, **kwargs):
        return self._logp, self._entropy, None


def _batch(seed, B=6, T=7, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0] = T                                                   # one full-length answer
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(dtype)
    logp = -torch.rand(B, T, generator=gen, dtype=dtype) * 3
    old = logp + 0.3 * torch.randn(B, T, generator=gen, dtype=dtype)  # ratios well beyond the clip range
    ref = logp + 0.5 * torch.randn(B, T, generator=gen, dtype=dtype)
    adv = torch.randn(B, generator=gen, dtype=dtype)
    entropy = torch.rand(B, T, generator=gen, dtype=dtype) * 2
    return logp, old, ref, adv, mask, entropy


def _trl_loss(logp, old, ref, adv, mask, entropy, **kw):
    leaf = logp.clone().requires_grad_(True)
    ent = entropy.clone().requires_grad_(True)
    stub = _StubTrainer(leaf, ent, **kw)
    B, T = logp.shape
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask.long(),
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
              "num_items_in_batch": mask.sum()}
    loss = GRPOTrainer._compute_loss(stub, None, inputs)
    grad_logp, grad_ent = torch.autograd.grad(loss, (leaf, ent), allow_unused=True)
    metrics = {k: v[-1] for k, v in stub._metrics["train"].items()}
    return loss.detach(), grad_logp, grad_ent, metrics


def _our_loss(logp, old, ref, adv, mask, entropy, *, loss_type, epsilon, epsilon_high, importance_sampling_level="token",
              beta=0.0, use_bias_correction_kl=True, max_completion_length, entropy_coef=0.0):
    leaf = logp.clone().requires_grad_(True)
    ent = entropy.clone().requires_grad_(True)
    loss, info = rl.policy_loss(leaf, old, adv, mask, loss_type=loss_type, epsilon=epsilon, epsilon_high=epsilon_high,
                                importance_sampling_level=importance_sampling_level, beta=beta,
                                ref_logp=ref if beta else None, use_bias_correction_kl=use_bias_correction_kl,
                                max_completion_length=max_completion_length, entropy=ent,
                                entropy_coef=entropy_coef)
    grad_logp, grad_ent = torch.autograd.grad(loss, (leaf, ent), allow_unused=True)
    return loss.detach(), grad_logp, grad_ent, info


CASES = [
    # (loss_type, epsilon, epsilon_high, importance_sampling_level)
    ("grpo", 0.2, 0.2, "token"),
    ("bnpo", 0.2, 0.2, "token"),
    ("dr_grpo", 0.2, 0.2, "token"),
    ("dapo", 0.2, 0.28, "token"),
    ("grpo", 0.2, 0.2, "sequence"),      # GSPO: one ratio per answer
    ("dapo", 3e-4, 4e-4, "sequence"),    # GSPO with its paper's tight clip range
    ("cispo", 0.2, 5.0, "token"),        # CISPO: the clipped, detached ratio times log pi
    ("cispo", 0.2, 1.1, "token"),        # a cap that binds on many tokens
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss_type,epsilon,epsilon_high,level", CASES)
@pytest.mark.parametrize("beta,bias_correction", [(0.0, True), (0.04, True), (0.04, False)])
def test_policy_loss_equals_trl(seed, loss_type, epsilon, epsilon_high, level, beta, bias_correction):
    logp, old, ref, adv, mask, entropy = _batch(seed)
    kw = dict(loss_type=loss_type, epsilon=epsilon, epsilon_high=epsilon_high, importance_sampling_level=level,
              beta=beta, use_bias_correction_kl=bias_correction, max_completion_length=logp.shape[1])
    ours, g_ours, _, info = _our_loss(logp, old, ref, adv, mask, entropy, **kw)
    theirs, g_theirs, _, metrics = _trl_loss(logp, old, ref, adv, mask, entropy, **kw)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    torch.testing.assert_close(g_ours * mask, g_theirs * mask, rtol=0, atol=1e-12)
    if loss_type == "cispo":
        assert info["clip_high"] == pytest.approx(metrics["cispo_clip_ratio"], abs=1e-7)  # TRL logs in float32
    else:
        assert info["clip_low"] == pytest.approx(metrics["clip_ratio/low_mean"], abs=1e-7)  # TRL logs in float32
        assert info["clip_high"] == pytest.approx(metrics["clip_ratio/high_mean"], abs=1e-7)  # TRL logs in float32
    if beta:
        assert info["kl"] == pytest.approx(metrics["kl"], abs=1e-7)  # TRL logs in float32
    assert info["entropy"] == pytest.approx(metrics["entropy"], abs=1e-7)  # TRL logs in float32


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_entropy_bonus_equals_trl(loss_type):
    """TRL's entropy bonus is the token mean of the entropy whatever the loss type; so is ours."""
    logp, old, ref, adv, mask, entropy = _batch(7)
    kw = dict(loss_type=loss_type, epsilon=0.2, epsilon_high=0.28, max_completion_length=logp.shape[1],
              entropy_coef=0.05)
    ours, g_ours, ge_ours, _ = _our_loss(logp, old, ref, adv, mask, entropy, **kw)
    theirs, g_theirs, ge_theirs, _ = _trl_loss(logp, old, ref, adv, mask, entropy, **kw)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    torch.testing.assert_close(ge_ours * mask, ge_theirs * mask, rtol=0, atol=1e-12)


def test_trl_default_loss_type_is_dapo():
    """The chapter says TRL's default loss type is "dapo"; so is ours (GRPOConfig and policy_loss)."""
    from trl import GRPOConfig as TRLConfig

    assert TRLConfig.__dataclass_fields__["loss_type"].default == "dapo"
    assert rl.GRPOConfig().loss_type == "dapo"
    assert TRLConfig.__dataclass_fields__["use_bias_correction_kl"].default is True
