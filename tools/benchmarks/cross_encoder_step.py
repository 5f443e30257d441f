r"""One listwise cross-encoder train step: rankjax (Flax) next to PyTorch HF, on the same card.

The step: `--lists` lists x `--docs` documents x `--tokens` tokens (16 x 32 x 128 by default), a
BERT-family encoder with fp32 parameters and bf16 compute, a scalar head on the pooled [CLS],
softmax cross-entropy over each list against the label distribution p = y / sum(y), AdamW
(lr 1e-5, weight decay 0.01). Inputs are random non-special token ids at full length (no padding),
query segment on the first quarter of tokens, labels 0-4 with at least one positive per list.

Rows per encoder size (`bert-base` 12 x 768, `minilm-l6` 6 x 384, random init):
  * rankjax, `jax.nn.dot_product_attention` with `implementation="xla"`, and on GPU also "cudnn"
    (cuDNN flash attention with per-sequence lengths), with the model's defaults: dropout masks
    hashed from each element's index (`rankjax.models.layers.dropout`), query, key and value
    projected by one fused matmul, the last layer computing the scored [CLS] position only, the GELU
    recomputed in the backward pass. Then one default changed at a time: `nn.Dropout`'s masks
    from jax's default threefry keys, and from "rbg" keys (`jax.random.key(seed, impl="rbg")`);
    three separate q/k/v matmuls; every position in the last layer, as HF does; and the
    trainer's own `train_step` (which adds global-norm clipping, a learning-rate schedule and norm
    measurements to the same step; its loss is rax's softmax loss, -sum(y log softmax), the same
    objective scaled by sum(y) per list);
  * PyTorch `BertForSequenceClassification(num_labels=1)` (SDPA attention), eager, and with
    `torch.compile(model)`, under `torch.autocast(bfloat16)`, fused AdamW on CUDA; skipped when
    torch is not installed. Attention-probability dropout is 0 in PyTorch because the fused
    attention here has none; hidden dropout is 0.1 in both.

Timing: every step ends with `block_until_ready()` / `torch.cuda.synchronize()`; after `--warmup`
steps, the median of `--steps`. "compile s" is the first warm-up step's wall time: tracing and XLA
compilation for rankjax, graph capture and Inductor compilation for torch.compile (CUDA and cuBLAS
start-up for eager); each row's total wall time is printed as it finishes. TFLOP/s counts model
FLOPs, the same for every row: 6 x dense parameters x tokens plus attention (12 x layers x T^2 x
hidden per sequence), every position of every layer; "% peak" divides by a bf16 matmul measured in
the same run (`--peak_n`^3). "loss" is the last step's loss: it must be about ln(docs) and agree
across rows (same data, comparable init), except the engine row's (see above).

Run (GPU, the table goes in the README with the card and date):

  PYTHONPATH=. python tools/benchmarks/cross_encoder_step.py

CPU smoke run (tiny shapes, a few steps; numbers mean nothing):

  PYTHONPATH=. .venv/bin/python tools/benchmarks/cross_encoder_step.py --small
"""

import argparse
import datetime
import functools
import os
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rankjax.engine import xla_flags
from rankjax.models import cross_encoder
from rankjax.models.layers import bert


def make_data(lists, docs, tokens, vocab, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1000 if vocab > 2000 else 5, vocab, size=(lists, docs, tokens), dtype=np.int32)
  types = np.broadcast_to(np.arange(tokens) >= tokens // 4, ids.shape).astype(np.int32)
  labels = rng.integers(0, 5, size=(lists, docs)).astype(np.float32)
  labels[:, 0] = np.maximum(labels[:, 0], 1)
  return {
    "tokens": ids,
    "token_types": types,
    "mask": np.ones((lists, docs), bool),
    "labels": labels,
  }


def step_flops(cfg: bert.BertConfig, seqs: int, tokens: int) -> float:
  attention = 12 * cfg.num_layers * tokens * tokens * cfg.hidden_size * seqs
  return 6 * cfg.dense_params * seqs * tokens + attention


def timed(step, sync, warmup, steps):
  """(first call's seconds, median seconds, last loss) of `step()` calls: `warmup` (at least one)
  untimed, then `steps` timed; `sync(out)` blocks."""
  start = time.perf_counter()
  out = sync(step())
  first = time.perf_counter() - start
  for _ in range(warmup - 1):
    out = sync(step())
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    out = sync(step())
    times.append(time.perf_counter() - t)
  return first, statistics.median(times), float(out)


def bf16_peak(n: int) -> float:
  """Measured bf16 matmul FLOP/s at n x n x n."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
  f = jax.jit(lambda x, y: x @ y)
  f(a, b).block_until_ready()
  start = time.perf_counter()
  outs = [f(a, b) for _ in range(20)]  # queued back to back: the card's rate, not dispatch latency
  outs[-1].block_until_ready()
  return 20 * 2 * n**3 / (time.perf_counter() - start)


def softmax_ce(scores, labels):
  p = labels / labels.sum(-1, keepdims=True)
  return -jnp.mean(jnp.sum(p * jax.nn.log_softmax(scores, axis=-1), axis=-1))


def train_step(model, tx):
  """The benchmark's step, (params, opt_state, rng, batch) -> (params, opt_state, rng, loss)."""

  def step(params, opt_state, rng, batch):
    rng, dropout = jax.random.split(rng)

    def loss_fn(p):
      scores = model.apply({"params": p}, batch, train=True, rngs={"dropout": dropout})
      return softmax_ce(scores, batch["labels"])

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, rng, loss

  return step


def optimizer():
  return optax.adamw(1e-5, weight_decay=0.01)


def jax_row(size, attention, data, args, prng="threefry2x32", **options):
  """Times the step of a `cross_encoder.Model` with `options` over its defaults; `prng` is the
  step key's implementation."""
  model = cross_encoder.Model(
    size=size, dtype="bfloat16", attention=attention, remat=args.remat, **options
  )
  batch = {k: jnp.asarray(v) for k, v in data.items()}
  params = jax.jit(model.init)(jax.random.key(0), batch)["params"]
  tx = optimizer()
  state = [params, tx.init(params), jax.random.key(1, impl=prng)]
  step = jax.jit(train_step(model, tx), donate_argnums=(0, 1))

  def run():
    state[0], state[1], state[2], loss = step(*state, batch)
    return loss

  return timed(run, lambda loss: loss.block_until_ready(), args.warmup, args.steps)


def engine_row(size, attention, data, args):
  """The trainer's own step (`rankjax.engine.step.train_step`): its AdamW after global-norm
  clipping, warmup-cosine schedule, softmax loss on click labels, and its norm measurements."""
  # Imported here: ml_collections may be missing where only the model rows are wanted.
  from rankjax import supervision  # pylint: disable=g-import-not-at-top
  from rankjax.configs import default as config_defaults  # pylint: disable=g-import-not-at-top
  from rankjax.engine import step as step_lib  # pylint: disable=g-import-not-at-top

  config = config_defaults.default_config()
  config.total_steps, config.loss.name = 10_000, "softmax"
  config.supervision.source = "click"
  config.optimizer.lr, config.optimizer.weight_decay, config.optimizer.warmup_steps = 1e-5, 0.01, 0
  model = cross_encoder.Model(size=size, dtype="bfloat16", attention=attention, remat=args.remat)
  tokens = data["tokens"]
  batch = {
    "tokens": tokens,
    "token_types": data["token_types"],
    "mask": data["mask"],
    "list_valid": np.ones(tokens.shape[0], bool),
    "label_click": data["labels"],
    "mask_click": data["mask"],
  }
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  tx = step_lib.make_optimizer(config)
  state = [jax.jit(functools.partial(step_lib.init_state, model, tx, batch, 0))()]
  step = jax.jit(
    functools.partial(
      step_lib.train_step,
      model=model,
      tx=tx,
      config=config,
      objective=supervision.get_objective("single"),
    ),
    donate_argnums=0,
  )

  def run():
    state[0], measured = step(state[0], batch)
    return measured["loss"]

  return timed(run, lambda loss: loss.block_until_ready(), args.warmup, args.steps)


def torch_row(cfg, data, args, compiled):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch.manual_seed(0)
  hf = transformers.BertConfig(
    vocab_size=cfg.vocab_size,
    hidden_size=cfg.hidden_size,
    num_hidden_layers=cfg.num_layers,
    num_attention_heads=cfg.num_heads,
    intermediate_size=cfg.intermediate_size,
    max_position_embeddings=cfg.max_positions,
    num_labels=1,
    hidden_dropout_prob=cfg.dropout,
    attention_probs_dropout_prob=0.0,
    attn_implementation="sdpa",
  )
  model = transformers.BertForSequenceClassification(hf).to(device)
  model.train()
  fwd = torch.compile(model) if compiled else model
  opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=device == "cuda")
  b, l, t = data["tokens"].shape
  ids = torch.from_numpy(data["tokens"].reshape(b * l, t).astype(np.int64)).to(device)
  types = torch.from_numpy(data["token_types"].reshape(b * l, t).astype(np.int64)).to(device)
  attn = torch.ones_like(ids)
  labels = torch.from_numpy(data["labels"]).to(device)
  p = labels / labels.sum(-1, keepdim=True)

  def run():
    with torch.autocast(device, dtype=torch.bfloat16):
      logits = fwd(input_ids=ids, token_type_ids=types, attention_mask=attn).logits
    loss = -(p * torch.log_softmax(logits.float().view(b, l), -1)).sum(-1).mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

  def sync(loss):
    if device == "cuda":
      torch.cuda.synchronize()
    return loss.item()

  return timed(run, sync, args.warmup, args.steps)


def add_step_shape_args(parser, sizes="bert-base,minilm-l6"):
  """--sizes, --lists, --docs, --tokens: the encoders and the batch of a benchmarked step."""
  parser.add_argument("--sizes", default=sizes, help="bert.SIZES names")
  parser.add_argument("--lists", type=int, default=16)
  parser.add_argument("--docs", type=int, default=32)
  parser.add_argument("--tokens", type=int, default=128)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  add_step_shape_args(parser)
  parser.add_argument("--warmup", type=int, default=5, help="untimed steps (at least 1)")
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--peak_n", type=int, default=8192)
  parser.add_argument("--remat", action="store_true", help="rematerialise layers (rankjax)")
  parser.add_argument("--no_torch", action="store_true")
  parser.add_argument(
    "--rows",
    default="",
    help="a regular expression: run only rows whose name matches it "
    "(e.g. '^rankjax, cudnn attention$|compile')",
  )
  parser.add_argument(
    "--small",
    action="store_true",
    help="CPU smoke run: tiny + minilm-l6 sizes, 2 x 4 x 32, 3 steps",
  )
  args = parser.parse_args()
  if args.warmup < 1:
    parser.error("--warmup must be at least 1 (the first step compiles)")
  if args.small:
    args.sizes, args.lists, args.docs, args.tokens = "tiny,minilm-l6", 2, 4, 32
    args.warmup, args.steps, args.peak_n = 1, 3, 512

  scatter_fix = xla_flags.fix_gpu_scatter_atomics()  # as `rankjax train` does, before JAX starts
  backend = jax.default_backend()
  attentions = ["xla", "cudnn"] if backend == "gpu" else ["xla"]
  peak = bf16_peak(args.peak_n)
  header = (
    f"{datetime.date.today()} {jax.devices()[0].device_kind} ({backend}), jax "
    f"{jax.__version__}, {args.lists} lists x {args.docs} docs x {args.tokens} tokens, "
    f"measured bf16 matmul peak {peak / 1e12:.1f} TFLOP/s ({args.peak_n}^3)"
    f"{', XLA_FLAGS ' + os.environ['XLA_FLAGS'] if os.environ.get('XLA_FLAGS') else ''}"
    f"{' (scatter fix added)' if scatter_fix else ''}"
  )
  try:
    import torch  # pylint: disable=g-import-not-at-top

    header += f", torch {torch.__version__}"
    have_torch = not args.no_torch
  except ImportError:
    have_torch = False
    header += ", torch not installed"
  print(header, flush=True)

  rows = []
  for size in args.sizes.split(","):
    cfg = bert.SIZES[size]
    data = make_data(args.lists, args.docs, args.tokens, cfg.vocab_size)
    flops = step_flops(cfg, args.lists * args.docs, args.tokens)
    last = attentions[-1]
    runs = [
      (f"rankjax, {a} attention", functools.partial(jax_row, size, a, data, args))
      for a in attentions
    ]
    runs += [
      (
        f"rankjax, {last} attention, {name} dropout masks",
        functools.partial(jax_row, size, last, data, args, prng=p, dropout_masks="prng"),
      )
      for name, p in (("threefry", "threefry2x32"), ("rbg", "rbg"))
    ]
    runs.append(
      (
        f"rankjax, {last} attention, separate q/k/v matmuls",
        functools.partial(jax_row, size, last, data, args, fused_qkv=False),
      )
    )
    runs.append(
      (
        f"rankjax, {last} attention, every position in the last layer",
        functools.partial(jax_row, size, last, data, args, cls_only=False),
      )
    )
    runs.append(
      (
        f"rankjax engine train_step (+ gradient clipping, norms), {last} attention",
        functools.partial(engine_row, size, last, data, args),
      )
    )
    if have_torch:
      runs += [
        (
          f"PyTorch HF, {'torch.compile' if c else 'eager'}",
          functools.partial(torch_row, cfg, data, args, c),
        )
        for c in (False, True)
      ]
    if args.rows:
      runs = [(n, f) for n, f in runs if re.search(args.rows, n)]
    for name, fn in runs:
      print(f"  {size}: {name} ...", flush=True)
      start = time.perf_counter()
      try:
        first, sec, loss = fn()
      except Exception as e:  # pylint: disable=broad-except  (one failing row must not hide others)
        rows.append((size, name, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"))
        continue
      seqs = args.lists * args.docs / sec
      rows.append(
        (
          size,
          name,
          f"{sec * 1e3:.1f} ms | {seqs:,.0f} | {flops / sec / 1e12:.3g} | "
          f"{flops / sec / peak:.0%} | {first:.1f} | {loss:.3f}",
        )
      )
      print(f"    {rows[-1][2]} (row took {time.perf_counter() - start:.0f} s)", flush=True)

  print(f"\n{header}\n")
  print("| encoder | implementation | step | seq/s | TFLOP/s | % bf16 peak | compile s | loss |")
  print("|---|---|---|---|---|---|---|---|")
  for size, name, cells in rows:
    print(f"| {size} | {name} | {cells} |")
  print(f"\n(median of {args.steps} timed steps after {args.warmup} warm-up)")


if __name__ == "__main__":
  main()
