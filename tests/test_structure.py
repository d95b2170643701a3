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


# ---- the notebooks read as books: one idea per export cell, each public definition tested right after it (#17)
import json, re, statistics
NBS = PKG.parent / 'nbs'
EXPORT = re.compile(r'#\|\s*exports?\b')
TESTS_SOMETHING = re.compile(r'\b(test_\w+|expect_fail|assert)\b')


def _code_cells(nb):
    return [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']


def _is_export(src): return bool(EXPORT.match(src.lstrip().split('\n', 1)[0]))


def export_cell_lines(src:str) -> int:
    "Lines of code in an export cell: directives and trailing blank lines not counted"
    body = [l for l in src.split('\n') if not l.strip().startswith('#|')]
    while body and not body[-1].strip(): body.pop()
    return len(body)


def _patches_only(src:str, cls:str) -> bool:
    "Does export cell `src` only add methods to class `cls` (`@patch def m(self:cls, ...)`)?"
    defs = [n for n in ast.parse(src).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    def patches(n):
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) or not n.args.args: return False
        ann = n.args.args[0].annotation
        return isinstance(ann, ast.Name) and ann.id == cls and any('patch' in ast.unparse(d) for d in n.decorator_list)
    return bool(defs) and all(patches(n) for n in defs)


def untested_definitions(cells:list) -> list:
    """Public top-level definitions of export cells that no test cell right after them names: among the next three
    cells before the next export cell; a class built across cells with `@patch` may be tested after its methods"""
    out = []
    for k, src in enumerate(cells):
        if not _is_export(src): continue
        defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        for node in [n for n in ast.parse(src).body if isinstance(n, defs) and not n.name.startswith('_')]:
            name, after = node.name, []
            for s in cells[k + 1:]:
                if _is_export(s):
                    if isinstance(node, ast.ClassDef) and _patches_only(s, name): continue
                    break
                after.append(s)
            if not isinstance(node, ast.ClassDef): after = after[:3]
            if not any(re.search(rf'\b{name}\b', s) and TESTS_SOMETHING.search(s) for s in after): out.append(name)
    return out


def test_the_cell_checkers_see_what_they_should():
    cells = ['#| export\ndef f(x): return x\n\n', 'test_eq(f(1), 1)', '#| export\nclass G: pass', 'G()',
             '#| export\ndef _h(): pass']
    assert export_cell_lines(cells[0]) == 1 and export_cell_lines('#| export\n#| hide\nx = 1\ny = 2') == 2
    assert untested_definitions(cells) == ['G']          # G is used, never tested; _h is private
    built = ['#| export\nclass K:\n    def __init__(self): self.go()', '#| export\n@patch\ndef go(self:K): return 1',
             'test_eq(K().go(), 1)']                       # a class whose constructor needs its methods: tested after them
    assert untested_definitions(built) == [] and untested_definitions(built[:1] + built[2:]) == []
    assert untested_definitions(['#| export\nclass K: pass', '#| export\ndef f(): pass', 'test_eq(K(), f())']) == ['K']


def _notebooks():
    nbs = sorted(NBS.glob('*.ipynb'))
    assert nbs, f'no notebooks under {NBS}: these checks read the sources in a checkout'
    return [(nb, _code_cells(nb)) for nb in nbs]


def test_export_cells_hold_one_idea_each():
    "Each notebook's export cells have a median of at most 12 lines (fastcore and nbdev: 4-14)"
    medians = {nb.name: statistics.median(ls) for nb, cells in _notebooks()
               if (ls := [export_cell_lines(c) for c in cells if _is_export(c)])}
    assert {n: m for n, m in medians.items() if m > 12} == {}


def test_every_public_definition_is_tested_right_after_it():
    missing = {nb.name: u for nb, cells in _notebooks() if (u := untested_definitions(cells))}
    assert missing == {}, 'public definitions with no test cell right after them: ' + str(missing)


def test_every_public_parameter_has_docments():
    import importlib, inspect, pkgutil
    from fastcore.docments import docments
    def params(f):
        try: ps = inspect.signature(f).parameters.values()
        except (TypeError, ValueError): return []
        return [p.name for p in ps if p.name not in ('self', 'cls') and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    def callables(mod):
        for n in getattr(mod, '__all__', []):
            o = getattr(mod, n, None)
            if getattr(o, '__module__', None) != mod.__name__: continue
            if inspect.isfunction(o): yield n, o
            elif inspect.isclass(o):
                if '__init__' in o.__dict__:       # a dataclass's generated __init__: its fields, in the class body
                    generated = o.__init__.__code__.co_filename.startswith('<')
                    yield f'{n}()', o if generated else o.__init__
                for k, v in o.__dict__.items():
                    f = getattr(v, '__func__', v)
                    if not k.startswith('_') and inspect.isfunction(f) and f.__module__.startswith('mlops_nb'):
                        yield f'{n}.{k}', f
    lacking = []
    for m in pkgutil.walk_packages(mlops_nb.__path__, 'mlops_nb.'):
        if m.name.endswith('_modidx'): continue
        mod = importlib.import_module(m.name)
        for label, f in callables(mod):
            if not (ps := params(f)): continue
            try: d = docments(f, full=True)
            except OSError as e: lacking.append(f'{m.name}.{label}: source not readable ({e})'); continue
            if bad := [p for p in ps if not (d.get(p) or {}).get('docment')]: lacking.append(f'{m.name}.{label}: {bad}')
    assert lacking == [], 'parameters without docments:\n' + '\n'.join(lacking)


def test_tests_never_import_a_private_name_of_the_package():
    found = []
    for p in sorted((PKG.parent / 'tests').glob('*.py')):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('mlops_nb'):
                found += [f'{p.name}: {node.module}.{a.name}' for a in node.names
                          if a.name.startswith('_') and not a.name.startswith('__')]
    assert found == [], 'tests importing private names (test the public API): ' + ', '.join(found)
