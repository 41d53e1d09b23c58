"""companion.sae against SAELens (``sae-lens`` on PyPI): same weights, same batch, same numbers.

For each SAE kind the companion's weights are copied into SAELens's training SAE and both
run on one batch; encode, decode, loss and gradients must agree. The conventions that
differ, and how the tests translate between them:

- **Layout.** SAELens stores ``W_enc (d, m)`` and ``W_dec (m, d)``, the companion
  ``W_enc (m, d)`` and ``W_dec (d, m)``: transposes. SAELens's ``b_dec`` (subtracted
  before the encoder, ``apply_b_dec_to_input=True``, and added after the decoder) is the
  companion's shared ``b_pre``; ``b_enc`` is ``b_lat``.
- **Input scale.** The companion divides inputs by a fixed scale ``s`` (and multiplies the
  output by it); the tests set ``s = 1`` (SAELens's ``normalize_activations="none"``).
- **MSE.** SAELens minimises ``mean_n ||x_n - x_hat_n||^2``, the companion the same divided
  by ``d`` (by ``s^2 d`` in general), so SAELens's sparsity coefficients are ``d`` times
  the companion's and all its gradients ``d`` times larger at matched coefficients.
- **ReLU + L1.** SAELens's "standard" SAE weights the L1 by the decoder-row norms (Anthropic's
  April 2024 update); with unit-norm columns that weight is 1, the losses agree, and the
  gradients agree after the component parallel to each decoder column is removed (the
  weighting only adds a parallel component, which the companion's constrained training
  removes anyway).
- **JumpReLU.** SAELens trains the threshold ``theta`` directly (clamped at 0); the
  companion trains ``log theta`` (Rajamanoharan et al.), so its gradient is SAELens's times
  ``theta``. Both use the rectangle kernel on ``pre - theta`` and do not pass the step's
  gradient to the encoder (``jumprelu_ste_to_input=False``).
- **TopK AuxK.** SAELens uses ``mean_n ||e_n - e_hat_n||^2`` times ``min(n_dead / k_aux, 1)``
  and no ReLU on the auxiliary activations; the companion divides by the batch variance of
  ``e`` (Gao et al.'s reference code) and applies the ReLU. With positive auxiliary
  pre-activations and at least ``k_aux`` dead latents the two differ by that variance only.
"""

import numpy as np
import pytest
import torch

from conftest import require  # tests/parity/conftest.py (pytest puts this folder first on sys.path)

from companion import sae as csae

D, M, N = 16, 48, 64


def _copy_into(ours: csae.SparseAutoencoder, theirs) -> None:
    with torch.no_grad():
        theirs.W_enc.copy_(ours.W_enc.T)
        theirs.W_dec.copy_(ours.W_dec.T)
        theirs.b_enc.copy_(ours.b_lat)
        theirs.b_dec.copy_(ours.b_pre)


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=gen) + 0.3


def _ours(cls, seed=1, **kwargs):
    model = cls(D, M, seed=seed, **kwargs)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():  # non-trivial biases, unit-norm decoder, scale 1
        model.b_lat.copy_(0.1 * torch.randn(M, generator=gen))
        model.b_pre.copy_(0.2 * torch.randn(D, generator=gen))
    model.normalize_decoder()
    return model


def _step_input(x, dead=None, coefficients=None):
    from sae_lens.saes.sae import TrainStepInput

    return TrainStepInput(sae_in=x, coefficients=coefficients or {}, dead_neuron_mask=dead,
                          n_training_steps=0, is_logging_step=False)


def _grads_ours(model):
    return {"W_enc": model.W_enc.grad.T, "W_dec": model.W_dec.grad.T, "b_enc": model.b_lat.grad,
            "b_dec": model.b_pre.grad}


def _project(grad_wdec_rows, w_dec_rows):
    """Remove from each row of a (m, d) decoder gradient its component along the (unit) row."""
    return grad_wdec_rows - (grad_wdec_rows * w_dec_rows).sum(1, keepdim=True) * w_dec_rows


def test_topk_encode_decode_loss_and_gradients_equal_sae_lens():
    require("sae_lens")
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    ours = _ours(csae.TopKSAE, k=5, aux_coef=0.0)
    theirs = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=D, d_sae=M, k=5, aux_loss_coefficient=0.0))
    _copy_into(ours, theirs)
    x = _batch()
    ours.train()
    z = ours.encode(x)
    assert torch.allclose(z, theirs.encode(x), atol=1e-6)
    assert torch.allclose(ours.decode(z), theirs.decode(z), atol=1e-6)
    out = ours.loss(x)
    step = theirs.training_forward_pass(_step_input(x, dead=torch.zeros(M, dtype=torch.bool)))
    # SAELens: mean_n ||x - x_hat||^2; the companion divides by d (s = 1)
    assert out["mse"].item() * D == pytest.approx(step.losses["mse_loss"].item(), rel=1e-5)
    out["loss"].backward()
    step.loss.backward()
    for name, g in _grads_ours(ours).items():
        assert torch.allclose(g * D, getattr(theirs, name).grad, rtol=1e-4, atol=1e-5), name


def test_topk_auxk_equals_sae_lens_up_to_the_variance_normalisation():
    require("sae_lens")
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    k_aux = D // 2
    ours = _ours(csae.TopKSAE, k=4, aux_coef=1.0, dead_after=1)
    with torch.no_grad():
        ours.b_lat.add_(5.0)  # every pre-activation positive: the companion's ReLU is inactive
    theirs = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=D, d_sae=M, k=4, aux_loss_coefficient=1.0))
    _copy_into(ours, theirs)
    dead = torch.zeros(M, dtype=torch.bool)
    dead[::2] = True  # 24 dead latents >= k_aux = 8, so SAELens's scale min(n_dead / k_aux, 1) is 1
    ours.tokens_since_fired.copy_(dead.long() * 10)
    x = _batch(1)
    ours.train()
    out = ours.loss(x)
    step = theirs.training_forward_pass(_step_input(x, dead=dead))
    error = (x - out["x_hat"]).detach()
    variance = ((error - error.mean(0)) ** 2).sum(1).mean()
    theirs_aux = step.losses["auxiliary_reconstruction_loss"]
    assert out["aux"].item() * variance.item() == pytest.approx(theirs_aux.item(), rel=1e-5)
    assert ours.k_aux == k_aux
    # gradients of the auxiliary term alone: ours = theirs / variance (the error is detached)
    out["aux"].backward()
    theirs_aux.backward()
    assert torch.allclose(ours.W_enc.grad.T * variance, theirs.W_enc.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(ours.W_dec.grad.T * variance, theirs.W_dec.grad, rtol=1e-4, atol=1e-5)


def test_relu_l1_encode_decode_loss_and_gradients_equal_sae_lens():
    require("sae_lens")
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig

    l1 = 0.01
    ours = _ours(csae.ReLUSAE, l1_coef=l1)
    theirs = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=D, d_sae=M, l1_coefficient=l1 * D))
    _copy_into(ours, theirs)
    x = _batch(2)
    z = ours.encode(x)
    assert torch.allclose(z, theirs.encode(x), atol=1e-6)
    assert torch.allclose(ours.decode(z), theirs.decode(z), atol=1e-6)
    out = ours.loss(x)
    step = theirs.training_forward_pass(_step_input(x, coefficients={"l1": l1 * D}))
    assert out["loss"].item() * D == pytest.approx(step.loss.item(), rel=1e-5)
    assert out["sparsity"].item() * D == pytest.approx(step.losses["l1_loss"].item(), rel=1e-5)
    out["loss"].backward()
    step.loss.backward()
    ours_g = _grads_ours(ours)
    for name in ("W_enc", "b_enc", "b_dec"):
        assert torch.allclose(ours_g[name] * D, getattr(theirs, name).grad, rtol=1e-4, atol=1e-5), name
    w = theirs.W_dec.detach()
    assert torch.allclose(_project(ours_g["W_dec"] * D, w), _project(theirs.W_dec.grad, w), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("theta", [0.3, 1e-3])
def test_jumprelu_encode_decode_loss_and_gradients_equal_sae_lens(theta):
    """Also at a threshold below bandwidth / 2, where a kernel on relu(pre) instead of
    pre - theta would count every negative pre-activation (the bug this test guards)."""
    require("sae_lens")
    from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig

    bandwidth, l0 = 0.05, 0.02
    ours = _ours(csae.JumpReLUSAE, l0_coef=l0, bandwidth=bandwidth, init_threshold=theta)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():  # spread the thresholds so that some pre-activations fall in the kernel
        ours.log_threshold.add_(0.5 * torch.randn(M, generator=gen))
    theirs = JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(
        d_in=D, d_sae=M, l0_coefficient=l0 * D, jumprelu_bandwidth=bandwidth, jumprelu_init_threshold=theta))
    _copy_into(ours, theirs)
    with torch.no_grad():
        theirs.threshold.copy_(ours.threshold)
    x = _batch(3)
    z = ours.encode(x)
    assert torch.allclose(z, theirs.encode(x), atol=1e-6)
    assert torch.allclose(ours.decode(z), theirs.decode(z), atol=1e-6)
    out = ours.loss(x)
    step = theirs.training_forward_pass(_step_input(x, coefficients={"l0": l0 * D}))
    assert out["loss"].item() * D == pytest.approx(step.loss.item(), rel=1e-5)
    out["loss"].backward()
    step.loss.backward()
    for name, g in _grads_ours(ours).items():
        assert torch.allclose(g * D, getattr(theirs, name).grad, rtol=1e-4, atol=1e-5), name
    # d/dlog(theta) = theta * d/dtheta
    expected = theirs.threshold.grad * theirs.threshold.detach()
    assert expected.abs().sum() > 0  # the kernel saw some pre-activations
    assert torch.allclose(ours.log_threshold.grad * D, expected, rtol=1e-4, atol=1e-6)


def test_a_stack_of_seeds_equals_its_members_under_sae_lens():
    """The batched stack (several seeds in one module) encodes like SAELens on each member."""
    require("sae_lens")
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    stack = csae.TopKSAE(D, M, k=5, seed=[0, 1, 2])
    x = _batch(4)
    z_stack = stack.encode(x)
    for i, single in enumerate(stack.unstack()):
        theirs = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=D, d_sae=M, k=5))
        _copy_into(single, theirs)
        assert torch.allclose(z_stack[i], theirs.encode(x), atol=1e-6)
