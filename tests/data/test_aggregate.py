"""Per (query, document) aggregation and conversion to RankingLists."""

import json
import math
import pathlib

import numpy as np
import pytest

from rankjax import registry
from rankjax.data import aggregate, readers, schema

FIX = pathlib.Path(__file__).parent.parent / "fixtures" / "logs"


def test_generic_log_aggregation_by_position():
  agg = aggregate.ClickAggregator().add_all(
    readers.read_sessions("jsonl", FIX / "generic_sample.jsonl")
  )
  q1 = agg.pairs["q1"]
  # q1: s1 shows a,b,c (click b, dwell 12); s2 shows b,a,c (click b); s4 shows a,b (no click).
  assert dict(q1["b"].impressions_by_pos) == {2: 2, 1: 1} and dict(q1["b"].clicks_by_pos) == {
    2: 1,
    1: 1,
  }
  assert q1["a"].impressions == 3 and q1["a"].clicks == 0
  assert q1["b"].last_clicks == 2 and q1["b"].mean_dwell == 12.0
  assert agg.position_totals() == {1: (4, 2), 2: (4, 2), 3: (2, 0)}
  lst = aggregate.to_ranking_list(agg, "q1", query_freq=3.0, bucket=0)
  assert lst.doc_ids == ["a", "b", "c"]  # by mean shown position: 4/3, 5/3, 3
  i = {d: k for k, d in enumerate(lst.doc_ids)}
  np.testing.assert_allclose(lst.labels["click"][i["b"]], 2 / 3, rtol=1e-6)
  assert (
    lst.labels["click"][i["a"]] == 0 and lst.positions[i["b"]] == 2 and lst.positions[i["c"]] == 3
  )
  assert lst.labels["human"][i["b"]] == 3 and np.isnan(lst.labels["human"][i["c"]])
  np.testing.assert_allclose(lst.extras["global_ctr"][i["b"]], 2 / 3, rtol=1e-6)
  assert set(lst.extras) == set(aggregate.EXTRAS) and lst.query == "shoes"


def test_ranking_lists_carry_frequency_and_buckets():
  agg = aggregate.ClickAggregator().add_all(
    readers.read_sessions("jsonl", FIX / "generic_sample.jsonl")
  )
  lists = {
    x.qid: x for x in aggregate.to_ranking_lists(agg, bucket_method="threshold", high=3, medium=2)
  }
  assert lists["q1"].query_freq == 3 and lists["q1"].bucket == 0
  assert lists["q2"].query_freq == 1 and lists["q2"].bucket == 2
  summary = aggregate.bucket_summary(agg, {"q1": 0, "q2": 2}, agg.freq.frequency())
  assert summary["high"] == {
    "queries": 1,
    "min_frequency": 3.0,
    "max_frequency": 3.0,
    "frequency": 3.0,
    "impressions": 8,
    "clicks": 2,
  }
  assert summary["low"]["impressions"] == 2 and summary["medium"]["queries"] == 0
  assert summary["medium"]["min_frequency"] is None and summary["medium"]["max_frequency"] is None


def test_baidu_annotations_use_dataset_buckets_and_unknown_positions(shared_data):
  val = shared_data("baidu_ultr_val_slice", "val_data.txt")
  agg = aggregate.ClickAggregator().add_all(readers.read_sessions("baidu-ultr-annotations", val))
  lists = list(aggregate.to_ranking_lists(agg, bucket_method="dataset", dataset="baidu-ultr"))
  raw = {line.split("\t")[0]: int(line.split("\t")[5]) for line in open(val)}
  for x in lists:
    assert x.bucket == (0 if raw[x.qid] <= 2 else 1 if raw[x.qid] <= 6 else 2)
    assert (x.positions == 0).all() and "human" in x.labels and np.isfinite(x.labels["human"]).all()


def test_real_logs_aggregate_every_impression_and_click(shared_data):
  sample = shared_data("sogou_pscm_thuir", "sample")
  summary = readers.ReadSummary()
  agg = aggregate.ClickAggregator().add_all(
    readers.read_sessions(
      "sogou", [sample / "train_data", sample / "test_data"], summary, queries=sample / "query_id"
    )
  )
  lists = list(aggregate.to_ranking_lists(agg))
  assert sum(x.extras["impressions"].sum() for x in lists) == summary.results
  assert sum(x.extras["clicks"].sum() for x in lists) == summary.clicks
  assert len(lists) == len(summary.queries)
  assert all(
    isinstance(x, schema.RankingList)
    and ((x.labels["click"] >= 0) & (x.labels["click"] <= 1)).all()
    for x in lists
  )
  counts = np.bincount([x.bucket for x in lists], minlength=3)
  assert counts[0] > 0 and counts[2] > 0

  trec = shared_data("trec_session_2012_2013")
  agg = aggregate.ClickAggregator().add_all(
    readers.read_sessions(
      "trec-session", trec / "sessiontrack2013.xml", labels=trec / "relevance2013.txt"
    )
  )
  lists = list(aggregate.to_ranking_lists(agg))
  with_human = [x for x in lists if "human" in x.labels]
  assert len(with_human) > len(lists) / 2 and all(x.doc_texts is not None for x in lists)
  assert not math.isnan(sum(float(x.extras["mean_dwell"].sum()) for x in lists))


def test_prepare_cli_writes_a_dataset_the_store_reads(tmp_path, capsys):
  import json

  from rankjax.cli.data import main
  from rankjax.data import splits, store

  main(
    [
      "prepare",
      "--format",
      "tiangong-st",
      str(FIX / "tiangong_st_sample.xml"),
      "--labels",
      str(FIX / "tiangong_st_labels.txt"),
      "--queries",
      str(FIX / "tiangong_st_queries.json"),
      "--output",
      str(tmp_path),
      "--name",
      "tiangong_fixture",
      "--test-fraction",
      "0",
      "--quiet",
      "--json",
    ]
  )
  out = json.loads(capsys.readouterr().out)
  # Of three queries, one is held out for validation, so that a config selecting on it runs.
  assert out["lists"] == {"train": 2, "validation": 1, "test": 0} and out["read"]["skipped"] == 2
  records = {
    split[i]["qid"].decode(): split[i]
    for name in ("train", "validation")
    for split in [store.open_split(out["path"], name)]
    for i in range(len(split))
  }
  assert set(records) == {"q1", "q2", "q3"}
  q1 = records["q1"]
  # q1 was shown twice (10 then 7 results): d10 at rank 1 both times, clicked once.
  k = [d.decode() for d in q1["doc_ids"]].index("d10")
  assert q1["extra_impressions"][k] == 2 and q1["label_click"][k] == 0.5 and q1["position"][k] == 1
  assert np.isnan(q1["label_human"]).all() and np.isfinite(records["q2"]["label_human"]).all()
  assert splits.in_test_split("q1", 1.0) and not splits.in_test_split("q1", 0.0)


def test_prepare_joins_features_of_a_simulated_log(shared_data, tmp_path, capsys):
  import json

  from rankjax.cli.data import main
  from rankjax.data import store
  from rankjax.data.readers.generic import write_jsonl
  from rankjax.data.svmlight import read_svmlight
  from rankjax.sim import clicks as sim_lib

  path = shared_data("lightgbm_lambdarank_example", "rank.test")
  lists = read_svmlight(path)
  with open(tmp_path / "log.jsonl", "w") as f:
    write_jsonl(sim_lib.simulate(lists, sessions=2000, seed=0).records(), f)
  main(
    [
      "prepare",
      "--format",
      "jsonl",
      str(tmp_path / "log.jsonl"),
      "--features",
      str(path),
      "--output",
      str(tmp_path),
      "--name",
      "sim",
      "--quiet",
      "--json",
    ]
  )
  out = json.loads(capsys.readouterr().out)
  rec = store.open_split(out["path"], "train")[0]
  source = {x.qid: x for x in lists}[rec["qid"].decode()]
  rows = [source.doc_ids.index(d.decode()) for d in rec["doc_ids"]]
  np.testing.assert_array_equal(rec["features"], source.features[rows])
  np.testing.assert_array_equal(rec["label_human"], source.labels["human"][rows])


def test_prepare_with_the_sogou_query_file_frequencies(tmp_path, capsys):
  import json

  from rankjax.cli.data import main
  from rankjax.data import store

  main(
    [
      "prepare",
      "--format",
      "sogou",
      str(FIX / "sogou_sample.txt"),
      "--queries",
      str(FIX / "sogou_query_id"),
      "--freq-by",
      "dataset",
      "--buckets",
      "threshold",
      "--high",
      "3",
      "--medium",
      "2",
      "--test-fraction",
      "0",
      "--output",
      str(tmp_path),
      "--name",
      "sogou_fixture",
      "--quiet",
      "--json",
    ]
  )
  out = json.loads(capsys.readouterr().out)
  got = {
    split[i]["qid"].decode(): (float(split[i]["query_freq"]), int(split[i]["bucket"]))
    for name in ("train", "validation")
    for split in [store.open_split(out["path"], name)]
    for i in range(len(split))
  }
  assert got == {"0": (3.0, 0), "1": (1.0, 2)}  # the file's session counts, not the log's (2 and 1)
  assert store.open_split(out["path"], "train")[0]["query"].decode() in ("汉字英雄", "中文")


@pytest.fixture(name="toy_buckets")
def fixture_toy_buckets():
  """A toy bucket method registered for one test: a query shown at least `high` times is high,
  every other one low (it takes the threshold flag --high)."""
  registered = dict(aggregate.BUCKET_METHODS)

  @aggregate.bucket_method("toy_clicked", "high")
  def _toy(agg, freq, *, high):
    del freq
    return {q: 0 if agg.query_totals(q)[0] >= high else 2 for q in agg.pairs}

  yield "toy_clicked"
  aggregate.BUCKET_METHODS.clear()
  aggregate.BUCKET_METHODS.update(registered)


def test_a_registered_bucket_method_and_its_option_reach_data_prepare(
  toy_buckets, tmp_path, capsys
):
  from rankjax.cli.data import main

  argv = [
    "prepare",
    "--format",
    "jsonl",
    str(FIX / "generic_sample.jsonl"),
    "--buckets",
    toy_buckets,
    "--test-fraction",
    "0",
    "--output",
    str(tmp_path),
    "--name",
    "t",
    "--quiet",
    "--json",
  ]
  with pytest.raises(SystemExit):
    main(argv)  # the method's option is required
  assert f"--buckets {toy_buckets} needs --high" in capsys.readouterr().err
  main([*argv, "--high", "5"])
  buckets = json.loads(capsys.readouterr().out)["buckets"]
  # q1 is shown 8 times, q2 twice.
  assert buckets["high"]["impressions"] == 8 and buckets["low"]["impressions"] == 2


def test_an_unknown_bucket_method_lists_the_registered_ones():
  log = readers.read_sessions("jsonl", FIX / "generic_sample.jsonl")
  agg = aggregate.ClickAggregator().add_all(log)
  with pytest.raises(
    registry.UnknownName, match="unknown bucket method 'median'; known: .*quantile"
  ):
    aggregate.buckets_for(agg, agg.freq.frequency(), "median")
