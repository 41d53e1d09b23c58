"""The evidence helpers: seeds from the environment, spreads, claims, thread limits."""

import numpy as np
import pytest
import torch

from companion import evidence, plotting, training


def test_base_seed_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("COMPANION_SEED", raising=False)
    assert training.base_seed() == 0 and training.set_seed() == 0
    monkeypatch.setenv("COMPANION_SEED", "2")
    assert training.base_seed() == 2
    assert training.set_seed() == 2
    assert training.seeds(3) == [2000, 2001, 2002]
    assert training.set_seed(5) == 5          # an explicit seed wins
    monkeypatch.setenv("COMPANION_SEED", "two")
    with pytest.raises(ValueError, match="COMPANION_SEED"):
        training.base_seed()


def test_seed_sets_of_different_bases_do_not_overlap():
    sets = [set(training.seeds(50, base=b)) for b in range(3)]
    assert not (sets[0] & sets[1]) and not (sets[1] & sets[2])
    assert training.seeds(3, base=0) == [0, 1, 2]


def test_set_seed_makes_draws_repeat(monkeypatch):
    monkeypatch.setenv("COMPANION_SEED", "1")
    training.set_seed()
    a = (np.random.rand(3), torch.rand(3))
    training.set_seed()
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_threads_follow_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("COMPANION_THREADS", raising=False)
        assert training.set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("COMPANION_THREADS", "2")
        assert training.set_threads(1) == 2 and torch.get_num_threads() == 2
        with training.thread_limit():
            assert torch.get_num_threads() == 2
        monkeypatch.delenv("COMPANION_THREADS")
        with training.thread_limit():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2        # restored

        @training.thread_limit(1)
        def inside():
            return torch.get_num_threads()

        assert inside() == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_spread_reduces_the_seed_axis():
    s = evidence.spread([[1.0, 2.0], [3.0, 6.0], [2.0, 4.0]])
    assert s.n == 3
    np.testing.assert_allclose(s.mean, [2.0, 4.0])
    np.testing.assert_allclose(s.low, [1.0, 2.0])
    np.testing.assert_allclose(s.high, [3.0, 6.0])
    assert str(evidence.spread([0.5, 0.25, 1.0])) == "0.583 (0.25 to 1, 3 seeds)"
    with pytest.raises(ValueError, match="values"):
        evidence.spread([1.0, np.nan])
    with pytest.raises(ValueError, match="per seed"):
        evidence.spread(np.ones((2, 2))).format()


def test_claim_prints_its_verdict(capsys):
    assert evidence.claim("all hold", np.array([3.0, 4.0]) > 2) is True
    assert evidence.claim("one fails", [True, False, True]) is False
    assert evidence.claim("two of three", [True, False, True], at_least=2) is True
    out = capsys.readouterr().out.splitlines()
    assert out == ["all hold: True", "one fails: False", "two of three: True"]
    with pytest.raises(TypeError, match="holds"):
        evidence.claim("numbers are not verdicts", [0.3, 0.4])
    with pytest.raises(ValueError, match="at_least"):
        evidence.claim("too many", [True, True], at_least=3)
    assert evidence.agreement([True, True, True]) == "all 3 seeds"
    assert evidence.agreement([False, False]) == "no seed"


def test_plot_spread_draws_mean_and_band():
    fig, (ax,) = plotting.subplots()
    values = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    line = plotting.plot_spread(ax, [0, 1, 2], values, label="run")
    np.testing.assert_allclose(line.get_ydata(), [2.0, 2.0, 2.0])
    assert line.get_label() == "run (2 seeds)"
    with pytest.raises(ValueError, match="values"):
        plotting.plot_spread(ax, [0, 1], values)
    plotting.pyplot().close(fig)


def test_run_seeds_calls_each_seed():
    assert training.run_seeds(lambda s: s * 2, [1, 2, 3]) == [2, 4, 6]
    with pytest.raises(ValueError, match="seed_list"):
        training.run_seeds(lambda s: s, [])
