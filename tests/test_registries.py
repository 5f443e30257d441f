"""No test or doctest pins the names a registry holds.

A registry grows by one `register` call (a toy in a test file, a user's own entry), so a check that
spells out every registered name fails for an addition that broke nothing. Check a registry by
parameterizing over it, or by asserting that one name is in it.

The registries are found in the code, not listed here: every UPPER_CASE dict that rankjax passes
to `registry.register` or `registry.lookup` (`LOSSES`, `MODELS`, `bert.SIZES`, ...), plus the
packages `registry.module_names` lists. The scan flags, in tests/ and in the doctests of rankjax/:

1. a registry's names compared with a literal: `sorted(R) == [...]`, `set(R) == {...}`,
   `list(R)`, `tuple(R)`, `frozenset(R)` or `R.keys()` likewise, `len(R) == 6`, and
   `module_names(package) == [...]`;
2. a doctest example that prints a registry's names (`>>> sorted(R)`, also inside a tuple);
3. an `UnknownName` message that spells the known names out: in a test's `match=` pattern,
   "known: " followed by a name instead of `.*` (it pins the first name in sorted order); in a
   doctest's expected output, "known: " followed by two or more names (`registry.lookup`'s own
   example looks a name up in a one-name table of its own, which pins nothing).
"""

import ast
import doctest
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_NAMES_OF = {"sorted", "set", "list", "tuple", "frozenset", "len"}
_LITERALS = (ast.List, ast.Set, ast.Tuple, ast.Dict, ast.Constant)
_PATTERN_PIN = re.compile(r"known: [\w-]")  # a name right after "known: ", not .* or \w+
_OUTPUT_PIN = re.compile(r"known: [\w-]+(, [\w-]+)+")


def _terminal(node: ast.AST) -> str | None:
  """`X` of `X` or `a.b.X`."""
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute):
    return node.attr
  return None


def _registries() -> set[str]:
  """The UPPER_CASE names rankjax passes as the table of `register` or `lookup`."""
  found = set()
  for path in (ROOT / "rankjax").rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      if (
        isinstance(node, ast.Call) and _terminal(node.func) in ("register", "lookup") and node.args
      ):
        name = _terminal(node.args[0])
        if name and name.isupper():
          found.add(name)
  return found


REGISTRIES = _registries()


def _names_of_a_registry(node: ast.AST, registries: set[str]) -> bool:
  """Whether `node` evaluates to a registry's names (or their count)."""
  if not isinstance(node, ast.Call):
    return False
  if _terminal(node.func) == "module_names":
    return True
  if isinstance(node.func, ast.Attribute) and node.func.attr == "keys":
    return _terminal(node.func.value) in registries
  if isinstance(node.func, ast.Name) and node.func.id in _NAMES_OF and len(node.args) == 1:
    arg = node.args[0]
    return _terminal(arg) in registries or _names_of_a_registry(arg, registries)
  return False


def _pinned_comparisons(tree: ast.AST, registries: set[str]) -> list[int]:
  """Lines comparing a registry's names with a literal (rule 1)."""
  lines = []
  for node in ast.walk(tree):
    if (
      isinstance(node, ast.Compare)
      and len(node.comparators) == 1
      and isinstance(node.ops[0], (ast.Eq, ast.NotEq))
    ):  # not `in`: membership is the check
      sides = (node.left, node.comparators[0])
      if any(
        _names_of_a_registry(a, registries) and isinstance(b, _LITERALS)
        for a, b in (sides, sides[::-1])
      ):
        lines.append(node.lineno)
  return lines


def _pinned_patterns(tree: ast.AST) -> list[int]:
  """Lines of a `match=` pattern that spells a known name out (rule 3, tests)."""
  lines = []
  for node in ast.walk(tree):
    if isinstance(node, ast.keyword) and node.arg == "match":
      text = "".join(
        c.value
        for c in ast.walk(node.value)
        if isinstance(c, ast.Constant) and isinstance(c.value, str)
      )
      if _PATTERN_PIN.search(text):
        lines.append(node.value.lineno)
  return lines


def pins_in_test(source: str, registries: set[str]) -> list[str]:
  """What the rules flag in the source of a test file: "line N: ..." each."""
  tree = ast.parse(source)
  return [
    f"line {n}: a registry's names compared with a literal"
    for n in _pinned_comparisons(tree, registries)
  ] + [f"line {n}: a match= pattern names the first known name" for n in _pinned_patterns(tree)]


def pins_in_doctests(source: str, registries: set[str]) -> list[str]:
  """What the rules flag in the doctests of a module's source: "name: ..." each."""
  out = []
  docstrings = [
    (getattr(node, "name", "module"), ast.get_docstring(node, clean=False))
    for node in ast.walk(ast.parse(source))
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
  ]
  for name, docstring in docstrings:
    for example in doctest.DocTestParser().get_examples(docstring or ""):
      tree = ast.parse(example.source)
      printed = [s.value for s in tree.body if isinstance(s, ast.Expr)]
      printed += [e for value in printed if isinstance(value, ast.Tuple) for e in value.elts]
      if any(_names_of_a_registry(value, registries) for value in printed):
        out.append(f"{name}: >>> {example.source.strip()} prints a registry's names")
      if _pinned_comparisons(tree, registries):
        out.append(f"{name}: >>> {example.source.strip()} compares a registry's names")
      if _OUTPUT_PIN.search(example.want):
        out.append(f"{name}: the output of >>> {example.source.strip()} lists the known names")
  return out


def test_the_scan_finds_the_registries():
  assert {"LOSSES", "MODELS", "MODES", "FORMATS", "SIZES"} <= REGISTRIES


def test_the_rules_flag_pins_and_pass_checks_by_member():
  registries = {"LOSSES"}
  pinned = """
assert sorted(losses.LOSSES) == ["a", "b"]
assert {"a", "b"} == set(LOSSES.keys())
assert len(losses.LOSSES) == 2
assert registry.module_names(rankjax.models) == ["cross_encoder", "mlp"]
with pytest.raises(KeyError, match="unknown loss 'x'; known: approx_ndcg"):
  pass
"""
  assert len(pins_in_test(pinned, registries)) == 5
  fine = """
assert "softmax" in losses.LOSSES and set(RAX) <= set(losses.LOSSES)
assert sorted(other_dict) == ["a"]
with pytest.raises(KeyError, match="unknown loss 'x'; known: .*softmax"):
  pass
@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_each(name):
  pass
"""
  assert not pins_in_test(fine, registries)
  module = '''
"""Doc.

>>> sorted(LOSSES)
['a', 'b']
>>> len(LOSSES), "a" in LOSSES
(2, True)
>>> get("z")
Traceback (most recent call last):
UnknownName: unknown loss 'z'; known: a, b
>>> lookup({"a": 1}, "z", "thing")
Traceback (most recent call last):
UnknownName: unknown thing 'z'; known: a
"""
'''
  assert len(pins_in_doctests(module, registries)) == 3


def _files(folder: str):
  return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files("tests"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_test_pins_a_registry(path):
  assert not pins_in_test(path.read_text(encoding="utf-8"), REGISTRIES)


@pytest.mark.parametrize("path", _files("rankjax"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_doctest_pins_a_registry(path):
  assert not pins_in_doctests(path.read_text(encoding="utf-8"), REGISTRIES)
