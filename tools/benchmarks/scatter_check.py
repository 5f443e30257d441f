r"""Embedding-gradient scatter-adds under index contention, with and without rankjax's XLA fix.

jaxlib 0.10.2 and 0.11.0 compile scalar float32 scatter-adds on NVIDIA GPUs to compare-and-swap
loops (jax-ml/jax#38806); `rankjax.engine.xla_flags` adds the LLVM option that restores the native
atomic add there (later jaxlibs, such as the GPU machine's 0.11.2, need none: the flag changes
nothing).
A bfloat16 scatter-add compiles to one scalar system-scope atomic per element
(`atom.relaxed.sys.global.add.noftz.bf16`), which is what the cross-encoder's embedding gradients
were under bf16 compute before the model's lookups changed.
This times the gradient of lookups over 512 x 128 tokens, float32 tables unless stated:
  * a 2-row segment table (every token hits one of two rows): a gather, a one-hot matmul, and the
    selects `rankjax.models.layers.bert` uses;
  * a 30,522 x 768 word table with half the tokens padding (id 0), the rest random: a gather (half
    the updates add into row 0), the lookup `rankjax.models.layers.bert` uses, which drops padding's
    updates, and the gather from a bfloat16 table (what `nn.Embed` did under bf16 compute: its
    gradient is a bfloat16 scatter-add).
On a GPU with jaxlib 0.10.2 or 0.11.0, run it twice, as is and with `--no_fix`, to see what the
flag is worth:

  PYTHONPATH=. python tools/benchmarks/scatter_check.py
  PYTHONPATH=. python tools/benchmarks/scatter_check.py --no_fix
"""

import argparse
import os
import time

from rankjax.engine import xla_flags


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--no_fix", action="store_true", help="leave XLA_FLAGS as they are")
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  fixed = False if args.no_fix else xla_flags.fix_gpu_scatter_atomics()

  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS are final)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from rankjax.models.layers import bert  # pylint: disable=g-import-not-at-top

  n, t, h = 512, 128, 768
  keys = jax.random.split(jax.random.key(0), 4)
  grads = jax.random.normal(keys[0], (n, t, h), jnp.float32)
  segments = jax.random.randint(keys[1], (n, t), 0, 2)
  words = jnp.where(
    jax.random.uniform(keys[2], (n, t)) < 0.5, 0, jax.random.randint(keys[3], (n, t), 1, 30522)
  )

  def gradient(lookup, rows, ids, dtype=jnp.float32):
    """The jitted gradient and its arguments (arguments, not closed-over constants: those would be
    copied into the compiled program)."""
    fn = jax.jit(jax.grad(lambda w, i, c: jnp.sum(lookup(w, i) * c)))
    return fn, (jnp.zeros((rows, h), dtype), ids, grads.astype(dtype))

  cases = {
    "segments (2 rows), gather": gradient(lambda w, i: jnp.take(w, i, 0), 2, segments),
    "segments (2 rows), one-hot matmul": gradient(
      lambda w, i: jax.nn.one_hot(i, 2, dtype=w.dtype) @ w, 2, segments
    ),
    "segments (2 rows), selects (rankjax.models.layers.bert)": gradient(
      bert._select_rows, 2, segments
    ),  # pylint: disable=protected-access
    "words (30,522 rows, half padding), gather": gradient(
      lambda w, i: jnp.take(w, i, 0), 30522, words
    ),
    "words (30,522 rows, half padding), padding dropped (rankjax.models.layers.bert)": gradient(
      bert._embed_tokens, 30522, words
    ),  # pylint: disable=protected-access
    "words (30,522 rows, half padding), gather, bfloat16 table": gradient(
      lambda w, i: jnp.take(w, i, 0), 30522, words, jnp.bfloat16
    ),
  }
  print(
    f"jax {jax.__version__}, {jax.devices()[0].device_kind}, XLA_FLAGS="
    f"{os.environ.get('XLA_FLAGS', '')!r}{' (fix added)' if fixed else ''}",
    flush=True,
  )
  for name, (fn, fn_args) in cases.items():
    fn(*fn_args).block_until_ready()
    start = time.perf_counter()
    for _ in range(args.repeats):
      out = fn(*fn_args)
    out.block_until_ready()
    print(f"  {name}: {(time.perf_counter() - start) / args.repeats * 1e3:.2f} ms", flush=True)


if __name__ == "__main__":
  main()
