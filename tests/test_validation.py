import numpy as np
import pytest
import torch

from companion._validation import (as_array, as_labels, check_choice, check_fraction, check_int,
                                   check_nonnegative, check_positive)


def test_as_array_accepts_numpy_torch_and_lists_identically():
    values = [[1.0, 2.0], [3.0, 4.0]]
    a = as_array(np.array(values), "x")
    b = as_array(torch.tensor(values, requires_grad=True), "x")
    c = as_array(values, "x")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert a.dtype == np.float64


@pytest.mark.parametrize("bad", [None, "abc", {"a": 1}])
def test_as_array_rejects_non_arrays_with_type_error_naming_argument(bad):
    with pytest.raises(TypeError, match="features"):
        as_array(bad, "features")


def test_as_array_rejects_nan_shape_and_rows():
    with pytest.raises(ValueError, match="features contains NaN"):
        as_array([1.0, np.nan], "features")
    with pytest.raises(ValueError, match="features must have 2 dimension"):
        as_array([1.0, 2.0], "features", ndim=2)
    with pytest.raises(ValueError, match="at least 3 rows"):
        as_array(np.zeros((2, 2)), "features", min_rows=3)


def test_as_labels_checks_range_length_and_type():
    np.testing.assert_array_equal(as_labels([0, 2, 1], num_classes=3), [0, 2, 1])
    np.testing.assert_array_equal(as_labels(np.array([0.0, 1.0])), [0, 1])
    with pytest.raises(ValueError, match="below num_classes=3"):
        as_labels([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="non-negative"):
        as_labels([-1, 0])
    with pytest.raises(ValueError, match="5 entries"):
        as_labels([0, 1], n=5)
    with pytest.raises(ValueError, match="integer class indices"):
        as_labels([0.5, 1.0])


def test_scalar_checks():
    assert check_int(np.int64(3), "k", minimum=1) == 3
    with pytest.raises(TypeError, match="k must be an integer"):
        check_int(2.5, "k")
    with pytest.raises(TypeError, match="k must be an integer"):
        check_int(True, "k")
    with pytest.raises(ValueError, match="k must be >= 1"):
        check_int(0, "k", minimum=1)
    assert check_positive(2, "lr") == 2.0
    with pytest.raises(ValueError, match="lr must be > 0"):
        check_positive(0.0, "lr")
    with pytest.raises(ValueError, match="lr must be finite"):
        check_positive(float("inf"), "lr")
    assert check_nonnegative(0, "wd") == 0.0
    with pytest.raises(ValueError, match="p must lie in"):
        check_fraction(1.5, "p")
    with pytest.raises(ValueError, match="loss must be one of"):
        check_choice("hinge", "loss", ["ce", "mse"])


# -- complex input ----------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.array([1.0 + 2.0j]), torch.tensor([1.0 + 2.0j]), [1.0, 2.0j], 1j])
def test_as_array_rejects_complex_instead_of_dropping_the_imaginary_part(bad):
    with pytest.raises(TypeError, match="z must be real"):
        as_array(bad, "z")
    assert as_array(bad, "z", allow_complex=True, dtype=None).dtype.kind == "c"


# -- declarative constraints ------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from companion._validation import (Array, Interval, Labels, Options, TokenIds, check_params,  # noqa: E402
                                   validate_params)


@validate_params({
    "features": [Array(ndim=2, shape=("n", "d"))],
    "labels": [Labels(high="num_classes", shape=("n",))],
    "num_classes": [Interval(int, 2, None)],
    "reduction": [Options({"mean", "sum"})],
    "weights": [Array(ndim=1, shape=("n",), low=0), None],
    "fn": ["callable", None],
    "lr": [Interval(float, 0, 1, closed="right")],
})
def _example(features, labels, num_classes, reduction="mean", weights=None, fn=None, lr=0.1):
    return float(np.asarray(features).sum())


def _ok(**changes):
    kwargs = dict(features=np.ones((6, 3)), labels=np.arange(6) % 3, num_classes=3)
    kwargs.update(changes)
    return kwargs


def test_validate_params_accepts_valid_calls_numpy_and_torch():
    assert _example(**_ok()) == 18.0
    assert _example(**_ok(features=torch.ones(6, 3), labels=torch.arange(6) % 3, weights=torch.ones(6))) == 18.0
    assert _example(**_ok(reduction="sum", fn=len, lr=1.0, num_classes=np.int64(3))) == 18.0
    assert _example._parameter_constraints["lr"][0].right == 1


@pytest.mark.parametrize("change, error, message", [
    ({"features": np.ones(6)}, ValueError, "features must be an array with 2 dimension"),
    ({"features": np.full((6, 3), np.inf)}, ValueError, "features must contain only finite"),
    ({"features": np.ones((6, 3)) * 1j}, TypeError, "features must be real"),
    ({"features": "abc"}, TypeError, "features must be an array"),
    ({"features": None}, TypeError, "features must be an array"),
    ({"labels": np.arange(5) % 3}, ValueError, "labels must have 6 entries along axis 0 to match features"),
    ({"labels": np.array([0, 1, 2, 3, 0, 1])}, ValueError, r"labels must have entries in \[0, 3\)"),
    ({"labels": np.array([0, 1, 2, -1, 0, 1])}, ValueError, "labels must be non-negative"),
    ({"labels": np.zeros(6)}, TypeError, "labels must hold integers"),
    ({"num_classes": 2.5}, TypeError, "num_classes must be an int"),
    ({"num_classes": True}, TypeError, "num_classes must be an int"),
    ({"num_classes": 1}, ValueError, r"num_classes must be an int in \[2, inf\), got 1"),
    ({"reduction": "max"}, ValueError, "reduction must be one of"),
    ({"reduction": None}, TypeError, "reduction must be one of"),
    ({"weights": -np.ones(6)}, ValueError, "weights must be an array with entries >= 0"),
    ({"weights": np.ones(5)}, ValueError, "weights must have 6 entries"),
    ({"fn": 3}, TypeError, "fn must be a callable or None"),
    ({"lr": 0.0}, ValueError, r"lr must be a real number in \(0, 1\]"),
    ({"lr": float("nan")}, ValueError, "lr must be a real number"),
    ({"lr": "0.1"}, TypeError, "lr must be a real number"),
])
def test_validate_params_names_the_argument(change, error, message):
    with pytest.raises(error, match=message):
        _example(**_ok(**change))


def test_constraints_for_unknown_parameters_fail_at_definition():
    with pytest.raises(ValueError, match="unknown parameters"):
        validate_params({"nope": [int]})(lambda x: x)


def test_token_ids_bound_by_an_attribute_of_self():
    class Model:
        vocab_size = 10

        @validate_params({"tokens": [TokenIds(high="self.vocab_size")]})
        def forward(self, tokens):
            return np.asarray(tokens).max()

    assert Model().forward(torch.tensor([[1, 9]])) == 9
    with pytest.raises(ValueError, match=r"tokens must have entries in \[0, 10\) \(self.vocab_size=10\)"):
        Model().forward(torch.tensor([[1, 10]]))


def test_interval_membership_and_bad_declarations():
    assert 3 in Interval(int, 1, 3) and 3 not in Interval(int, 1, 3, closed="left")
    assert 2.5 not in Interval(int, 0, 5) and float("inf") not in Interval(float)
    assert float("inf") in Interval(float, allow_inf=True)
    with pytest.raises(ValueError, match="closed"):
        Interval(int, closed="open")
    with pytest.raises(ValueError, match="left must be <= right"):
        Interval(float, 2, 1)
    with pytest.raises(ValueError, match="dtype"):
        Array(dtype="text")


_finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=_finite),
       st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
def test_property_any_nonfinite_entry_is_rejected_naming_the_argument(arr, bad, data):
    index = tuple(data.draw(st.integers(0, s - 1)) for s in arr.shape)
    arr = arr.copy()
    arr[index] = bad
    for check in (lambda: as_array(arr, "acts"), lambda: check_params({"acts": arr}, {"acts": [Array()]})):
        with pytest.raises(ValueError, match="acts"):
            check()
    with pytest.raises(ValueError, match="acts"):
        check_params({"acts": torch.from_numpy(arr)}, {"acts": [Array()]})


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.complex128, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
                  elements=st.complex_numbers(max_magnitude=1e3, allow_nan=False)))
def test_property_complex_arrays_are_rejected_even_with_zero_imaginary_part(arr):
    with pytest.raises(TypeError, match="w must be real"):
        as_array(arr, "w")
    with pytest.raises(TypeError, match="w must be real"):
        check_params({"w": arr}, {"w": [Array()]})


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
                 st.none(), st.booleans(), st.complex_numbers()),
       st.integers(-5, 5), st.integers(0, 10), st.sampled_from(["both", "left", "right", "neither"]))
def test_property_interval_accepts_exactly_its_members(value, left, width, closed):
    interval = Interval(int, left, left + width, closed=closed)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    inside = (is_int and (value > left or (value == left and closed in ("both", "left")))
              and (value < left + width or (value == left + width and closed in ("both", "right"))))
    if inside:
        check_params({"k": value}, {"k": [interval]})
    else:
        with pytest.raises((TypeError, ValueError), match="^k must be"):
            check_params({"k": value}, {"k": [interval]})


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.integers(1, 8), st.integers(-3, 30))
def test_property_labels_out_of_range_are_named(n, num_classes, bad):
    labels = np.arange(n) % num_classes
    labels[-1] = bad
    values = {"y": labels, "num_classes": num_classes}
    constraints = {"y": [Labels(high="num_classes")], "num_classes": [Interval(int, 1, None)]}
    if 0 <= bad < num_classes:
        check_params(values, constraints)
    else:
        with pytest.raises(ValueError, match="^y must"):
            check_params(values, constraints)
