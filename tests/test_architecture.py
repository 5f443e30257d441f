"""The import graph of rankjax: layers point down, no cycle between modules or packages.

Every `import` counts, inside functions too: a lazy import still ties the layers together.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "rankjax"

# Bottom to top: code of a layer imports its own layer and the layers below, never one above.
# export_check loads a serving artifact with jax and numpy alone, so it imports nothing of rankjax
# (`tests/serve/test_export.py` runs it with flax and ml_collections blocked). errors is the base
# of the errors a user fixes (it imports nothing, so the program names them without importing what
# raises them). registry is the one rule of every registry (it imports only errors); progress what
# long work shows (it imports nothing of rankjax). configs sits above what its defaults describe
# (models' fields, the demo world's settings). serve loads what engine trained.
LAYERS = (
  "export_check",
  "errors",
  "registry",
  "progress",
  "ranking",
  "data",
  "models",
  "click_models",
  "annotate",
  "sim",
  "supervision",
  "configs",
  "engine",
  "serve",
  "study",
  "cli",
  "main",
)
NOT_LAYERED = ("__init__", "conftest")  # the package's docstring; the doctest fixtures


def _module_name(path: pathlib.Path) -> str:
  parts = ["rankjax", *path.relative_to(PACKAGE).with_suffix("").parts]
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(module: str) -> bool:
  return (PACKAGE.joinpath(*module.split(".")[1:]) / "__init__.py").exists()


def _imports(path: pathlib.Path, module: str, modules: set[str]) -> set[str]:
  """The rankjax modules `path` imports (a name imported from a package counts as its module)."""
  package = module if path.name == "__init__.py" else module.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names if a.name.split(".")[0] == "rankjax"}
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
      else:
        source = node.module or ""
      if source.split(".")[0] != "rankjax":
        continue
      for alias in node.names:
        child = f"{source}.{alias.name}"
        found.add(child if child in modules else source)
  return {m for m in found if m in modules} - {module}


def _graph() -> dict[str, set[str]]:
  paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
  # Cython modules are modules too; they import no rankjax module (only lxml's C API).
  compiled = {_module_name(p) for p in PACKAGE.rglob("*.pyx")}
  modules = set(paths) | compiled
  return {m: _imports(p, m, modules) for m, p in paths.items()} | {m: set() for m in compiled}


GRAPH = _graph()


def _layer(module: str) -> str | None:
  top = module.split(".")[1] if "." in module else "__init__"
  return None if top in NOT_LAYERED else top


def _package(module: str) -> str:
  """The package a module belongs to; a top-level module (registry, main) stands for itself."""
  if _is_package(module) or module.count(".") == 1:
    return module
  return module.rpartition(".")[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components with more than one node (Tarjan)."""
  index, low, on_stack, stack, out = {}, {}, set(), [], []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_every_top_level_module_or_package_has_a_layer():
  tops = {_layer(m) for m in GRAPH} - {None}
  assert tops <= set(LAYERS), f"not placed in LAYERS: {sorted(tops - set(LAYERS))}"


def test_layers_point_down():
  upward = [
    f"{m} imports {d}"
    for m, deps in GRAPH.items()
    for d in deps
    if _layer(m) and _layer(d) and LAYERS.index(_layer(d)) > LAYERS.index(_layer(m))
  ]
  assert not upward, "\n".join(upward)


def test_ranking_core_imports_only_the_registry():
  outside = [
    f"{m} imports {d}"
    for m, deps in GRAPH.items()
    if _layer(m) == "ranking"
    for d in deps
    if _layer(d) not in ("ranking", "registry")
  ]
  assert not outside, "\n".join(outside)


def test_no_cycle_between_modules():
  assert not _cycles(GRAPH)


def test_no_cycle_between_packages():
  packages: dict[str, set[str]] = {}
  for m, deps in GRAPH.items():
    packages.setdefault(_package(m), set()).update(
      _package(d) for d in deps if _package(d) != _package(m)
    )
  # A package's __init__ importing its own modules is the package itself, not an edge; an edge
  # from a sub-package up to its parent package and back is a cycle.
  assert not _cycles(packages)


@pytest.mark.parametrize(
  "graph,expected",
  [
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
  ],
)
def test_cycle_finder(graph, expected):
  assert _cycles(graph) == expected
