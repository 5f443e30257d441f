"""rankjax: learning to rank from user clicks, LLM relevance annotations, or both."""

__version__ = "0.1.0"
