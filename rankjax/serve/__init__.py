"""Serving a trained run: `Ranker` (load a checkpoint, score new data), its inputs, the `jax.export`
artifact, and TREC run / qrels files through ranx.

Above `engine/` (checkpoints, models) and below `study/` and `cli/`. Import the modules
(`rankjax.serve.ranker`, ...); `rankjax.Ranker` is `rankjax.serve.ranker.Ranker`.
"""
