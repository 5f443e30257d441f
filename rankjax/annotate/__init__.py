"""LLM relevance annotation: prompts, output parsing, a durable store, backends and the runner.

`runner.annotate(pairs_or_lists, backend, store, ...)` is the library entry point that `rankjax
annotate run` wraps; backends (`backends.jax_local`, `backends.openai_http`) turn prompts into
labels, and `store.Store` commits each result as it arrives so a rerun resumes where it stopped.
"""
