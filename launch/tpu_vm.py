#!/usr/bin/env python3
"""Pre-training on one Cloud TPU VM slice (one host or a multi-host pod) through queued resources.

  launch/tpu_vm.py train --name=electra --zone=us-central2-b --project=my-project \\
      --accelerator_type=v4-32 --runtime_version=tpu-ubuntu2204-base --spot \\
      --config=configs/base.py --workdir=/mnt/gcs/base --gcs_bucket=my-bucket \\
      -- --config.train.steps=1000

`train` = create + setup + run; when the slice is preempted it deletes the queued resource, creates
it again, sets it up and runs the same command, which resumes from the checkpoints in --workdir.
`create`, `setup`, `run` and `delete` do one step each. Add --dry-run to see the commands.
JAX finds the hosts of a TPU slice itself, so every worker runs the same command.
"""

import argparse
import os
import shlex
import sys
import tempfile
import time

import common

REMOTE_TARBALL = 'electra_jax_code.tar.gz'  # In each worker's home directory.
# A queued resource that reaches one of these never becomes ACTIVE by waiting.
DEAD_STATES = ('FAILED', 'SUSPENDING', 'SUSPENDED', 'DELETING')


class Slice:
  """The gcloud commands for one queued resource (named NAME-qr) and its TPU VM NAME."""

  def __init__(self, args: argparse.Namespace):
    self.args = args
    self.qr = f'{args.name}-qr'
    self.where = [f'--zone={args.zone}', f'--project={args.project}']

  def create(self) -> list[str]:
    a = self.args
    tier = ['--spot'] if a.spot else ['--reserved'] if a.reserved else []
    return ['gcloud', 'compute', 'tpus', 'queued-resources', 'create', self.qr,
            f'--node-id={a.name}', *self.where, f'--accelerator-type={a.accelerator_type}',
            f'--runtime-version={a.runtime_version}', *tier]

  def describe_state(self) -> list[str]:
    return ['gcloud', 'compute', 'tpus', 'queued-resources', 'describe', self.qr, *self.where,
            '--format=value(state.state)']

  def delete(self) -> list[str]:
    # --force deletes the TPU VM too; --quiet because an unattended retry cannot answer a prompt.
    return ['gcloud', 'compute', 'tpus', 'queued-resources', 'delete', self.qr, *self.where,
            '--force', '--quiet']

  def scp(self, local: str, remote: str) -> list[str]:
    return ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', local, f'{self.args.name}:{remote}',
            '--worker=all', *self.where]

  def ssh(self, command: str) -> list[str]:
    return ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', self.args.name, '--worker=all',
            *self.where, f'--command={command}']


def local_tarball(args: argparse.Namespace) -> str:
  return os.path.join(tempfile.gettempdir(), f'electra_jax-{args.name}.tar.gz')


def mount_script(bucket: str, mount_dir: str) -> str:
  """Installs Cloud Storage FUSE (Google's apt repository) unless present and mounts the bucket."""
  d = shlex.quote(mount_dir)
  repo = ('deb [signed-by=/usr/share/keyrings/cloud.google.asc] '
          'https://packages.cloud.google.com/apt gcsfuse-$(lsb_release -c -s) main')
  install = (
      f'echo "{repo}" | sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null && '
      'curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg'
      ' | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null && '
      'sudo apt-get update -q && '
      # Fresh TPU VMs often run unattended-upgrades at boot; wait for its lock instead of failing.
      'sudo apt-get install -y -q -o DPkg::Lock::Timeout=600 gcsfuse')
  return (f'(command -v gcsfuse >/dev/null || {{ {install}; }}) && sudo mkdir -p {d} && '
          f'sudo chown "$(id -u):$(id -g)" {d} && '
          f'(mountpoint -q {d} || gcsfuse --implicit-dirs {shlex.quote(bucket)} {d})')


def install_script(args: argparse.Namespace) -> str:
  """Unpacks the code and installs it. TPU VM images may lack a Python >= 3.11; then apt gets it."""
  d, py = shlex.quote(args.remote_dir), shlex.quote(args.python)
  venv = f'{py} -m venv .venv'
  apt = ('sudo apt-get update -q && sudo apt-get install -y -q -o DPkg::Lock::Timeout=600 '
         f'{py} {py}-venv')
  # Unpacked over the previous copy, so that a second setup keeps the installed .venv.
  return (f'mkdir -p {d} && tar -xzf ~/{REMOTE_TARBALL} -C {d} && cd {d} && '
          f'({venv} || {{ {apt} && {venv}; }}) && {common.pip_install("tpu")}')


def setup_commands(args: argparse.Namespace, tpu: Slice) -> list[list[str]]:
  commands = [tpu.scp(local_tarball(args), REMOTE_TARBALL), tpu.ssh(install_script(args))]
  if args.gcs_bucket:
    commands.insert(0, tpu.ssh(mount_script(args.gcs_bucket, args.mount_dir)))
  return commands


def run_command(args: argparse.Namespace, tpu: Slice, training_flags: list[str]) -> list[str]:
  # exec: the signals of a shutting-down VM reach python itself, which checkpoints before exiting.
  main = common.training_command('.venv/bin/python', args, training_flags)
  return tpu.ssh(f'cd {shlex.quote(args.remote_dir)} && exec {main}')


def state(runner: common.Runner, tpu: Slice) -> str | None:
  """The queued resource's state (ACTIVE, WAITING_FOR_RESOURCES, SUSPENDED, ...) or None."""
  return runner.output(tpu.describe_state()) or None


def create(args, runner: common.Runner, tpu: Slice, sleep=time.sleep) -> None:
  """Creates the queued resource and waits until its TPU VMs are up."""
  runner.run(tpu.create())
  wait_until_active(args, runner, tpu, sleep)


def wait_until_active(args, runner: common.Runner, tpu: Slice, sleep=time.sleep) -> None:
  last = None
  while True:
    current = state(runner, tpu)
    if runner.dry_run or current == 'ACTIVE':
      return
    if current in DEAD_STATES:
      raise common.CommandError(f'queued resource {tpu.qr} is {current}; see `gcloud compute tpus '
                                f'queued-resources describe {tpu.qr}`, then delete it')
    if current != last:
      print(f'queued resource {tpu.qr}: {current}, waiting for ACTIVE', file=sys.stderr, flush=True)
      last = current
    sleep(args.poll_seconds)


def ship_code(args, runner: common.Runner) -> None:
  runner.run(common.code_archive(local_tarball(args), args.ref))


def setup(args, runner: common.Runner, tpu: Slice) -> None:
  for command in setup_commands(args, tpu):
    runner.run(command)


def slice_lost(args, runner: common.Runner, tpu: Slice, exit_code: int, sleep=time.sleep) -> bool:
  """Whether the run ended because the slice went away, rather than because training finished
  (exit 0) or failed. Right after a preemption the queued resource may still read ACTIVE, and a
  describe may fail once, so an unclear answer is asked again a few times."""
  for attempt in range(3):
    current = state(runner, tpu)
    if current is not None and current != 'ACTIVE':
      return True
    if current == 'ACTIVE' and exit_code == 0:
      return False
    if attempt < 2:
      sleep(args.poll_seconds)
  return current is None  # Still not found: deleted under us.


def train(args, training_flags: list[str], runner: common.Runner, sleep=time.sleep) -> None:
  tpu = Slice(args)
  ship_code(args, runner)
  # One left by an earlier `create` or `train` is reused, or waited for; a dead one is replaced.
  current = None if runner.dry_run else state(runner, tpu)
  if current in DEAD_STATES:
    runner.run(tpu.delete())
  if current is None or current in DEAD_STATES:
    create(args, runner, tpu, sleep)
  elif current != 'ACTIVE':
    wait_until_active(args, runner, tpu, sleep)
  for attempt in range(args.max_retries + 1):
    setup(args, runner, tpu)
    exit_code = runner.status(run_command(args, tpu, training_flags))
    if runner.dry_run:
      return
    if not slice_lost(args, runner, tpu, exit_code, sleep):
      if exit_code:
        raise common.CommandError(f'training exited with code {exit_code} on a healthy slice; '
                                  f'{args.name} is kept for debugging (`delete` when done)')
      print(f'training finished; delete the slice with: {sys.argv[0]} delete --name={args.name} '
            f'--zone={args.zone} --project={args.project}', file=sys.stderr)
      return
    if attempt == args.max_retries:
      raise common.CommandError(f'slice {args.name} lost {attempt + 1} times; giving up '
                                '(run `train` again to resume)')
    print(f'slice {args.name} was preempted; re-creating it (retry {attempt + 1} of '
          f'{args.max_retries})', file=sys.stderr, flush=True)
    runner.run(tpu.delete())
    create(args, runner, tpu, sleep)


def build_parser() -> argparse.ArgumentParser:
  where = argparse.ArgumentParser(add_help=False)
  where.add_argument('--name', required=True,
                     help='TPU VM name; its queued resource is NAME-qr')
  where.add_argument('--zone', required=True, help='e.g. us-central2-b')
  where.add_argument('--project', required=True, help='Google Cloud project id')
  common.add_dry_run(where)

  hardware = argparse.ArgumentParser(add_help=False)
  hardware.add_argument('--accelerator_type', required=True, help='e.g. v4-32, v5litepod-16')
  hardware.add_argument('--runtime_version', required=True,
                        help='TPU VM image: v2-alpha-tpuv6e (v6e), v2-alpha-tpuv5 (v5p), '
                        'v2-alpha-tpuv5-lite (v5e), tpu-ubuntu2204-base (v4)')
  hardware.add_argument('--poll_seconds', type=common.positive_int, default=60,
                        help='how often to ask for the queued resource state (default 60)')
  tier = hardware.add_mutually_exclusive_group()
  tier.add_argument('--spot', action='store_true', help='Spot capacity (cheap, preemptible)')
  tier.add_argument('--reserved', action='store_true', help="the project's reservation")

  code = argparse.ArgumentParser(add_help=False)
  code.add_argument('--remote_dir', default='electra_jax',
                    help='where the code and its .venv go on every worker, relative to the home '
                    'directory (default electra_jax)')

  install = argparse.ArgumentParser(add_help=False)
  install.add_argument('--ref', default='HEAD',
                       help='git commit to ship (default HEAD; uncommitted edits are not shipped)')
  install.add_argument('--python', default='python3.11',
                       help='interpreter that creates the venv, Python >= 3.11; apt installs it '
                       'with its -venv package when missing (default python3.11)')
  install.add_argument('--gcs_bucket',
                       help='mount this bucket with gcsfuse on every worker, for --workdir')
  install.add_argument('--mount_dir', default='/mnt/gcs',
                       help='where --gcs_bucket is mounted (default /mnt/gcs)')

  training = argparse.ArgumentParser(add_help=False)
  common.add_training_args(training)

  retries = argparse.ArgumentParser(add_help=False)
  retries.add_argument('--max_retries', type=common.count, default=10,
                       help='how many times a preempted slice is re-created (default 10)')

  parser = common.launcher_parser(__doc__)
  sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
  sub.add_parser('create', parents=[where, hardware],
                 help='create the queued resource and wait until it is ACTIVE')
  sub.add_parser('setup', parents=[where, code, install],
                 help='copy the code to every worker and install it (and mount --gcs_bucket)')
  sub.add_parser('run', parents=[where, code, training],
                 help='run training on every worker (-- training flags)')
  sub.add_parser('train', parents=[where, hardware, code, install, training, retries],
                 help='create + setup + run, re-creating the slice when it is preempted')
  sub.add_parser('delete', parents=[where], help='delete the queued resource and its TPU VM')
  return parser


def main(argv: list[str]) -> int:
  parser = build_parser()
  args, training_flags = common.parse(parser, argv)
  if training_flags and args.command not in ('run', 'train'):
    parser.error(f'training flags after -- are only for run and train, not {args.command}')
  runner = common.Runner(args.dry_run)
  tpu = Slice(args)

  def go():
    if args.command == 'create':
      create(args, runner, tpu)
    elif args.command == 'setup':
      ship_code(args, runner)
      setup(args, runner, tpu)
    elif args.command == 'run':
      runner.run(run_command(args, tpu, training_flags))
    elif args.command == 'train':
      train(args, training_flags, runner)
    else:
      runner.run(tpu.delete())

  return common.main_guard(go)


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
