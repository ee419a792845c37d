"""The declared argument constraints of pdbviz._checks: what each allows, and the message it gives."""

import inspect

import numpy as np
import pytest

from pdbviz._checks import (NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_REAL, Integer, OneOf, OrNone, Real, validate,
                            validate_params)


@pytest.mark.parametrize("constraint, good, bad", [
    (POSITIVE_INT, [1, 7, np.int64(3)], [0, -1, 2.0, 2.5, True, "3", None]),
    (NON_NEGATIVE_INT, [0, 5], [-1, 0.0, False]),
    (Integer(2, 8), [2, 8], [1, 9]),
    (POSITIVE_REAL, [1e-9, 3, 2.5, np.float32(0.5)], [0, -1.0, float("nan"), float("inf"), True, "0.1"]),
    (Real(0, 1, low_open=True, high_open=True), [0.5], [0, 1, 1.5]),
    (OneOf(("a", "b")), ["a", "b"], ["c", None, ["a"]]),
    (OrNone(POSITIVE_INT), [None, 3], [0, "x"]),
])
def test_each_constraint_allows_what_it_says(constraint, good, bad):
    assert all(constraint.accepts(v) for v in good)
    assert not any(constraint.accepts(v) for v in bad)


@pytest.mark.parametrize("constraint, value, message", [
    (POSITIVE_INT, 0, "epochs must be a positive integer, got 0"),
    (NON_NEGATIVE_INT, -1, "epochs must be an integer >= 0, got -1"),
    (Integer(1, words="an integer >= 1"), 0, "epochs must be an integer >= 1, got 0"),
    (Integer(2, 8), 9, "epochs must be an integer in 2..8, got 9"),
    (POSITIVE_REAL, "0.1", "epochs must be a positive number, got '0.1'"),
    (Real(0, 1, low_open=True, high_open=True), 1.0, r"epochs must be a number in \(0, 1\), got 1.0"),
    (OneOf(("adam", "sgd")), "x", r"epochs must be one of \('adam', 'sgd'\), got 'x'"),
    (OrNone(POSITIVE_INT), 0, "epochs must be a positive integer or None, got 0"),
    (OrNone(POSITIVE_INT, mention=False), 0, "epochs must be a positive integer, got 0"),
])
def test_messages_name_the_parameter_the_value_and_what_is_allowed(constraint, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        validate("epochs", value, constraint)


def test_validate_converts_numpy_integers():
    value = validate("n", np.int32(4), POSITIVE_INT)
    assert value == 4 and type(value) is int


def test_validate_params_checks_before_the_body_and_keeps_the_signature():
    ran = []

    @validate_params({"n": POSITIVE_INT, "rate": POSITIVE_REAL})
    def f(x, n: int = 1, *, rate: float = 0.5) -> str:
        """Doc."""
        ran.append((x, n, rate))
        return "ok"

    assert f("a", np.int64(2), rate=1) == "ok" and ran == [("a", 2, 1)] and type(ran[0][1]) is int
    with pytest.raises(ValueError, match="rate must be a positive number, got 0"):
        f("a", rate=0)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        f("a", 0)
    assert len(ran) == 1
    assert str(inspect.signature(f)) == "(x, n: int = 1, *, rate: float = 0.5) -> str" and f.__doc__ == "Doc."
    assert f.parameter_constraints == {"n": POSITIVE_INT, "rate": POSITIVE_REAL}
    with pytest.raises(TypeError, match=r"has no parameters \['m'\]"):
        validate_params({"m": POSITIVE_INT})(lambda n: n)


def test_the_public_entry_points_declare_their_constraints():
    import pdbviz
    from pdbviz.study import metric_study

    for fn in (pdbviz.compare, pdbviz.sweep, metric_study):
        assert fn.parameter_constraints["epochs"] == POSITIVE_INT
        assert fn.parameter_constraints["lr"] == POSITIVE_REAL


def test_a_wrong_type_is_a_type_error_naming_the_type():
    from torch import nn

    from pdbviz._checks import InstanceOf

    module = InstanceOf(nn.Module, "a torch.nn.Module")
    with pytest.raises(TypeError, match=r"^model must be a torch.nn.Module, got str$"):
        validate("model", "lenet", module)
    with pytest.raises(TypeError, match=r"^model must be a torch.nn.Module or None, got int$"):
        validate("model", 3, OrNone(module))
    assert validate("model", None, OrNone(module)) is None
