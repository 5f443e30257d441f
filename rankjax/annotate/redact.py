"""Credentials out of text before it is stored, logged or printed.

A server's or a proxy's error body can echo the request, headers included (a 401 page that shows
the `Authorization` it rejected); that text goes to the store's `error` column, the log and the
summary. `redact` removes the API key itself (every exact occurrence) and whatever looks like a
credential: `Authorization:` and `Proxy-Authorization:` values, `Bearer ...` tokens, `api-key` /
`x-api-key` / `api_key` values, and `sk-...` style keys. It keeps the names, so the message still
says what was there.

>>> redact('401: {"Authorization": "Bearer abc.def", "x-api-key": "k1"}')
'401: {"Authorization": "[REDACTED]", "x-api-key": "[REDACTED]"}'
>>> redact("key sk-proj-0123456789abcdef rejected")
'key [REDACTED] rejected'
>>> redact("echo: my-secret-value", secrets=["my-secret-value"])
'echo: [REDACTED]'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MARK = "[REDACTED]"

# A header or field name, its separator (`: `, `=`, `": "`), then the value up to the end of the
# quoted string, line, or field.
_NAMED = re.compile(
  r"""(?ix)
  \b((?:proxy-)?authorization|(?:x-)?api[-_]?key)   # the name
  (["']?\s*[:=]\s*["']?)                            # the separator, quotes included
  [^"'\r\n,;&}]+                                    # the value
  """
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_SK = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")


def redact(text: str | None, secrets: Iterable[str | None] = ()) -> str | None:
  """`text` without `secrets` (exact strings) and anything shaped like a credential."""
  if not text:
    return text
  for secret in secrets:
    if secret:
      text = text.replace(secret, MARK)
  text = _NAMED.sub(lambda m: f"{m[1]}{m[2]}{MARK}", text)
  text = _BEARER.sub(MARK, text)
  return _SK.sub(MARK, text)
