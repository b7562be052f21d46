"""The check contract every exercise uses.

A check is a function `check_<thing>(learner_object)` decorated with `@check`. Called from a
notebook it prints one success line, or raises `CheckFailed` with a message that says what
differs (shape, value, which index) and, where it can, what the likely bug is. It never lets a
bare traceback from deep inside torch reach the learner: errors raised by the learner's code are
wrapped in a `CheckFailed` that names the exercise and the original error.

pytest runs every check twice (see tests/test_exercises.py): on the reference solution, where it
must pass, and on the generated stub, where it must raise `CheckFailed`.
"""

from __future__ import annotations

import functools
import math
import traceback
from typing import Any, Callable, Sequence

import torch
from torch import Tensor


class CheckFailed(AssertionError):
    """Raised by a check when the learner's implementation is wrong. The message is for a learner."""


def fail(message: str) -> None:
    raise CheckFailed(message)


def check(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a function of assertions into a learner-facing check.

    - success: prints `✓ <name> passed` (plus any returned string) and returns None
    - `NotImplementedError` from the learner's code: says the exercise is still a stub
    - any other exception from the learner's code: wrapped with the check's name and the error
    """
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            extra = fn(*args, **kwargs)
        except CheckFailed as e:
            raise CheckFailed(f"✗ {name}: {e}") from None
        except NotImplementedError as e:
            hint = f" Hint: {e}" if str(e) else ""
            raise CheckFailed(f"✗ {name}: this exercise still raises NotImplementedError.{hint}") from None
        except Exception as e:  # noqa: BLE001 - anything the learner's code raised
            where = _learner_frame(e)
            raise CheckFailed(
                f"✗ {name}: your code raised {type(e).__name__}: {e}{where}"
            ) from e
        print(f"✓ {name} passed" + (f": {extra}" if isinstance(extra, str) else ""))

    wrapper.is_check = True  # type: ignore[attr-defined]
    return wrapper


def _learner_frame(e: BaseException) -> str:
    """Point at the innermost frame outside torch/site-packages: usually the learner's line."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "site-packages" not in f.filename]
    frames = [f for f in frames if not f.filename.endswith("checking.py")]
    if not frames:
        return ""
    f = frames[-1]
    return f"\n  (raised at {f.filename}:{f.lineno}: {f.line})"


def as_tensor(got: Any, what: str) -> Tensor:
    """Reject None, tuples and numpy arrays with a message before any torch op touches them."""
    if got is None:
        fail(f"{what} is None: did you forget a `return`?")
    if isinstance(got, (tuple, list)) and not isinstance(got, Tensor):
        fail(f"{what} should be a single tensor, got a {type(got).__name__} of length {len(got)}")
    if not isinstance(got, Tensor):
        fail(f"{what} should be a torch.Tensor, got {type(got).__name__}")
    return got


def assert_shape(got: Any, shape: Sequence[int], what: str = "output", hint: str = "") -> Tensor:
    got = as_tensor(got, what)
    if tuple(got.shape) != tuple(shape):
        msg = f"{what} should have shape {tuple(shape)}, got {tuple(got.shape)}"
        if got.ndim == len(shape) - 1:
            msg += " (one axis too few: did you reduce over an axis you should keep?)"
        elif got.ndim == len(shape) + 1:
            msg += " (one axis too many: did you forget a sum/mean or a squeeze?)"
        fail(msg + (f". {hint}" if hint else ""))
    return got


def assert_close(
    got: Any,
    expected: Tensor,
    what: str = "output",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str = "",
) -> Tensor:
    """Compare shapes, dtypes (floating vs integer) and values; report the worst index."""
    got = assert_shape(got, expected.shape, what)
    if got.is_floating_point() != expected.is_floating_point():
        fail(f"{what} should have dtype like {expected.dtype}, got {got.dtype}")
    g = got.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if torch.isnan(g).any() and not torch.isnan(e).any():
        idx = tuple(int(i) for i in torch.nonzero(torch.isnan(g))[0])
        fail(f"{what} contains NaN (first at index {idx})" + (f". {hint}" if hint else ""))
    err = (g - e).abs()
    tol = atol + rtol * e.abs()
    bad = err > tol
    if bad.any():
        idx = tuple(int(i) for i in torch.nonzero(bad)[0]) if err.ndim else ()
        worst = float(err.max())
        n_bad, n = int(bad.sum()), bad.numel()
        at = f" at index {idx}" if idx else ""
        fail(
            f"{what} differs from the expected value{at}: expected {e[idx].item():.6g}, got {g[idx].item():.6g} "
            f"({n_bad}/{n} entries off, largest error {worst:.3g})" + (f". {hint}" if hint else "")
        )
    return got


def assert_equal(got: Any, expected: Any, what: str = "output", hint: str = "") -> None:
    """Exact equality for ints, lists and integer tensors."""
    if isinstance(expected, Tensor):
        got_t = assert_shape(got, expected.shape, what)
        if not torch.equal(got_t.cpu(), expected.cpu()):
            idx = tuple(int(i) for i in torch.nonzero(got_t.cpu() != expected.cpu())[0])
            fail(
                f"{what} differs at index {idx}: expected {expected[idx].item()}, got {got_t[idx].item()}"
                + (f". {hint}" if hint else "")
            )
        return
    if got != expected:
        fail(f"{what}: expected {expected!r}, got {got!r}" + (f". {hint}" if hint else ""))


def assert_scalar_close(got: Any, expected: float, what: str, rel: float = 1e-4, abs_: float = 1e-6, hint: str = "") -> None:
    if isinstance(got, Tensor):
        if got.numel() != 1:
            fail(f"{what} should be a scalar, got a tensor of shape {tuple(got.shape)}")
        got = got.item()
    if not isinstance(got, (int, float)):
        fail(f"{what} should be a number, got {type(got).__name__}")
    if not math.isclose(got, expected, rel_tol=rel, abs_tol=abs_):
        fail(f"{what}: expected {expected:.6g}, got {got:.6g}" + (f". {hint}" if hint else ""))


def module_instance(cls: Any, *args, what: str | None = None, **kwargs) -> torch.nn.Module:
    """Instantiate a learner's nn.Module class, with a clear message if they passed an instance."""
    what = what or getattr(cls, "__name__", "your class")
    if isinstance(cls, torch.nn.Module):
        fail(f"pass the class {type(cls).__name__} itself to the check, not an instance of it")
    obj = cls(*args, **kwargs)
    if not isinstance(obj, torch.nn.Module):
        fail(f"{what} should subclass torch.nn.Module")
    return obj


def randomise_parameters(module: torch.nn.Module, std: float = 0.5, seed: int = 0) -> None:
    """Give every parameter (biases and norm weights too) distinct random values, so a bug cannot hide
    behind a zero-initialised layer or a weight of exactly one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
