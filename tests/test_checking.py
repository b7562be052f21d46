"""The @check wrapper: what the learner is told when something raises, and how a notebook shows it."""

from __future__ import annotations

from pathlib import Path

import torch

import curriculum.checks
from curriculum.checking import CheckFailed, assert_close, assert_finite, assert_scalar_close, check, fail
from tests.support import assert_check_fails


# A check as the package would hold it: compiled with a file name inside curriculum/checks, which is
# how the wrapper tells the check's own frames from the learner's.
CHECK_SOURCE = """
@check
def check_calls_it(fn):
    out = fn(torch.ones(3))
    if out.shape != (3,):  # AttributeError here if the learner returned a non-tensor
        fail("wrong shape")
"""
_ns = {"check": check, "fail": fail, "torch": torch}
exec(compile(CHECK_SOURCE, str(Path(curriculum.checks.__file__).parent / "chapter0_test.py"), "exec"), _ns)
check_calls_it = _ns["check_calls_it"]


def stub(x):
    raise NotImplementedError("centre x, then scale it")


def meta_op(x):
    return torch.unique(x.to("meta"))  # torch itself raises NotImplementedError for this meta op


def meta_copy(x):
    return x.to("meta").tolist()  # raised from C++: no Python frame of torch in the traceback


def shape_bug(x):
    return x @ torch.ones(4, 4)  # RuntimeError inside torch, on the learner's line


def returns_list(x):
    return [1.0, 2.0, 3.0]


def test_the_stub_is_recognised_and_its_hint_shown():
    e = assert_check_fails(check_calls_it, stub, match="still raises NotImplementedError")
    assert "Hint: centre x, then scale it" in str(e)


def test_a_not_implemented_error_from_torch_is_not_called_a_stub():
    for fn in (meta_op, meta_copy):
        e = assert_check_fails(check_calls_it, fn, match="torch raised NotImplementedError")
        assert "still raises" not in str(e) and "meta tensor" in str(e)
        assert "test_checking.py" in str(e)  # it points at the learner's line


def test_an_error_in_the_learners_code_names_their_line():
    e = assert_check_fails(check_calls_it, shape_bug, match=r"your code raised RuntimeError")
    assert "x @ torch.ones(4, 4)" in str(e)


def test_an_error_in_the_check_itself_is_told_apart():
    e = assert_check_fails(check_calls_it, returns_list, match="the check itself raised AttributeError")
    assert "your code raised" not in str(e) and "report it" in str(e)


def test_notebooks_show_the_message_not_a_traceback():
    """IPython prints `_render_traceback_()` instead of the traceback through the checking module."""
    try:
        check_calls_it(shape_bug)
    except CheckFailed as e:
        lines = e._render_traceback_()
    assert lines[0].startswith("✗ check_calls_it: your code raised RuntimeError")
    assert not any("Traceback" in line or "curriculum/checking.py" in line for line in lines)


def test_comparisons_reject_nan_and_inf_with_their_own_message():
    expected = torch.tensor([[0.5, -1.0], [2.0, float("-inf")]])  # a masked -inf the learner must reproduce
    assert_close(expected.clone(), expected, "masked scores")
    for bad, word in [(float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "-inf")]:
        got = expected.clone()
        got[1, 0] = bad
        e = assert_check_fails(assert_close, got, expected, "scores")
        assert f"contains {word} at index (1, 0) where 2 was expected" in str(e)
    assert_check_fails(assert_finite, torch.tensor([1.0, float("nan")]), "x", match=r"contains NaN \(first at index \(1,\)")
    assert_finite(torch.tensor([1.0, float("-inf")]), "logits", allow_neg_inf=True)
    assert_check_fails(assert_scalar_close, torch.tensor(float("nan")), 0.3, "loss", match="loss is NaN")


def test_a_loss_of_shape_one_is_not_a_scalar():
    assert_check_fails(assert_scalar_close, torch.tensor([0.3]), 0.3, "loss", match=r"0-d scalar .*shape \(1,\)")
    assert_check_fails(assert_close, torch.tensor([0.3]), torch.tensor(0.3), "loss", match=r"scalar should be 0-d")
    assert_scalar_close(torch.tensor(0.3), 0.3, "loss")
