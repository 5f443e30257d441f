"""Versioned prompt templates for the annotation modes, in English and Chinese.

A template is `templates/<mode>.<lang>.txt`: a `version: N` line, then a `[system]` and a `[user]`
section. The user section holds `{query}` and either `{document}` (pointwise) or `{documents}` and
`{n}` (listwise; documents are rendered as numbered "[i] text" blocks). The prompt version recorded
with every annotation is `<mode>.<lang>.v<N>+<sha256 of the file, 8 hex>`, so an edited template
can never be mistaken for the one that produced stored labels, even if its author forgot to bump N.

Placeholders stand at line starts so a prompt can be cut at `{query}` into a prefix shared by every
pair (the instruction) and a per-pair rest, without changing how the text tokenizes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
import re

TEMPLATE_DIR = pathlib.Path(__file__).parent / "templates"
POINTWISE = ("pointwise_graded", "pointwise_binary")
LISTWISE = ("listwise_graded", "listwise_select", "listwise_rank")
MODES = POINTWISE + LISTWISE
LANGS = ("en", "zh")
# Label scale of each mode's output before mapping: graded 0-4, binary/select 0-1, rank 0-4.
MAX_GRADE = {"pointwise_graded": 4, "pointwise_binary": 1, "listwise_graded": 4,
             "listwise_select": 1, "listwise_rank": 4}

# The follow-up after an unparsable answer, the same for every backend so failures compare.
REASK = ("Your answer could not be read ({error}). Answer again, following the required format "
         "exactly and writing nothing else.")


@dataclasses.dataclass(frozen=True)
class Template:
  mode: str
  lang: str
  system: str
  user: str
  version: str  # "<mode>.<lang>.v<N>+<hash8>"

  def messages(self, query: str, docs: list[str]) -> list[dict[str, str]]:
    """Chat messages for one query and its documents (exactly one for pointwise modes)."""
    if self.mode in POINTWISE:
      if len(docs) != 1:
        raise ValueError(f"{self.mode}: one document per prompt, got {len(docs)}")
      user = self.user.format_map({"query": query, "document": docs[0]})
    else:
      listing = "\n\n".join(f"[{i + 1}] {d}" for i, d in enumerate(docs))
      user = self.user.format_map({"query": query, "documents": listing, "n": len(docs)})
    return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def _parse(path: pathlib.Path, mode: str, lang: str) -> Template:
  text = path.read_text(encoding="utf-8")
  m = re.fullmatch(r"version: (\d+)\n\[system\]\n(.*?)\n\[user\]\n(.*?)\n?", text, re.S)
  if not m:
    raise ValueError(f"{path}: expected 'version: N', '[system]' and '[user]' sections")
  need = {"query", "document"} if mode in POINTWISE else {"query", "documents", "n"}
  found = set(re.findall(r"(?<!\{)\{(\w+)\}", m.group(3)))
  if found != need:
    raise ValueError(f"{path}: user section has placeholders {sorted(found)}, needs {sorted(need)}")
  digest = hashlib.sha256(text.encode()).hexdigest()[:8]
  return Template(mode, lang, m.group(2), m.group(3), f"{mode}.{lang}.v{m.group(1)}+{digest}")


@functools.cache
def load(mode: str, lang: str = "en", template_dir: str | None = None) -> Template:
  """The template for `mode` in `lang` (from `template_dir`, default the packaged templates).

  >>> t = load("pointwise_graded")
  >>> t.version.startswith("pointwise_graded.en.v1+")
  True
  >>> t.messages("jaguar speed", ["The jaguar runs at 80 km/h."])[1]["content"].splitlines()[1]
  'jaguar speed'
  """
  if mode not in MODES:
    raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
  if lang not in LANGS:
    raise ValueError(f"unknown language {lang!r}; known: {LANGS}")
  path = pathlib.Path(template_dir or TEMPLATE_DIR) / f"{mode}.{lang}.txt"
  return _parse(path, mode, lang)
