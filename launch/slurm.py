#!/usr/bin/env python3
"""Pre-training on NVIDIA GPU nodes of a SLURM cluster: writes an sbatch script and submits it.

  launch/slurm.py --nodes=4 --gpus_per_node=8 --partition=gpu --time=24:00:00 \\
      --config=configs/base.py --workdir=/shared/runs/base -- --config.train.steps=1000

One process per node sees all of its GPUs; `srun` starts them with the coordinator (the first node),
the number of nodes and each node's rank. Shortly before the time limit (--signal_seconds) the job
asks training to stop: it writes a checkpoint, and the job requeues itself and resumes from it when
it starts again. A job whose training finishes is not requeued. The repository (with its venv)
must be on a filesystem that the nodes share. Add --dry-run to print the script and the command.
"""

import argparse
import os
import shlex
import sys
import tempfile

import common

TEMPLATE = '''#!/bin/bash
{directives}
# Written by launch/slurm.py; `sbatch {script}` submits the same run again (it resumes).
set -u
cd {repo} || exit 1
{install}
# Slurm sends USR1 to this shell alone (--signal=B:...) before the time limit. A SIGTERM to srun
# would make it SIGKILL the tasks before their checkpoint, so the tasks are signalled directly:
# scancel --signal (without --batch) reaches the job steps but neither this shell nor srun.
requeue=0
trap 'requeue=1; scancel --signal=TERM "$SLURM_JOB_ID"' USR1
srun --nodes={nodes} --ntasks-per-node=1 --gpus-per-node={gpus}{cpus} --kill-on-bad-exit=1 \\
  bash -c {task} &
srun_pid=$!
# wait returns early when the trap runs; keep waiting until the tasks have written the checkpoint.
while kill -0 "$srun_pid" 2>/dev/null; do wait "$srun_pid"; done
wait "$srun_pid"
rc=$?
if [ "$requeue" = 1 ]; then
  echo "stopped before the time limit (exit code $rc); requeueing job $SLURM_JOB_ID to resume"
  scontrol requeue "$SLURM_JOB_ID" || exit 1
  exit 0
fi
exit "$rc"
'''


def task_command(args: argparse.Namespace, training_flags: list[str]) -> str:
  """What each node runs. Its $VARIABLES are expanded there, inside srun, not where sbatch runs."""
  coordinator = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
  # A port from the job id, so that two jobs sharing a first node do not collide; below Linux's
  # ephemeral range (32768+), where outgoing connections could hold it.
  port = '$((20000 + SLURM_JOB_ID % 10000))'
  distributed = [f'--coordinator_address={coordinator}:{port}', '--num_processes=$SLURM_NNODES',
                 '--process_id=$SLURM_PROCID']
  main = common.training_command(os.path.join(args.venv, 'bin', 'python'), args, training_flags,
                                 common.dcn_flags(args.nodes), distributed)
  # exec: the signal from scancel reaches python itself, which checkpoints before exiting.
  return f'exec {main}'


def script_text(args: argparse.Namespace, training_flags: list[str], path: str) -> str:
  directives = [f'--job-name={args.job_name}', f'--nodes={args.nodes}', '--ntasks-per-node=1',
                f'--gpus-per-node={args.gpus_per_node}', f'--time={args.time}',
                *([f'--partition={args.partition}'] if args.partition else []),
                *([f'--account={args.account}'] if args.account else []),
                *([f'--cpus-per-task={args.cpus_per_task}'] if args.cpus_per_task else []),
                '--requeue', f'--signal=B:USR1@{args.signal_seconds}',
                # A requeued job keeps its id: append to its log instead of starting it afresh.
                f'--output={os.path.join(os.path.dirname(path), "%x-%j.out")}',
                '--open-mode=append']
  install = ''
  if args.install:
    venv = shlex.quote(args.venv)
    # Here, once per job, so that the nodes do not write one shared venv at the same time.
    install = (f'[ -x {venv}/bin/python ] || {shlex.quote(args.python)} -m venv {venv} || exit 1\n'
               f'{common.pip_install(args.jax_extra, args.venv)} || exit 1')
  return TEMPLATE.format(
      directives='\n'.join(f'#SBATCH {d}' for d in directives), script=path,
      repo=shlex.quote(args.repo), install=install, nodes=args.nodes, gpus=args.gpus_per_node,
      cpus=f' --cpus-per-task={args.cpus_per_task}' if args.cpus_per_task else '',
      task=shlex.quote(task_command(args, training_flags)))


def script_path(args: argparse.Namespace) -> str:
  return os.path.abspath(args.script or f'{args.workdir.rstrip("/")}.sbatch')


def write_atomically(path: str, text: str) -> None:
  """A failed or interrupted write (full disk, Ctrl-C) must not leave a half script where a good
  one was, for the next `sbatch` of it to run."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.tmp-', suffix='.sbatch')
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def build_parser() -> argparse.ArgumentParser:
  parser = common.launcher_parser(__doc__)
  parser.add_argument('--nodes', type=common.positive_int, required=True,
                      help='nodes, one process each; more than 1 adds --config.mesh.dcn_data=N')
  parser.add_argument('--gpus_per_node', type=common.positive_int, required=True)
  parser.add_argument('--partition', help='SLURM partition (default: the cluster default)')
  parser.add_argument('--time', required=True, help='time limit, e.g. 24:00:00')
  parser.add_argument('--account', help='account to charge')
  parser.add_argument('--cpus_per_task', type=common.positive_int,
                      help='CPUs for each node\'s process (data loading); default: the cluster\'s')
  parser.add_argument('--job_name', default='electra', help='default electra')
  parser.add_argument('--signal_seconds', type=common.positive_int, default=300,
                      help='how long before the time limit training is asked to checkpoint and '
                      'stop (default 300; Slurm may signal up to 60 s earlier)')
  parser.add_argument('--repo', default=common.REPO,
                      help='repository root on the shared filesystem (default: this checkout)')
  parser.add_argument('--venv', help='virtual environment (default REPO/.venv)')
  parser.add_argument('--install', action='store_true',
                      help='create the venv if missing and pip install into it when the job '
                      'starts (the first node needs internet access)')
  parser.add_argument('--jax_extra', choices=('cuda12', 'cuda13'), default='cuda12',
                      help='jax extra for --install (default cuda12)')
  parser.add_argument('--python', default='python3', help='creates the venv for --install')
  parser.add_argument('--script', help='where to write the sbatch script (default WORKDIR.sbatch)')
  common.add_training_args(parser)
  common.add_dry_run(parser)
  return parser


def main(argv: list[str]) -> int:
  args, training_flags = common.parse(build_parser(), argv)
  args.repo = os.path.abspath(args.repo)
  args.venv = os.path.abspath(args.venv or os.path.join(args.repo, '.venv'))
  args.workdir = os.path.abspath(args.workdir)  # Every node resolves it alike.
  path = script_path(args)
  submit = ['sbatch', path]

  def go():
    text = script_text(args, training_flags, path)
    if args.dry_run:
      print(text, end='')
      print(shlex.join(submit))
      return
    try:
      write_atomically(path, text)
    except OSError as e:
      raise common.CommandError(f'cannot write the sbatch script: {e}') from e
    print(f'wrote {path}', file=sys.stderr)
    common.Runner().run(submit)

  return common.main_guard(go)


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
