"""The engine: mesh, step, train loop, evaluation, checkpoints, logs and scoring."""
