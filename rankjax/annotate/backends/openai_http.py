"""Any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp server, OpenAI).

Robustness, per request:
  * at most `concurrency` requests in flight, and at most `max_rps` started per second;
  * 429, 5xx, timeouts and refused/reset connections are retried with exponential backoff and
    jitter (honouring `Retry-After`), up to `max_retries` times; a server that dies and comes back
    within that window costs nothing. A task that still cannot reach the server is not recorded
    (so a rerun does it) and is counted in `transport_failures`; after `max_consecutive_failures`
    of them in a row the backend takes no new tasks (the server is down: stop, rerun later);
  * another 4xx is the request's fault: recorded as a failure with the status and message;
  * an answer that does not parse gets one re-ask (the model sees its answer and the parse error);
    a second unparsable answer is recorded as a failure with both outputs' error.

The API key is read from the environment variable `api_key_env` and only ever put in the
Authorization header: it is not stored on the object, logged or written to the store.
Token usage (the server's `usage`) is added up per task, re-asks included.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import requests

from rankjax.annotate import modes, parsing, prompts
from rankjax.annotate.tasks import Result, Task

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class TransportError(RuntimeError):
  """The server could not be reached or kept failing after all retries."""


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


class OpenAIHttpBackend:
  """Chat completions over HTTP; see the module docstring."""

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
  ):
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
    self.retries = 0
    self._limiter = RateLimiter(max_rps)
    self._local = threading.local()
    self._count_lock = threading.Lock()

  def _session(self) -> requests.Session:
    if not hasattr(self._local, "session"):
      self._local.session = requests.Session()
    return self._local.session

  def _headers(self) -> dict[str, str]:
    key = os.environ.get(self.api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}

  def _post(self, payload: dict) -> dict:
    """One chat completion, retried on transient failures; raises TransportError or
    `requests.HTTPError` (a non-retryable 4xx)."""
    url = f"{self.base_url}/chat/completions"
    last = ""
    for attempt in range(self.max_retries + 1):
      if attempt:
        with self._count_lock:
          self.retries += 1
      self._limiter.wait()
      delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
      try:
        r = self._session().post(url, json=payload, headers=self._headers(), timeout=self.timeout_s)
      except (requests.ConnectionError, requests.Timeout) as e:
        last = type(e).__name__
      else:
        if r.status_code == 200:
          return r.json()
        if r.status_code not in _RETRY_STATUS:
          raise requests.HTTPError(f"HTTP {r.status_code} from {url}: {r.text[:300]}")
        last = f"HTTP {r.status_code}"
        retry_after = r.headers.get("Retry-After", "")
        if retry_after.replace(".", "", 1).isdigit():
          delay = min(self.max_backoff_s, float(retry_after))
      if attempt < self.max_retries:
        logging.info("%s: %s; retry %d in %.1fs", url, last, attempt + 1, delay)
        time.sleep(delay)
    raise TransportError(f"{url}: {last} after {self.max_retries} retries")

  def _payload(self, task: Task, messages: list[dict]) -> dict:
    n = len(task.doc_ids)
    payload = {
      "model": self.model,
      "messages": messages,
      "temperature": self.temperature,
      "max_tokens": task.spec.max_answer_tokens(n),
    }
    if self.logprobs and task.spec.shape == "pointwise":  # the answer is one grade token
      payload.update(logprobs=True, top_logprobs=self.top_logprobs)
    return payload

  @staticmethod
  def _grade_logprobs(choice: dict) -> dict[str, float] | None:
    """top_logprobs where the grade is: the first generated token that is a number, else the
    first token (p(grade) there is what the model would have answered), if the server sent them."""
    content = (choice.get("logprobs") or {}).get("content") or []
    tok = next(
      (t for t in content if t.get("token", "").strip().isdigit()), content[0] if content else None
    )
    if tok is None:
      return None
    return {t["token"]: t["logprob"] for t in tok.get("top_logprobs") or []} or None

  def run_task(self, task: Task) -> Result:
    """Asks, re-asks once if unparsable, and returns the result (raises TransportError)."""
    messages = task.messages()
    usage = [0, 0]
    errors = []
    text = ""
    for attempt in (1, 2):
      try:
        reply = self._post(self._payload(task, messages))
      except requests.HTTPError as e:
        return Result(
          task,
          None,
          text,
          status="failed",
          error=str(e),
          prompt_tokens=usage[0],
          completion_tokens=usage[1],
          attempts=attempt,
        )
      u = reply.get("usage") or {}
      usage[0] += int(u.get("prompt_tokens") or 0)
      usage[1] += int(u.get("completion_tokens") or 0)
      choice = reply["choices"][0]
      text = choice["message"].get("content") or ""
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
      top = self._grade_logprobs(choice)
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
        attempts=attempt,
      )
    return Result(
      task,
      None,
      text,
      status="failed",
      error="unparsable: " + " | ".join(errors),
      prompt_tokens=usage[0],
      completion_tokens=usage[1],
      attempts=2,
    )

  def process(self, tasks: Iterable[Task], should_stop: Callable[[], bool]) -> Iterator[Result]:
    tasks = iter(tasks)
    with cf.ThreadPoolExecutor(self.concurrency, thread_name_prefix="annotate") as pool:
      in_flight: set[cf.Future] = set()
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
            in_flight.add(pool.submit(self.run_task, task))
        if not in_flight:
          return
        done, in_flight = cf.wait(in_flight, timeout=0.5, return_when=cf.FIRST_COMPLETED)
        for f in done:
          try:
            result = f.result()
          except TransportError as e:
            consecutive += 1
            with self._count_lock:
              self.transport_failures += 1
            logging.warning("not recorded (a rerun retries it): %s", e)
          else:
            consecutive = 0
            yield result
