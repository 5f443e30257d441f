r"""Writes a trained run's serving artifact with `jax.export` (`rankjax.serve.export`).

  rankjax export --workdir /tmp/rankjax_run --output /tmp/rankjax_export [--step N | --latest] \
      [--platforms cpu,cuda] [--saved-model]
  python -m rankjax.export_check /tmp/rankjax_export [INPUTS.npz]

The checkpoint as `rankjax score` picks it: `--step`, else the best one when recorded, else the
latest. The directory holds scorer.jaxexport (symbolic batch, list and token dimensions),
params.npz, signature.json and, for a text ranker, its tokenizer; loading it needs only jax.
`--saved-model` also writes OUTPUT/saved_model, a TF SavedModel for TF Serving (jax2tf; needs
`pip install 'rankjax[tf]'`; `rankjax.serve.saved_model`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str], prog: str = "rankjax export") -> None:
  p = argparse.ArgumentParser(
    prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--workdir", required=True, help="a training run's directory")
  p.add_argument("--output", required=True, help="the artifact's directory")
  p.add_argument("--step", type=int, help="checkpoint step; default the best, else the latest")
  p.add_argument("--latest", action="store_true", help="the latest checkpoint, not the best")
  p.add_argument(
    "--platforms", help="comma-separated platforms it runs on (cpu, cuda, tpu); default this one"
  )
  p.add_argument(
    "--saved-model", action="store_true", help="also a TF SavedModel in OUTPUT/saved_model"
  )
  args = p.parse_args(argv)
  from rankjax.serve import export, ranker  # pylint: disable=g-import-not-at-top

  r = ranker.Ranker.load(args.workdir, args.step, best=False if args.latest else None)
  platforms = args.platforms.split(",") if args.platforms else None
  path = export.export(r, args.output, platforms=platforms)
  how = f"best by {r.config.checkpoint.best_metric}" if r.best else "latest or as asked"
  print(f"exported checkpoint step {r.step} ({how}) to {path}")
  if args.saved_model:
    from rankjax.serve import saved_model  # pylint: disable=g-import-not-at-top

    try:
      print(f"wrote {saved_model.export_saved_model(r, path / 'saved_model')}")
    except (ModuleNotFoundError, RuntimeError) as e:
      raise SystemExit(f"error: {e}") from None
