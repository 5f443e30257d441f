"""The optional TF SavedModel (jax2tf) scores as the in-process `Ranker` does, through its
`serving_default` signature, at batch and list sizes never seen in training."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow not installed: pip install 'rankjax[tf]'")

from rankjax.serve import ranker, saved_model  # noqa: E402  (after the skip)


@pytest.mark.slow
def test_saved_model_scores_as_the_ranker_does(feature_run, new_lists, tmp_path):
  r = ranker.Ranker.load(feature_run[0], 6)
  saved_model.export_saved_model(r, tmp_path / "saved")
  serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
  # 3 lists padded to their longest (training: batches of 4 lists of 16 or 32).
  part = new_lists[:3]
  l = max(len(x) for x in part)
  features = np.zeros((3, l, 4), np.float32)
  mask = np.zeros((3, l), bool)
  for i, x in enumerate(part):
    features[i, : len(x)], mask[i, : len(x)] = x.features, True
  got = serve(features=tf.constant(features), mask=tf.constant(mask))["scores"].numpy()
  assert got.shape == (3, l) and l not in r.list_sizes
  for i, want in enumerate(r.score(part)):
    np.testing.assert_allclose(got[i, : len(want)], want.scores, rtol=1e-5, atol=1e-6)
