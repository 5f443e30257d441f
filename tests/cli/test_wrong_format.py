"""A log read in the wrong format ends the command with a line saying so, not a success."""

import json
import pathlib
import subprocess
import sys

import pytest

from rankjax import cli

XML = pathlib.Path(__file__).parents[1] / "fixtures" / "logs" / "tiangong_st_sample.xml"
MESSAGE = (
  r"error: \d+ records skipped \(\d+ bad_json\) against 0 sessions read: are these files in "
  r"--format jsonl\? The first skip: .*tiangong_st_sample\.xml:1: "
)


def test_stats_prints_its_counts_then_fails(capsys):
  with pytest.raises(SystemExit, match=MESSAGE):
    cli.main(["data", "stats", "--format", "jsonl", str(XML), "--quiet"])
  counts = json.loads(capsys.readouterr().out)
  assert counts["sessions"] == 0 and counts["skipped"] == counts["skipped_by_reason"]["bad_json"]
  assert counts["skipped"] == sum(1 for line in XML.read_text().splitlines() if line.strip())


@pytest.mark.parametrize(
  "command",
  [
    ["data", "prepare", "--output", "{out}", "--name", "x", "--quiet"],
    ["clicks", "fit", "--model", "pbm"],
    ["clicks", "harvest"],
  ],
  ids=lambda c: " ".join(c[:2]),
)
def test_log_commands_stop_before_writing_anything(command, tmp_path):
  argv = [a.format(out=tmp_path / "out") for a in command]
  with pytest.raises(SystemExit, match=MESSAGE):
    cli.main([*argv, "--format", "jsonl", str(XML)])
  assert not (tmp_path / "out").exists()


def test_the_program_exits_with_status_1():
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "rankjax.cli",
      "data",
      "stats",
      "--format",
      "jsonl",
      str(XML),
      "--quiet",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert out.returncode == 1
  assert "are these files in --format jsonl?" in out.stderr and "Traceback" not in out.stderr


def test_a_log_in_its_format_with_a_few_skips_still_succeeds(capsys):
  quirks = XML.parent / "trec_quirks.xml"  # 2 sessions, 8 counted skips of parts of records
  cli.main(["data", "stats", "--format", "trec-session", str(quirks), "--quiet"])
  counts = json.loads(capsys.readouterr().out)
  assert (counts["sessions"], counts["skipped"]) == (2, 8)
