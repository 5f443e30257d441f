r"""Unbiased learning to rank from clicks: objectives that learn position bias with the ranker.

They train on click labels, `label_click` where `mask_click` (a 0/1 click per shown item, or a
CTR in [0, 1] on aggregated logs), whatever `config.supervision.source` says, at the shown rank
`position`, clipped into the K = `config.supervision.num_positions` modelled ranks; an unknown
rank (0) counts as rank 1, as in the `ips_pbm` weights hook. Each is an objective with its own
variables (`rankjax.supervision.objective`: a class with static `init` and `apply`), chosen by
`config.supervision.objective`:

- "dla", the dual learning algorithm (Ai et al., SIGIR 2018). A propensity model, one logit p_k
  per rank, and the ranker f correct each other's bias with listwise softmax losses (the paper's
  choice; `config.loss` is not used):

    ranker:      softmax_loss(f, clicks, weights = 1 / theta_k),  theta_k = exp(p_k - p_1)
    propensity:  softmax_loss(p_k, clicks, weights = 1 / rho_i),  rho_i = exp(f_i - f_top)

  theta is the examination propensity relative to rank 1, rho the relevance relative to the
  list's item shown highest; each weight is held constant in the other's loss and the ratios are
  clipped below at `config.supervision.ips_clip`. `DLA.propensities` reads theta.
  The authors' related code trains it with AdamW and the gradient's global norm clipped at 0.5
  (`config.optimizer.clip_norm = 0.5`).
- "two_tower", the PBM two-tower model (additive logits, as in PAL, Guo et al. 2019, and the
  Baidu-ULTR baselines): click logit = f(x) + g_k with g a position tower of K logits, pointwise
  sigmoid cross-entropy on clicks. The ranker is the relevance tower f; g lives only in the
  objective's variables, so scoring and evaluation never see it.
- "regression_em", Regression-EM (Wang et al., WSDM 2018). Under PBM a click is examined (E,
  P = theta_k) and relevant (R, P = gamma = sigmoid(f)). The E-step, per item with click c:

    P(E=1 | c) = c + (1 - c) theta (1 - gamma) / (1 - theta gamma)
    P(R=1 | c) = c + (1 - c) (1 - theta) gamma / (1 - theta gamma)

  The ranker regresses P(R=1 | c) (sigmoid cross-entropy on the soft target, where the paper fits
  a GBDT to sampled labels), and theta's M-step is a decayed running mean over batches,

    exam_k <- decay exam_k + sum_{items at k} P(E=1 | c),   seen_k <- decay seen_k + n_k,
    theta_k = exam_k / seen_k,

  with decay `config.supervision.em_decay` and a start of theta = 1/2 weighted as
  one item per rank. (exam, seen) are the objective's non-gradient state: every checkpoint holds
  them, so a resumed run continues exactly.

None of them takes item weights: `config.supervision.weights` must be "none".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rankjax import registry
from rankjax.ranking import losses
from rankjax.supervision import labels as labels_lib
from rankjax.supervision import objective


def _clicks(batch, config, name: str):
  """(clicks f32[B, L], where bool[B, L], rank index int32[B, L] in [0, K))."""
  if config.supervision.weights != "none":
    raise ValueError(
      f"objective {name!r} learns its own position bias; set "
      f"config.supervision.weights = 'none', not {config.supervision.weights!r}"
    )
  clicks, where = labels_lib.labels_and_where(
    batch, "click", f"objective {name!r} trains on clicks"
  )
  k = jnp.clip(batch["position"] - 1, 0, config.supervision.num_positions - 1)
  return clicks, where, k


def _trains_on_clicks(config) -> dict[str, tuple[str, ...]]:
  """The label sources of every objective here (`objective.label_sources`)."""
  del config
  return {"supervision.objective": ("click",)}


def _inverse(ratio, config):
  """1 / max(ratio, ips_clip), constant under differentiation."""
  return jax.lax.stop_gradient(1.0 / jnp.maximum(ratio, config.supervision.ips_clip))


def _by_rank(theta) -> dict:
  """Per-rank scalars for the training measurements ("train/propensity/3")."""
  return {str(i + 1): theta[i] for i in range(theta.shape[0])}


@registry.register(objective.OBJECTIVES, "dla")
class DLA:
  """The dual learning algorithm (module docstring): a propensity logit per rank, learned jointly.

  >>> import ml_collections
  >>> config = ml_collections.ConfigDict({"supervision": {"weights": "none", "num_positions": 10,
  ...                                                     "ips_clip": 0.01}})
  >>> variables = DLA.init(jax.random.key(0), config)
  >>> DLA.propensities(variables).tolist()[:3]
  [1.0, 1.0, 1.0]
  >>> batch = {"mask": jnp.ones((1, 3), bool), "mask_click": jnp.ones((1, 3), bool),
  ...          "list_valid": jnp.ones((1,), bool), "label_click": jnp.array([[0., 1., 0.]]),
  ...          "position": jnp.array([[1, 2, 3]])}
  >>> loss, aux, state = DLA.apply(jnp.zeros((1, 3)), batch, step=0, config=config,
  ...                              variables=variables)
  >>> round(float(loss), 4)  # two softmax losses of log(3) each
  2.1972
  """

  label_sources = staticmethod(_trains_on_clicks)

  @staticmethod
  def init(rng, config):
    del rng
    return {
      "params": {"logits": jnp.zeros((config.supervision.num_positions,), jnp.float32)},
      "state": {},
    }

  @staticmethod
  def propensities(variables) -> jax.Array:
    """f32[K]: examination propensity by rank relative to rank 1."""
    p = variables["params"]["logits"]
    return jnp.exp(p - p[0])

  @staticmethod
  def apply(scores, batch, *, step, config, variables):
    del step
    clicks, where, k = _clicks(batch, config, "dla")
    logits = variables["params"]["logits"]
    exam_logits = logits[k]
    theta = jnp.exp(exam_logits - logits[0])
    # The relevance of each item relative to the one shown highest in its list.
    top = jnp.argmin(jnp.where(where, k, jnp.iinfo(jnp.int32).max), axis=-1)
    f_top = jnp.take_along_axis(scores, top[:, None], axis=-1)
    rho = jnp.exp(jnp.minimum(scores - f_top, 30.0))
    ranker_loss = losses.softmax_loss(scores, clicks, where=where, weights=_inverse(theta, config))
    exam_loss = losses.softmax_loss(exam_logits, clicks, where=where, weights=_inverse(rho, config))
    aux = {
      "ranker_loss": ranker_loss,
      "propensity_loss": exam_loss,
      "labelled_items": jnp.sum(where),
      "propensity": _by_rank(DLA.propensities(variables)),
    }
    return ranker_loss + exam_loss, aux, variables["state"]


@registry.register(objective.OBJECTIVES, "two_tower")
class TwoTower:
  """PBM two-tower (module docstring): click logit = ranker score + position logit g_k."""

  label_sources = staticmethod(_trains_on_clicks)

  @staticmethod
  def init(rng, config):
    del rng
    return {
      "params": {"position_logits": jnp.zeros((config.supervision.num_positions,), jnp.float32)},
      "state": {},
    }

  @staticmethod
  def apply(scores, batch, *, step, config, variables):
    del step
    clicks, where, k = _clicks(batch, config, "two_tower")
    logits = scores + variables["params"]["position_logits"][k]
    loss = losses.pointwise_sigmoid_loss(logits, clicks, where=where)
    return loss, {"labelled_items": jnp.sum(where)}, variables["state"]


@registry.register(objective.OBJECTIVES, "regression_em")
class RegressionEM:
  """Regression-EM (module docstring): EM over examination and relevance, the ranker regressing."""

  label_sources = staticmethod(_trains_on_clicks)

  @staticmethod
  def init(rng, config):
    del rng
    k = config.supervision.num_positions
    return {"params": {}, "state": {"exam": jnp.full((k,), 0.5), "seen": jnp.ones((k,))}}

  @staticmethod
  def propensities(variables) -> jax.Array:
    """f32[K]: the current examination probabilities theta by rank (absolute, not relative)."""
    return variables["state"]["exam"] / variables["state"]["seen"]

  @staticmethod
  def apply(scores, batch, *, step, config, variables):
    del step
    clicks, where, k = _clicks(batch, config, "regression_em")
    theta_by_rank = RegressionEM.propensities(variables)
    theta = theta_by_rank[k]
    gamma = jax.nn.sigmoid(jax.lax.stop_gradient(scores))
    unclicked = (1 - clicks) / jnp.maximum(1 - theta * gamma, 1e-6)
    p_exam = clicks + unclicked * theta * (1 - gamma)
    p_rel = clicks + unclicked * (1 - theta) * gamma
    loss = losses.pointwise_sigmoid_loss(scores, p_rel, where=where)
    one_hot = jax.nn.one_hot(k, config.supervision.num_positions) * where[..., None]
    decay = config.supervision.em_decay
    state = {
      "exam": decay * variables["state"]["exam"] + jnp.einsum("blk,bl->k", one_hot, p_exam),
      "seen": decay * variables["state"]["seen"] + one_hot.sum((0, 1)),
    }
    return loss, {"labelled_items": jnp.sum(where), "propensity": _by_rank(theta_by_rank)}, state
