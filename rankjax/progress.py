"""What long work shows while it runs, on stderr: progress bars, and a line around each compile.

A jitted function compiles on its first call with new shapes, silently, for seconds to minutes (a
train step, an LLM forward pass); `compiling` and `announcing` say so before and after:

  compiling train step (lists of 64 items) ...
  compiled train step (lists of 64 items) in 12.3 s

The lines go through `tqdm.write`, so a bar on stderr stays whole below them. This module imports
nothing of rankjax, nor jax, so every layer can use it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any

import tqdm


def bar(**kwargs) -> tqdm.tqdm:
  """A tqdm bar on stderr (stdout is a command's result), as wide as the terminal."""
  return tqdm.tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)


def say(line: str) -> None:
  """`line` on stderr, above any bar there."""
  tqdm.tqdm.write(line, file=sys.stderr)


@contextlib.contextmanager
def compiling(what: str, enabled: bool = True):
  """Says "compiling <what> ..." before the block and "compiled <what> in X s" after it.

  Put the first call of a jitted function in the block: the call returns once the function is
  compiled and its computation dispatched (JAX dispatches asynchronously), so X is about the
  tracing and compiling. A block that raises says nothing more.

  >>> import io, contextlib
  >>> err = io.StringIO()
  >>> with contextlib.redirect_stderr(err), compiling("a step"):
  ...   pass
  >>> before, after = err.getvalue().splitlines()
  >>> before, after.startswith("compiled a step in ")
  ('compiling a step ...', True)
  """
  if not enabled:
    yield
    return
  say(f"compiling {what} ...")
  start = time.perf_counter()
  yield
  say(f"compiled {what} in {time.perf_counter() - start:.1f} s")


def announcing(
  fn: Callable, what: str, *, shapes: Callable[..., Hashable] | None = None, enabled: bool = True
) -> Callable:
  """`fn` (a jitted function) saying when a call compiles: the first call, and each call whose
  `shapes(*args, **kwargs)` (what jit keys its cache on, described: "lists of 64 items") is new,
  runs under `compiling`. Other attributes are `fn`'s (`lower`, ...).

  >>> import io, contextlib
  >>> double = announcing(lambda x: 2 * x, "double", shapes=lambda x: f"{len(x)} items")
  >>> err = io.StringIO()
  >>> with contextlib.redirect_stderr(err):
  ...   _ = double([1]), double([2]), double([1, 2])
  >>> for line in err.getvalue().splitlines():
  ...   print(line.split(" in ")[0])
  compiling double (1 items) ...
  compiled double (1 items)
  compiling double (2 items) ...
  compiled double (2 items)
  """
  return _Announcing(fn, what, shapes, enabled)


class _Announcing:
  def __init__(self, fn, what, shapes, enabled):
    self._fn, self._what, self._shapes, self._enabled = fn, what, shapes, enabled
    self._seen: set = set()

  def __call__(self, *args, **kwargs) -> Any:
    key = self._shapes(*args, **kwargs) if self._shapes is not None else None
    if not self._enabled or key in self._seen:
      return self._fn(*args, **kwargs)
    what = self._what if key is None else f"{self._what} ({key})"
    with compiling(what):
      out = self._fn(*args, **kwargs)
    self._seen.add(key)
    return out

  def __getattr__(self, name: str) -> Any:
    return getattr(self._fn, name)
