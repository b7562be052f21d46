"""What the pytest files share: the one way to say "this check rejects that planted bug", and the
small helpers several test files need. Test-only code: it is not part of the installed package."""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

from curriculum.checking import CheckFailed


def assert_check_fails(check_fn: Callable[..., Any], *args: Any, match: str | None = None, **kwargs: Any) -> CheckFailed:
    """`check_fn(*args, **kwargs)` must reject its input (a stub or a plausible learner bug) with
    CheckFailed, and, if `match` is given, with a message in which that regex occurs (use it to
    insist the message names the bug). Returns the CheckFailed so a test can read the message."""
    name = getattr(check_fn, "__name__", repr(check_fn))
    try:
        check_fn(*args, **kwargs)
    except CheckFailed as e:
        if match is not None and not re.search(match, str(e)):
            raise AssertionError(f"{name} failed, but its message does not match {match!r}:\n{e}") from e
        return e
    raise AssertionError(f"{name} accepted a mutant it should reject: {args!r}")


def mutant(obj: Any, *replacements: tuple[str, str]) -> Any:
    """`obj` (a top-level function or class of a reference module) rebuilt from its source with each
    (old, new) replacement applied: a planted bug, in the reference module's namespace."""
    source = inspect.getsource(obj)
    for old, new in replacements:
        assert old in source, f"mutant does not apply: {old!r} not in {obj.__name__}"
        source = source.replace(old, new)
    ns = dict(vars(inspect.getmodule(obj)))
    exec(compile(source, f"<mutant of {obj.__name__}>", "exec"), ns)
    return ns[obj.__name__]

