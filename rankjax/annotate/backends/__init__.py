"""Annotation backends, chosen by name: `jax_local` (a Llama on the local devices) and
`openai_http` (any OpenAI-compatible server).

A backend has `name: str`, `model: str`, `modes: tuple[str, ...]` (the modes it can run) and
`process(tasks: Iterable[runner.Task], should_stop: Callable[[], bool]) -> Iterator[runner.Result]`
yielding a result per task as each completes; it stops taking new tasks once `should_stop()`.
"""
