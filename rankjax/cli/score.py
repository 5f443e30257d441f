r"""Scores with a trained run's checkpoint: a split of its dataset, or a new file, into a TREC run.

  rankjax score --workdir=/tmp/rankjax_run --split=test [--step=N | --nobest] \
      [--output=/tmp/rankjax_run/test.run] [--label_source=human]
  rankjax score --workdir=/tmp/rankjax_run --input=new.svmlight --output=new.run
  rankjax score --workdir=/tmp/trec_ce --input=pairs.jsonl --output=pairs.run   # a text ranker

The checkpoint: `--step`, else the best one by the run's `checkpoint.best_metric` when one is
recorded (`--best` requires it), else the latest (`--nobest` takes the latest). With `--split`
it writes the run file (`qid Q0 docid rank score rankjax`) and `<workdir>/score-<split>.json`
(metrics per bucket, the step scored; `rankjax.engine.scoring.score`). With `--input` it streams
the file in chunks of queries (constant memory), writes the run through ranx and prints the
metrics when the file's labels give any list a relevant document
(`rankjax.serve.predict.score_file`). Either way it prints where it wrote the run.

The input file: for a feature ranker an svmlight/LETOR file; for a text ranker (cross-encoder) a
JSON Lines file, one object per (query, document), a query's lines contiguous:
  {"qid": "q1", "query": "cheap flights", "docno": "d7", "text": "Title. Snippet", "label": 2}
(`label` optional), tokenized with the run's tokenizer and truncation rules.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from absl import flags

from rankjax.cli import common


@functools.cache
def _flags():
  """absl flag holders, defined once, when the command runs (not at import: see
  `rankjax.cli.train.config_flags`)."""
  return {
    "workdir": flags.DEFINE_string("workdir", None, "A training run's directory.", required=True),
    "split": flags.DEFINE_string("split", "test", "Split of the run's dataset to score."),
    "input": flags.DEFINE_string(
      "input",
      None,
      "A file to score instead of a split: svmlight/LETOR (feature ranker) or JSON Lines of "
      "qid, query, docno, text[, label] (text ranker).",
    ),
    "step": flags.DEFINE_integer("step", None, "Checkpoint step; default the best, else latest."),
    "best": flags.DEFINE_bool(
      "best", None, "The best checkpoint (an error without one); --nobest: the latest."
    ),
    "output": flags.DEFINE_string(
      "output", None, "Run file; default <workdir>/<split>.run (required with --input)."
    ),
    "label_source": flags.DEFINE_string(
      "label_source", None, "Labels to evaluate a split against; default the run's eval source."
    ),
    "chunk": flags.DEFINE_integer("chunk", 1024, "With --input: queries held in memory at once."),
  }


def _checkpoint(step: int, best_metric: str | None, asked: int | None) -> str:
  how = f"best by {best_metric}" if best_metric else ("as asked" if asked is not None else "latest")
  return f"checkpoint step {step} ({how})"


def _score(argv) -> None:
  from rankjax.engine import evaluate  # pylint: disable=g-import-not-at-top

  del argv
  common.quiet_library_logs()
  f = {name: holder.value for name, holder in _flags().items()}
  if f["input"] is not None:
    from rankjax.serve import predict, ranker  # pylint: disable=g-import-not-at-top

    if not f["output"]:
      raise SystemExit("--input needs --output (the run file to write)")
    r = ranker.Ranker.load(f["workdir"], f["step"], best=f["best"])
    out = predict.score_file(r, f["input"], f["output"], chunk=f["chunk"])
    if out["metrics"]:
      print(evaluate.markdown_table(out["step"], {f["input"]: out["metrics"]}))
    best_metric = r.config.checkpoint.best_metric if out["best"] else None
    print(
      f"{_checkpoint(out['step'], best_metric, f['step'])}: wrote {out['queries']} queries to "
      f"{out['run_file']}"
    )
    return
  from rankjax.engine import scoring  # pylint: disable=g-import-not-at-top

  results = scoring.score(
    f["workdir"],
    f["split"],
    step=f["step"],
    best=f["best"],
    output=f["output"],
    label_source=f["label_source"],
  )
  step, best_metric, run_file = (results.pop(k) for k in ("step", "best_metric", "run_file"))
  print(evaluate.markdown_table(step, {f["split"]: results}))
  print(f"{_checkpoint(step, best_metric, f['step'])}: wrote {run_file}")


def main(argv: Sequence[str], prog: str = "rankjax score") -> None:
  from absl import app  # pylint: disable=g-import-not-at-top

  _flags()
  if common.absl_help(argv, prog=prog, doc=__doc__, flags_modules=(__name__,)):
    return
  app.run(_score, argv=[prog, *argv])
