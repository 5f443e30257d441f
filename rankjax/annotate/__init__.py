"""LLM relevance annotation: modes, prompts, output parsing, a durable store, backends, runner.

`runner.annotate(pairs_or_lists, backend, store, ...)` is the library entry point that `rankjax
annotate run` wraps; each annotation mode is one record in `modes.MODES` (its shape, label scale
and parser) with its template files, backends (`backends.jax_local`, `backends.openai_http`) turn
prompts into labels, and `store.Store` commits each result as it arrives so a rerun resumes where
it stopped.
"""
