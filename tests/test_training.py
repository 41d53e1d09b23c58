import numpy as np
import pytest
import torch

from companion.training import History, get_device, set_seed, train_loop


def test_set_seed_makes_torch_and_numpy_repeat():
    set_seed(3)
    a = torch.randn(5), np.random.rand(5)
    set_seed(3)
    b = torch.randn(5), np.random.rand(5)
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="seed"):
        set_seed(-1)


def test_get_device_respects_override(monkeypatch):
    monkeypatch.setenv("COMPANION_DEVICE", "cpu")
    assert get_device().type == "cpu"


def test_train_loop_minimises_a_quadratic_and_logs_history():
    w = torch.tensor([3.0], requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)

    def step(i):
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    history = train_loop(step, 50, evaluate=lambda i: {"w": w.item()}, eval_every=10, eval_at=[5])
    losses = history["loss"]
    assert len(losses) == 50 and np.all(np.diff(losses) < 0)
    # gradient descent on w^2 with lr 0.1 multiplies w by 0.8 each step: a closed form
    np.testing.assert_allclose(history["w"], 3.0 * 0.8 ** history.steps("w"), rtol=1e-5)
    assert list(history.steps("w")) == [0, 5, 10, 20, 30, 40, 50]
    assert history.last("w") == pytest.approx(3.0 * 0.8 ** 50, rel=1e-4)
    with pytest.raises(KeyError, match="nothing logged"):
        history["missing"]


def test_train_loop_validates_arguments():
    with pytest.raises(TypeError, match="step must be callable"):
        train_loop(3, 10)
    with pytest.raises(ValueError, match="num_steps"):
        train_loop(lambda i: None, -1)


def test_history_accepts_tensors():
    h = History()
    h.log(1, {"a": torch.tensor(2.0)})
    assert h["a"].tolist() == [2.0] and "a" in h
