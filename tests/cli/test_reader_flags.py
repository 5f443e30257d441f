"""Reader flags come from the format records: a format registered once, with its option, is read
by the real commands through a flag no command declares."""

import importlib
import json

import pytest

from rankjax import cli
from rankjax.data import readers
from rankjax.data.readers import common


@pytest.fixture(name="toy_log")
def fixture_toy_log(tmp_path):
  """A toy format, registered for the test, and a 4-line log of it: each line is a query whose
  result list has `--toy-option` documents (default 1), the first one clicked."""
  registered = dict(readers.FORMATS)

  @common.log_format("toy", toy_option=common.Option("documents shown per query", int))
  def read_toy(path, summary, *, toy_option=1):
    for n, raw in common.iter_lines(path, summary):
      docs = [f"d{i}" for i in range(toy_option)]
      shown = common.Interaction(
        raw.decode(), docs, list(range(1, toy_option + 1)), [1] + [0] * (toy_option - 1)
      )
      yield summary.count(common.Session(str(n), [shown], f"{path}:{n}"))

  path = tmp_path / "log.toy"
  path.write_text("a\nb\nc\na\n")
  yield path
  readers.FORMATS.clear()
  readers.FORMATS.update(registered)


@pytest.mark.parametrize("option,results", [([], 4), (["--toy-option", "3"], 12)])
def test_a_registered_format_and_its_option_reach_data_stats(toy_log, option, results, capsys):
  cli.main(["data", "stats", "--format", "toy", str(toy_log), *option, "--quiet"])
  stats = json.loads(capsys.readouterr().out)
  assert (stats["sessions"], stats["results"], stats["clicks"]) == (4, results, 4)
  assert stats["unique_queries"] == 3


def _log_commands():
  """Every subcommand of the argparse groups (`SUBCOMMANDS`), as [group, subcommand]."""
  for group in cli.COMMANDS:
    module = importlib.import_module(f"rankjax.cli.{group}")
    yield from ([group, sub] for sub in getattr(module, "SUBCOMMANDS", ()))


@pytest.mark.parametrize("command", list(_log_commands()), ids=" ".join)
def test_every_log_command_offers_every_reader_option(toy_log, command, capsys):
  del toy_log  # registered: its option must be offered too
  with pytest.raises(SystemExit) as exit_info:
    cli.main([*command, "--help"])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  if "--format" in text:  # the command reads click logs
    assert "toy" in text and "--toy-option" in text and "documents shown per query" in text


def test_an_option_the_format_does_not_take_is_an_error_naming_those_it_takes(toy_log):
  takes = r"--format toy takes \['--toy-option'\], not \['--labels'\]"
  with pytest.raises(SystemExit, match=takes):
    cli.main(["data", "stats", "--format", "toy", str(toy_log), "--labels", "qrels.txt"])
