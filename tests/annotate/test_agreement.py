"""Agreement statistics against brute-force definitions."""

import numpy as np
import pytest

from rankjax.annotate import agreement


def _pairs(seed, n=300, k=5):
  rng = np.random.default_rng(seed)
  a = rng.integers(0, k, n)
  b = np.clip(a + rng.integers(-1, 2, n), 0, k - 1)
  return a, b


@pytest.mark.parametrize("seed", [0, 1])
def test_quadratic_kappa_is_one_minus_observed_over_chance_squared_error(seed):
  a, b = _pairs(seed)
  chance = np.mean((a[:, None] - b[None, :]) ** 2.0)
  want = 1 - np.mean((a - b) ** 2.0) / chance
  assert agreement.weighted_kappa(a, b, 5) == pytest.approx(want)


@pytest.mark.parametrize("seed", [0, 1])
def test_interval_alpha_matches_pairwise_definition(seed):
  a, b = _pairs(seed)
  pooled = np.concatenate([a, b]).astype(float)
  n = len(pooled)
  d_e = ((pooled[:, None] - pooled[None, :]) ** 2).sum() / (n * (n - 1))
  d_o = np.mean((a - b) ** 2.0)
  assert agreement.krippendorff_alpha(a, b, 5, "interval") == pytest.approx(1 - d_o / d_e)


def test_ordinal_alpha_properties():
  a, b = _pairs(2)
  alpha = agreement.krippendorff_alpha(a, b, 5)
  assert 0 < alpha < 1
  # Ordinal: only the order matters, so an unused category in between changes nothing.
  spread = lambda x: np.where(x >= 2, x + 1, x)
  assert agreement.krippendorff_alpha(spread(a), spread(b), 6) == pytest.approx(alpha)
  assert agreement.krippendorff_alpha(a, a, 5) == pytest.approx(1.0)


def test_summary_and_confusion():
  a, b = _pairs(3)
  s = agreement.summary(a, b, 5)
  assert s["n"] == 300 and s["exact"] == pytest.approx(np.mean(a == b))
  assert agreement.confusion_matrix(a, b, 5).sum() == 300
  assert agreement.summary([], [], 5) == {"n": 0}
  assert np.isnan(agreement.spearman([1, 1, 1], [0, 1, 2]))


def test_bootstrap_intervals_are_scipys_and_seeded():
  from scipy import stats  # pylint: disable=g-import-not-at-top

  a, b = _pairs(4, n=60)
  kappa = lambda x, y: agreement.weighted_kappa(x, y, 5)
  lo, hi = agreement.bootstrap_ci(kappa, a, b, seed=3)
  want = stats.bootstrap(
    (a, b), kappa, paired=True, vectorized=False, n_resamples=1000, rng=np.random.default_rng(3)
  ).confidence_interval
  assert (lo, hi) == (want.low, want.high) and lo < kappa(a, b) < hi
  assert agreement.bootstrap_ci(kappa, a, b, seed=3) == (lo, hi)
  assert agreement.bootstrap_ci(kappa, a, b, seed=4) != (lo, hi)
  # Too few pairs, or every resample the same: no interval.
  assert np.isnan(agreement.bootstrap_ci(kappa, a[:2], b[:2])).all()
  assert np.isnan(agreement.bootstrap_ci(agreement.spearman, np.full(10, 2), b[:10])).all()
  s = agreement.summary(a, b, 5, seed=3)
  assert s["kappa_quadratic_ci95"] == [lo, hi]
  assert s["alpha_ordinal_ci95"][0] < s["alpha_ordinal"] < s["alpha_ordinal_ci95"][1]
  assert s["spearman_ci95"][0] < s["spearman"] < s["spearman_ci95"][1]


@pytest.mark.slow
def test_agreement_report_tool(tmp_path, capsys):
  import json  # pylint: disable=g-import-not-at-top

  from rankjax.annotate import prompts, runner  # pylint: disable=g-import-not-at-top
  from rankjax.annotate import store as store_lib  # pylint: disable=g-import-not-at-top
  from rankjax.annotate.tasks import Result  # pylint: disable=g-import-not-at-top
  from rankjax.cli import annotate as annotate_cli  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  log = tmp_path / "log.jsonl"
  with log.open("w") as f:
    for q in range(12):
      for _ in range(1 + q):  # query frequencies 1..12: all three buckets
        f.write(
          json.dumps(
            {
              "query_id": f"q{q}",
              "query": f"query {q}",
              "doc_ids": ["a", "b", "c"],
              "clicks": rng.integers(0, 2, 3).tolist(),
              "labels": [4, 1, -2],
              "doc_texts": ["x", "y", "z"],
            }
          )
          + "\n"
        )
  lists, _ = runner.lists_from_log("jsonl", [str(log)])
  template = prompts.load("pointwise_graded")
  tasks, _ = runner.make_tasks(lists, template)
  llm = {}
  with store_lib.Store(tmp_path / "s.db") as st:
    for t in tasks:
      if t.qid == "q0":
        continue  # not annotated: counted as log pairs without a label
      llm[(t.qid, t.doc_ids[0])] = label = int(rng.integers(0, 5))
      st.put(Result(t, [label], str(label), expected=[label + 0.1], probs=[[0.2] * 5]), "m", "b")
  out = tmp_path / "report"
  result = annotate_cli.agreement(
    [
      str(log),
      "--format",
      "jsonl",
      "--store",
      str(tmp_path / "s.db"),
      "--model",
      "m",
      "--out",
      str(out),
    ]
  )
  human = {"a": 4, "b": 1, "c": 0}  # -2 counts as 0
  keys = [(rl.qid, d) for rl in lists for d in rl.doc_ids if (rl.qid, d) in llm]  # log order
  want = agreement.summary([llm[k] for k in keys], [human[d] for _, d in keys], 5)
  a = result["all"]
  assert (a["log_pairs"], a["without_llm_label"], a["pairs"], a["n"]) == (36, 3, 33, 33)
  assert a["kappa_quadratic"] == pytest.approx(want["kappa_quadratic"])
  assert a["alpha_ordinal"] == pytest.approx(want["alpha_ordinal"])
  assert a["kappa_quadratic_ci95"] == want["kappa_quadratic_ci95"]
  assert a["spearman_ci95"] == want["spearman_ci95"]
  assert sum(result[b]["pairs"] for b in result if b != "all") == 33
  assert sum(result[b]["log_pairs"] for b in result if b != "all") == 36
  assert (out / "confusion.png").stat().st_size > 0 and (out / "buckets.png").exists()
  report = (out / "report.md").read_text()
  lo, hi = a["kappa_quadratic_ci95"]
  assert (
    f"| all | 36 | 3 | 33 | 33 | {a['exact']:.3f} | {a['kappa_quadratic']:.3f} [{lo:.3f}, "
    in report
  )
  assert "Only 33 of the log's 36 pairs are annotated: the figures describe those pairs" in report
  assert json.loads((out / "agreement.json").read_text()) == json.loads(json.dumps(result))
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].endswith(
    ": 33 of 36 log pairs annotated (3 without a label); n = 33 with a human label"
  )
  assert lines[2] == f"  kappa_quadratic: {a['kappa_quadratic']:.3f} [{lo:.3f}, {hi:.3f}]"
  assert lines[-1] == f"report: {out / 'report.md'} (statistics: {out / 'agreement.json'})"
