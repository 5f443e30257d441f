"""The typed record layer: every click-log reader checks each field it reads through these.

A field is a JSON value (the generic layout) or the text of a column or an XML element (the
published layouts). Each check returns the field's typed value or raises `FieldError` naming the
field, which the reader counts as the skip `bad_field:<field>` (`ReadSummary.bad_field`) with the
record's file and line. Nothing is coerced: 1.7 is not a rank, "3" is not a JSON integer, `null` is
not a text, `true` is not a click count, -Infinity is not a label, and a string is not a list.

The allowed ranges (`Range`) are the formats' own; each reader's docstring lists those it uses.

>>> ints("ranks", [1, 2], 2, RANKS)
[1, 2]
>>> ints("ranks", [1.7, 2], 2, RANKS)
Traceback (most recent call last):
rankjax.data.readers.record.FieldError: ranks: item 0 is 1.7, not an integer
>>> numbers("labels", [None, 3], 2, Range(0, 4))
[nan, 3]
>>> parse_number("labels", "-inf", Range(0, 4))
Traceback (most recent call last):
rankjax.data.readers.record.FieldError: labels: '-inf' is not a finite number
"""

from __future__ import annotations

import dataclasses
import math

NAN = math.nan


class FieldError(ValueError):
  """A field of a record has the wrong type, range or length; `field` names it."""

  def __init__(self, field: str, message: str):
    super().__init__(f"{field}: {message}")
    self.field = field


@dataclasses.dataclass(frozen=True)
class Range:
  """A closed interval [lo, hi] of allowed values."""

  lo: float
  hi: float

  def __str__(self) -> str:
    return f"{self.lo}..{self.hi}"


# Ranges shared by the formats. Ranks are stored as int32 downstream.
RANKS = Range(1, 2**31 - 1)
COUNTS = Range(0, 1000)  # clicks on one document of one result list (bounds the click list)
SECONDS = Range(0, math.inf)  # dwell, finite
BUCKETS = Range(0, 9)  # Baidu-ULTR's frequency buckets, the one dataset-bucket map there is


# Digits of the longest count a layout holds; longer text is out of range before it is converted
# (Python refuses to convert more than 4,300 digits).
MAX_DIGITS = 18


def _kind(x) -> str:
  return "null" if x is None else f"{x!r}"[:40]


def identifier(field: str, value) -> str:
  """A non-empty string, or an integer (JSON logs write numeric ids), as its string."""
  if type(value) is str and value:
    return value
  if type(value) is int:
    return str(value)
  raise FieldError(field, f"{_kind(value)} is not a non-empty string or an integer")


def text(field: str, value) -> str | None:
  """A string, or None where the record has no such field."""
  if value is None or type(value) is str:
    return value
  raise FieldError(field, f"{_kind(value)} is not a string")


def _list(field: str, value, n: int | None) -> list:
  if type(value) is not list:
    raise FieldError(field, f"{_kind(value)} is not a list")
  if n is not None and len(value) != n:
    raise FieldError(field, f"{len(value)} items for {n} documents")
  return value


# Each list check first tries a test that runs in C (the usual case: all is well), and walks the
# list in Python only to name what is wrong.
_STR, _INT, _NUMBER = {str}, {int}, {int, float}


def ids(field: str, value) -> list[str]:
  """A list of non-empty strings."""
  if type(value) is list and set(map(type, value)) <= _STR and "" not in value:
    return value
  for i, x in enumerate(_list(field, value, None)):
    if type(x) is not str or not x:
      raise FieldError(field, f"item {i} is {_kind(x)}, not a non-empty string")
  return value


def texts(field: str, value, n: int) -> list[str]:
  """A list of `n` strings (possibly empty ones)."""
  if type(value) is list and len(value) == n and set(map(type, value)) <= _STR:
    return value
  for i, x in enumerate(_list(field, value, n)):
    if type(x) is not str:
      raise FieldError(field, f"item {i} is {_kind(x)}, not a string")
  return value


def integer(field: str, value, allowed: Range) -> int:
  """An integer (not a float, not a boolean) in `allowed`."""
  if type(value) is not int:
    raise FieldError(field, f"{_kind(value)} is not an integer")
  if not allowed.lo <= value <= allowed.hi:
    raise FieldError(field, f"{value} is outside {allowed}")
  return value


def ints(field: str, value, n: int | None, allowed: Range) -> list[int]:
  """A list of `n` (any number if None) integers in `allowed`."""
  if (
    type(value) is list
    and (n is None or len(value) == n)
    and set(map(type, value)) <= _INT
    and (not value or allowed.lo <= min(value) and max(value) <= allowed.hi)
  ):
    return value
  for i, x in enumerate(_list(field, value, n)):
    if type(x) is not int:
      raise FieldError(field, f"item {i} is {_kind(x)}, not an integer")
    if not allowed.lo <= x <= allowed.hi:
      raise FieldError(field, f"item {i} is {x}, outside {allowed}")
  return value


def numbers(field: str, value, n: int, allowed: Range) -> list[float]:
  """A list of `n` finite numbers in `allowed`, where null or NaN is "unknown" (NaN)."""
  if type(value) is list and len(value) == n:
    known = [x for x in value if x == x and x is not None]  # x != x: NaN
    if set(map(type, known)) <= _NUMBER and (
      not known
      or allowed.lo <= (lo := min(known))
      and (hi := max(known)) <= allowed.hi
      and -math.inf < lo
      and hi < math.inf
    ):
      return (
        value if len(known) == n or None not in value else [NAN if x is None else x for x in value]
      )
  out = []
  for i, x in enumerate(_list(field, value, n)):
    if x is None:
      x = NAN
    elif type(x) is not float and type(x) is not int:
      raise FieldError(field, f"item {i} is {_kind(x)}, not a number")
    elif x == x and not (allowed.lo <= x <= allowed.hi and -math.inf < x < math.inf):
      raise FieldError(field, f"item {i} is {x}, not a finite number in {allowed}")  # NaN: unknown
    out.append(x)
  return out


def parse_count(field: str, value: str | None, allowed: Range) -> int:
  """The text of a non-negative integer in `allowed` (ASCII digits only: no sign, point or
  space)."""
  if value is None or not (value.isdigit() and value.isascii()):
    raise FieldError(field, f"{value!r} is not a non-negative integer")
  if len(value) > MAX_DIGITS:
    raise FieldError(field, f"{value[:MAX_DIGITS]!r}... is outside {allowed}")
  x = int(value)
  if not allowed.lo <= x <= allowed.hi:
    raise FieldError(field, f"{x} is outside {allowed}")
  return x


def parse_counts(values: list[str | None], allowed: Range) -> list[int] | None:
  """The texts of non-negative integers in `allowed` (as `parse_count` takes them), converted
  together with checks that run in C; None if any is not one (`parse_count` says which and why).

  >>> parse_counts(["1", "2", "10"], RANKS), parse_counts(["1", "+2"], RANKS)
  ([1, 2, 10], None)
  """
  try:
    out = list(map(int, values))  # each a non-empty string of at most Python's 4,300 digits
  except (TypeError, ValueError):
    return None
  digits = "".join(values)  # int() also takes a sign, spaces, "_" and non-ASCII digits
  if not (out and digits.isdigit() and digits.isascii()):
    return None
  return out if allowed.lo <= min(out) and max(out) <= allowed.hi else None


def parse_number(field: str, value: str | None, allowed: Range) -> float:
  """The text of a finite number in `allowed`."""
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise FieldError(field, f"{value!r} is not a number") from None
  if not math.isfinite(x):
    raise FieldError(field, f"{value!r} is not a finite number")
  if not allowed.lo <= x <= allowed.hi:
    raise FieldError(field, f"{value!r} is outside {allowed}")
  return x
