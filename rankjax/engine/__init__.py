"""The engine: data sources, mesh, step, train loop, evaluation, checkpoints, logs and scoring."""
