"""The package's layering, read from the source with `ast`: imports between its modules and subpackages
run one way, and no file edits sys.path."""

import ast
import graphlib
import pathlib

from tests.conftest import ROOT

PACKAGE = 'electra_jax'
# Every directory of Python files that the repository runs or tests.
SOURCES = ('bench', 'configs', 'electra_jax', 'launch', 'tests')


def _trees(*directories: str):
  for directory in directories:
    for path in sorted((pathlib.Path(ROOT) / directory).rglob('*.py')):
      yield path.relative_to(ROOT), ast.parse(path.read_text(encoding='utf-8'))


def _imported(tree: ast.Module) -> list[tuple[str, int]]:
  """(name, line) of every import, inside functions too (a lazy import is a dependency all the same);
  `from a import b` also gives `a.b`, since b may be a module."""
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [(alias.name, node.lineno) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0, f'line {node.lineno}: a relative import, which this test does not read'
      names += [(node.module, node.lineno)]
      names += [(f'{node.module}.{alias.name}', node.lineno) for alias in node.names]
  return names


def _unit(module: str) -> str:
  """A top-level module of the package, or a whole subpackage (data, hf, finetune): the layers."""
  return '.'.join(module.split('.')[:2])


def test_no_module_or_subpackage_imports_one_that_imports_it():
  """A loop would mean a lower layer imports a higher one: e.g. validation (which the loop imports)
  importing finetune/ (which imports the loop). A command may import anything below it, as export
  imports finetune.model."""
  edges = {}  # importer -> {imported: 'file:line' of the first such import}
  for path, tree in _trees(PACKAGE):
    importer = _unit('.'.join(path.with_suffix('').parts))
    for name, line in _imported(tree):
      if name.startswith(f'{PACKAGE}.') and _unit(name) != importer:
        edges.setdefault(importer, {}).setdefault(_unit(name), f'{path}:{line}')
  try:
    tuple(graphlib.TopologicalSorter(edges).static_order())
  except graphlib.CycleError as e:
    loop = e.args[1]  # [a, b, ..., a], each importing the one before it.
    raise AssertionError('imports in a loop: ' + ', '.join(
        f'{importer} imports {imported} ({edges[importer][imported]})'
        for imported, importer in zip(loop, loop[1:]))) from None


def test_no_file_touches_sys_path():
  """The package is installed (pip install -e .) and the rest runs from the repository root
  (`python -m bench.quality`, configs/ given by path; pytest's paths are in pyproject.toml)."""
  edits = [f'{path}:{node.lineno}' for path, tree in _trees(*SOURCES) for node in ast.walk(tree)
           if isinstance(node, ast.Attribute) and node.attr == 'path'
           and isinstance(node.value, ast.Name) and node.value.id == 'sys']
  assert not edits, f'sys.path is touched at {", ".join(edits)}'
