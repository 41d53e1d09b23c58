"""Unit tests of companion.scaling: closed forms, the papers' numbers, agreement of fits."""

import numpy as np
import pytest
import torch

from companion import scaling as sc
from companion.data import load_chinchilla


# -- compute-optimal allocation (Hoffmann et al., 2022) ------------------------------------
def test_optimal_exponents_match_spec():
    G, a, b = sc.optimal_exponents(sc.HOFFMANN_2022)
    assert round(G, 6) == 1.344711
    assert round(a, 6) == 0.451613
    assert a + b == pytest.approx(1.0)


def test_compute_optimal_at_chinchilla_budget():
    C = 5.76e23
    n, d, loss = sc.compute_optimal(C, sc.HOFFMANN_2022)
    assert n == pytest.approx(3.219e10, rel=5e-4)
    assert d == pytest.approx(2.982e12, rel=5e-4)
    assert round(loss, 4) == 1.9307
    assert 6 * n * d == pytest.approx(C, rel=1e-12)


def test_compute_optimal_is_the_minimum_along_the_isoflop_line():
    C = 1e21
    n_opt, _, l_opt = sc.compute_optimal(C, sc.BESIROGLU_2024)
    n = n_opt * np.geomspace(0.5, 2.0, 201)
    losses = sc.chinchilla_loss(n, C / (6 * n), sc.BESIROGLU_2024)
    assert l_opt <= losses.min() + 1e-12
    assert n[np.argmin(losses)] == pytest.approx(n_opt, rel=0.01)


def test_chinchilla_loss_accepts_tensors_and_validates():
    n = torch.tensor([1e9, 1e10])
    d = np.array([2e10, 2e11])
    loss = sc.chinchilla_loss(n, d, sc.HOFFMANN_2022)
    expected = 1.69 + 406.4 / np.array([1e9, 1e10]) ** 0.34 + 410.7 / d ** 0.28
    np.testing.assert_allclose(loss, expected)
    with pytest.raises(ValueError, match="N"):
        sc.chinchilla_loss(-1.0, 1e9)
    with pytest.raises(TypeError, match="params"):
        sc.chinchilla_loss(1e9, 1e9, (1.69, 406.4, 410.7, 0.34, 0.28))
    with pytest.raises(ValueError, match="alpha"):
        sc.ChinchillaParams(E=1, A=1, B=1, alpha=-0.1, beta=0.3)


# -- IsoFLOP grid and Approach 2 ---------------------------------------------------------
def test_isoflop_grid_lies_on_budgets_and_is_centred():
    data = sc.isoflop_grid(sc.HOFFMANN_2022, width=4.0, points_per_curve=15)
    np.testing.assert_allclose(6 * data.N * data.D, data.budgets[data.group], rtol=1e-12)
    n_opt = sc.compute_optimal(data.budgets, sc.HOFFMANN_2022)[0]
    middle = data.N.reshape(5, 15)[:, 7]
    np.testing.assert_allclose(middle, n_opt, rtol=1e-12)
    with pytest.raises(ValueError, match="width"):
        sc.isoflop_grid(width=1.0)


# The Approach 2 bias table, as the chapter prints it: errors of D* at C = 1e24 in percent, with the digits
# given (three decimals for the first set, three significant digits for the second).
@pytest.mark.parametrize("params, expected", [
    ((0.34, 0.28), ["-0.327", "-1.301", "-2.903", "-5.100"]),
    ((0.465, 0.155), ["-1.67", "-6.50", "-13.9", "-23.1"]),
])
def test_approach2_bias_table(params, expected):
    p = sc.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=params[0], beta=params[1])
    for width, want in zip((2, 4, 8, 16), expected):
        pct = 100 * sc.approach2_bias(p, width)[1]
        if params[0] == 0.34:
            assert f"{pct:.3f}" == want
        else:
            assert f"{pct:#.3g}" == want


def test_approach2_exponents_right_intercept_biased():
    p = sc.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.465, beta=0.155)
    data = sc.isoflop_grid(p, width=16)
    fit = sc.fit_approach2(data.N, data.D, data.loss, data.group)
    _, a, b = sc.optimal_exponents(p)
    assert fit.a == pytest.approx(a, abs=1e-6)
    assert fit.b == pytest.approx(b, abs=1e-6)
    assert abs(fit.optimal(1e24)[1] / sc.compute_optimal(1e24, p)[1] - 1) > 0.2


def test_approach2_unbiased_when_alpha_equals_beta():
    p = sc.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.3, beta=0.3)
    for width in (2, 16):
        n_err, d_err = sc.approach2_bias(p, width)
        assert abs(n_err) < 1e-8 and abs(d_err) < 1e-8


def test_approach2_groups_inferred_from_budgets():
    data = sc.isoflop_grid(sc.HOFFMANN_2022, width=4)
    a = sc.fit_approach2(data.N, data.D, data.loss)
    b = sc.fit_approach2(data.N, data.D, data.loss, data.group)
    assert a.a == pytest.approx(b.a) and a.log10_n_intercept == pytest.approx(b.log10_n_intercept)
    with pytest.raises(ValueError, match="two compute budgets"):
        sc.fit_approach2(data.N[:15], data.D[:15], data.loss[:15])


# -- variable projection and Approach 3 ----------------------------------------------------
@pytest.mark.parametrize("params", [sc.HOFFMANN_2022, sc.BESIROGLU_2024,
                                    sc.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.465, beta=0.155)])
@pytest.mark.parametrize("robust", [True, False])
def test_variable_projection_recovers_noise_free_parameters(params, robust):
    data = sc.isoflop_grid(params, width=4)
    fit = sc.fit_variable_projection(data.N, data.D, data.loss, robust=robust)
    np.testing.assert_allclose(fit.params.as_array(), params.as_array(), rtol=1e-6)
    np.testing.assert_allclose(fit.optimal(1e24), sc.compute_optimal(1e24, params)[:2], rtol=1e-5)


def test_approach3_and_variable_projection_agree_on_noisy_data():
    data = sc.isoflop_grid(sc.HOFFMANN_2022, width=4, noise=0.003, seed=1)
    vp = sc.fit_variable_projection(data.N, data.D, data.loss)
    starts = sc.approach3_start_grid("full")[::150]  # 30 starts spread over the grid
    a3 = sc.fit_approach3(data.N, data.D, data.loss, starts=starts)
    assert vp.a == pytest.approx(a3.a, abs=0.01)
    for name in ("E", "alpha", "beta"):
        assert getattr(vp.params, name) == pytest.approx(getattr(a3.params, name), rel=0.03)
    for name in ("A", "B"):
        assert getattr(vp.params, name) == pytest.approx(getattr(a3.params, name), rel=0.3)
    n_vp, n_a3 = vp.optimal(1e22)[0], a3.optimal(1e22)[0]
    assert n_vp == pytest.approx(n_a3, rel=0.05)


def test_approach3_objective_gradient_matches_finite_differences():
    data = load_chinchilla()
    args = (np.log(data.N), np.log(data.D), np.log(data.loss), 1e-3)
    theta = np.array([6.0, 7.5, 0.6, 0.35, 0.37])
    value, grad = sc._approach3_objective(theta, *args)
    eps = 1e-6
    numeric = [(sc._approach3_objective(theta + eps * e, *args)[0]
                - sc._approach3_objective(theta - eps * e, *args)[0]) / (2 * eps) for e in np.eye(5)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-9)


def test_chinchilla_refit_reproduces_besiroglu():
    data = load_chinchilla()
    assert len(data) == 240
    vp = sc.fit_variable_projection(data.N, data.D, data.loss)
    z = (vp.params.as_array() - sc.BESIROGLU_2024.as_array()) / sc.BESIROGLU_2024_SE.as_array()
    assert np.all(np.abs(z) < 1.0)  # within one of Epoch's bootstrap standard errors
    a3 = sc.fit_approach3(data.N, data.D, data.loss, starts=vp.params)
    np.testing.assert_allclose(a3.params.as_array(), sc.BESIROGLU_2024_HUBER.as_array(), rtol=0.01)
    np.testing.assert_allclose(a3.params.as_array(), sc.BESIROGLU_2024.as_array(), rtol=0.03)


def test_approach3_start_grid_sizes():
    assert sc.approach3_start_grid("full").shape == (4500, 5)
    assert sc.approach3_start_grid("small").shape == (243, 5)
    with pytest.raises(ValueError, match="kind"):
        sc.approach3_start_grid("huge")


# -- bootstrap ----------------------------------------------------------------------------
def test_bootstrap_intervals_cover_truth_and_repeat():
    p = sc.HOFFMANN_2022
    data = sc.isoflop_grid(p, width=4, noise=0.002, seed=2)
    kwargs = dict(n_resamples=20, budget=1e22, seed=0, robust=False,
                  alpha_grid=np.linspace(0.2, 0.5, 7), beta_grid=np.linspace(0.15, 0.45, 7))
    boot = sc.bootstrap(sc.fit_variable_projection, data.N, data.D, data.loss, **kwargs)
    again = sc.bootstrap(sc.fit_variable_projection, data.N, data.D, data.loss, **kwargs)
    np.testing.assert_array_equal(boot.samples["a"], again.samples["a"])
    low, high = boot.interval("a")
    assert low < sc.optimal_exponents(p)[1] < high
    assert boot.std("alpha") > 0
    with pytest.raises(ValueError, match="name"):
        boot.interval("gamma")


def test_bootstrap_of_approach2_is_narrow_around_a_biased_value():
    p = sc.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.465, beta=0.155)
    data = sc.isoflop_grid(p, width=16, noise=0.001, seed=0)
    boot = sc.bootstrap(sc.fit_approach2, data.N, data.D, data.loss, n_resamples=40,
                        strata=data.group, budget=1e24)
    low, high = boot.interval("D_opt")
    assert high < sc.compute_optimal(1e24, p)[1]  # the interval excludes the truth
    assert "E" not in boot.samples


# -- power_law_fit (Henighan et al., 2020) -----------------------------------------------------
def test_power_law_fit_recovers_parameters():
    x = np.geomspace(10, 1e5, 25)
    y = 0.4 + (250.0 / x) ** 0.6
    fit = sc.power_law_fit(x, y)
    assert fit.l_inf == pytest.approx(0.4, rel=1e-6)
    assert fit.x0 == pytest.approx(250.0, rel=1e-5)
    assert fit.alpha == pytest.approx(0.6, rel=1e-6)
    np.testing.assert_allclose(fit.predict(x), y, rtol=1e-8)
    pure = sc.power_law_fit(torch.tensor(x), torch.tensor((250.0 / x) ** 0.6), fit_l_inf=False)
    assert pure.l_inf == 0 and pure.alpha == pytest.approx(0.6, rel=1e-6)


def test_power_law_fit_validates():
    with pytest.raises(ValueError, match="x"):
        sc.power_law_fit([1.0, 2.0], [1.0, 0.5])
    with pytest.raises(ValueError, match="y"):
        sc.power_law_fit([1.0, 2.0, 3.0], [1.0, -0.5, 0.2])
    with pytest.raises(ValueError, match="decrease"):
        sc.power_law_fit([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])


# -- teacher-student (Bahri et al., 2024) ----------------------------------------------------
def test_teacher_student_data_scaling_exponent():
    a = 2.0
    spectrum = sc.power_law_spectrum(2000, a)
    n = np.array([20, 40, 80, 160, 320])
    risk = sc.teacher_student_sweep(n, spectrum, trials=3)
    slope = np.polyfit(np.log(n), np.log(risk), 1)[0]
    assert slope == pytest.approx(-(a - 1), abs=0.15)  # finite-size effects steepen it slightly


def test_teacher_student_limits():
    spectrum = sc.power_law_spectrum(300, 1.5)
    assert sc.teacher_student_risk(None, spectrum) == 0.0
    wide = sc.teacher_student_risk(None, spectrum, n_features=200)
    narrow = sc.teacher_student_risk(None, spectrum, n_features=20)
    assert 0 < wide < narrow
    # total signal variance is sum(lambda): no student can do worse than predicting zero
    assert narrow < spectrum.sum()


# -- the training sweep ------------------------------------------------------------------------
def test_training_sweep_learns_and_counts_parameters():
    sweep = sc.training_sweep(widths=(4, 16), steps=200, batch_size=64, checkpoints=4,
                              min_samples=1000, show_progress=False)
    assert set(np.unique(sweep.N)) == {4 * 6 + 1, 16 * 6 + 1}
    for w in (4, 16):
        m = sweep.width == w
        assert np.all(np.diff(sweep.D[m]) > 0)
        assert sweep.loss[m][-1] < sweep.loss[m][0]
    assert np.all(sweep.loss > sweep.noise_floor)


# -- explorer -----------------------------------------------------------------------------
def test_explorer_has_at_most_12_frames_and_draws():
    ex = sc.scaling_explorer()
    frames = np.prod([len(ex.controls[n].values) for n in ex.precompute])
    assert frames <= 12
    fig, text = ex.render()
    assert "variable projection" in text
    assert fig.axes[0].get_xlabel()


# -- the fourth regime: variance-limited in model size (Bahri et al., 2024) ---------------------
def test_teacher_student_width_gap_falls_like_one_over_width():
    widths = np.array([64, 128, 256, 512])
    gap = sc.teacher_student_width_gap(16, sc.power_law_spectrum(200, 2.0), widths, trials=8)
    assert np.all(gap > 0)
    slope = np.polyfit(np.log(widths), np.log(gap), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.3)
    with pytest.raises(ValueError, match="ridge"):
        sc.teacher_student_width_gap(16, sc.power_law_spectrum(50, 2.0), [64], ridge=0.0)


def test_width_gap_control_variate_has_the_raw_gap_as_mean():
    """The subtracted first-order term has mean zero: with many draws the corrected and the
    raw averages agree (the raw one only within its larger noise)."""
    spectrum = sc.power_law_spectrum(60, 2.0)
    raw = []
    for t in range(300):
        r_inf = sc.teacher_student_risk(8, spectrum, ridge=1e-3, trials=1, seed=t)
        w = np.random.default_rng([t, 0]).standard_normal(60)
        X = np.random.default_rng([t, 0, 8]).standard_normal((8, 60)) * np.sqrt(spectrum)
        F = np.random.default_rng([t, 0, 8, 32]).standard_normal((60, 32)) / np.sqrt(32)
        Z = X @ F
        K = Z @ Z.T
        c = np.linalg.solve(K + 1e-3 * np.trace(K) / 8 * np.eye(8), X @ w)
        e = w - F @ (Z.T @ c)
        raw.append(e @ (spectrum * e) - r_inf)
    corrected = np.mean([sc.teacher_student_width_gap(8, spectrum, [32], trials=1, seed=t)[0]
                         for t in range(300)])
    raw = np.array(raw)
    assert abs(raw.mean() - corrected) < 3 * raw.std() / np.sqrt(raw.size)


# -- Approach 2's loss frontier and predictions of a held-out budget ----------------------------
def test_approach2_optimal_loss_and_vertex_losses():
    p = sc.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.3, beta=0.3)
    data = sc.isoflop_grid(p, width=2)
    fit = sc.fit_approach2(data.N, data.D, data.loss, data.group)
    l_true = sc.compute_optimal(data.budgets, p)[2]
    np.testing.assert_allclose(fit.info["L_opt"], l_true, rtol=1e-4)
    assert fit.optimal_loss(1e22) == pytest.approx(sc.compute_optimal(1e22, p)[2], rel=2e-3)
    vp = sc.fit_variable_projection(data.N, data.D, data.loss)
    assert vp.optimal_loss(1e22) == pytest.approx(sc.compute_optimal(1e22, p)[2], rel=1e-8)


def test_predict_held_out_approach2_misses_by_the_vertex_offset():
    """Noise-free asymmetric surface: the direct fits predict N* exactly, Approach 2 misses it
    by exactly its constant vertex offset (the exercise's closed form)."""
    from companion.exercises.scaling import reference_vertex_offset

    p = sc.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.465, beta=0.155)
    iso = sc.isoflop_grid(p, width=8)
    pred = sc.predict_held_out(iso, 1e21, approach3_starts=sc.approach3_start_grid("full")[::900])
    n_true, _, l_true = sc.compute_optimal(1e21, p)
    assert set(pred) == set(sc.METHODS)
    assert pred["variable projection"]["N_opt"] == pytest.approx(n_true, rel=1e-5)
    assert pred["Approach 3"]["N_opt"] == pytest.approx(n_true, rel=1e-3)
    assert pred["Approach 2"]["N_opt"] == pytest.approx(n_true / reference_vertex_offset(0.465, 0.155, 8),
                                                        rel=1e-6)
    assert pred["variable projection"]["L_opt"] == pytest.approx(l_true, rel=1e-8)
    with pytest.raises(ValueError, match="two budgets"):
        sc.predict_held_out(iso, 1e18)
    with pytest.raises(TypeError, match="iso"):
        sc.predict_held_out((iso.N, iso.D, iso.loss), 1e21)


def test_predict_held_out_reports_a_failed_approach2():
    p = sc.HOFFMANN_2022
    iso = sc.isoflop_grid(p, width=4)
    loss = iso.loss.copy()
    loss[iso.group == 0] = 5.0 - (np.log(iso.N[iso.group == 0]) - np.log(iso.N[7])) ** 2  # opens downwards
    bad = sc.IsoflopData(N=iso.N, D=iso.D, loss=loss, group=iso.group, budgets=iso.budgets)
    pred = sc.predict_held_out(bad, 1e21)
    assert np.isnan(pred["Approach 2"]["N_opt"]) and "downwards" in pred["Approach 2"]["failure"]
    assert np.isfinite(pred["variable projection"]["N_opt"])


# -- the full Approach 3 grid, run offline -------------------------------------------------------
def test_shipped_approach3_grid_matches_a_live_fit():
    grid = sc.load_approach3_grid()
    assert grid["objective"].shape == (4500,)
    np.testing.assert_array_equal(grid["start"], np.arange(4500))
    best = grid["objective"].min()
    data = load_chinchilla()
    live = sc.fit_approach3(data.N, data.D, data.loss, starts=sc.BESIROGLU_2024_HUBER)
    assert live.objective == pytest.approx(best, rel=1e-6)
    hit = grid["objective"] <= best * (1 + 1e-6)
    np.testing.assert_allclose(grid["alpha"][hit], live.params.alpha, rtol=1e-3)
    assert 0.1 < hit.mean() < 0.9
    # a start the file says reaches the best basin does so live
    first = int(np.flatnonzero(hit)[0])
    again = sc.fit_approach3(data.N, data.D, data.loss, starts=sc.approach3_start_grid("full")[first])
    assert again.objective == pytest.approx(best, rel=1e-6)
    assert again.info["start_thetas"].shape == (1, 5)


def test_epoch_constants_are_the_published_ones():
    # Besiroglu et al. (2024), Table 1; the Huber-loss grid fit and the bootstrap standard errors
    # as the final version of their repository's data_analysis.ipynb prints them.
    assert sc.BESIROGLU_2024.as_array().tolist() == [1.8172, 482.01, 2085.43, 0.3478, 0.3658]
    np.testing.assert_allclose(sc.BESIROGLU_2024_HUBER.as_array(),
                               [1.817235504, 477.84171253, 2143.86378803, 0.34731266, 0.36718262], rtol=1e-4)
    np.testing.assert_allclose(sc.BESIROGLU_2024_SE.as_array(),
                               [0.02566, 124.52232, 1293.28410, 0.01540, 0.02060], rtol=1e-3)


def test_approach3_objective_equals_epochs_on_the_same_points():
    # Epoch's notebook ("Replicate exactly") reaches a summed Huber loss of 0.0010182740346 on
    # the same 240 points; fit_approach3 minimises the same objective, so it reaches it too.
    data = load_chinchilla()
    fit = sc.fit_approach3(data.N, data.D, data.loss, starts=sc.BESIROGLU_2024_HUBER)
    assert fit.objective == pytest.approx(0.0010182740346, rel=1e-6)


def test_chinchilla_fits_by_relative_deviation_from_both_epoch_sets():
    data = load_chinchilla()
    vp = sc.fit_variable_projection(data.N, data.D, data.loss)
    for ref, tol in ((sc.BESIROGLU_2024_HUBER, 0.03), (sc.BESIROGLU_2024, 0.04)):
        assert np.abs(vp.params.as_array() / ref.as_array() - 1).max() < tol
    # the two published sets differ from each other by about as much
    assert np.abs(sc.BESIROGLU_2024.B / sc.BESIROGLU_2024_HUBER.B - 1) > 0.02


# -- the sweep: seeds batched, IsoFLOP design, device ------------------------------------------------
def test_training_sweeps_batch_seeds_and_record_an_isoflop_design():
    budgets = np.array([2e5, 4e5])
    kwargs = dict(widths=(4, 8, 16), steps=120, batch_size=32, checkpoints=3, min_samples=640,
                  budgets=budgets, show_progress=False)
    runs = sc.training_sweeps([3, 4], device="cpu", **kwargs)
    assert [r.seed for r in runs] == [3, 4]
    assert not np.allclose(runs[0].loss, runs[1].loss)  # independent initialisations and data
    design = runs[0].design()
    assert set(np.unique(design.group)) == {0, 1}
    C = 6 * design.N * design.D
    np.testing.assert_allclose(C, budgets[design.group], rtol=0.1)  # D rounded to whole batches
    assert np.all(design.D >= 640)
    single = sc.training_sweep(seed=3, **kwargs)
    np.testing.assert_allclose(single.loss, runs[0].loss, rtol=1e-5)
    with pytest.raises((TypeError, ValueError), match="seed_list"):
        sc.training_sweeps([], widths=(4,))


# -- bad input: a clear error naming the argument, no NaN, no hang ---------------------
def test_huge_values_inside_arrays_are_rejected_not_turned_into_nan():
    spectrum = sc.power_law_spectrum(20, 1.5)
    spectrum[10] = 1e308
    with pytest.raises(ValueError, match="spectrum"):
        sc.teacher_student_risk(10, spectrum)
    with pytest.raises(ValueError, match="spectrum"):
        sc.teacher_student_width_gap(10, spectrum, [2, 4])
    data = sc.isoflop_grid(points_per_curve=5)
    N = data.N.copy()
    N[3] = 1e308
    with pytest.raises(ValueError, match="N"):
        sc.fit_approach2(N, data.D, data.loss, data.group)
    with pytest.raises(ValueError, match="noise"):
        sc.isoflop_grid(noise=1e308)


def test_bad_arguments_name_themselves():
    data = sc.isoflop_grid(points_per_curve=5)
    with pytest.raises(ValueError, match="D"):
        sc.fit_variable_projection(data.N, data.D[:-1], data.loss)
    with pytest.raises(TypeError, match="params"):
        sc.compute_optimal(1e21, params="Chinchilla")
    with pytest.raises(ValueError, match="alpha_bounds"):
        sc.power_law_fit([1.0, 2.0, 4.0], [3.0, 2.0, 1.5], alpha_bounds=(2.0, 1.0))
    with pytest.raises(TypeError, match="n_values"):
        sc.teacher_student_sweep([2.5, 4.0], sc.power_law_spectrum(20, 1.5))
    with pytest.raises(ValueError, match="N and D"):
        sc.chinchilla_loss(np.ones(3) * 1e9, np.ones(2) * 1e9)
    with pytest.raises(ValueError, match="device"):
        sc.training_sweeps([0], (2,), steps=2, batch_size=4, min_samples=4, device="nonsense")
    with pytest.raises(TypeError, match="fit"):
        sc.plot_isoflop_fits(data, "approach2")


def test_the_dataclasses_hold_no_nan_by_default():
    law = sc.PowerLawFit(l_inf=1.0, x0=2.0, alpha=0.5)
    assert law.rms_relative_error is None
    fit = sc.ScalingFit(method="approach2", a=0.5, b=0.5, log10_n_intercept=0.0, log10_d_intercept=0.0)
    assert fit.objective is None and fit.seconds is None
    with pytest.raises(ValueError, match="method"):
        sc.ScalingFit(method="approach4", a=0.5, b=0.5, log10_n_intercept=0.0, log10_d_intercept=0.0)


def test_the_robust_inner_solve_raises_at_its_iteration_cap():
    data = sc.isoflop_grid(sc.HOFFMANN_2022, width=4)
    args = ((0.05, 0.3), np.log(data.N), np.log(data.D), data.loss, 1e-3)
    sc._vp_inner(*args, max_iter=sc._IRLS_SEARCH_ITER)  # in the search: the value reached, an upper bound
    with pytest.raises(RuntimeError, match="did not converge in 3 "):
        sc._vp_inner(*args, max_iter=3, strict=True)
