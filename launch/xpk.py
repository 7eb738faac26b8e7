#!/usr/bin/env python3
"""Pre-training on GKE through XPK: TPU slices (--tpu_type, --num_slices) or GPU nodes
(--device_type, --num_nodes) of an existing XPK cluster.

  launch/xpk.py create --cluster=my-cluster --workload=electra-base --project=my-project \\
      --zone=us-east5-b --tpu_type=v6e-256 --num_slices=2 \\
      --config=configs/base.py --workdir=/gcs/runs/base -- --config.train.steps=1000

`create` packs the committed code into a directory that XPK layers onto --base_docker_image (or
runs a ready --docker_image), and submits a workload whose command installs the code and runs
training on every host. A preempted or disrupted workload is restarted by XPK (up to
--max_restarts) and resumes from the checkpoints in --workdir. `list` and `delete` watch and remove
it. Add --dry-run to see the commands.
"""

import argparse
import os
import sys
import tempfile

import common

# XPK restarts a workload whose container exits with 42 or 127-255 (up to --max-restarts) and fails
# it on other non-zero codes. Training stopped by a signal exits 0 after its checkpoint, which would
# read as "finished", so the command turns a stop into this code.
RESTART_EXIT_CODE = 42


def stage_dir(args: argparse.Namespace) -> str:
  return os.path.join(tempfile.gettempdir(), 'electra_jax-xpk', args.workload)


def stage_commands(args: argparse.Namespace) -> list[list[str]]:
  """A clean copy of the code for XPK's --script-dir (all of it goes into the image, so not the
  working tree with its .venv and runs)."""
  d = stage_dir(args)
  return [['rm', '-rf', d], ['mkdir', '-p', d], common.code_archive(f'{d}.tar', args.ref, 'tar'),
          ['tar', '-xf', f'{d}.tar', '-C', d]]


def container_command(args: argparse.Namespace, training_flags: list[str]) -> str:
  """What every container runs, in the image's working directory holding the code."""
  gpu = args.device_type is not None
  # XPK gives GPU pods these variables but JAX does not read them, so they become flags.
  distributed = (['--coordinator_address=$JAX_COORDINATOR_ADDRESS:$JAX_COORDINATOR_PORT',
                  '--num_processes=$NNODES', '--process_id=$NODE_RANK'] if gpu else [])
  main = common.training_command('.venv/bin/python', args, training_flags,
                                 common.dcn_flags(args.num_nodes if gpu else args.num_slices),
                                 distributed)
  install = common.install_script(args.jax_extra or ('cuda12' if gpu else 'tpu'))
  # XPK sends SIGTERM to this shell; forward it once (a second one stops training without a
  # checkpoint) and wait for the checkpoint before exiting with the restart code.
  return (f'[ -x .venv/bin/python ] || {{ {install}; }} || exit 1; stopped=0; '
          "trap 'stopped=1; kill -TERM $pid 2>/dev/null' TERM; "
          f'{main} & pid=$!; '
          'while kill -0 $pid 2>/dev/null; do wait $pid; done; wait $pid; rc=$?; '
          f'[ $stopped = 0 ] || exit {RESTART_EXIT_CODE}; exit $rc')


def check_command(command: str, gpu: bool) -> None:
  """XPK pastes the command into its YAML: one line, and for GPUs inside a double-quoted string."""
  if '\n' in command or '\r' in command:
    raise common.CommandError('training flags must not contain line breaks (XPK puts the command '
                              'on one YAML line)')
  if gpu and ('"' in command or '\\' in command):
    raise common.CommandError('for GPU workloads XPK puts the command in a double-quoted YAML '
                              'string: training flags must not contain " or \\')


def where(args: argparse.Namespace) -> list[str]:
  return [f'--cluster={args.cluster}', f'--project={args.project}', f'--zone={args.zone}']


def create_command(args: argparse.Namespace, training_flags: list[str]) -> list[str]:
  gpu = args.device_type is not None
  command = container_command(args, training_flags)
  check_command(command, gpu)
  device = ([f'--device-type={args.device_type}', f'--num-nodes={args.num_nodes}'] if gpu else
            [f'--tpu-type={args.tpu_type}', f'--num-slices={args.num_slices}'])
  image = ([f'--docker-image={args.docker_image}'] if args.docker_image else
           [f'--base-docker-image={args.base_docker_image}', f'--script-dir={stage_dir(args)}'])
  return [args.xpk, 'workload', 'create', *where(args), f'--workload={args.workload}', *device,
          f'--max-restarts={args.max_restarts}', *image, f'--command={command}', *args.xpk_arg]


def build_parser() -> argparse.ArgumentParser:
  target = argparse.ArgumentParser(add_help=False)
  target.add_argument('--cluster', required=True, help='an XPK cluster (`xpk cluster create`)')
  target.add_argument('--workload', required=True, help='workload name, e.g. electra-base')
  target.add_argument('--project', required=True, help='Google Cloud project id')
  target.add_argument('--zone', required=True, help="the cluster's zone, e.g. us-east5-b")
  target.add_argument('--xpk', default='xpk', help='the xpk program (default xpk)')
  common.add_dry_run(target)

  create = argparse.ArgumentParser(add_help=False)
  device = create.add_mutually_exclusive_group(required=True)
  device.add_argument('--tpu_type', help='TPU slice type, e.g. v6e-256, v5p-128')
  device.add_argument('--device_type', help='GPU machine type, e.g. h100-80gb-8')
  create.add_argument('--num_slices', type=common.positive_int, default=1,
                      help='TPU slices; more than 1 adds --config.mesh.dcn_data=N (default 1)')
  create.add_argument('--num_nodes', type=common.positive_int, default=1,
                      help='GPU nodes; more than 1 adds --config.mesh.dcn_data=N (default 1)')
  create.add_argument('--max_restarts', type=common.count, default=10,
                      help='restarts after preemptions or disruptions (default 10)')
  image = create.add_mutually_exclusive_group()
  image.add_argument('--base_docker_image', default='python:3.11',
                     help='image that XPK adds the code to (default python:3.11); the '
                     'container installs the packages when it starts')
  image.add_argument('--docker_image',
                     help='a ready image with the code in its working directory (and .venv/ '
                     'installed there, else it is installed at start)')
  create.add_argument('--jax_extra', choices=('tpu', 'cuda12', 'cuda13'),
                      help='jax extra to install (default tpu with --tpu_type, cuda12 with '
                      '--device_type)')
  create.add_argument('--ref', default='HEAD',
                      help='git commit to ship (default HEAD; uncommitted edits are not shipped)')
  create.add_argument('--xpk_arg', action='append', default=[],
                      help='one more argument for `xpk workload create`, e.g. '
                      '--xpk_arg=--priority=high (repeatable)')
  common.add_training_args(create)

  watch = argparse.ArgumentParser(add_help=False)
  watch.add_argument('--wait', action='store_true', help='wait until the workload completes')

  parser = common.launcher_parser(__doc__)
  sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
  sub.add_parser('create', parents=[target, create],
                 help='submit the training workload (-- training flags)')
  sub.add_parser('list', parents=[target, watch], help="show the workload's status")
  sub.add_parser('delete', parents=[target], help='stop and delete the workload')
  return parser


def commands(args: argparse.Namespace, training_flags: list[str]) -> list[list[str]]:
  if args.command == 'create':
    return [*([] if args.docker_image else stage_commands(args)),
            create_command(args, training_flags)]
  if args.command == 'list':
    wait = ([f'--wait-for-job-completion={args.workload}'] if args.wait else
            [f'--filter-by-job={args.workload}'])
    return [[args.xpk, 'workload', 'list', *where(args), *wait]]
  return [[args.xpk, 'workload', 'delete', *where(args), f'--workload={args.workload}']]


def main(argv: list[str]) -> int:
  parser = build_parser()
  args, training_flags = common.parse(parser, argv)
  if training_flags and args.command != 'create':
    parser.error(f'training flags after -- are only for create, not {args.command}')
  if args.command == 'create':
    if args.tpu_type and args.num_nodes != 1:
      parser.error('--num_nodes is for --device_type; TPU workloads scale with --num_slices')
    if args.device_type and args.num_slices != 1:
      parser.error('--num_slices is for --tpu_type; GPU workloads scale with --num_nodes')
  runner = common.Runner(args.dry_run)

  def go():
    for command in commands(args, training_flags):
      runner.run(command)

  return common.main_guard(go)


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
