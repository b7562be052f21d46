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

import contextlib
import functools
import math
import sysconfig
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from curriculum.progress import record_pass


class CheckFailed(AssertionError):
    """Raised by a check when the learner's implementation is wrong. The message is for a learner."""

    def _render_traceback_(self) -> list[str]:
        # IPython prints these lines instead of a traceback through the checking code: the message
        # already names the bug and, where one is known, the learner's line.
        return str(self).splitlines()


def fail(message: str) -> None:
    raise CheckFailed(message)


_CHECKS_DIR = Path(__file__).resolve().parent / "checks"
_UTILS_DIR = Path(__file__).resolve().parent / "utils"
_THIS_FILE = Path(__file__).resolve()
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def _origin(filename: str) -> str:
    """Who wrote the code of a traceback frame: "library" (torch, other packages, the standard library),
    "check" (this module and curriculum/checks) or "learner" (everything else: notebook cells, and in
    the project's own tests the reference solutions and their planted-bug mutants)."""
    if filename.startswith("<frozen") or "site-packages" in filename or "dist-packages" in filename:
        return "library"
    if not filename.startswith("<") and Path(filename).resolve().is_relative_to(_UTILS_DIR):
        return "library"  # the project's shared utilities, called by checks and learners alike
    path = Path(filename).resolve() if not filename.startswith("<") else None
    if path is None:
        return "learner"  # <ipython-input-...>, exec'd code
    if path == _THIS_FILE or path.is_relative_to(_CHECKS_DIR):
        return "check"
    if path.is_relative_to(_STDLIB):
        return "library"
    return "learner"


def _frames(e: BaseException) -> list[tuple[str, traceback.FrameSummary]]:
    return [(_origin(f.filename), f) for f in traceback.extract_tb(e.__traceback__)]


def _at(frame: traceback.FrameSummary) -> str:
    return f"\n  (raised at {frame.filename}:{frame.lineno}: {frame.line})"


def _explain(name: str, e: Exception) -> str:
    """The learner-facing message for an exception that escaped a check."""
    frames = _frames(e)
    learner = [f for origin, f in frames if origin == "learner"]
    if isinstance(e, NotImplementedError):
        # the stub's own `raise NotImplementedError(hint)`, as opposed to one torch raised from C++ or
        # from its Python code (meta tensors, an op MPS lacks) while running the learner's line
        origin, last = frames[-1] if frames else ("learner", None)
        if origin == "learner" and (last is None or not last.line or "NotImplementedError" in last.line):
            hint = f" Hint: {e}" if str(e) else ""
            return f"✗ {name}: this exercise still raises NotImplementedError.{hint}"
        where = _at(learner[-1]) if learner else ""
        return (
            f"✗ {name}: torch raised NotImplementedError inside an operation your code called: {e}{where}\n"
            "  This is not the exercise's stub: the operation is not implemented for this device or kind of tensor "
            "(a meta tensor, or an op MPS lacks). Try it on the CPU (e.g. device='cpu'), or on a Mac set "
            "PYTORCH_ENABLE_MPS_FALLBACK=1 before starting Python."
        )
    if learner:
        return f"✗ {name}: your code raised {type(e).__name__}: {e}{_at(learner[-1])}"
    checking = [f for origin, f in frames if origin == "check"]
    where = _at(checking[-1]) if checking else ""
    return (
        f"✗ {name}: the check itself raised {type(e).__name__}: {e}{where}\n"
        "  Your code returned without an error, so this usually means it returned something of an unexpected "
        "type or shape: compare what you return with the docstring. If it matches, this is a bug in the check, "
        "not in your code: please report it with this message."
    )


def check(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a function of assertions into a learner-facing check.

    - success: prints `✓ <name> passed` (plus any returned string) and returns None
    - `NotImplementedError` raised by the learner's own code: says the exercise is still a stub;
      one raised inside torch (meta tensors, MPS) says so instead
    - any other exception: says whether it came from the learner's code (and which line) or from
      the check itself
    - a check of the curriculum that passes is recorded in the learner's progress file (curriculum.progress)
    """
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            extra = fn(*args, **kwargs)
        except CheckFailed as e:
            raise CheckFailed(f"✗ {name}: {e}") from None
        except NotImplementedError as e:
            raise CheckFailed(_explain(name, e)) from None
        except Exception as e:  # noqa: BLE001 - anything the learner's code (or the check) raised
            raise CheckFailed(_explain(name, e)) from e
        print(f"✓ {name} passed" + (f": {extra}" if isinstance(extra, str) else ""))
        if fn.__module__.startswith("curriculum.checks."):
            record_pass(f"{fn.__module__}.{name}")

    wrapper.is_check = True  # type: ignore[attr-defined]
    return wrapper


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
        if not shape and tuple(got.shape) == (1,):
            msg += " (a scalar should be 0-d: reduce with .mean()/.sum() over every axis, or .squeeze())"
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
    # NaN or inf where the reference has a finite value (a -inf the reference also has, e.g. from a
    # causal mask, is fine): say so before any arithmetic turns it into an unreadable difference
    stray = ~torch.isfinite(g) & ~((g == e) | (torch.isnan(g) & torch.isnan(e)))
    if stray.any():
        idx = tuple(int(i) for i in torch.nonzero(stray)[0])
        fail(f"{what} contains {_nonfinite(g[idx].item())} at index {idx} where {e[idx].item():.6g} was expected "
             f"({int(stray.sum())}/{stray.numel()} entries)" + (f". {hint}" if hint else ""))
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


def _nonfinite(x: float) -> str:
    return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def assert_finite(got: Any, what: str = "output", hint: str = "", allow_neg_inf: bool = False) -> Tensor:
    """Reject NaN and inf (optionally allowing -inf, the value of a masked-out logit)."""
    got = as_tensor(got, what)
    if got.is_floating_point():
        bad = torch.isnan(got) | (torch.isinf(got) if not allow_neg_inf else torch.isposinf(got))
        if bad.any():
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            fail(f"{what} contains {_nonfinite(got[idx].item())} (first at index {idx}; {int(bad.sum())} entries)"
                 + (f". {hint}" if hint else ""))
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
        if got.ndim != 0:
            fail(
                f"{what} should be a 0-d scalar tensor (shape ()), got shape {tuple(got.shape)}: reduce over every axis "
                "(.mean() or .sum() with no dim), don't keep a dimension (keepdim=True, or indexing with [i:i+1]), "
                "or .squeeze() a (1,)-shaped result"
            )
        got = got.item()
    if not isinstance(got, (int, float)):
        fail(f"{what} should be a number, got {type(got).__name__}")
    if not math.isfinite(got) and math.isfinite(expected):
        fail(f"{what} is {_nonfinite(got)}, expected {expected:.6g}" + (f". {hint}" if hint else ""))
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


@contextlib.contextmanager
def on_optimizer_steps(
    before: Callable[[torch.optim.Optimizer], None] | None = None,
    after: Callable[[torch.optim.Optimizer], None] | None = None,
):
    """While active, call `before(optimizer)` just before and `after(optimizer)` just after every
    `optimizer.step()` of any optimizer, including one the learner's code builds (torch's global step
    hooks); the hooks are removed on exit, whatever happens. Lets a check see what a training loop
    steps with (gradients, learning rates) without asking the learner to hand over their optimizer."""
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    handles = []
    if before is not None:
        handles.append(register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: before(optimizer)))
    if after is not None:
        handles.append(register_optimizer_step_post_hook(lambda optimizer, args, kwargs: after(optimizer)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
