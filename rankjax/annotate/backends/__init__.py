"""Annotation backends, chosen by name: `jax_local` (a Llama on the local devices) and
`openai_http` (any OpenAI-compatible server).

A backend has `name: str`, `model: str`, `shapes: tuple[str, ...]` (the shapes of mode it can run,
`modes.SHAPES`: it asks each task's mode record, `task.spec`, how to prompt and parse) and
`process(tasks: Iterable[runner.Task], should_stop: Callable[[], bool]) -> Iterator[runner.Result]`
yielding a result per task as each completes; it stops taking new tasks once `should_stop()`.
"""
