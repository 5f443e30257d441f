"""Launch scripts: the dry-run mode prints what each would run; the local one really trains."""

import os
import shlex
import subprocess

import pytest
from train_helpers import CACHE_ENV, ROOT

SCRIPTS = (
  "local_cpu.sh",
  "gpu_single_host.sh",
  "slurm_gpu.sh",
  "tpu_vm_slice.sh",
  "slurm_study_array.sh",
  "tpu_vm_study_shards.sh",
  "trec_study.sh",
)


def _dry_run(script, *args, **env):
  proc = subprocess.run(
    ["bash", str(ROOT / "launch" / script), *args],
    cwd="/",
    env={**os.environ, "DRY_RUN": "1", **env},
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert proc.returncode == 0, proc.stderr
  return proc.stdout.strip().splitlines()


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse(script):
  subprocess.run(["bash", "-n", str(ROOT / "launch" / script)], check=True)


def test_local_cpu_dry_run():
  (line,) = _dry_run("local_cpu.sh", "--config.total_steps=5", WORKDIR="/tmp/w x")
  argv = shlex.split(line)
  assert argv[:2] == ["env", "JAX_PLATFORMS=cpu"]
  assert argv[3:] == [
    "-m",
    "rankjax.cli",
    "train",
    "--config=configs/mslr_mlp.py:local",
    "--workdir=/tmp/w x",
    "--config.total_steps=5",
  ]


def test_gpu_and_slurm_dry_run():
  (gpu,) = _dry_run("gpu_single_host.sh", "--config.seed=1", WORKDIR="/w")
  argv = shlex.split(gpu)
  assert "XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true" in argv
  assert argv[-5:] == [
    "rankjax.cli",
    "train",
    "--config=configs/mslr_mlp.py",
    "--workdir=/w",
    "--config.seed=1",
  ]
  (slurm,) = _dry_run(
    "slurm_gpu.sh", WORKDIR="/w", CONFIG="configs/other.py:big", RANKJAX_REPO=str(ROOT)
  )
  argv = shlex.split(slurm)
  assert argv[:2] == ["srun", "--kill-on-bad-exit=1"]
  assert argv[-2:] == ["--config=configs/other.py:big", "--workdir=/w"]


def test_missing_workdir_fails_with_message():
  proc = subprocess.run(
    ["bash", str(ROOT / "launch" / "gpu_single_host.sh")],
    env={**os.environ, "DRY_RUN": "1"},
    capture_output=True,
    text=True,
  )
  assert proc.returncode != 0 and "set WORKDIR" in proc.stderr


def test_tpu_dry_run_runs_the_same_command_on_every_worker():
  (line,) = _dry_run(
    "tpu_vm_slice.sh", "--config.seed=3", TPU_NAME="pod", ZONE="z", WORKDIR="/mnt/run"
  )
  argv = shlex.split(line)
  assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod"]
  assert "--worker=all" in argv
  remote = shlex.split(argv[-1].removeprefix("--command="))
  assert remote[:3] == ["cd", str(ROOT), "&&"]
  assert remote[3] == "RANKJAX_DISTRIBUTED=1"
  assert remote[5:8] == ["-m", "rankjax.cli", "train"]
  assert remote[-3:] == ["--config=configs/mslr_mlp.py", "--workdir=/mnt/run", "--config.seed=3"]


def test_slurm_study_array_submits_the_shards_then_the_report_after_them():
  env = {"WORKDIR": "/shared/s", "SHARDS": "4", "RANKJAX_REPO": str(ROOT)}
  shards, report = map(shlex.split, _dry_run("slurm_study_array.sh", "--config.seed=1", **env))
  script = str(ROOT / "launch" / "slurm_study_array.sh")
  assert shards == [
    "sbatch",
    "--parsable",
    "--array=0-3",
    "--gpus-per-node=1",
    f"--export=ALL,RANKJAX_STUDY_PART=shard,RANKJAX_REPO={ROOT}",
    script,
    "--config.seed=1",
  ]
  assert report[:2] == ["sbatch", "--dependency=afterany:$ARRAY_JOB_ID"]
  assert report[-3:] == [
    f"--export=ALL,RANKJAX_STUDY_PART=report,RANKJAX_REPO={ROOT}",
    script,
    "--config.seed=1",
  ]
  # The jobs sbatch starts: array task 2 runs shard 2 of 4, the report job the report.
  (task,) = _dry_run(
    "slurm_study_array.sh",
    "--config.seed=1",
    RANKJAX_STUDY_PART="shard",
    SLURM_ARRAY_TASK_ID="2",
    **env,
  )
  argv = shlex.split(task)
  assert argv[:2] == ["srun", "--kill-on-bad-exit=1"]
  assert argv[-7:] == [
    "-m",
    "rankjax.cli",
    "study",
    "--config=configs/demo.py",
    "--workdir=/shared/s",
    "--shard=2/4",
    "--config.seed=1",
  ]
  (line,) = _dry_run("slurm_study_array.sh", RANKJAX_STUDY_PART="report", CONFIG="c.py:x", **env)
  assert shlex.split(line)[-3:] == ["--config=c.py:x", "--workdir=/shared/s", "--report"]


def test_tpu_vm_study_runs_a_shard_on_each_vm_then_the_report_on_the_first():
  lines = _dry_run(
    "tpu_vm_study_shards.sh", "--config.seed=3", TPU_NAMES="vm-a vm-b", ZONE="z", WORKDIR="/mnt/s"
  )
  assert len(lines) == 3
  for line, vm, part in zip(
    lines, ["vm-a", "vm-b", "vm-a"], ["--shard=0/2", "--shard=1/2", "--report"]
  ):
    argv = shlex.split(line)
    assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", vm]
    assert argv[6:8] == ["--zone=z", "--worker=0"]
    remote = shlex.split(argv[-1].removeprefix("--command="))
    assert remote[:3] == ["cd", str(ROOT), "&&"]
    assert remote[4:] == [
      "-m",
      "rankjax.cli",
      "study",
      "--config=configs/demo.py",
      "--workdir=/mnt/s",
      part,
      "--config.seed=3",
    ]


def test_trec_study_annotates_prepares_and_studies_with_the_chosen_annotator():
  local = [
    shlex.split(line) for line in _dry_run("trec_study.sh", "--config.study.seeds=0", WORKDIR="/w")
  ]
  assert local[0] == ["mkdir", "-p", "/w"]
  annotate = [argv for argv in local if argv[3:5] == ["annotate", "run"]]
  assert [a[a.index("--format") + 2].rsplit("/", 1)[1] for a in annotate] == [
    "sessiontrack2012.xml",
    "sessiontrack2013.xml",
  ]
  assert all(
    a[a.index("--backend") :][:4] == ["--backend", "jax_local", "--model", "smollm2"]
    for a in annotate
  )
  assert all(a[-2:] == ["--max-failed", "0.01"] for a in annotate)
  agreement, prepare, study = local[3], local[4], local[5]
  recorded = "SmolLM2-135M-Instruct.Q4_1.gguf"  # the name the local backend stores its labels by
  assert (
    agreement[3:5] == ["annotate", "agreement"]
    and agreement[agreement.index("--model") + 1] == recorded
  )
  assert (
    prepare[3:5] == ["data", "prepare"] and prepare[prepare.index("--llm-model") + 1] == recorded
  )
  assert prepare[prepare.index("--llm-labels") + 1] == "/w/ann.db"
  assert study[3:] == [
    "study",
    "--config=configs/trec_session.py",
    "--workdir=/w/study",
    "--config.data.path=/w/data/trec_session_llm/1.0.0",
    "--config.study.seeds=0",
  ]
  remote = [
    shlex.split(line)
    for line in _dry_run(
      "trec_study.sh",
      WORKDIR="/w",
      LLM_BASE_URL="http://gpu:8000/v1",
      LLM_MODEL="Qwen/Qwen2.5-7B-Instruct",
      GRADE_FROM="logprobs",
    )
  ]
  annotate = remote[1]
  assert annotate[annotate.index("--backend") :][:7] == [
    "--backend", "openai_http", "--base-url", "http://gpu:8000/v1",
    "--grade-from", "logprobs", "--model",
  ]  # fmt: skip
  assert remote[4][remote[4].index("--llm-model") + 1] == "Qwen/Qwen2.5-7B-Instruct"


@pytest.mark.slow
def test_local_cpu_script_trains_on_real_mslr(shared_data, tmp_path):
  """The README's command (through the script), shortened: real data prepared, trained, scored."""
  shared_data("mslr_web10k_sample")
  proc = subprocess.run(
    [
      "bash",
      str(ROOT / "launch" / "local_cpu.sh"),
      "--config.total_steps=20",
      "--config.eval.every=20",
      "--config.checkpoint.every=20",
    ],
    env={**os.environ, **CACHE_ENV, "WORKDIR": str(tmp_path)},
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "## test (step 20)" in proc.stdout
  assert (tmp_path / "data" / "mslr_web10k_sample" / "1.0.0" / "dataset_info.json").exists()
  assert (tmp_path / "checkpoints" / "20").exists()
