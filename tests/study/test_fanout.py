"""The study fanned out: its grid, shards and --only, the report assembled from saved scores, and
sweeps over a config key."""

import json

import pytest
from train_helpers import load_config, tiny_dataset, tiny_study

from rankjax.configs.errors import ConfigError
from rankjax.study import runner, sweep

# The parts of study.json that the runs' scores decide (not times).
SCORED = ("metrics", "tests", "analyses", "order", "preparation", "prepared", "left_out")


def _tiny_study(tmp_path, **study):
  return tiny_study(tiny_dataset(tmp_path / "data"), **study)


def test_the_grid_is_sweep_value_then_variant_then_seed_and_shards_split_it():
  config = load_config("demo", "noise_sweep")
  cells = runner.grid(config)
  noises = config.study.sweep["values"]
  assert len(cells) == len(noises) * len(config.study.variants) * len(config.study.seeds)
  assert [c.name for c in cells[:3]] == [
    "sweep/data.world.llm_noise=0.25/runs/click/seed0",
    "sweep/data.world.llm_noise=0.25/runs/click/seed1",
    "sweep/data.world.llm_noise=0.25/runs/data_schedule/seed0",  # the config's (sorted) order
  ]
  shards = [runner.select(config, cells, (i, 3)) for i in range(3)]
  assert sorted(c.name for s in shards for c in s) == sorted(c.name for c in cells)
  assert shards[1][:2] == [cells[1], cells[4]]
  picked = runner.select(config, cells, only={"variant": "llm", "data.world.llm_noise": "2.0"})
  assert [c.name for c in picked] == [
    "sweep/data.world.llm_noise=2.0/runs/llm/seed0",
    "sweep/data.world.llm_noise=2.0/runs/llm/seed1",
  ]
  assert runner.select(config, cells, (0, 2), {"seed": "0"}) == cells[0::2]
  with pytest.raises(runner.RunsError, match="no key zipf in the study's grid; its keys: variant"):
    runner.select(config, cells, only={"zipf": "1"})
  with pytest.raises(runner.RunsError, match=r"seed=7: no run .* seed 0, 1; data.world.llm_noise"):
    runner.select(config, cells, only={"seed": "7"})


def test_a_sweep_is_checked_before_anything_runs():
  config = load_config("demo", "noise_sweep")
  runner.check(config)
  for section, line in [
    ({"key": "data.world.nope", "values": (1.0,)}, "config.study.sweep.key='data.world.nope'"),
    ({"key": "study.seeds", "values": ((0,),)}, "a key of the config outside study"),
    ({"key": "data.world.zipf", "values": ()}, "config.study.sweep['values']=(): a non-empty"),
    ({"key": "data.world", "values": (1,)}, "the config has no such value (a section"),
    ({"key": "total_steps", "values": (2.5,)}, "2.5 for total_steps: Could not override"),
    ({"key": "data.world.zipf", "values": (1.1, 1.1)}, "each value names its own directory"),
    ({"key": "optimizer.lr", "values": (1e-3, -1.0)}, "at sweep/optimizer.lr=-1.0: config."),
    ({"values": (1,)}, "config.study.sweep={'values': (1,)}: a mapping {'key': <a config key>"),
  ]:
    config.study.sweep = section
    with pytest.raises(ConfigError) as error:
      runner.check(config)
    assert line in str(error.value), str(error.value)


def test_the_report_refuses_naming_every_run_not_finished(tmp_path):
  config = _tiny_study(tmp_path)
  (tmp_path / "w" / "runs" / "human" / "seed1" / "checkpoints" / "2").mkdir(parents=True)
  with pytest.raises(runner.RunsError) as error:
    runner.report(config, tmp_path / "w")
  assert str(error.value) == (
    f"{tmp_path / 'w'}: 4 of the study's 4 runs are not finished: runs/click/seed0 (missing), "
    "runs/click/seed1 (missing), runs/human/seed0 (missing), runs/human/seed1 (unfinished: "
    "checkpoint step 2 of 4); run them first (rankjax study without --report, or its --shard / "
    "--only)"
  )
  assert not (tmp_path / "w" / "report.md").exists()


@pytest.mark.slow
def test_shards_run_apart_then_report_equal_one_process(tmp_path):
  config = _tiny_study(tmp_path, seeds=(0,))
  whole = runner.run(config, tmp_path / "whole")
  assert (tmp_path / "whole" / "runs" / "human" / "seed0" / runner.SCORES).is_file()
  shard = runner.run(config, tmp_path / "shards", shard=(0, 2))
  assert shard == {"preempted": False, "seconds": shard["seconds"], "runs": 1, "grid": 2}
  assert runner.headline(shard, tmp_path)[0].startswith("study: 1 of the grid's 2 runs finished")
  with pytest.raises(runner.RunsError, match=r": 1 of the study's 2 runs .*: runs/human/seed0 \(m"):
    runner.report(config, tmp_path / "shards")
  first = tmp_path / "shards" / "runs" / "click" / "seed0" / runner.SCORES
  before = first.stat().st_mtime_ns
  runner.run(config, tmp_path / "shards", shard=(0, 2))  # its run is reused, not trained again
  assert first.stat().st_mtime_ns == before
  runner.run(config, tmp_path / "shards", shard=(1, 2))
  apart = runner.report(config, tmp_path / "shards")
  assert set(whole["metrics"]) == {"click", "human", "logged_order"}
  saved = [json.loads((tmp_path / d / "study.json").read_text()) for d in ("whole", "shards")]
  assert {k: saved[0][k] for k in SCORED} == {k: saved[1][k] for k in SCORED}
  assert apart["run_seconds"] > 0
  # The same report but for the times.
  reports = [(tmp_path / d / "report.md").read_text().splitlines() for d in ("whole", "shards")]
  timed = [i for i, line in enumerate(reports[0]) if "Study time" in line]
  assert (
    "summed over runs" in reports[1][timed[0]]
    and f"{apart['run_seconds']:.0f} s" in (reports[1][timed[0]])
  )
  assert len(timed) == 1 and len(reports[0]) == len(reports[1])
  assert [r[: timed[0]] + r[timed[0] + 1 :] for r in reports[0:1]] == [
    r[: timed[0]] + r[timed[0] + 1 :] for r in reports[1:2]
  ]
  # Scores of a shorter run than the config asks for are not the study's.
  config.total_steps = 6
  with pytest.raises(runner.RunsError, match=r"runs/click/seed0 \(scored at step 4 of 6\)"):
    runner.report(config, tmp_path / "shards")


@pytest.mark.slow
def test_a_sweep_writes_its_table_and_plot(tmp_path):
  config = _tiny_study(
    tmp_path,
    seeds=(0,),
    variants={"click": {"source": "click"}},
    sweep={"key": "optimizer.lr", "values": (1e-3, 0.1)},
  )
  summary = runner.run(config, tmp_path / "w")
  assert summary["key"] == "optimizer.lr" and summary["values"] == [1e-3, 0.1]
  for name in ("optimizer.lr=0.001", "optimizer.lr=0.1"):
    saved = json.loads((tmp_path / "w" / "sweep" / name / "study.json").read_text())
    assert set(saved["metrics"]) == {"click", "logged_order"}
  assert not (tmp_path / "w" / "sweep" / name / "data").exists()  # one dataset for the sweep
  # The logged order does not depend on the learning rate: the same value at both.
  points = summary["ndcg10"]["logged_order"]["all"]
  assert points[0]["mean"] == points[1]["mean"] and points[0]["std"] == 0.0
  assert (
    summary["ndcg10"]["click"]["all"][0]["mean"] != summary["ndcg10"]["click"]["all"][1]["mean"]
  )
  text = (tmp_path / "w" / "sweep.md").read_text()
  assert "| bucket | variant | optimizer.lr=0.001 | optimizer.lr=0.1 |" in text
  row = next(line for line in text.splitlines() if line.startswith("| all | logged_order |"))
  assert row.count("±") == 2
  assert "[sweep/optimizer.lr=0.1](sweep/optimizer.lr=0.1/report.md)" in text
  assert (tmp_path / "w" / "sweep_ndcg10.png").read_bytes()[:4] == b"\x89PNG"
  assert json.loads((tmp_path / "w" / "sweep.json").read_text())["order"] == summary["order"]
  assert runner.headline(summary, tmp_path / "w")[-1].startswith(
    f"Report: {(tmp_path / 'w' / 'sweep.md').resolve()} ("
  )


def test_the_sweep_plot_has_a_panel_per_bucket_and_a_line_per_variant():
  point = {"mean": 0.5, "std": 0.1, "lists": 3, "test": None}
  summary = {
    "key": "data.world.zipf",
    "values": [0.8, 1.1, 1.4],
    "order": ["click", "human"],
    "references": ["human"],
    "seeds": [0, 1],
    "ndcg10": {
      v: {b: [point, None, point] for b in sweep.stats.BUCKETS} for v in ("click", "human")
    },
  }
  fig = sweep.figure(summary)
  assert [ax.get_title() for ax in fig.axes] == list(sweep.stats.BUCKETS)
  for ax in fig.axes:  # a line per variant, through the values it has
    lines = [bars.lines[0] for bars in ax.containers]
    assert [list(line.get_xdata()) for line in lines] == [[0.8, 1.4], [0.8, 1.4]]
    assert [line.get_linestyle() for line in lines] == ["-", "--"]
  assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == [
    "click",
    "human (reference)",
  ]
  lines = sweep.table(summary)
  assert lines[0] == (
    "| bucket | variant | data.world.zipf=0.8 | data.world.zipf=1.1 | data.world.zipf=1.4 |"
  )
  assert "| high | human (reference) | 0.5000 ± 0.1000 |  | 0.5000 ± 0.1000 |" in lines
