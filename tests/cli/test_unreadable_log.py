"""A log file that cannot be read at all ends the program with one line naming it and exit
status 1: no traceback, no partial success."""

import subprocess
import sys

import pytest


def run(*argv) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "-m", "rankjax.cli", "data", "stats", *map(str, argv), "--quiet"],
    capture_output=True,
    text=True,
    timeout=120,
  )


@pytest.mark.parametrize("case", ["directory", "not gzip", "gbk query file as utf-8"])
def test_unreadable_log_is_one_line_and_status_1(tmp_path, case):
  if case == "directory":
    argv, line = ["--format", "jsonl", tmp_path], f"error: {tmp_path}: is a directory, not a log"
  elif case == "not gzip":
    path = tmp_path / "log.jsonl.gz"
    path.write_text('{"query_id": "q", "doc_ids": ["a"], "clicks": [1]}\n')
    argv, line = ["--format", "jsonl", path], f"error: {path}: not a gzip file"
  else:
    queries, log = tmp_path / "query_id", tmp_path / "train_data"
    queries.write_bytes("".join(f"查询{i}\t{i}\t3\t2\n" for i in range(4)).encode("gbk"))
    log.write_text("0\t1 2\t1 0\t5 -1\n")
    argv = ["--format", "sogou", log, "--queries", queries, "--encoding", "utf-8"]
    line = f"error: {queries}: 4 of 4 lines are not valid utf-8"
  out = run(*argv)
  assert out.returncode == 1 and out.stdout == ""
  assert out.stderr.startswith(line) and len(out.stderr.strip().splitlines()) == 1, out.stderr
