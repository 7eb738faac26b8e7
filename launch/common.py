"""What the cluster launchers share. Standard library only: they run on a workstation or login node
where the training dependencies need not be installed."""

import argparse
from collections.abc import Sequence
import os
import re
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CommandError(Exception):
  """A command failed or cannot run; main() prints it as one `error: ...` line."""


class Runner:
  """Runs commands; with dry_run it prints each one instead, one shell-quoted line per command."""

  def __init__(self, dry_run: bool = False):
    self.dry_run = dry_run

  def run(self, cmd: list[str]) -> None:
    """Runs cmd and raises CommandError unless it exits 0."""
    rc = self.status(cmd)
    if rc:
      raise CommandError(f'exit code {rc} from: {shlex.join(cmd)}')

  def status(self, cmd: list[str]) -> int:
    """Runs cmd and returns its exit code."""
    if self.dry_run:
      print(shlex.join(cmd), flush=True)
      return 0
    print(f'+ {shlex.join(cmd)}', file=sys.stderr, flush=True)
    try:
      return subprocess.call(cmd)
    except FileNotFoundError as e:
      raise CommandError(f'{cmd[0]} not found: is it installed and on PATH?') from e

  def output(self, cmd: list[str]) -> str | None:
    """cmd's stdout, stripped, or None when it fails (a query; in a dry run it is only printed)."""
    if self.dry_run:
      print(shlex.join(cmd), flush=True)
      return None
    try:
      done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
      raise CommandError(f'{cmd[0]} not found: is it installed and on PATH?') from e
    return done.stdout.strip() if done.returncode == 0 else None


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  """(launcher arguments, training flags): everything after the first `--` goes to
  electra_jax.main unchanged."""
  training_flags = []
  if '--' in argv:
    argv, training_flags = argv[:argv.index('--')], argv[argv.index('--') + 1:]
  # Passed on, it would not stop anything from running.
  if {'--dry-run', '--dry_run'} & set(training_flags):
    parser.error('--dry-run goes before --; what follows -- is for electra_jax.main')
  return parser.parse_args(argv), training_flags


def launcher_parser(doc: str) -> argparse.ArgumentParser:
  return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog='Training flags for electra_jax.main go after --.')


def add_training_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--config', required=True,
                      help='config file relative to the repository root, e.g. configs/base.py')
  parser.add_argument('--workdir', required=True,
                      help='directory that every host sees and that outlives the machines '
                      '(gcsfuse mount, Filestore/NFS, Lustre); running again resumes from it')


def add_dry_run(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--dry-run', '--dry_run', dest='dry_run', action='store_true',
                      help='print the commands, one per line, without running anything')


def training_command(python: str, args: argparse.Namespace, training_flags: Sequence[str],
                     extra: Sequence[str] = (), expanded: Sequence[str] = ()) -> str:
  """The command every host runs, as shell text. `expanded` flags are pasted unquoted, so that the
  shell on the host fills in their $VARIABLES; they and `extra` (mesh flags) come before the user's
  flags, which can therefore override them. A relaunch after a hard kill on another machine finds
  the workdir's lock still leased to the dead run: --wait_for_lock waits for the lease to expire
  instead of failing (which a requeue would count as a failure)."""
  head = [python, '-m', 'electra_jax.main', f'--config={args.config}', f'--workdir={args.workdir}',
          '--wait_for_lock']
  return ' '.join([shlex.join(head), *expanded, *map(shlex.quote, [*extra, *training_flags])])


def dcn_flags(groups: int) -> list[str]:
  """Data parallelism across slices or nodes: their links are slower than those inside one, so the
  mesh's outer data axis spans them."""
  return [f'--config.mesh.dcn_data={groups}'] if groups > 1 else []


def jax_requirement(extra: str) -> str:
  """`jax[EXTRA]==V` with V the jax pin of requirements.txt, so that the two never drift apart."""
  with open(os.path.join(REPO, 'requirements.txt'), encoding='utf-8') as f:
    for line in f:
      match = re.match(r'\s*jax==(\S+)', line)
      if match:
        return f'jax[{extra}]=={match.group(1)}'
  raise CommandError('requirements.txt pins no jax version (a line jax==X)')


def pip_install(extra: str, venv: str = '.venv') -> str:
  """Shell text, run in the repository root, that installs the runtime packages into venv."""
  return (f'{shlex.quote(venv)}/bin/pip install -q -r requirements.txt '
          f'{shlex.quote(jax_requirement(extra))}')


def install_script(extra: str, python: str = 'python3', venv: str = '.venv') -> str:
  """Shell text, run in the repository root, that makes the venv the training command uses."""
  return f'{python} -m venv {shlex.quote(venv)} && {pip_install(extra, venv)}'


def code_archive(path: str, ref: str, fmt: str = 'tar.gz') -> list[str]:
  """Packs the committed tree at ref (uncommitted edits are not shipped, nor .venv or runs/)."""
  return ['git', '-C', REPO, 'archive', f'--format={fmt}', '-o', path, ref]


def positive_int(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f'{text} is not a positive integer')
  return value


def count(text: str) -> int:
  value = int(text)
  if value < 0:
    raise argparse.ArgumentTypeError(f'{text} is negative')
  return value


def main_guard(main) -> int:
  """Runs main(); a failing command becomes one `error:` line and exit code 1, not a traceback."""
  try:
    return main() or 0
  except CommandError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print('error: interrupted', file=sys.stderr)
    return 130
