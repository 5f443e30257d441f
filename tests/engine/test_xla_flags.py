"""The GPU scatter workaround flag: added only where needed, merged into existing XLA_FLAGS."""

from rankjax.engine import xla_flags


def test_added_on_affected_cuda_installs_only():
  env = {}
  assert xla_flags.fix_gpu_scatter_atomics(env, "0.11.0", has_cuda=True)
  assert env["XLA_FLAGS"] == "--xla_backend_extra_options=-nvptx-allow-ftz-atomics"
  for version, cuda in [("0.10.1", True), ("0.11.1", True), ("0.11.2", True), ("0.10.2", False)]:
    env = {}
    assert not xla_flags.fix_gpu_scatter_atomics(env, version, has_cuda=cuda)
    assert "XLA_FLAGS" not in env


def test_keeps_existing_flags_and_never_adds_twice():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_backend_extra_options=-x"}
  assert xla_flags.fix_gpu_scatter_atomics(env, "0.10.2", has_cuda=True)
  assert env["XLA_FLAGS"] == (
    "--xla_force_host_platform_device_count=8 "
    "--xla_backend_extra_options=-x,-nvptx-allow-ftz-atomics"
  )
  before = dict(env)
  assert not xla_flags.fix_gpu_scatter_atomics(env, "0.10.2", has_cuda=True)
  assert env == before
  env = {"XLA_FLAGS": "--xla_gpu_ftz=true"}
  assert not xla_flags.fix_gpu_scatter_atomics(env, "0.11.0", has_cuda=True)


def test_this_install_gets_the_flag_only_with_a_cuda_plugin():
  env = {}
  changed = xla_flags.fix_gpu_scatter_atomics(env)
  assert changed == ("XLA_FLAGS" in env)
  if not xla_flags._has_cuda_plugin():  # pylint: disable=protected-access  (CPU CI)
    assert not changed
