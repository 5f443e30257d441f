"""`rankjax data prepare --beam`: the Beam pipeline's dataset equals the in-process one, its
pipeline options per runner, its skips as Beam counters."""

import gzip
import json
import pathlib
import random

import numpy as np
import pytest

pytest.importorskip(
  "apache_beam",
  reason="Apache Beam is the optional extra rankjax[beam] (pip install -e '.[beam]'); "
  "an environment without it skips these",
)

from rankjax.cli.data import main  # noqa: E402
from rankjax.data import store, text  # noqa: E402
from rankjax.data.readers.errors import InputError  # noqa: E402

FIX = pathlib.Path(__file__).parent.parent / "fixtures" / "logs"


def _log(directory: pathlib.Path, sessions: int = 300, files: int = 3) -> list[str]:
  """A JSON Lines log in `files` shards (the last gzipped) with topics, labels, texts, dwell and
  one bad line per shard; the same query in several shards."""
  rng = random.Random(7)
  paths = []
  for f in range(files):
    lines = ["not json"]
    for s in range(sessions // files):
      for _ in range(rng.randint(1, 3)):
        q = rng.randint(0, 40)
        docs = rng.sample([f"d{i}" for i in range(25)], rng.randint(2, 6))
        clicks = [int(rng.random() < 0.3) for _ in docs]
        lines.append(
          json.dumps(
            {
              "session_id": f"s{f}-{s}",
              "query_id": f"q{q}",
              "query": f"query {q}",
              "topic": f"t{q % 7}" if rng.random() < 0.95 else f"t{q % 5}",
              "doc_ids": docs,
              "clicks": clicks,
              "dwell": [rng.uniform(1, 60) if c else None for c in clicks],
              "labels": [rng.randint(0, 3) if rng.random() < 0.2 else None for _ in docs],
              "doc_texts": [f"text of {d}" if rng.random() < 0.5 else "" for d in docs],
            }
          )
        )
    path = directory / f"log-{f}.jsonl"
    text = "\n".join(lines) + "\n"
    if f == files - 1:
      path = path.with_suffix(".jsonl.gz")
      path.write_bytes(gzip.compress(text.encode()))
    else:
      path.write_text(text)
    paths.append(str(path))
  return paths


def _prepare(tmp_path, name, args, capsys, beam: bool):
  main(
    ["prepare", *args, "--output", str(tmp_path), "--name", name, "--quiet", "--json"]
    + (["--beam", "--beam-option", "direct_num_workers=2"] if beam else [])
  )
  return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _records(path, split):
  source = store.open_split(path, split)
  return sorted((source[i] for i in range(len(source))), key=lambda r: r["qid"])


def _same(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def _same_datasets(beam: dict, local: dict) -> dict:
  """Asserts that the two `prepare` summaries' datasets hold the same lists, record for record;
  returns the layout."""
  assert beam["lists"] == local["lists"]
  layout = store.open_split(local["path"], "train").layout
  assert store.open_split(beam["path"], "train").layout == layout
  for split, n in local["lists"].items():
    if n:
      ours, theirs = _records(beam["path"], split), _records(local["path"], split)
      assert len(ours) == len(theirs) == n
      for a, b in zip(ours, theirs):
        _same(a, b)
      np.testing.assert_array_equal(
        np.sort(store.open_split(beam["path"], split).lengths),
        np.sort(store.open_split(local["path"], split).lengths),
      )
  return layout


@pytest.mark.slow
@pytest.mark.parametrize(
  "fmt_args",
  [
    ["--format", "jsonl", "--freq-by", "topic", "--split-by", "topic"],
    [
      "--format",
      "trec-session",
      str(FIX / "trec_quirks.xml"),
      "--labels",
      str(FIX / "trec_quirks_qrels.txt"),
      "--test-fraction",
      "0",
    ],
  ],
  ids=["jsonl-sharded", "trec-session"],
)
def test_beam_and_in_process_prepare_the_same_dataset(tmp_path, capsys, fmt_args):
  args = fmt_args + (_log(tmp_path) if fmt_args[1] == "jsonl" else [])
  local = _prepare(tmp_path / "local", "same", args, capsys, beam=False)
  beam = _prepare(tmp_path / "beam", "same", args, capsys, beam=True)
  for key in ("buckets", "position_totals", "conflicts", "read", "warnings"):
    assert beam[key] == local[key], key
  assert local["read"]["skipped"] > 0
  _same_datasets(beam, local)


@pytest.mark.slow
def test_beam_tokenizes_as_in_process(tmp_path, capsys, minilm_dir):
  args = ["--format", "jsonl", *_log(tmp_path, sessions=90), "--tokenizer", minilm_dir]
  args += ["--max-tokens", "24", "--max-query-tokens", "4"]  # short: some documents truncated
  local = _prepare(tmp_path / "local", "tok", args, capsys, beam=False)
  beam = _prepare(tmp_path / "beam", "tok", args, capsys, beam=True)
  assert beam["joined"] == local["joined"] and local["joined"]["tokens_pairs"] > 0
  assert _same_datasets(beam, local)["tokens"] == 24
  rules = pathlib.Path(beam["path"]) / text.RULES_FILE
  assert json.loads(rules.read_text())["max_tokens"] == 24


def _features(path: pathlib.Path, skip: tuple[str, str] | None = None) -> str:
  """An svmlight file with a row for every (query, document) of `_log` but `skip`: queries out of
  order, and the first row given again (the later one counts)."""
  rng = random.Random(3)
  lines = []
  for q in rng.sample(range(41), 41):
    for d in range(25):
      if (f"q{q}", f"d{d}") != skip:
        feats = " ".join(f"{j + 1}:{rng.random():.4f}" for j in range(5) if rng.random() < 0.8)
        lines.append(f"0 qid:q{q} {feats} # docid = d{d}")
  query, doc = lines[0].split(" ")[1], lines[0].rsplit(" ", 1)[1]
  lines.insert(1, f"0 {query} 1:0.5 2:0.25 # docid = {doc}")
  path.write_text("\n".join(lines) + "\n")
  return str(path)


@pytest.mark.slow
def test_beam_joins_features_as_in_process(tmp_path, capsys):
  args = ["--format", "jsonl", *_log(tmp_path, sessions=90)]
  args += ["--features", _features(tmp_path / "features.txt")]
  local = _prepare(tmp_path / "local", "feat", args, capsys, beam=False)
  beam = _prepare(tmp_path / "beam", "feat", args, capsys, beam=True)
  assert beam["features"] == local["features"]
  assert _same_datasets(beam, local)["features"] == 5

  args[-1] = _features(tmp_path / "holey.txt", skip=("q3", "d7"))
  with pytest.raises(
    InputError, match=r"holey.txt: no features for query 'q3', documents \['d7'\]"
  ):
    _prepare(tmp_path / "beam2", "feat", args, capsys, beam=True)


@pytest.mark.slow
def test_skips_are_beam_counters(tmp_path):
  from rankjax.data import beam_prepare, plan

  files = _log(tmp_path, sessions=30)
  result = beam_prepare.prepare(
    "jsonl",
    files,
    {},
    plan.Options("sessions", "quantile", {}, "query", 0.2, 0.1),
    directory=str(tmp_path / "out"),
    name="counted",
    description="",
    beam_options=beam_prepare.pipeline_options("DirectRunner", ["direct_running_mode=in_memory"]),
  )
  assert result.counters["skipped:bad_json"] == len(files) == result.read.reasons["bad_json"]
  assert result.counters["sessions"] == result.read.sessions


@pytest.mark.parametrize(
  "runner, expected",
  [
    ("DataflowRunner", {"project": "my-project", "region": "europe-west4", "num_workers": 50}),
    ("FlinkRunner", {"flink_master": "flink-jobmanager:8081", "parallelism": 64}),
    ("SparkRunner", {"spark_master_url": "spark://spark-master:7077"}),
    ("DirectRunner", {"direct_running_mode": "multi_processing", "direct_num_workers": 2}),
  ],
)
def test_dry_run_prints_the_pipeline_options_of_each_runner(runner, expected, capsys):
  from rankjax.data import beam_prepare

  options = [f"--beam-option={o}" for o in beam_prepare.RUNNER_EXAMPLES[runner]]
  main(
    [
      "prepare",
      "--format",
      "jsonl",
      "x.jsonl",
      "--output",
      "o",
      "--name",
      "n",
      "--beam",
      "--runner",
      runner,
      *options,
      "--dry-run",
    ]
  )
  out = json.loads(capsys.readouterr().out)
  assert out["runner"] == runner and expected.items() <= out.items()


def test_the_direct_runner_defaults_to_every_core_in_processes(capsys):
  main(
    [
      "prepare",
      "--format",
      "jsonl",
      "x.jsonl",
      "--output",
      "o",
      "--name",
      "n",
      "--beam",
      "--dry-run",
    ]
  )
  out = json.loads(capsys.readouterr().out)
  assert out["direct_running_mode"] == "multi_processing" and out["direct_num_workers"] == 0


def test_an_option_beam_does_not_know_is_one_error_line():
  from rankjax.data import beam_prepare
  from rankjax.errors import UserError

  with pytest.raises(UserError, match="no pipeline option.*num_wrokers"):
    beam_prepare.pipeline_options("DataflowRunner", ["num_wrokers=5"])
  with pytest.raises(UserError, match="KEY=VALUE"):
    beam_prepare.pipeline_options("DataflowRunner", ["num_workers"])
