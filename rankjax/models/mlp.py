"""A DASALC-style feed-forward ranker for feature data (Qin et al., ICLR 2021).

Per item, independently of the rest of the list:
  x = sign(f) * log1p(|f|)                         (tames heavy-tailed count features)
  x = BatchNorm(x)  over real items only           (per-feature scale, statistics in "batch_stats")
  x = Dense(hidden)(x)
  x = x + Dense(Dropout(relu(Dense(LayerNorm(x)))))   repeated `num_blocks` times (pre-norm)
  score = Dense(1)(relu(LayerNorm(x)))

>>> import jax
>>> model = Model(hidden=8, num_blocks=1)
>>> batch = {"features": jnp.ones((2, 3, 5)), "mask": jnp.array([[1, 1, 0], [1, 0, 0]], bool)}
>>> variables = model.init(jax.random.key(0), batch)
>>> sorted(variables), model.apply(variables, batch).shape
(['batch_stats', 'params'], (2, 3))
"""

import flax.linen as nn
import jax.numpy as jnp


def log1p_transform(x):
  """sign(x) * log(1 + |x|), elementwise.

  >>> log1p_transform(jnp.array([-(jnp.e - 1), 0.0, jnp.e - 1])).round(4).tolist()
  [-1.0, 0.0, 1.0]
  """
  return jnp.sign(x) * jnp.log1p(jnp.abs(x))


class Model(nn.Module):
  """Scores each item from its features: batch["features"] f32[B, L, F] -> f32[B, L]."""

  hidden: int = 256
  num_blocks: int = 3
  dropout: float = 0.1
  batch_norm_momentum: float = 0.9

  @nn.compact
  def __call__(self, batch: dict, *, train: bool = False):
    mask = batch["mask"]
    x = log1p_transform(batch["features"])
    x = nn.BatchNorm(
      use_running_average=not train, momentum=self.batch_norm_momentum, name="input_norm"
    )(x, mask=mask[..., None])
    x = nn.Dense(self.hidden, name="embed")(x)
    for i in range(self.num_blocks):
      y = nn.LayerNorm(name=f"block{i}_norm")(x)
      y = nn.relu(nn.Dense(self.hidden, name=f"block{i}_dense1")(y))
      y = nn.Dropout(self.dropout, deterministic=not train)(y)
      x = x + nn.Dense(self.hidden, name=f"block{i}_dense2")(y)
    x = nn.relu(nn.LayerNorm(name="final_norm")(x))
    return nn.Dense(1, name="score")(x)[..., 0]
