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
