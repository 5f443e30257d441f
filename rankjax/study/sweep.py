r"""A sweep: the whole study at each value of one config key, and NDCG@10 against that value.

  config.study.sweep = {"key": "data.world.llm_noise", "values": (0.25, 0.5, 1.0, 2.0)}

`key` is any key of the config outside `study` (the demo world's `data.world.llm_noise`, `zipf`,
`eta`, `click_noise`; `optimizer.lr`, `total_steps`, a gate's parameters); `values` a non-empty
sequence. The study at each value is an ordinary study in `<workdir>/sweep/<key>=<value>/` (its
runs, report.md, study.json, plots; resumable like any), and the sweep's report is
`<workdir>/sweep.md`, `sweep.json` and `sweep_ndcg10.png`: NDCG@10 per variant and bucket against
the swept value (mean ± std over seeds, ▲/▼ the value's own paired test against the baseline).
"""

from __future__ import annotations

import collections.abc

import matplotlib
import ml_collections

from rankjax.configs import validate
from rankjax.study import report as report_lib
from rankjax.study import stats

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

METRIC = "ndcg@10"
# Keys a sweep cannot take: the study's own section, and the seed each run sets from its seeds.
_NOT_SWEPT = ("study", "seed")


def section(config) -> ml_collections.ConfigDict | None:
  """`config.study.sweep`, None for a study without one."""
  return config.study.sweep


def directory(key: str, value) -> str:
  """The study's directory at one value, under the workdir: "sweep/data.world.llm_noise=0.5"."""
  return f"sweep/{key}={value}"


def problems(config) -> list[str]:
  """One line per violation of `config.study.sweep`: a key the config lacks (or the study's own),
  values that are not a non-empty sequence, values the key cannot take or that name one directory
  twice. A sweep value's config is checked as a whole by the runner (`studies`)."""
  sweep = section(config)
  if sweep is None:
    return []
  if not hasattr(sweep, "keys") or set(sweep.keys()) != {"key", "values"}:
    shown = sweep.to_dict() if hasattr(sweep, "to_dict") else sweep  # a ConfigDict's repr is YAML
    return [
      f"config.study.sweep={shown!r}: a mapping {{'key': <a config key>, 'values': (...)}}, "
      "e.g. {'key': 'data.world.llm_noise', 'values': (0.25, 0.5, 1.0)}"
    ]
  key, values = sweep["key"], sweep["values"]
  if not isinstance(key, str) or key.split(".")[0] in _NOT_SWEPT:
    return [f"config.study.sweep.key={key!r}: a key of the config outside study, other than seed"]
  if validate.get(config, key) is validate.MISSING or hasattr(validate.get(config, key), "keys"):
    return [f"config.study.sweep.key={key!r}: the config has no such value (a section or absent)"]
  if not isinstance(values, collections.abc.Sequence) or isinstance(values, str) or not values:
    return [f"config.study.sweep['values']={values!r}: a non-empty sequence of values for {key}"]
  lines = []
  names = [directory(key, v) for v in values]
  if len(set(names)) < len(names) or any(n.count("/") != 1 for n in names):
    lines.append(
      f"config.study.sweep['values']={values!r}: each value names its own directory "
      f"({', '.join(names)}): distinct, without '/'"
    )
  for value in values:
    try:
      at(config, value)
    except TypeError as e:  # ml_collections refuses a value of another type than the key's
      lines.append(f"config.study.sweep['values']: {value!r} for {key}: {e}")
  return lines


def at(config, value) -> ml_collections.ConfigDict:
  """The study config at one sweep value: `config` with the swept key set, without the sweep."""
  out = ml_collections.ConfigDict(config.to_dict())
  *path, last = section(config)["key"].split(".")
  node = out
  for part in path:
    node = node[part]
  node[last] = value
  out.study.sweep = None
  return out


def studies(config) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(the study's directory under the workdir, its config) at every sweep value, in the sweep's
  order; a study without a sweep is one: ("", config)."""
  sweep = section(config)
  if sweep is None:
    return [("", config)]
  return [(directory(sweep["key"], v), at(config, v)) for v in sweep["values"]]


def summarize(config, summaries: dict[str, dict]) -> dict:
  """The sweep's summary from each value's study summary ({directory: summary}): NDCG@10 per
  variant, bucket and value (None where a value's study has no such cell) with its test."""
  sweep = section(config)
  first = next(iter(summaries.values()))
  order = list(first["order"])
  for summary in summaries.values():  # a baseline left out at one value is still shown at others
    order += [v for v in summary["order"] if v not in order]
  values = {}
  for v in order:
    for b in stats.BUCKETS:
      values.setdefault(v, {})[b] = [
        _point(s["metrics"].get(v, {}).get(METRIC, {}).get(b), s["tests"].get(v, {}), b)
        for s in summaries.values()
      ]
  return {
    "key": sweep["key"],
    "values": list(sweep["values"]),
    "studies": list(summaries),
    "metric": METRIC,
    "order": order,
    "references": sorted({r for s in summaries.values() for r in s["references"]}),
    "baseline": first["baseline"],
    "seeds": first["seeds"],
    "ndcg10": values,
  }


def _point(cell: dict | None, tests: dict, bucket: str) -> dict | None:
  if cell is None:
    return None
  return {**cell, "test": tests.get(METRIC, {}).get(bucket)}


def table(summary: dict) -> list[str]:
  """The Markdown table: a row per bucket and variant, a column per swept value."""
  lines = [
    "| bucket | variant | " + " | ".join(f"{summary['key']}={v}" for v in summary["values"]) + " |",
    "|---|---|" + "---|" * len(summary["values"]),
  ]
  for b in stats.BUCKETS:
    for v in summary["order"]:
      name = f"{v} (reference)" if v in summary["references"] else v
      cells = summary["ndcg10"][v][b]
      lines.append(
        f"| {b} | {name} | "
        + " | ".join("" if c is None else report_lib.cell(c, c["test"]) for c in cells)
        + " |"
      )
  return lines


def report(summary: dict) -> str:
  """sweep.md: what was swept, the table, the plot, and where each value's own report is."""
  return "\n".join(
    [
      f"# rankjax sweep: {summary['key']}",
      "",
      f"The study at {summary['key']} = {', '.join(map(str, summary['values']))}; NDCG@10 on "
      "the evaluation split against human labels, mean ± std over seeds "
      f"{summary['seeds']}. ▲/▼: significantly better/worse than **{summary['baseline']}** at "
      "that value (its study's paired test, Holm-corrected within the study; adjusted p < 0.05). "
      f"Study time {summary['seconds']:.0f} s.",
      "",
      *table(summary),
      "",
      "![NDCG@10 against the swept value](sweep_ndcg10.png)",
      "",
      "Each value's study, with every metric, test and analysis: "
      + ", ".join(f"[{d}]({d}/report.md)" for d in summary["studies"])
      + ".",
      "",
    ]
  )


def plot(summary: dict, path) -> None:
  """Saves `figure(summary)` to path."""
  fig = figure(summary)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def figure(summary: dict):
  """NDCG@10 against the swept value: a panel per bucket, a line per variant, error bars one std
  over seeds; references dashed. Numeric values are placed by value, others in their order."""
  values = summary["values"]
  numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
  x = values if numeric else list(range(len(values)))
  fig, axes = plt.subplots(
    1, len(stats.BUCKETS), figsize=(4 * len(stats.BUCKETS), 3.6), sharey=True
  )
  colors = plt.get_cmap("tab10" if len(summary["order"]) <= 10 else "tab20").colors
  for ax, b in zip(axes, stats.BUCKETS):
    for i, v in enumerate(summary["order"]):
      points = [(xi, c) for xi, c in zip(x, summary["ndcg10"][v][b]) if c is not None]
      ax.errorbar(
        [p[0] for p in points],
        [p[1]["mean"] for p in points],
        yerr=[p[1]["std"] for p in points],
        label=f"{v} (reference)" if v in summary["references"] else v,
        color=colors[i % len(colors)],
        linestyle="--" if v in summary["references"] else "-",
        marker="o",
        markersize=3,
        capsize=2,
      )
    ax.set_title(b, fontsize=10)
    ax.set_xlabel(summary["key"])
    if not numeric:
      ax.set_xticks(x, [str(v) for v in values])
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
  axes[0].set_ylabel("NDCG@10 (human labels)")
  axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
  fig.suptitle(
    f"NDCG@10 against {summary['key']} by bucket, mean ± std over seeds {summary['seeds']}",
    fontsize=11,
  )
  fig.tight_layout()
  return fig
