"""rankjax: learning to rank from user clicks, LLM relevance annotations, or both.

`rankjax.Ranker` (`rankjax.serve.ranker.Ranker`) loads a trained run to score new data; it is
imported on first use, so `import rankjax` stays light.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
  if name == "Ranker":
    from rankjax.serve.ranker import Ranker  # pylint: disable=g-import-not-at-top

    return Ranker
  raise AttributeError(f"module 'rankjax' has no attribute {name!r}")
