"""Pieces chosen by name: the one rule every registry of rankjax follows, and its one error.

A registry is either one dict in its kind's package (name -> function, class or record), filled
where each entry is defined with `register`, or the modules of a package (`lookup_module`: the
file name is the name, as big_vision's `models/`). Either way a name is found with one lookup,
and an unknown name raises `UnknownName`, listing the known names.

This module imports nothing of rankjax but the error base `rankjax.errors`, so every layer, the
ranking core included, can use it.
"""

import importlib
import pkgutil
import types
from typing import Callable, Mapping, MutableMapping, TypeVar

from rankjax.errors import UserError

T = TypeVar("T")


class UnknownName(UserError, KeyError, ValueError):
  """A name that its registry does not hold; the message lists the known names.

  A user error (the name was the user's choice), a KeyError (a lookup failed) and a ValueError (a
  config value is wrong), so callers may catch any of them.
  """

  def __str__(self) -> str:  # KeyError's str() would quote the message
    return str(self.args[0])


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
  """`registry[name]`, or `UnknownName` naming `what` and listing the known names.

  >>> lookup({"a": 1, "b": 2}, "b", "thing")
  2
  >>> lookup({"a": 1}, "z", "thing")
  Traceback (most recent call last):
  rankjax.registry.UnknownName: unknown thing 'z'; known: a
  """
  try:
    return registry[name]
  except (KeyError, TypeError):  # TypeError: an unhashable name, e.g. a list from a config
    raise UnknownName(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))}") from None


def register(registry: MutableMapping[str, T], name: str | None = None) -> Callable[[T], T]:
  """A decorator entering what it decorates into `registry` as `name` (default: its `__name__`).

  Registering a name twice is an error: a second entry would silently replace the first.

  >>> things = {}
  >>> @register(things, "double")
  ... def twice(x):
  ...   return 2 * x
  >>> things["double"](3)
  6
  """

  def add(entry: T) -> T:
    key = name or entry.__name__
    if key in registry:
      raise ValueError(f"{key!r} is registered twice ({registry[key]!r} and {entry!r})")
    registry[key] = entry
    return entry

  return add


def module_names(package: types.ModuleType) -> list[str]:
  """The public modules of `package` (not its sub-packages, nor names starting with "_").

  >>> import rankjax.models
  >>> "mlp" in module_names(rankjax.models), "layers" in module_names(rankjax.models)
  (True, False)
  """
  return sorted(
    m.name
    for m in pkgutil.iter_modules(package.__path__)
    if not m.ispkg and not m.name.startswith("_")
  )


def lookup_module(package: types.ModuleType, name: str, what: str) -> types.ModuleType:
  """The module `<package>.<name>`, or `UnknownName` listing the package's modules.

  >>> import rankjax.models
  >>> lookup_module(rankjax.models, "mlp", "model").__name__
  'rankjax.models.mlp'
  >>> lookup_module(rankjax.models, "layers", "model")  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  rankjax.registry.UnknownName: unknown model 'layers'; known: ...
  """
  known = module_names(package)
  if name not in known:
    raise UnknownName(f"unknown {what} {name!r}; known: {', '.join(known)}")
  return importlib.import_module(f"{package.__name__}.{name}")
