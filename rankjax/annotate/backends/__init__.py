"""Annotation backends, chosen by name: `jax_local` (a Llama on the local devices) and
`openai_http` (any OpenAI-compatible server).

A backend has `name: str`, `model: str`, `shapes: tuple[str, ...]` (the shapes of mode it can run,
`modes.SHAPES`: it asks each task's mode record, `task.spec`, how to prompt and parse) and
`process(tasks: Iterable[runner.Task], should_stop: Callable[[], bool]) -> Iterator[runner.Result]`
yielding a result per task as each completes (status "unreachable" for one it could not get to a
server: counted, not stored); it stops taking new tasks once `should_stop()`. Taking a task from
the iterable claims it in the store (`runner.annotate`): `openai_http` takes them as it runs them,
`jax_local` takes all at the start (it sorts them by length) and so holds all for its run.
"""
