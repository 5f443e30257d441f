r"""NDCG@10 of rankjax's MLP ranker next to LightGBM lambdarank, same splits, same evaluator.

  python tools/benchmarks/mlp_vs_lightgbm.py [--variant=local] [--datasets=mslr_web10k_sample,...]

For each data set (`rankjax.data.svmlight.DATASETS`): the MLP trains with
`configs/<config>.py[:variant]` through `train.train_and_evaluate`; LightGBM (lambdarank, its
default 100 rounds, learning rate 0.1, 31 leaves) trains on the same training split. Both are
scored on the same test lists with `rankjax.ranking.metrics` NDCG@10 (gain 2^y - 1; lists without a
relevant document left out), so the numbers compare like with like.
"""

from __future__ import annotations

import pathlib
import tempfile

import jax.numpy as jnp
import lightgbm
import numpy as np
from absl import app, flags, logging

from rankjax.cli import errors
from rankjax.data import svmlight
from rankjax.engine import train
from rankjax.ranking import metrics

ROOT = pathlib.Path(__file__).resolve().parents[2]

CONFIGS = {"mslr_web10k_sample": "mslr_mlp", "lightgbm_lambdarank_example": "lightgbm_example"}

_VARIANT = flags.DEFINE_string("variant", "", "Config variant for the MLP ('' = full, 'local').")
_DATASETS = flags.DEFINE_list("datasets", list(CONFIGS), "Data sets to compare on.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the MLP runs go; default a temp dir.")


def _config(name: str, variant: str):
  return errors.load_config(ROOT / "configs" / f"{name}.py", variant or None)


def ndcg10(lists, scores) -> tuple[float, int]:
  """Mean NDCG@10 over lists with a relevant document, and how many lists that is."""
  values = [
    float(metrics.ndcg_metric(jnp.asarray(s)[None], jnp.asarray(l.labels["human"])[None], topn=10))
    for l, s in zip(lists, scores)
    if np.nanmax(l.labels["human"]) > 0
  ]
  return float(np.mean(values)), len(values)


def lightgbm_scores(splits) -> list[np.ndarray]:
  def dataset(lists):
    return lightgbm.Dataset(
      np.concatenate([l.features for l in lists]),
      np.concatenate([l.labels["human"] for l in lists]),
      group=[len(l) for l in lists],
    )

  booster = lightgbm.train(
    {"objective": "lambdarank", "verbose": -1, "seed": 0},
    dataset(splits["train"]),
    num_boost_round=100,
  )
  return [booster.predict(l.features) for l in splits["test"]]


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  workdir = pathlib.Path(_WORKDIR.value or tempfile.mkdtemp(prefix="mlp_vs_lightgbm_"))
  rows = []
  for name in _DATASETS.value:
    splits = svmlight.DATASETS[name]()
    lgb_ndcg, n = ndcg10(splits["test"], lightgbm_scores(splits))
    config = _config(CONFIGS[name], _VARIANT.value)
    out = train.train_and_evaluate(config, workdir / name)
    mlp_ndcg = out["eval"]["test"]["ndcg@10"]["all"]
    mlp_n = out["eval"]["test"]["ndcg@10"]["count/all"]
    assert mlp_n == n, (mlp_n, n)  # the same test lists
    rows.append((name, n, mlp_ndcg, lgb_ndcg, config.total_steps))
  print("| data set (test lists) | rankjax MLP NDCG@10 | LightGBM lambdarank NDCG@10 |")
  print("|---|---|---|")
  for name, n, mlp, lgb, steps in rows:
    print(
      f"| {name} ({n}) | {mlp:.4f} ({steps} steps, {_VARIANT.value or 'full'} config) "
      f"| {lgb:.4f} (100 rounds) |"
    )


if __name__ == "__main__":
  app.run(main)
