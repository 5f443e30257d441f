"""Pieces chosen by name: one lookup for the small registries (losses, metrics, objectives...)."""

from typing import Mapping, TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
  """`registry[name]`, or a KeyError naming `what` and listing the known names.

  >>> lookup({"a": 1, "b": 2}, "b", "thing")
  2
  >>> lookup({"a": 1}, "z", "thing")
  Traceback (most recent call last):
  KeyError: "unknown thing 'z'; known: a"
  """
  try:
    return registry[name]
  except KeyError:
    raise KeyError(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))}") from None
