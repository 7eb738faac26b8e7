"""The cluster launchers (launch/*.py): their command lines, the commands they print with
--dry-run, the TPU retry decisions with a scripted runner, and the shell they generate, run by bash
against fake python, srun, scancel and scontrol programs. Nothing here reaches gcloud, xpk or a
cluster."""

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

import common  # launch/common.py: pyproject.toml puts launch/ on pytest's path.
import tpu_vm
import xpk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Flags that only survive if every layer quotes them: spaces, both quotes, $, a glob, a backslash.
TRICKY = ['--config.train.steps=1000', '--config.data.source=text:/data/my corpus/*.txt',
          "--config.note=it's \"quoted\" $HOME \\n"]
TPU = ['--name=el', '--zone=us-central2-b', '--project=proj']
TPU_HW = ['--accelerator_type=v4-32', '--runtime_version=tpu-ubuntu2204-base']
TRAINING = ['--config=configs/base.py', '--workdir=/mnt/gcs/run']
# What a launched training command gets after TRAINING: relaunches wait for a dead run's lease.
WAITS = [*TRAINING, '--wait_for_lock']
XPK = ['--cluster=c1', '--workload=el-base', '--project=proj', '--zone=us-east5-b']


def launch(script, *args, env=None):
  """Runs a launcher; unless env says otherwise, with a PATH where no gcloud, xpk or sbatch is."""
  env = env or {**os.environ, 'PATH': '/nonexistent'}
  return subprocess.run([sys.executable, os.path.join(ROOT, 'launch', script), *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=60, check=False, env=env)


def dry_run(script, *args):
  """The printed commands, split; --dry-run goes before the training flags' `--`."""
  if '--' in args:
    i = args.index('--')
    args = (*args[:i], '--dry-run', *args[i:])
  else:
    args = (*args, '--dry-run')
  result = launch(script, *args)
  assert result.returncode == 0, result.stderr
  return [shlex.split(line) for line in result.stdout.splitlines()]


def flag(argv, name):
  """The value of --name=value in argv (asserting it is there once)."""
  values = [a.split('=', 1)[1] for a in argv if a.startswith(f'{name}=')]
  assert len(values) == 1, (name, argv)
  return values[0]


def fake_programs(tmp_path):
  """A fake training program (records its argv, and on SIGTERM each signal, then exits 0), plus
  fake srun, scancel and scontrol. Its behaviour comes from $FAKE_MODE: exit0, exit3 or wait."""
  log = tmp_path / 'log'
  log.mkdir()
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  scripts = {
      'python': '''#!/bin/bash
printf '%s\\0' "$@" > "$FAKE_DIR/args"
echo $$ > "$FAKE_DIR/pid"
case "$FAKE_MODE" in
  exit3) exit 3 ;;
  wait)
    trap 'echo TERM >> "$FAKE_DIR/signals"' TERM
    touch "$FAKE_DIR/ready"
    while [ ! -e "$FAKE_DIR/signals" ]; do sleep 0.05; done
    sleep 0.5  # The checkpoint; long enough to see a second SIGTERM if one came.
    touch "$FAKE_DIR/exited"
    exit 0 ;;
esac
''',
      'srun': '''#!/bin/bash
echo "$@" > "$FAKE_DIR/srun"
SLURM_PROCID=0 exec bash -c "${@: -1}"
''',
      'scancel': '''#!/bin/bash
echo "$@" >> "$FAKE_DIR/scancel"
kill -TERM "$(cat "$FAKE_DIR/pid")"
''',
      'scontrol': '''#!/bin/bash
if [ "$1" = show ]; then echo node7; echo node8; else echo "$@" >> "$FAKE_DIR/scontrol"; fi
''',
  }
  for name, text in scripts.items():
    path = bin_dir / name
    path.write_text(text)
    path.chmod(0o755)
  env = {**os.environ, 'FAKE_DIR': str(log), 'PATH': f'{bin_dir}:{os.environ["PATH"]}'}
  return bin_dir, log, env


def install_fake_venv(directory, bin_dir):
  (directory / '.venv' / 'bin').mkdir(parents=True)
  os.symlink(bin_dir / 'python', directory / '.venv' / 'bin' / 'python')


def recorded_args(log):
  return (log / 'args').read_text().split('\0')[:-1]


def run_until_stopped(cmd, log, env, cwd=None, stop=signal.SIGTERM):
  """Starts cmd with the fake program in `wait` mode, sends `stop` to it once the program runs,
  and returns cmd's exit code, checking that cmd waited for the program (its checkpoint)."""
  proc = subprocess.Popen(cmd, env={**env, 'FAKE_MODE': 'wait'}, cwd=cwd)
  deadline = time.time() + 20
  while not (log / 'ready').exists():
    assert time.time() < deadline and proc.poll() is None, 'the training program never started'
    time.sleep(0.05)
  proc.send_signal(stop)
  exit_code = proc.wait(timeout=20)
  assert (log / 'exited').exists(), 'exited before the training program'
  return exit_code


# ------------------------------------------------------------------------------- Cloud TPU VM


def test_tpu_help_lists_the_subcommands_and_options():
  result = launch('tpu_vm.py', '--help')
  assert result.returncode == 0
  for word in ('create', 'setup', 'run', 'train', 'delete', '--'):
    assert word in result.stdout
  train_help = launch('tpu_vm.py', 'train', '--help').stdout
  for option in ('--spot', '--reserved', '--max_retries', '--gcs_bucket', '--config', '--workdir'):
    assert option in train_help


def test_tpu_train_dry_run_prints_one_cycle():
  commands = dry_run('tpu_vm.py', 'train', *TPU, *TPU_HW, '--spot', *TRAINING, '--gcs_bucket=bkt',
                     '--', *TRICKY)
  assert commands[0][:4] == ['git', '-C', ROOT, 'archive']
  create, describe, mount, scp, install, run = commands[1:]
  assert create[:6] == ['gcloud', 'compute', 'tpus', 'queued-resources', 'create', 'el-qr']
  assert flag(create, '--node-id') == 'el' and flag(create, '--accelerator-type') == 'v4-32'
  assert flag(create, '--runtime-version') == 'tpu-ubuntu2204-base'
  assert flag(create, '--zone') == 'us-central2-b' and flag(create, '--project') == 'proj'
  assert '--spot' in create and '--reserved' not in create
  assert describe[4:6] == ['describe', 'el-qr']
  assert flag(describe, '--format') == 'value(state.state)'
  assert 'gcsfuse --implicit-dirs bkt /mnt/gcs' in flag(mount, '--command')
  assert scp[3:5] == ['tpu-vm', 'scp'] and scp[6] == 'el:electra_jax_code.tar.gz'
  for ssh in (mount, install, run):
    assert ssh[3:6] == ['tpu-vm', 'ssh', 'el'] and '--worker=all' in ssh
  assert '--worker=all' in scp
  assert "'jax[tpu]==" in flag(install, '--command')
  remote = shlex.split(flag(run, '--command'))
  assert remote[:6] == ['cd', 'electra_jax', '&&', 'exec', '.venv/bin/python', '-m']
  assert remote[6:] == ['electra_jax.main', *WAITS, *TRICKY]  # No cluster flags: JAX finds it.


@pytest.mark.parametrize('tier,expected', [(['--reserved'], ['--reserved']), ([], [])])
def test_tpu_create_tiers_and_waits_once_in_dry_run(tier, expected):
  create, describe = dry_run('tpu_vm.py', 'create', *TPU, *TPU_HW, *tier)
  assert [a for a in create if a in ('--spot', '--reserved')] == expected
  assert describe[4] == 'describe'


def test_tpu_run_setup_and_delete_dry_runs():
  (run,) = dry_run('tpu_vm.py', 'run', *TPU, *TRAINING, '--remote_dir=my code', '--', *TRICKY)
  assert shlex.split(flag(run, '--command'))[:2] == ['cd', 'my code']
  archive, scp, install = dry_run('tpu_vm.py', 'setup', *TPU, '--ref=v1')
  assert archive[-1] == 'v1' and scp[4] == 'scp' and install[4] == 'ssh'
  (delete,) = dry_run('tpu_vm.py', 'delete', *TPU)
  assert delete[4:6] == ['delete', 'el-qr'] and '--force' in delete


@pytest.mark.parametrize('args,message', [
    (['train', *TPU, *TPU_HW, '--spot', '--reserved', *TRAINING], 'not allowed with'),
    (['train', *TPU, *TPU_HW, *TRAINING[:1]], '--workdir'),
    (['create', *TPU[1:], *TPU_HW], '--name'),
    (['create', *TPU, *TPU_HW, '--', '--config.train.steps=1'], 'only for run and train'),
    (['start', *TPU], 'invalid choice'),
    (['train', *TPU, *TPU_HW, *TRAINING, '--max_retries=-1'], 'is negative'),
    (['run', *TPU, *TRAINING, '--', '--config.train.steps=1', '--dry-run'], 'goes before --'),
    ([], 'required'),
])
def test_tpu_bad_arguments(args, message):
  result = launch('tpu_vm.py', *args)
  assert result.returncode == 2 and message in result.stderr


class ScriptedRunner:
  """Stands in for common.Runner: answers state queries and run exit codes from scripts and logs
  what each command was."""

  dry_run = False

  def __init__(self, states, exit_codes):
    self.states, self.exit_codes, self.log = list(states), list(exit_codes), []

  def _kind(self, cmd):
    if cmd[0] == 'git':
      return 'archive'
    if 'queued-resources' in cmd:
      return cmd[4]
    if 'scp' in cmd:
      return 'scp'
    return 'run' if '--command=cd electra_jax && exec' in ' '.join(cmd) else 'install'

  def run(self, cmd):
    self.log.append(self._kind(cmd))

  def status(self, cmd):
    self.log.append(self._kind(cmd))
    return self.exit_codes.pop(0)

  def output(self, cmd):
    self.log.append(self._kind(cmd))
    return self.states.pop(0)


def _train(states, exit_codes, *extra):
  args = tpu_vm.build_parser().parse_args(['train', *TPU, *TPU_HW, '--spot', *TRAINING, *extra])
  runner, sleeps = ScriptedRunner(states, exit_codes), []
  try:
    tpu_vm.train(args, ['--config.train.steps=9'], runner, sleep=sleeps.append)
  finally:
    assert not runner.states and not runner.exit_codes  # Every scripted answer was used.
  return runner.log, sleeps


CYCLE = ['scp', 'install', 'run', 'describe']


def test_tpu_train_recreates_a_preempted_slice_and_stops_when_training_ends():
  log, sleeps = _train(
      # None: no queued resource yet. Then the first run loses its slice (ssh exit 255 and the
      # queued resource still reads ACTIVE once before SUSPENDED); the second run finishes.
      [None, 'WAITING_FOR_RESOURCES', 'ACTIVE', 'ACTIVE', 'SUSPENDED', 'PROVISIONING', 'ACTIVE',
       'ACTIVE'],
      [255, 0])
  assert log == ['archive', 'describe', 'create', 'describe', 'describe', *CYCLE, 'describe',
                 'delete', 'create', 'describe', 'describe', *CYCLE]
  assert sleeps == [60, 60, 60]  # Waiting for ACTIVE, re-asking after ACTIVE, waiting again.


def test_tpu_train_finishes_on_an_active_slice_after_exit_0_and_reuses_an_active_one():
  log, _ = _train(['ACTIVE', 'ACTIVE'], [0])
  assert log == ['archive', 'describe', *CYCLE]  # No create, no delete.


def test_tpu_train_replaces_a_suspended_leftover_and_waits_for_a_queued_one():
  log, _ = _train(['SUSPENDED', 'ACTIVE', 'ACTIVE'], [0])
  assert log == ['archive', 'describe', 'delete', 'create', 'describe', *CYCLE]
  log, _ = _train(['WAITING_FOR_RESOURCES', 'ACTIVE', 'ACTIVE'], [0])
  assert log == ['archive', 'describe', 'describe', *CYCLE]  # Keeps its place in the queue.


def test_tpu_train_reports_a_real_failure_and_keeps_the_slice():
  with pytest.raises(common.CommandError, match='exited with code 1 on a healthy slice'):
    _train(['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE'], [1])


def test_tpu_train_gives_up_after_max_retries():
  with pytest.raises(common.CommandError, match='lost 2 times'):
    _train(['ACTIVE', 'SUSPENDING', 'ACTIVE', 'SUSPENDED'], [255, 0], '--max_retries=1')


def test_tpu_create_stops_on_a_failed_queued_resource():
  args = tpu_vm.build_parser().parse_args(['create', *TPU, *TPU_HW])
  runner = ScriptedRunner(['WAITING_FOR_RESOURCES', 'FAILED'], [])
  with pytest.raises(common.CommandError, match='el-qr is FAILED'):
    tpu_vm.create(args, runner, tpu_vm.Slice(args), sleep=lambda s: None)


def test_tpu_remote_command_gives_the_program_its_flags_unchanged(tmp_path):
  bin_dir, log, env = fake_programs(tmp_path)
  install_fake_venv(tmp_path / 'electra_jax', bin_dir)
  (run,) = dry_run('tpu_vm.py', 'run', *TPU, *TRAINING, '--', *TRICKY)
  result = subprocess.run(['bash', '-c', flag(run, '--command')], cwd=tmp_path, check=False,
                          env={**env, 'FAKE_MODE': 'exit3'})
  assert result.returncode == 3  # The program's exit code is the run's.
  assert recorded_args(log) == ['-m', 'electra_jax.main', *WAITS, *TRICKY]


def test_tpu_failing_or_missing_gcloud_is_one_error_line(tmp_path):
  (tmp_path / 'gcloud').write_text('#!/bin/sh\nexit 3\n')
  (tmp_path / 'gcloud').chmod(0o755)
  for path in (str(tmp_path), str(tmp_path / 'nowhere')):
    result = launch('tpu_vm.py', 'delete', *TPU, env={**os.environ, 'PATH': path})
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1
    assert ('exit code 3' if path == str(tmp_path) else 'gcloud not found') in errors[0]


# ------------------------------------------------------------------------------------- XPK


def test_xpk_help_lists_the_subcommands_and_options():
  assert all(w in launch('xpk.py', '--help').stdout for w in ('create', 'list', 'delete'))
  create_help = launch('xpk.py', 'create', '--help').stdout
  for option in ('--tpu_type', '--device_type', '--num_slices', '--num_nodes', '--max_restarts',
                 '--base_docker_image', '--docker_image', '--config', '--workdir'):
    assert option in create_help


def test_xpk_multislice_tpu_dry_run():
  *stage, create = dry_run('xpk.py', 'create', *XPK, '--tpu_type=v6e-256', '--num_slices=2',
                           '--max_restarts=5', *TRAINING, '--', *TRICKY)
  stage_dir = flag(create, '--script-dir')
  assert ['git', '-C', ROOT, 'archive'] == stage[2][:4] and stage[2][-1] == 'HEAD'
  assert stage[-1] == ['tar', '-xf', f'{stage_dir}.tar', '-C', stage_dir]
  assert create[:3] == ['xpk', 'workload', 'create']
  assert flag(create, '--cluster') == 'c1' and flag(create, '--workload') == 'el-base'
  assert flag(create, '--project') == 'proj' and flag(create, '--zone') == 'us-east5-b'
  assert flag(create, '--tpu-type') == 'v6e-256' and flag(create, '--num-slices') == '2'
  assert flag(create, '--max-restarts') == '5'
  assert flag(create, '--base-docker-image') == 'python:3.11'
  command = shlex.split(flag(create, '--command'))
  assert "jax[tpu]==" in flag(create, '--command')
  main = command.index('electra_jax.main')
  assert command[main + 1:main + 9] == [*WAITS, '--config.mesh.dcn_data=2', *TRICKY, '&']
  assert '--coordinator_address' not in flag(create, '--command')  # JAX finds TPU pods itself.


def test_xpk_one_slice_has_no_dcn_flag():
  *_, create = dry_run('xpk.py', 'create', *XPK, '--tpu_type=v5p-8', *TRAINING)
  assert 'dcn_data' not in flag(create, '--command') and flag(create, '--num-slices') == '1'


def test_xpk_gpu_nodes_with_a_ready_image():
  commands = dry_run('xpk.py', 'create', *XPK, '--device_type=h100-80gb-8', '--num_nodes=4',
                     '--docker_image=gcr.io/proj/electra:1', '--jax_extra=cuda13', *TRAINING)
  (create,) = commands  # A ready image: nothing to pack.
  assert flag(create, '--device-type') == 'h100-80gb-8' and flag(create, '--num-nodes') == '4'
  assert flag(create, '--docker-image') == 'gcr.io/proj/electra:1'
  assert '--script-dir' not in ' '.join(create)
  command = flag(create, '--command')
  assert "'jax[cuda13]==" in command and '--config.mesh.dcn_data=4' in command
  for expanded in ('--coordinator_address=$JAX_COORDINATOR_ADDRESS:$JAX_COORDINATOR_PORT',
                   '--num_processes=$NNODES', '--process_id=$NODE_RANK'):
    assert f' {expanded} ' in command


def test_xpk_list_and_delete():
  (listing,) = dry_run('xpk.py', 'list', *XPK)
  assert listing[:3] == ['xpk', 'workload', 'list']
  assert flag(listing, '--filter-by-job') == 'el-base'
  (waiting,) = dry_run('xpk.py', 'list', *XPK, '--wait')
  assert flag(waiting, '--wait-for-job-completion') == 'el-base'
  (delete,) = dry_run('xpk.py', 'delete', *XPK)
  assert delete[:3] == ['xpk', 'workload', 'delete'] and flag(delete, '--workload') == 'el-base'


@pytest.mark.parametrize('args,message', [
    (['create', *XPK, *TRAINING], 'one of the arguments --tpu_type --device_type is required'),
    (['create', *XPK, '--tpu_type=v5p-8', '--device_type=h100-80gb-8', *TRAINING],
     'not allowed with'),
    (['create', *XPK, '--tpu_type=v5p-8', '--num_nodes=2', *TRAINING], '--num_nodes is for'),
    (['create', *XPK, '--tpu_type=v5p-8', '--num_slices=0', *TRAINING], 'not a positive'),
    (['create', *XPK, '--tpu_type=v5p-8', '--workdir=/w'], '--config'),
    (['delete', *XPK, '--', '--config.train.steps=1'], 'only for create'),
])
def test_xpk_bad_arguments(args, message):
  result = launch('xpk.py', *args)
  assert result.returncode == 2 and message in result.stderr


def test_xpk_gpu_command_refuses_what_breaks_xpk_yaml():
  result = launch('xpk.py', 'create', *XPK, '--device_type=h100-80gb-8', *TRAINING, '--dry-run',
                  '--', '--config.note="x"')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.startswith('error: ') and 'double-quoted' in result.stderr


# XPK's own container wrapper around --command (xpk/core/docker_container.py), abridged.
XPK_WRAPPER = ('_sigterm() (kill -SIGTERM $! 2>/dev/null;); trap _sigterm SIGTERM; ({command}) & '
               'PID=$!; while kill -0 $PID 2>/dev/null; do sleep 0.1; done; wait $PID; exit $?')


def _xpk_container(tmp_path):
  bin_dir, log, env = fake_programs(tmp_path)
  install_fake_venv(tmp_path, bin_dir)
  *_, create = dry_run('xpk.py', 'create', *XPK, '--tpu_type=v5p-8', *TRAINING, '--', *TRICKY)
  return ['bash', '-c', XPK_WRAPPER.format(command=flag(create, '--command'))], log, env


@pytest.mark.parametrize('mode,exit_code', [('exit0', 0), ('exit3', 3)])
def test_xpk_container_passes_the_program_exit_code(tmp_path, mode, exit_code):
  cmd, log, env = _xpk_container(tmp_path)
  assert subprocess.run(cmd, cwd=tmp_path, env={**env, 'FAKE_MODE': mode},
                        check=False).returncode == exit_code
  assert recorded_args(log) == ['-m', 'electra_jax.main', *WAITS, *TRICKY]


def test_xpk_container_turns_a_stop_into_the_restart_code(tmp_path):
  cmd, log, env = _xpk_container(tmp_path)
  assert run_until_stopped(cmd, log, env, cwd=tmp_path) == xpk.RESTART_EXIT_CODE
  assert (log / 'signals').read_text() == 'TERM\n'  # Exactly one: a second skips the checkpoint.


# ------------------------------------------------------------------------------------- SLURM

SLURM = ['--nodes=2', '--gpus_per_node=8', '--partition=gpu', '--time=24:00:00']


def _slurm_dry_run(*args):
  result = launch('slurm.py', '--dry-run', *args)
  assert result.returncode == 0, result.stderr
  *script, submit = result.stdout.splitlines()
  return '\n'.join(script) + '\n', shlex.split(submit)


def test_slurm_help_lists_the_options():
  help_text = launch('slurm.py', '--help').stdout
  for option in ('--nodes', '--gpus_per_node', '--partition', '--time', '--account', '--job_name',
                 '--venv', '--config', '--workdir', '--script', '--dry-run'):
    assert option in help_text


def test_slurm_dry_run_prints_the_script_and_sbatch(tmp_path):
  script, submit = _slurm_dry_run(*SLURM, '--account=acct', f'--workdir={tmp_path}/run',
                                  '--config=configs/base.py', '--', *TRICKY)
  assert submit == ['sbatch', f'{tmp_path}/run.sbatch']
  assert not os.path.exists(submit[1])  # A dry run writes nothing.
  for directive in ('--nodes=2', '--ntasks-per-node=1', '--gpus-per-node=8', '--partition=gpu',
                    '--time=24:00:00', '--account=acct', '--requeue', '--signal=B:USR1@300',
                    '--open-mode=append'):
    assert f'#SBATCH {directive}\n' in script
  subprocess.run(['bash', '-n'], input=script, text=True, check=True)
  (srun,) = [shlex.split(line) for line in script.replace('\\\n', '').splitlines()
             if line.startswith('srun ')]
  assert srun[:3] == ['srun', '--nodes=2', '--ntasks-per-node=1'] and srun[-1] == '&'
  task = srun[-2]
  assert srun[-4:-2] == ['bash', '-c']
  for expanded in ('--coordinator_address=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | '
                   'head -n 1):$((20000 + SLURM_JOB_ID % 10000))',
                   '--num_processes=$SLURM_NNODES', '--process_id=$SLURM_PROCID'):
    assert expanded in task
  assert shlex.split(task)[-4:] == ['--config.mesh.dcn_data=2', *TRICKY]


def test_slurm_one_node_has_no_dcn_flag(tmp_path):
  script, _ = _slurm_dry_run('--nodes=1', '--gpus_per_node=4', '--time=1:00:00',
                             *TRAINING[:1], f'--workdir={tmp_path}/w')
  assert 'dcn_data' not in script and '--process_id=$SLURM_PROCID' in script
  assert '#SBATCH --partition' not in script and '#SBATCH --account' not in script


def test_slurm_install_makes_the_venv_once_per_job(tmp_path):
  script, _ = _slurm_dry_run(*SLURM, *TRAINING[:1], f'--workdir={tmp_path}/w', '--install',
                             '--jax_extra=cuda13', f'--venv={tmp_path}/my venv')
  before_srun = script.split('\nsrun ')[0]
  assert f"python3 -m venv '{tmp_path}/my venv'" in before_srun
  assert f"'{tmp_path}/my venv'/bin/pip install -q -r requirements.txt 'jax[cuda13]==" in before_srun
  subprocess.run(['bash', '-n'], input=script, text=True, check=True)


@pytest.mark.parametrize('args,message', [
    (['--nodes=0', '--gpus_per_node=8', '--time=1:00:00', *TRAINING], 'not a positive'),
    (['--gpus_per_node=8', '--time=1:00:00', *TRAINING], '--nodes'),
    (['--nodes=2', '--gpus_per_node=8', '--time=1:00:00', '--workdir=/w'], '--config'),
    ([*SLURM, *TRAINING, '--jax_extra=tpu'], 'invalid choice'),
])
def test_slurm_bad_arguments(args, message):
  result = launch('slurm.py', *args)
  assert result.returncode == 2 and message in result.stderr


def _slurm_job(tmp_path, *extra):
  """Writes the script through a fake sbatch, as a user would, and returns how to run it."""
  bin_dir, log, env = fake_programs(tmp_path)
  (bin_dir / 'sbatch').write_text('#!/bin/sh\necho "$@" > "$FAKE_DIR/sbatch"\n')
  (bin_dir / 'sbatch').chmod(0o755)
  install_fake_venv(tmp_path, bin_dir)
  script = tmp_path / 'jobs' / 'job.sbatch'
  result = launch('slurm.py', *SLURM, *TRAINING, f'--script={script}', f'--repo={tmp_path}',
                  f'--venv={tmp_path}/.venv', *extra, '--', *TRICKY, env=env)
  assert result.returncode == 0, result.stderr
  assert (log / 'sbatch').read_text() == f'{script}\n'
  assert os.listdir(script.parent) == ['job.sbatch']  # The temporary file was renamed.
  job_env = {**env, 'SLURM_JOB_ID': '123', 'SLURM_JOB_NODELIST': 'node[7-8]', 'SLURM_NNODES': '2'}
  return ['bash', str(script)], log, job_env


@pytest.mark.parametrize('mode,exit_code', [('exit0', 0), ('exit3', 3)])
def test_slurm_job_runs_the_program_and_is_not_requeued(tmp_path, mode, exit_code):
  cmd, log, env = _slurm_job(tmp_path)
  assert subprocess.run(cmd, env={**env, 'FAKE_MODE': mode}, check=False).returncode == exit_code
  assert recorded_args(log) == [
      '-m', 'electra_jax.main', *WAITS,
      '--coordinator_address=node7:20123', '--num_processes=2', '--process_id=0',
      '--config.mesh.dcn_data=2', *TRICKY]
  assert not (log / 'scontrol').exists()
  assert (log / 'srun').read_text().startswith('--nodes=2 --ntasks-per-node=1 --gpus-per-node=8 ')


def test_slurm_job_checkpoints_and_requeues_before_the_time_limit(tmp_path):
  cmd, log, env = _slurm_job(tmp_path)
  assert run_until_stopped(cmd, log, env, stop=signal.SIGUSR1) == 0
  assert (log / 'signals').read_text() == 'TERM\n'
  assert (log / 'scancel').read_text() == '--signal=TERM 123\n'
  assert (log / 'scontrol').read_text() == 'requeue 123\n'


def test_slurm_failing_sbatch_is_one_error_line(tmp_path):
  (tmp_path / 'sbatch').write_text('#!/bin/sh\nexit 1\n')
  (tmp_path / 'sbatch').chmod(0o755)
  result = launch('slurm.py', *SLURM, *TRAINING, f'--script={tmp_path}/job.sbatch',
                  env={**os.environ, 'PATH': str(tmp_path)})
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.splitlines()[-1].startswith('error: exit code 1 from: sbatch')
  assert os.path.exists(tmp_path / 'job.sbatch')
