"""The package's structure, checked on the source: no import circle between our modules (lazy imports inside
functions count: a circle is a circle when it runs), and no module importing another's private name."""
import ast, pathlib
import mlops_nb

PKG = pathlib.Path(mlops_nb.__file__).parent


def _modules():
    for p in sorted(PKG.rglob('*.py')):
        rel = p.relative_to(PKG.parent).with_suffix('')
        name = '.'.join(rel.parts)
        if name.endswith('.__init__'): name = name[:-len('.__init__')]
        if name == 'mlops_nb._modidx': continue
        yield name, p


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if not node.level: return node.module or ''
    base = mod.split('.') if is_pkg else mod.split('.')[:-1]
    base = base[:len(base) - (node.level - 1)]
    return '.'.join(base + ([node.module] if node.module else []))


def imports():
    "module -> [(imported module, names imported from it)] for every import of one of our modules, lazy ones included"
    known = dict(_modules())
    out = {}
    for mod, path in known.items():
        edges = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges += [(a.name, []) for a in node.names if a.name.startswith('mlops_nb')]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, node, path.name == '__init__.py')
                if not target.startswith('mlops_nb'): continue
                names = [a.name for a in node.names]
                subs = [f'{target}.{n}' for n in names if f'{target}.{n}' in known]   # `from . import x` of a module
                edges += [(s, []) for s in subs] or [(target, names)]
        out[mod] = [(t, n) for t, n in edges if t in known and t != mod]
    return out


def _cycles(graph):
    found, state, stack = [], {}, []
    def visit(v):
        state[v] = 1; stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1: found.append(stack[stack.index(w):] + [w])
            elif not state.get(w): visit(w)
        stack.pop(); state[v] = 2
    for v in sorted(graph):
        if not state.get(v): visit(v)
    return found


def test_the_checker_sees_a_circle():
    assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == [['a', 'b', 'c', 'a']]
    assert _cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_circle_between_our_modules():
    g = {m: {t for t, _ in e if t != 'mlops_nb'} for m, e in imports().items()}   # the top package imports lazily by name
    assert {'mlops_nb.links', 'mlops_nb.models.canary'} <= g['mlops_nb.models.serving'], 'the checker misses imports'
    assert _cycles(g) == [], f'import circles: {_cycles(g)}'


def _private_imports(graph):
    "(module, imported module, name) for every `from mlops_nb.X import _name` across modules (dunders like __version__ are fine)"
    return sorted((m, t, n) for m, edges in graph.items() for t, names in edges for n in names
                  if n.startswith('_') and not (n.startswith('__') and n.endswith('__')))


def test_the_private_name_checker_sees_one():
    g = {'a': [('b', ['public', '_private', '__version__'])], 'b': []}
    assert _private_imports(g) == [('a', 'b', '_private')]


def test_no_module_imports_a_private_name_of_another():
    found = _private_imports(imports())
    assert not found, 'private names imported across modules (make them public, documented and tested):\n' + \
        '\n'.join(f'  {m} imports {n} from {t}' for m, t, n in found)


FLOORS_ABOVE_THE_CORE = ('mlops_nb.widgets', 'mlops_nb.magics', 'mlops_nb.jobs', 'mlops_nb.cli')


def test_the_core_never_imports_widgets_magics_jobs_or_cli():
    above = lambda m: m.startswith(FLOORS_ABOVE_THE_CORE) or m in ('mlops_nb', 'mlops_nb.scaffold')  # the package's
    # own __init__ only names `load_ipython_extension`, which imports the magics when IPython asks for them
    bad = {m: sorted(t for t, _ in e if t.startswith(FLOORS_ABOVE_THE_CORE)) for m, e in imports().items() if not above(m)}
    assert {m: t for m, t in bad.items() if t} == {}


def test_a_model_server_process_never_imports_ipywidgets_or_ipython():
    import subprocess, sys
    code = ("import sys, mlops_nb.models.serving as s; s.create_app; "
            "print(sorted(m for m in ('ipywidgets', 'IPython', 'matplotlib', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == '[]', out.stdout
