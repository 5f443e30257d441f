"""Prepared ranking datasets: tensorflow-datasets builders in array_record format, no TensorFlow.

A prepared dataset is a directory `<directory>/<name>/<version>/` that tfds writes and reads:
array_record shards of serialized `tf.train.Example` records (tfds serializes them with its own
protobuf copy, so writing needs no TensorFlow either, checked with tfds 4.9.10), plus
`dataset_info.json` and `features.json`. It opens with `tfds.builder_from_directory(path)` or
`tfds.data_source(name, data_dir=directory)`, and here with `open_split`.

One record per `RankingList`, n items, fields (only those the dataset has):
  qid           text
  doc_ids       text [n]
  features      float32 [n, F]
  tokens        int32 [n, T]        token_types int32 [n, T]
  label_<src>   float32 [n]         NaN where the item has no label from that source
  position      int32 [n]
  query_freq    float32             bucket int32
  extra_<name>  float32 [n]
  query         text                doc_texts text [n]

Besides the tfds files, `list_lengths-<split>.npy` holds every record's n in read order,
`list_buckets-<split>.npy` its bucket, `list_sources-<split>.npy` which label sources it has (bit i:
`schema.SOURCES[i]` on some item), and for a dataset with tokens `token_lengths-<split>.npy` each
record's longest pair (real tokens), so the input pipeline picks padded list sizes and token widths
and a data schedule its lists (the same on every host) without decoding records.

Usage (the log readers' entry point):
  path = write_dataset(directory, name="my_log", splits={"train": lists, "test": more})
  source = open_split(path, "train")      # random access: source[i] -> dict of numpy
"""

from __future__ import annotations

import collections
import functools
import itertools
import os
import pathlib
import sys
from typing import Callable, Iterable, Mapping

import numpy as np
import tensorflow_datasets as tfds

from rankjax.data import schema, text

VERSION = "1.0.0"


def layout_of(first: schema.RankingList) -> dict:
  """What a dataset stores, taken from its first list."""
  return {
    "features": None if first.features is None else int(first.features.shape[1]),
    "tokens": None if first.tokens is None else int(first.tokens.shape[1]),
    "sources": [s for s in schema.SOURCES if s in first.labels],
    "extras": sorted(first.extras),
    "query": first.query is not None,
    "doc_texts": first.doc_texts is not None,
  }


def _features_dict(layout: dict) -> tfds.features.FeaturesDict:
  f = tfds.features
  spec = {
    "qid": f.Text(),
    "doc_ids": f.Sequence(f.Text()),
    "position": f.Tensor(shape=(None,), dtype=np.int32),
    "query_freq": f.Scalar(dtype=np.float32),
    "bucket": f.Scalar(dtype=np.int32),
  }
  if layout["features"] is not None:
    spec["features"] = f.Tensor(shape=(None, layout["features"]), dtype=np.float32)
  if layout["tokens"] is not None:
    for k in ("tokens", "token_types"):
      spec[k] = f.Tensor(shape=(None, layout["tokens"]), dtype=np.int32)
  for s in layout["sources"]:
    spec[f"label_{s}"] = f.Tensor(shape=(None,), dtype=np.float32)
  for e in layout["extras"]:
    spec[f"extra_{e}"] = f.Tensor(shape=(None,), dtype=np.float32)
  if layout["query"]:
    spec["query"] = f.Text()
  if layout["doc_texts"]:
    spec["doc_texts"] = f.Sequence(f.Text())
  return f.FeaturesDict(spec)


def _record(lst: schema.RankingList, layout: dict, split: str) -> dict:
  """A `RankingList` as a record; a list that does not fit the layout is an error naming it."""
  where = f"split {split!r}, list {lst.qid!r}"
  n = len(lst)
  if n == 0:
    raise ValueError(f"{where}: empty list")
  rec = {
    "qid": lst.qid,
    "doc_ids": list(lst.doc_ids),
    "position": lst.positions,
    "query_freq": np.float32(lst.query_freq),
    "bucket": np.int32(lst.bucket),
  }
  for key, width in (("features", layout["features"]), ("tokens", layout["tokens"])):
    arr = getattr(lst, key)
    if (arr is None) != (width is None) or (arr is not None and arr.shape[1] != width):
      got = None if arr is None else arr.shape
      raise ValueError(f"{where}: {key} shape {got}, the dataset stores width {width}")
  if layout["features"] is not None:
    rec["features"] = lst.features
  if layout["tokens"] is not None:
    rec["tokens"], rec["token_types"] = lst.tokens, lst.token_types
  extra_sources = set(lst.labels) - set(layout["sources"])
  if extra_sources:
    raise ValueError(
      f"{where}: label sources {sorted(extra_sources)} not in the dataset's "
      f"{layout['sources']} (taken from the first list)"
    )
  for s in layout["sources"]:
    rec[f"label_{s}"] = lst.labels.get(s, np.full(n, np.nan, np.float32))
  if set(lst.extras) != set(layout["extras"]):
    raise ValueError(f"{where}: extras {sorted(lst.extras)}, the dataset stores {layout['extras']}")
  for e in layout["extras"]:
    rec[f"extra_{e}"] = lst.extras[e]
  if layout["query"]:
    rec["query"] = lst.query or ""
  if layout["doc_texts"]:
    rec["doc_texts"] = list(lst.doc_texts or [""] * n)
  return rec


class _LocalInfo(tfds.core.DatasetInfo):
  """A written dataset's info: no metadata to fetch from tfds's GCS bucket."""

  def initialize_from_bucket(self):
    # tfds's version makes an empty temporary directory for the bucket's files on every dataset
    # built, and leaves it behind.
    pass


def write_dataset(
  directory: str | os.PathLike,
  *,
  name: str,
  splits: Mapping[str, Iterable[schema.RankingList]],
  description: str = "",
  metadata: Mapping | None = None,
  progress: bool = True,
) -> pathlib.Path:
  """Writes `RankingList`s as a tfds array_record dataset; returns its directory.

  Args:
    directory: the tfds data_dir; the dataset lands in `<directory>/<name>/1.0.0`.
    name: dataset name (a Python identifier, lower case).
    splits: split name -> lists (any iterable, consumed once). What the dataset stores (feature
      width, token length, label sources, extras) comes from the first list of the first split;
      a later list that does not fit is an error naming split and qid. A list without a stored
      source gets all-NaN labels for it.
    description: free text kept in the dataset info.
    metadata: JSON-able facts about the data kept beside its layout (`Split.metadata`), e.g.
      `rankjax data prepare`'s "bucket_ranges", which reports show.
    progress: tfds's progress bars while it writes (a setting of the whole process in tfds).

  Returns:
    `<directory>/<name>/1.0.0`, ready for `open_split`.
  """
  splits = {k: iter(v) for k, v in splits.items()}
  first_split = next(iter(splits))
  try:
    first = next(splits[first_split])
  except StopIteration:
    raise ValueError(f"dataset {name!r}: split {first_split!r} is empty") from None
  splits[first_split] = itertools.chain([first], splits[first_split])
  layout = layout_of(first)

  class _Builder(_builder_base(name, layout, description, metadata), skip_registration=True):
    def _split_generators(self, dl_manager):
      del dl_manager
      return {s: self._generate_examples(s, lists) for s, lists in splits.items()}

    def _generate_examples(self, split, lists):
      seen = set()
      for lst in lists:
        if lst.qid in seen:
          raise ValueError(f"split {split!r}: qid {lst.qid!r} occurs twice")
        seen.add(lst.qid)
        yield lst.qid, _record(lst, layout, split)

  return _prepare(_Builder, name, directory, progress)


def write_dataset_beam(
  directory: str | os.PathLike,
  *,
  name: str,
  splits: Mapping[str, Callable],
  layout: dict,
  beam_options,
  description: str = "",
  metadata: Mapping | None = None,
) -> pathlib.Path:
  """`write_dataset` through tfds's Apache Beam builder: the records are written by a Beam
  pipeline (tfds's `BeamWriter`) on the runner `beam_options` name, to the same files.

  Args:
    splits: split name -> a function (pipeline, split name) -> PCollection of `RankingList`s.
    layout: what the dataset stores (`layout_of`): a pipeline's lists cannot be peeked at before
      the pipeline runs, so it is given.
    beam_options: the `apache_beam.options.pipeline_options.PipelineOptions` to run with.
    Others as `write_dataset` (a qid twice in a split is an error of tfds's writer).
  """
  import apache_beam as beam

  class _Builder(_builder_base(name, layout, description, metadata), skip_registration=True):
    def _split_generators(self, dl_manager, pipeline):
      del dl_manager
      return {s: self._generate_examples(pipeline, s) for s in splits}

    def _generate_examples(self, pipeline, split):
      return splits[split](pipeline, split) | f"{split}_records" >> beam.Map(
        lambda lst: (lst.qid, _record(lst, layout, split))
      )

  return _prepare(
    _Builder,
    name,
    directory,
    download_config=tfds.download.DownloadConfig(beam_options=beam_options),
  )


def _builder_base(name: str, layout: dict, description: str, metadata: Mapping | None):
  """The tfds builder class of one dataset, less how its splits are generated."""

  class _Base(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version(VERSION)
    # No source file or checksums to find: tfds would otherwise look up this module's path
    # through `importlib_resources`, which it does not depend on.
    code_path = None

    # tfds announces a download on stdout ("Downloading and preparing dataset Unknown size ...")
    # where nothing is downloaded: say what happens instead, on stderr, as progress is (a
    # command's stdout is its own: `rankjax data prepare --json`).
    def _log_download_bytes(self):
      print(f"writing dataset {name!r} to {self.data_dir}", file=sys.stderr, flush=True)

    def _log_download_done(self):
      counts = ", ".join(f"{s} {info.num_examples}" for s, info in self.info.splits.items())
      print(
        f"wrote dataset {name!r} ({counts} lists) to {self.data_dir}", file=sys.stderr, flush=True
      )

    def _info(self):
      return _LocalInfo(
        builder=self,
        description=description,
        features=_features_dict(layout),
        metadata=tfds.core.MetadataDict(layout=layout, **(metadata or {})),
      )

  return _Base


def _prepare(builder_class, name: str, directory, progress: bool = True, **kw) -> pathlib.Path:
  builder_class.name = name
  builder = builder_class(data_dir=os.fspath(directory), file_format="array_record")
  tfds.display_progress_bar(progress)
  builder.download_and_prepare(**kw)
  path = pathlib.Path(builder.data_dir)
  _write_lengths(path)
  return path


# The per-list arrays stored as `<name>-<split>.npy`, and how each is computed from a record.
_PER_LIST = {
  "list_lengths": lambda rec: len(rec["doc_ids"]),
  "list_buckets": lambda rec: int(rec["bucket"]),
  "list_sources": lambda rec: sum(
    1 << i
    for i, s in enumerate(schema.SOURCES)
    if f"label_{s}" in rec and not np.isnan(rec[f"label_{s}"]).all()
  ),
  "token_lengths": lambda rec: int(text.pair_lengths(rec["tokens"]).max(initial=0)),
}


def _per_list_names(layout: dict) -> list[str]:
  names = ["list_lengths", "list_buckets", "list_sources"]
  return names + (["token_lengths"] if layout["tokens"] is not None else [])


def _scan(source, names: list[str]) -> np.ndarray:
  """int32 [len(source), len(names)]: the `_PER_LIST` values of every record (one decoding pass)."""
  fns = [_PER_LIST[n] for n in names]
  out = np.zeros((len(source), len(names)), np.int32)
  for i in range(len(source)):
    rec = source[i]
    out[i] = [fn(rec) for fn in fns]
  return out


def _write_lengths(path: pathlib.Path):
  """Writes the per-list arrays (`_PER_LIST`) that each split lacks, in one decoding pass."""
  for split in tfds.builder_from_directory(os.fspath(path)).info.splits:
    source = open_split(path, split, with_lengths=False)
    missing = [
      n for n in _per_list_names(source.layout) if not (path / f"{n}-{split}.npy").exists()
    ]
    if missing:
      for name, values in zip(missing, _scan(source, missing).T):
        np.save(path / f"{name}-{split}.npy", values)


class Split(collections.abc.Sequence):
  """Random access to one split: `split[i]` a record dict of numpy arrays, plus list lengths.

  Attributes:
    lengths: int32 [len(split)] items per list (None when opened `with_lengths=False`).
    layout: what the dataset stores (`write_dataset`).
    metadata: the facts `write_dataset` kept beside the layout (empty for none).
  """

  def __init__(self, path: pathlib.Path, split: str, with_lengths: bool = True):
    self.path, self.split = path, split
    if not (path / "dataset_info.json").exists():
      raise FileNotFoundError(
        f"{path}: not a prepared dataset (no dataset_info.json); write one with `rankjax data "
        "prepare ... --output DIR --name NAME` and give DIR/NAME/1.0.0"
      )
    builder = tfds.builder_from_directory(os.fspath(path))
    if split not in builder.info.splits:
      raise KeyError(f"{path}: no split {split!r}; it has {sorted(builder.info.splits)}")
    self.source = builder.as_data_source(split=split)
    self.layout = dict(builder.info.metadata["layout"])
    self.metadata = {k: v for k, v in builder.info.metadata.items() if k != "layout"}
    self.lengths = np.load(path / f"list_lengths-{split}.npy") if with_lengths else None

  def _per_list(self, name: str) -> np.ndarray:
    """`<name>-<split>.npy`; a dataset prepared before that file existed gets one decoding pass
    instead (`ensure_dataset` writes the file for it)."""
    f = self.path / f"{name}-{self.split}.npy"
    return np.load(f) if f.exists() else _scan(self, [name])[:, 0]

  @functools.cached_property
  def token_lengths(self) -> np.ndarray:
    """int32 [len(split)]: each list's longest pair in real tokens."""
    if self.layout["tokens"] is None:
      raise ValueError(f"{self}: the dataset stores no tokens")
    return self._per_list("token_lengths")

  @functools.cached_property
  def buckets(self) -> np.ndarray:
    """int32 [len(split)]: each list's bucket (`schema.BUCKETS` index, -1 unknown)."""
    return self._per_list("list_buckets")

  @functools.cached_property
  def label_sources(self) -> np.ndarray:
    """int32 [len(split)]: bit i set where the list has a label from `schema.SOURCES[i]`."""
    return self._per_list("list_sources")

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i):
    return self.source[i]

  def __repr__(self):
    return f"Split({self.path}, {self.split!r}, {len(self)} lists)"


def open_split(path: str | os.PathLike, split: str, *, with_lengths: bool = True) -> Split:
  """Opens one split of a dataset written by `write_dataset` (no TensorFlow)."""
  return Split(pathlib.Path(path), split, with_lengths)


def ensure_dataset(
  directory: str | os.PathLike,
  name: str,
  make_splits: Callable[[], Mapping[str, Iterable[schema.RankingList]]],
  description: str = "",
) -> pathlib.Path:
  """The prepared dataset `<directory>/<name>/1.0.0`, written by `make_splits()` if absent."""
  path = pathlib.Path(directory) / name / VERSION
  if (path / "dataset_info.json").exists():
    _write_lengths(path)  # those that a killed run or an older version did not write
    return path
  return write_dataset(directory, name=name, splits=make_splits(), description=description)
