"""Any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp server, OpenAI), through
the `openai` client (its `base_url` reaches any of them).

The client builds the request, sends the key, pools connections and enforces the timeout; its own
retries are off (`max_retries=0`) and ours run instead, because the client's cannot do what a run
needs: its backoff is fixed (0.5 s doubling to 8 s, not configurable), it does not say how many
retries it made when it gives up, it ignores a `Retry-After` over 60 s by not retrying at all, and
it never retries a 200 whose body is not a chat completion. So, per request:

  * at most `concurrency` requests in flight, and at most `max_rps` started per second;
  * 429, 5xx (and 408/409/425), timeouts, refused or reset connections, and a 200 whose body is
    not a chat completion (not JSON, e.g. a proxy's HTML page; truncated JSON; `choices` missing,
    empty or not a list; no message; fields of the wrong type) are retried with exponential
    backoff and jitter (honouring `Retry-After`), up to `max_retries` times; a server that dies
    and comes back within that window costs nothing. Then:
  * a server that kept answering with bodies that are not chat completions: a recorded failure
    for the task, naming what was wrong;
  * a server that could not be reached (or kept answering 429/5xx): the result has status
    "unreachable", which the runner counts and does not store (so a rerun asks again); after
    `max_consecutive_failures` of them in a row the backend takes no new tasks (the server is
    down: stop, rerun later);
  * another 4xx is the request's fault: a recorded failure with the status and message;
  * an answer that does not parse gets one re-ask (the model sees its answer and the parse error);
    a second unparsable answer is a recorded failure with both outputs' error.

A pointwise label is the answer's text (`grade_from="text"`, the default), or, with
`grade_from="logprobs"`, the most probable grade token among the answer's first token's
`top_logprobs`: the local JAX backend's label (the argmax over the grade tokens at the answer's
first position; grades outside the top tokens are less probable than any listed, so the argmax is
exact when one grade is listed), for small models that answer in prose ("The document is not
relevant...") though their first-token probabilities rank the grades. That label needs one token,
so it is asked for alone (`max_tokens=1`; the store keeps that token as the answer): a server that
builds `top_logprobs` for every generated token answers in a fraction of the time
(llama-cpp-python's: 0.3 s instead of 3-6 s for SmolLM2 on 2 CPU cores). Where its top tokens hold
no grade, the whole answer is asked for and its text decides.

`timeout_s` bounds each read from the socket (httpx's timeout): a server that sends nothing for
that long is a timeout, one that trickles a byte at a time within it is not.

The API key is read from the environment variable `api_key_env` at every request (a rotated key is
used at once) and only ever sent in the Authorization header; no key: no header (local servers).
Every error text is redacted (`redact.redact`: the key itself and anything shaped like a
credential) before it is logged, stored or returned. Token usage (the server's `usage`) is added up
per task, re-asks included; `requests` and `retries` count HTTP requests made and repeated.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import openai

from rankjax.annotate import modes, parsing, prompts, redact
from rankjax.annotate.tasks import Result, Task

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Where a pointwise label comes from (module doc).
GRADE_FROM = ("text", "logprobs")


class TransportError(RuntimeError):
  """The server could not be reached or kept failing after all retries."""


class BadResponse(ValueError):
  """A 200 answer whose body is not a chat completion (after all retries: a recorded failure)."""


class Refused(RuntimeError):
  """A 4xx other than the retried ones: the request's fault (a recorded failure)."""


class RateLimiter:
  """Starts at most `rate` calls per second across threads (evenly spaced)."""

  def __init__(self, rate: float | None):
    self._interval = 0.0 if not rate else 1.0 / rate
    self._next = 0.0
    self._lock = threading.Lock()

  def wait(self):
    if not self._interval:
      return
    with self._lock:
      now = time.monotonic()
      start = max(now, self._next)
      self._next = start + self._interval
    time.sleep(max(0.0, start - now))


def _fields(obj, where: str, **types) -> dict:
  """`obj` (a JSON object) checked to hold the fields `types` names with those types (a field
  given a tuple with None may be absent or null); raises BadResponse naming the first that does
  not."""
  if not isinstance(obj, dict):
    raise BadResponse(f"{where} is {type(obj).__name__}, not an object")
  for name, want in types.items():
    value = obj.get(name)
    if not isinstance(value, want):
      got = "missing" if name not in obj else type(value).__name__
      raise BadResponse(f"{where}.{name} is {got}")
  return obj


def read_reply(body) -> tuple[str, tuple[int, int], dict[str, float] | None]:
  """The answer text, (prompt, completion) tokens and the grade's top logprobs (if sent) of a chat
  completion's JSON body; BadResponse when the body is not one.

  The grade's top logprobs are those of the first generated token that is a number, else of the
  first token (p(grade) there is what the model would have answered).

  >>> read_reply({"choices": [{"message": {"content": "3"}}]})
  ('3', (0, 0), None)
  >>> read_reply({"choices": []})
  Traceback (most recent call last):
  ...
  rankjax.annotate.backends.openai_http.BadResponse: body.choices is empty
  """
  _fields(body, "body", choices=list, usage=(dict, type(None)))
  if not body["choices"]:
    raise BadResponse("body.choices is empty")
  choice = _fields(body["choices"][0], "choices[0]", message=dict, logprobs=(dict, type(None)))
  text = _fields(choice["message"], "message", content=(str, type(None))).get("content") or ""
  usage = _fields(
    body.get("usage") or {},
    "usage",
    prompt_tokens=(int, type(None)),
    completion_tokens=(int, type(None)),
  )
  tokens = (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
  content = _fields(choice.get("logprobs") or {}, "logprobs", content=(list, type(None))).get(
    "content"
  )
  if not content:
    return text, tokens, None
  for t in content:
    _fields(t, "logprobs.content[]", token=str, top_logprobs=(list, type(None)))
  tok = next((t for t in content if t["token"].strip().isdigit()), content[0])
  top = {}
  for t in tok.get("top_logprobs") or []:
    _fields(t, "top_logprobs[]", token=str, logprob=(int, float))
    top[t["token"]] = float(t["logprob"])
  return text, tokens, top or None


class OpenAIHttpBackend:
  """Chat completions through the `openai` client; see the module docstring."""

  name = "openai_http"
  shapes = tuple(modes.SHAPES)

  def __init__(
    self,
    base_url: str,
    model: str,
    *,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    max_rps: float | None = None,
    max_retries: int = 6,
    timeout_s: float = 60.0,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    max_consecutive_failures: int = 8,
    logprobs: bool = True,
    top_logprobs: int = 10,
    temperature: float = 0.0,
    grade_from: str = "text",
  ):
    if grade_from not in GRADE_FROM:
      raise ValueError(f"grade_from={grade_from!r}: one of {GRADE_FROM}")
    if grade_from == "logprobs" and not logprobs:
      raise ValueError("grade_from='logprobs' needs logprobs=True")
    self.grade_from = grade_from
    self.base_url = base_url.rstrip("/")
    self.model = model
    self.api_key_env = api_key_env
    self.concurrency = concurrency
    self.max_retries = max_retries
    self.timeout_s = timeout_s
    self.backoff_s = backoff_s
    self.max_backoff_s = max_backoff_s
    self.logprobs = logprobs
    self.top_logprobs = top_logprobs
    self.temperature = temperature
    self.max_consecutive_failures = max_consecutive_failures
    self.transport_failures = 0
    self.requests = 0
    self.retries = 0
    self._limiter = RateLimiter(max_rps)
    self._count_lock = threading.Lock()
    # One client for all threads (httpx's pool is thread-safe); the key is a function, so the
    # client reads it from the environment at every request.
    self._client = openai.OpenAI(
      base_url=self.base_url,
      api_key=self._api_key,
      max_retries=0,
      timeout=timeout_s,
    )

  def _api_key(self) -> str:
    return os.environ.get(self.api_key_env) or ""

  def _redact(self, text: str) -> str:
    return redact.redact(text, [self._api_key()])

  def _post(self, payload: dict) -> dict:
    """One request, no retry: the JSON body of a 2xx answer. Raises `openai.APIStatusError` (any
    other status), `openai.APIConnectionError` (refused, reset, timed out) or BadResponse (a body
    that is not JSON)."""
    # Without a key, no Authorization header (the client would refuse to send the request).
    headers = None if self._api_key() else {"Authorization": openai.omit}
    raw = self._client.chat.completions.with_raw_response.create(**payload, extra_headers=headers)
    try:
      return json.loads(raw.http_response.text)
    except ValueError as e:
      kind = raw.http_response.headers.get("content-type", "no content type")
      raise BadResponse(
        f"body is not JSON ({kind}; {e}): {raw.http_response.text[:80]!r}"
      ) from None

  def _complete(self, payload: dict) -> tuple[str, tuple[int, int], dict[str, float] | None]:
    """`read_reply` of one chat completion, retried on transient failures and bodies that are not
    chat completions; raises TransportError, BadResponse or Refused after the retries."""
    url = f"{self.base_url}/chat/completions"
    last: Exception | None = None
    for attempt in range(self.max_retries + 1):
      if attempt:
        with self._count_lock:
          self.retries += 1
      self._limiter.wait()
      delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
      with self._count_lock:
        self.requests += 1
      try:
        return read_reply(self._post(payload))
      except openai.APIStatusError as e:
        if e.status_code not in _RETRY_STATUS:
          raise Refused(self._status_text(e)) from None
        last = TransportError(f"HTTP {e.status_code}")
        retry_after = e.response.headers.get("retry-after", "")
        if retry_after.replace(".", "", 1).isdigit():
          delay = min(self.max_backoff_s, float(retry_after))
      except openai.APITimeoutError:
        last = TransportError(f"no answer within {self.timeout_s:g}s")
      except openai.APIConnectionError as e:
        last = TransportError(f"connection failed ({e.__cause__ or e})")
      except BadResponse as e:
        last = e
      if attempt < self.max_retries:
        logging.info("%s: %s; retry %d in %.1fs", url, self._redact(str(last)), attempt + 1, delay)
        time.sleep(delay)
    message = self._redact(f"{url}: {last} (after {self.max_retries} retries)")
    raise type(last)(message)

  def _status_text(self, e: openai.APIStatusError) -> str:
    """'HTTP <status>: <the body>', redacted before it is cut to 300 characters (a cut could leave
    a key's head that the exact match would miss)."""
    return self._redact(f"HTTP {e.status_code}: {e.response.text}")[:300]

  def _payload(self, task: Task, messages: list[dict], max_tokens: int | None = None) -> dict:
    n = len(task.doc_ids)
    payload = {
      "model": self.model,
      "messages": messages,
      "temperature": self.temperature,
      "max_tokens": max_tokens or task.spec.max_answer_tokens(n),
    }
    if self.logprobs and task.spec.shape == "pointwise":  # the answer is one grade token
      payload.update(logprobs=True, top_logprobs=self.top_logprobs)
    return payload

  def run_task(self, task: Task) -> Result:
    """Asks, re-asks once if unparsable, and returns the result (raises TransportError)."""
    messages = task.messages()
    usage = [0, 0]
    errors = []
    text = ""
    probe = self.grade_from == "logprobs" and task.spec.shape == "pointwise"
    for attempt in (0, 1, 2) if probe else (1, 2):
      asked = attempt + probe  # requests made, the probe included
      failed = dict(status="failed", prompt_tokens=usage[0], completion_tokens=usage[1])
      try:
        # Attempt 0: the first token alone, for its top logprobs.
        text, tokens, top = self._complete(
          self._payload(task, messages, 1 if attempt == 0 else None)
        )
      except (Refused, BadResponse) as e:
        return Result(task, None, text, error=str(e), attempts=asked, **failed)
      usage[0] += tokens[0]
      usage[1] += tokens[1]
      if attempt == 0:
        try:
          e, p = parsing.expected_grade(top or {}, task.spec.max_grade)
        except parsing.ParseError:
          continue  # no grade among the top tokens: the whole answer's text decides
        return Result(
          task,
          [int(np.argmax(p))],
          text,
          expected=[e],
          probs=[p],
          prompt_tokens=usage[0],
          completion_tokens=usage[1],
          attempts=asked,
        )
      try:
        labels = task.spec.parse(text, len(task.doc_ids))
      except parsing.ParseError as e:
        errors.append(str(e))
        messages = messages + [
          {"role": "assistant", "content": text},
          {"role": "user", "content": prompts.REASK.format(error=e)},
        ]
        continue
      expected = probs = None
      if top is not None:
        try:
          e, p = parsing.expected_grade(top, task.spec.max_grade)
          expected, probs = [e], [p]
        except parsing.ParseError:
          pass  # no grade among the top tokens: the parsed label stands alone
      return Result(
        task,
        labels,
        text,
        expected=expected,
        probs=probs,
        prompt_tokens=usage[0],
        completion_tokens=usage[1],
        attempts=asked,
      )
    return Result(
      task,
      None,
      text,
      status="failed",
      error="unparsable: " + " | ".join(errors),
      prompt_tokens=usage[0],
      completion_tokens=usage[1],
      attempts=2 + probe,
    )

  def process(self, tasks: Iterable[Task], should_stop: Callable[[], bool]) -> Iterator[Result]:
    tasks = iter(tasks)
    with cf.ThreadPoolExecutor(self.concurrency, thread_name_prefix="annotate") as pool:
      in_flight: dict[cf.Future, Task] = {}
      exhausted = False
      consecutive = 0
      while True:
        if consecutive >= self.max_consecutive_failures and not exhausted:
          logging.error(
            "%d requests in a row could not reach %s: taking no new tasks",
            consecutive,
            self.base_url,
          )
          exhausted = True
        while not exhausted and not should_stop() and len(in_flight) < self.concurrency:
          task = next(tasks, None)
          if task is None:
            exhausted = True
          else:
            in_flight[pool.submit(self.run_task, task)] = task
        if not in_flight:
          return
        done, _ = cf.wait(in_flight, timeout=0.5, return_when=cf.FIRST_COMPLETED)
        for f in done:
          task = in_flight.pop(f)
          try:
            result = f.result()
          except TransportError as e:
            consecutive += 1
            with self._count_lock:
              self.transport_failures += 1
            logging.warning("not recorded (a rerun retries it): %s", e)
            yield Result(task, None, "", status="unreachable", error=str(e))
          else:
            consecutive = 0
            yield result
