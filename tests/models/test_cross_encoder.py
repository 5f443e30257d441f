"""Cross-encoder `Model` and `load_pretrained`: the contract with the training engine."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util
from safetensors import numpy as safetensors_np

from rankjax import registry
from rankjax.models import cross_encoder
from rankjax.models.layers import hf_weights


def _batch(seed=0, b=2, l=4, t=10, vocab=512):
  """Random right-padded pairs; the last document of list 0 and two of list 1 are padding."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(4, t + 1, size=(b, l))
  tokens = rng.integers(1, vocab, size=(b, l, t))
  tokens[np.arange(t) >= lengths[..., None]] = 0
  mask = np.ones((b, l), bool)
  mask[0, -1] = mask[1, -2:] = False
  tokens[~mask] = 0
  types = (np.arange(t) >= lengths[..., None] // 2).astype(np.int32) * (tokens != 0)
  return {
    "tokens": jnp.asarray(tokens, jnp.int32),
    "token_types": jnp.asarray(types),
    "mask": jnp.asarray(mask),
  }


def _loss(model, params, batch, labels, **kw):
  scores = model.apply({"params": params}, batch, **kw)
  logits = jnp.where(batch["mask"], scores, -1e9)
  return jnp.mean(optax.softmax_cross_entropy(logits, labels / labels.sum(-1, keepdims=True)))


@pytest.fixture(scope="module")
def tiny():
  model = cross_encoder.Model(size="tiny", dropout=0.1)
  params = model.init(jax.random.key(0), _batch())["params"]
  return model, params


def test_scores_shape_and_padded_documents_score_zero(tiny):
  model, params = tiny
  batch = _batch()
  scores = model.apply({"params": params}, batch)
  assert scores.shape == (2, 4) and scores.dtype == jnp.float32
  assert np.all(np.asarray(scores)[~np.asarray(batch["mask"])] == 0)
  assert np.all(np.asarray(scores)[np.asarray(batch["mask"])] != 0)


def test_padding_changes_nothing(tiny):
  model, params = tiny
  batch = _batch()
  base = np.asarray(model.apply({"params": params}, batch))
  # More token padding, junk segment ids on padding tokens, junk tokens in padded documents.
  tokens = jnp.pad(batch["tokens"], ((0, 0), (0, 0), (0, 6)))
  types = jnp.where(tokens == 0, 1, jnp.pad(batch["token_types"], ((0, 0), (0, 0), (0, 6))))
  junk = jax.random.randint(jax.random.key(3), tokens.shape, 1, 512)
  tokens = jnp.where(batch["mask"][..., None], tokens, junk)
  out = np.asarray(model.apply({"params": params}, dict(batch, tokens=tokens, token_types=types)))
  np.testing.assert_allclose(out, base, atol=1e-5)


def test_documents_are_scored_independently(tiny):
  model, params = tiny
  batch = _batch()
  base = np.asarray(model.apply({"params": params}, batch))
  swapped = jax.tree.map(lambda x: x[:, [1, 0, 2, 3]], batch)
  np.testing.assert_allclose(
    np.asarray(model.apply({"params": params}, swapped)), base[:, [1, 0, 2, 3]], atol=1e-5
  )


@pytest.mark.slow
def test_gradients_reach_every_parameter(tiny):
  model, params = tiny
  batch = _batch()
  labels = jnp.asarray(np.random.default_rng(1).integers(0, 3, (2, 4)) + 1.0) * batch["mask"]
  grads = jax.grad(lambda p: _loss(model, p, batch, labels))(params)
  norms = {
    "/".join(k): float(jnp.linalg.norm(v)) for k, v in traverse_util.flatten_dict(grads).items()
  }
  assert all(np.isfinite(v) for v in norms.values())
  dead = [k for k, v in norms.items() if v == 0]
  assert dead == [], dead


def test_padding_gets_no_gradient(tiny):
  model, params = tiny
  batch = _batch()
  junk = jax.random.randint(jax.random.key(3), batch["tokens"].shape, 1, 512)
  batch["tokens"] = jnp.where(batch["mask"][..., None], batch["tokens"], junk)
  labels = jnp.ones((2, 4)) * batch["mask"]

  def loss(emb):
    p = {
      **params,
      "bert": {
        **params["bert"],
        "embeddings": {**params["bert"]["embeddings"], "word_embeddings": {"embedding": emb}},
      },
    }
    return _loss(model, p, batch, labels)

  g = np.asarray(jax.grad(loss)(params["bert"]["embeddings"]["word_embeddings"]["embedding"]))
  tokens, mask = np.asarray(batch["tokens"]), np.asarray(batch["mask"])
  real = np.setdiff1d(tokens[mask], [0])
  # The padding id and ids only seen in padded documents must not reach the loss.
  only_padding = np.setdiff1d(np.append(tokens[~mask], 0), real)
  assert len(only_padding) > 5
  assert np.all(g[only_padding] == 0)
  assert np.all(np.abs(g[real]).sum(-1) > 0)


def test_jit_matches_eager_and_dropout_uses_rng(tiny):
  model, params = tiny
  batch = _batch()
  eager = model.apply({"params": params}, batch)
  jitted = jax.jit(lambda p, b: model.apply({"params": p}, b))(params, batch)
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-5)
  train = lambda seed: np.asarray(
    model.apply({"params": params}, batch, train=True, rngs={"dropout": jax.random.key(seed)})
  )
  np.testing.assert_array_equal(train(0), train(0))
  assert not np.allclose(train(0), train(1))
  assert not np.allclose(train(0), np.asarray(eager))


@pytest.mark.slow
def test_bf16_compute_keeps_fp32_params_and_is_finite():
  model = cross_encoder.Model(size="tiny", dtype="bfloat16", remat=True)
  batch = _batch()
  params = model.init(jax.random.key(0), batch)["params"]
  assert {v.dtype for v in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
  labels = jnp.ones((2, 4)) * batch["mask"]
  loss, grads = jax.jit(jax.value_and_grad(lambda p: _loss(model, p, batch, labels)))(params)
  assert np.isfinite(float(loss))
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
  fp32 = cross_encoder.Model(size="tiny").apply({"params": params}, batch)
  np.testing.assert_allclose(
    np.asarray(model.apply({"params": params}, batch)), np.asarray(fp32), atol=0.05
  )


def test_config_errors(tmp_path):
  batch = _batch()
  with pytest.raises(ValueError, match="needs hf_dir"):
    cross_encoder.Model().init(jax.random.key(0), batch)
  with pytest.raises(registry.UnknownName, match="unknown size 'huge'; known: .*tiny"):
    cross_encoder.Model(size="huge").init(jax.random.key(0), batch)
  with pytest.raises(registry.UnknownName, match="unknown pooling 'mean'; known: .*cls"):
    cross_encoder.Model(size="tiny", pooling="mean").init(jax.random.key(0), batch)
  (tmp_path / "config.json").write_text(
    json.dumps(
      {
        "model_type": "bert",
        "vocab_size": 512,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
      }
    )
  )
  with pytest.raises(ValueError, match="disagrees"):
    cross_encoder.Model(hf_dir=str(tmp_path), num_layers=4).init(jax.random.key(0), batch)
  params = {"bert": {"x": np.ones(2)}}
  assert cross_encoder.load_pretrained(params, {"size": "tiny"}) is params


def _write_checkpoint(tmp_path, params, prefix="", drop=None):
  """A tiny BertModel/BertFor* directory: config.json + model.safetensors in PyTorch layout."""
  (tmp_path / "config.json").write_text(
    json.dumps(
      {
        "model_type": "bert",
        "vocab_size": 512,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
      }
    )
  )
  state = {
    prefix + hf_weights.torch_name(p): np.ascontiguousarray(
      np.asarray(v).T if p[-1] == "kernel" else np.asarray(v)
    )
    for p, v in traverse_util.flatten_dict(params["bert"]).items()
  }
  state.pop(drop, None)
  safetensors_np.save_file(state, tmp_path / "model.safetensors")
  return {"name": "cross_encoder", "hf_dir": str(tmp_path)}


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_load_pretrained_replaces_encoder_keeps_head(tmp_path, tiny, prefix):
  _, source = tiny
  config = _write_checkpoint(tmp_path, source, prefix)
  model = cross_encoder.Model(hf_dir=config["hf_dir"])
  fresh = model.init(jax.random.key(7), _batch())
  loaded = cross_encoder.load_pretrained(fresh, config)["params"]  # the variables dict works too
  jax.tree.map(
    np.testing.assert_array_equal, loaded["bert"], jax.tree.map(np.asarray, source["bert"])
  )
  np.testing.assert_array_equal(
    loaded["classifier"]["kernel"], fresh["params"]["classifier"]["kernel"]
  )


def test_load_pretrained_names_missing_tensor(tmp_path, tiny):
  config = _write_checkpoint(tmp_path, tiny[1], drop="pooler.dense.weight")
  params = cross_encoder.Model(hf_dir=config["hf_dir"]).init(jax.random.key(0), _batch())["params"]
  with pytest.raises(KeyError, match=r"model.safetensors: no tensor 'pooler\.dense\.weight'"):
    cross_encoder.load_pretrained(params, config)
  # Without the pooler ("cls" pooling) the same checkpoint loads.
  params = cross_encoder.Model(hf_dir=config["hf_dir"], pooling="cls").init(
    jax.random.key(0), _batch()
  )["params"]
  cross_encoder.load_pretrained(params, config)


def test_minilm_loads_and_scores(minilm_dir):
  config = {"hf_dir": minilm_dir, "dtype": "bfloat16"}
  model = cross_encoder.Model(**config)
  batch = _batch(vocab=30522)
  shapes = jax.eval_shape(model.init, jax.random.key(0), batch)["params"]
  params = cross_encoder.load_pretrained(
    jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes), config
  )
  assert float(np.abs(params["bert"]["encoder"]["layer_5"]["output"]["dense"]["kernel"]).max()) > 0
  scores = np.asarray(model.apply({"params": params}, batch))
  assert np.isfinite(scores).all() and scores.shape == (2, 4)


def test_load_pretrained_under_jit(tmp_path, tiny):
  """The trainer initialises (and so loads) inside `jax.jit`: the checkpoint becomes constants."""
  config = _write_checkpoint(tmp_path, tiny[1], prefix="bert.")
  model = cross_encoder.Model(hf_dir=config["hf_dir"])
  init = lambda: cross_encoder.load_pretrained(
    model.init(jax.random.key(7), _batch())["params"], config
  )
  params = jax.jit(init)()
  np.testing.assert_array_equal(
    params["bert"]["pooler"]["dense"]["kernel"], tiny[1]["bert"]["pooler"]["dense"]["kernel"]
  )


@pytest.mark.slow
def test_trains_end_to_end_with_the_engine(tmp_path):
  """Text lists -> PairTokenizer -> prepared dataset -> `train.train_and_evaluate`, 4 steps."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  import transformers  # pylint: disable=g-import-not-at-top

  from rankjax.data import (  # pylint: disable=g-import-not-at-top
    schema,
    store,
    text,  # pylint: disable=g-import-not-at-top
  )
  from rankjax.engine import scoring, train

  words = [f"w{i}" for i in range(40)]
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
  transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(
    str(tmp_path / "tok")
  )
  tok = text.PairTokenizer.from_dir(tmp_path / "tok", max_query_tokens=4, max_tokens=32)
  rng = np.random.default_rng(0)

  def lists(n):
    for q in range(n):
      k = int(rng.integers(3, 7))
      docs = [" ".join(rng.choice(words, int(rng.integers(1, 12)))) for _ in range(k)]
      yield tok(
        schema.RankingList(
          f"q{q}",
          [f"d{i}" for i in range(k)],
          labels={"human": rng.integers(0, 3, k)},
          query=" ".join(rng.choice(words, 3)),
          doc_texts=docs,
        )
      )

  path = store.write_dataset(
    tmp_path / "data", name="toy_text", splits={"train": lists(16), "test": lists(4)}
  )
  spec = importlib.util.spec_from_file_location("mslr_mlp", "configs/mslr_mlp.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("local")
  config.data.path, config.data.list_sizes, config.data.batch_size = str(path), (8,), 4
  config.model = {"name": "cross_encoder", "size": "tiny", "dropout": 0.1}
  config.total_steps = config.eval.every = config.checkpoint.every = 4
  config.eval.splits, config.checkpoint.best_metric = ("test",), "test/ndcg@10/all"
  config.data.token_buckets = 4  # batches cut to token widths, in training, eval and scoring
  out = train.train_and_evaluate(config, tmp_path / "work")
  assert out["step"] == 4
  assert 0 < out["eval"]["test"]["ndcg@10"]["all"] <= 1
  scored = scoring.score(tmp_path / "work", "test")
  assert scored["ndcg@10"]["all"] == pytest.approx(out["eval"]["test"]["ndcg@10"]["all"], abs=1e-6)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("bfloat16", 2e-2)])
def test_cls_only_last_layer_gives_the_same_scores_and_gradients(dtype, tol):
  """The default, the last layer computed for [CLS] alone, against every position (as HF)."""
  batch = _batch(seed=5)
  labels = jnp.asarray(np.random.default_rng(2).integers(0, 3, (2, 4)) + 1.0) * batch["mask"]
  fast = cross_encoder.Model(size="tiny", dtype=dtype, dropout=0.0)
  full = cross_encoder.Model(size="tiny", dtype=dtype, dropout=0.0, cls_only=False)
  params = fast.init(jax.random.key(0), batch)["params"]
  np.testing.assert_allclose(
    fast.apply({"params": params}, batch), full.apply({"params": params}, batch), rtol=tol, atol=tol
  )
  grads = [jax.grad(lambda p, m=m: _loss(m, p, batch, labels))(params) for m in (fast, full)]
  scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads[1]))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale), *grads)


@pytest.mark.slow
def test_matches_hf_bert_for_sequence_classification(minilm_dir):
  """all-MiniLM-L6-v2 as a cross-encoder (the [CLS]-only last layer) against transformers + torch
  `BertForSequenceClassification` with the same head: scores and listwise-loss gradients."""
  torch = pytest.importorskip("torch", reason="torch not installed (extra test)")
  import transformers  # pylint: disable=g-import-not-at-top

  tok = transformers.AutoTokenizer.from_pretrained(minilm_dir)
  query = "how do lungs exchange oxygen"
  docs = [
    "Gas exchange happens in the alveoli of the lungs.",
    "The stock market fell today.",
    "Oxygen diffuses across the alveolar membrane into the blood stream.",
  ]
  enc = tok([query] * 3, docs, padding="max_length", max_length=24, return_tensors="np")
  batch = {
    "tokens": jnp.asarray(enc["input_ids"][None], jnp.int32),
    "token_types": jnp.asarray(enc["token_type_ids"][None], jnp.int32),
    "mask": jnp.ones((1, 3), bool),
  }
  labels = jnp.array([[2.0, 0.0, 1.0]])
  config = {"hf_dir": minilm_dir, "dropout": 0.0}
  model = cross_encoder.Model(**config)
  params = cross_encoder.load_pretrained(model.init(jax.random.key(0), batch)["params"], config)
  ours = np.asarray(model.apply({"params": params}, batch))[0]
  grads = jax.grad(lambda p: _loss(model, p, batch, labels))(params)

  ref = transformers.BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=1)
  ref.eval()
  with torch.no_grad():
    ref.classifier.weight.copy_(torch.from_numpy(np.array(params["classifier"]["kernel"]).T))
    ref.classifier.bias.copy_(torch.from_numpy(np.array(params["classifier"]["bias"])))
  logits = ref(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits[:, 0]
  p = torch.from_numpy(np.array(labels[0] / labels[0].sum()))
  (-(p * torch.log_softmax(logits, -1)).sum()).backward()
  np.testing.assert_allclose(ours, logits.detach().numpy(), rtol=1e-4, atol=1e-5)
  layers = grads["bert"]["encoder"]
  for ours_grad, ref_param in [
    (grads["classifier"]["kernel"].T, ref.classifier.weight),
    (
      layers["layer_0"]["attention"]["self"]["query"]["kernel"].T,
      ref.bert.encoder.layer[0].attention.self.query.weight,
    ),
    (
      layers["layer_5"]["output"]["dense"]["kernel"].T,
      ref.bert.encoder.layer[5].output.dense.weight,
    ),
    (grads["bert"]["pooler"]["dense"]["bias"], ref.bert.pooler.dense.bias),
  ]:
    want = ref_param.grad.numpy()
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(np.asarray(ours_grad), want, atol=1e-4 * np.abs(want).max())
