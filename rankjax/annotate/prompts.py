"""Versioned prompt templates for the annotation modes (`modes.MODES`), in English and Chinese.

A template is `templates/<mode>.<lang>.txt`: a `version: N` line, then a `[system]` and a `[user]`
section. The user section holds the placeholders of the mode's shape (`modes.SHAPES`): `{query}`
and either `{document}` (pointwise) or `{documents}` and `{n}` (listwise; documents are rendered
as numbered "[i] text" blocks). Every registered mode has a template per language. The prompt
version recorded with every annotation is `<mode>.<lang>.v<N>+<sha256 of the file, 8 hex>`, so an
edited template can never be mistaken for the one that produced stored labels, even if its author
forgot to bump N.

Placeholders stand at line starts so a prompt can be cut at `{query}` into a prefix shared by every
pair (the instruction) and a per-pair rest, without changing how the text tokenizes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
import re

from rankjax import registry
from rankjax.annotate import modes

TEMPLATE_DIR = pathlib.Path(__file__).parent / "templates"
# The languages every registered mode has a template in: code -> the language's name.
LANGS = {"en": "English", "zh": "Chinese"}

# The follow-up after an unparsable answer, the same for every backend so failures compare.
REASK = (
  "Your answer could not be read ({error}). Answer again, following the required format "
  "exactly and writing nothing else."
)


@dataclasses.dataclass(frozen=True)
class Template:
  spec: modes.Mode  # the mode's record
  lang: str
  system: str
  user: str
  version: str  # "<mode>.<lang>.v<N>+<hash8>"

  @property
  def mode(self) -> str:
    """The mode's name, as the store records it."""
    return self.spec.name

  def messages(self, query: str, docs: list[str]) -> list[dict[str, str]]:
    """Chat messages for one query and its documents (exactly one for pointwise modes)."""
    user = self.user.format_map(self.spec.fields(query, docs))
    return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


@functools.cache
def _parse(path: pathlib.Path, spec: modes.Mode, lang: str) -> Template:
  text = path.read_text(encoding="utf-8")
  m = re.fullmatch(r"version: (\d+)\n\[system\]\n(.*?)\n\[user\]\n(.*?)\n?", text, re.S)
  if not m:
    raise ValueError(f"{path}: expected 'version: N', '[system]' and '[user]' sections")
  found = set(re.findall(r"(?<!\{)\{(\w+)\}", m.group(3)))
  if found != spec.placeholders:
    raise ValueError(
      f"{path}: user section has placeholders {sorted(found)}, needs "
      f"{sorted(spec.placeholders)} ({spec.shape} mode)"
    )
  digest = hashlib.sha256(text.encode()).hexdigest()[:8]
  return Template(spec, lang, m.group(2), m.group(3), f"{spec.name}.{lang}.v{m.group(1)}+{digest}")


def load(mode: str, lang: str = "en", template_dir: str | None = None) -> Template:
  """The template for the mode named `mode` in `lang` (from `template_dir`, default the packaged
  templates); `registry.UnknownName` for a mode or a language (`LANGS`) that is not registered.

  >>> t = load("pointwise_graded")
  >>> t.version.startswith("pointwise_graded.en.v1+")
  True
  >>> t.messages("jaguar speed", ["The jaguar runs at 80 km/h."])[1]["content"].splitlines()[1]
  'jaguar speed'
  """
  spec = modes.get(mode)
  registry.lookup(LANGS, lang, "language")
  path = pathlib.Path(template_dir or TEMPLATE_DIR) / f"{mode}.{lang}.txt"
  return _parse(path, spec, lang)
