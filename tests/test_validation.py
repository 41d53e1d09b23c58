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
