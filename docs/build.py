"""Build the documentation site: `python docs/build.py` (the `docs` extra: `pip install -e ".[dev,docs]"`).

What it does, in order, all under `_docs/` (git-ignored; nothing is written into `nbs/` or anywhere else in the
repository):

1. copies the notebooks of `nbs/` (the modules' notebooks, `nbs/tutorials/`, `nbs/reports/`; not the scaffold's
   `__NAME__` templates) into `_docs/src/`, mapping nbdev's cell directives to myst-nb cell tags: `#| hide` ->
   `remove-cell`, `#| echo: false` -> `remove-input`, `#| output: false` -> `remove-output`; `#| eval: false` cells and
   cells flagged with one of `[tool.nbdev] tst_flags` (`notest`, `slow`) are shown but never executed; a notebook whose
   front matter says `skip_exec: true` is not executed at all. The `#|` lines themselves are taken out of the code shown.
   After each exported cell that defines a public name, a line links to that name in the API reference.
2. executes every notebook, in parallel (`--jobs`, 2 by default: CI has 2 cores), each in its own kernel, in a fresh
   temporary copy of `nbs/` as its working directory and with a fresh temporary workspace (`MLOPS_NB_HOME`), with a
   per-cell timeout (`[tool.nbdev] cell_timeout`, 300 s), so every output on the site is current and no run leaves a
   file behind. A notebook that fails is named, its page shows the error, and the build exits 1.
3. writes the generated pages: the API reference (every name in each module's `__all__`, which is every public name
   of `mlops_nb` too; docstrings and nbdev's docments, the `# comment` after each parameter, read with
   `fastcore.docments`), the CLI page (`mlops-nb ... --help` of each command, captured now), the widgets page (the
   browser test's screenshots, from `$MLOPS_NB_SCREENSHOTS` or `<tmp>/mlops_nb_screenshots`).
4. runs `sphinx-build -W --keep-going` (warnings are errors) with myst-nb and the furo theme into `_docs/html/`.

Why Sphinx + myst-nb + furo: `nbdev-docs` needs quarto, whose package downloads a binary at install time, which these
machines refuse; Sphinx, myst-nb and furo are plain Python wheels from PyPI, well kept, work offline, render a
notebook's stored outputs (HTML tables, PNG figures, widget state) as they are, and Sphinx's Python domain gives the
API reference real cross-reference targets, so a notebook page links to a name's entry and the entry back to the page.
The notebooks are executed here with nbclient rather than by myst-nb itself so each gets its own workspace and
working copy, nbdev's directives are honoured, and the runs go in parallel independently of Sphinx's reader.

Options: `--jobs N`, `--reuse` (keep an executed notebook whose source has not changed since the last build: quick
iterations on the site's pages; CI never passes it), `--only PATTERN` (execute only matching notebooks; others reuse
or are shown unexecuted), `--out DIR`.
"""
from __future__ import annotations
import argparse, ast, concurrent.futures as cf, hashlib, importlib, inspect, json, multiprocessing as mp, os, re
import shutil, subprocess, sys, tempfile, textwrap, time, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / 'docs'
NBS = ROOT / 'nbs'
PYPROJECT = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['nbdev']
TST_FLAGS = set(str(PYPROJECT.get('tst_flags', '')).split())
CELL_TIMEOUT = int(PYPROJECT.get('cell_timeout', 300))
SEED_CLASSES = ['ExperimentTracker', 'HyperparameterOptimizer', 'FeatureStore', 'OfflineFeatureStore',
                'OnlineFeatureStore', 'FeatureEngineeringPipeline', 'FeatureVersion', 'FeatureRegistry',
                'ModelService', 'BatchPredictionService', 'ModelVersion', 'ModelRegistry', 'CanaryDeployment',
                'ModelMonitor', 'DataDriftDetector', 'ABTest']
SRC_HASH_KEY = 'mlops_nb_docs_source_hash'
ERROR_KEY = 'mlops_nb_docs_error'   # set on a notebook whose run failed: never reused


def dest(rel: Path) -> Path:
    "Where a notebook goes in the site's source: `nbs/index.ipynb` becomes `overview` (the site's index is the README)"
    return Path('overview.ipynb') if rel == Path('index.ipynb') else rel


def notebooks() -> list[Path]:
    "The notebooks the site shows, relative to nbs/ (the scaffold's templates are files `mlops-nb init` copies, not pages)"
    return sorted(p.relative_to(NBS) for p in NBS.rglob('*.ipynb')
                  if 'scaffold' not in p.relative_to(NBS).parts and '.ipynb_checkpoints' not in p.parts)


# ---------------------------------------------------------------------------------------------------- 1. preprocess
_DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')


def split_directives(source: str) -> tuple[dict, str]:
    "nbdev's `#| name: value` lines at the top of a cell, and the source without them"
    lines, dirs = source.splitlines(), {}
    i = 0
    while i < len(lines) and (lines[i].strip() == '' or _DIRECTIVE.match(lines[i])):
        m = _DIRECTIVE.match(lines[i])
        if m: dirs[m.group(1)] = m.group(2)
        i += 1
    return dirs, '\n'.join(lines[i:])


def _false(v: str) -> bool: return v.strip().lower() in ('false', 'no', '0', 'off')


def front_matter(nb: dict) -> dict:
    "The `skip_exec`-style keys of a notebook's raw YAML front matter, if it has one"
    for c in nb['cells'][:2]:
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw' and src.startswith('---'):
            return dict(l.split(':', 1) for l in src.splitlines()[1:] if ':' in l and not l.startswith('---'))
    return {}


def defined_names(source: str) -> list[str]:
    "Top-level names a cell's code defines"
    try: tree = ast.parse(source)
    except SyntaxError: return []
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Name): out.append(t.id)
    return out


def module_all(modname: str) -> list[str]:
    try: return list(getattr(importlib.import_module(modname), '__all__', []))
    except Exception: return []


def preprocess(nb: dict) -> dict:
    "Map nbdev directives to myst-nb tags, mark the cells not to execute, add links to the API reference"
    fm = front_matter(nb)
    skip_nb = str(fm.get('skip_exec', '')).strip().lower() in ('true', 'yes', '1')
    cells, module = [], None
    for c in nb['cells']:
        if c['cell_type'] != 'code':
            if c['cell_type'] == 'markdown':   # a markdown cell can carry `#| export` (it goes into the module docstring)
                dirs, src = split_directives(''.join(c['source']))
                if 'hide' in dirs: continue
                c['source'] = src
            cells.append(c)
            continue
        dirs, src = split_directives(''.join(c['source']))
        if 'default_exp' in dirs: module = 'mlops_nb.' + dirs['default_exp'].split()[0]
        md = c.setdefault('metadata', {})
        tags = set(md.get('tags', []))
        if 'hide' in dirs or 'default_exp' in dirs or not src.strip(): tags.add('remove-cell')
        if 'echo' in dirs and _false(dirs['echo']): tags.add('remove-input')
        if 'output' in dirs and _false(dirs['output']): tags.add('remove-output')
        no_eval = ('eval' in dirs and _false(dirs['eval'])) or bool(TST_FLAGS & dirs.keys()) or skip_nb
        if no_eval: tags.add('skip-execution')
        md['tags'] = sorted(tags)
        c['source'] = src
        c['outputs'], c['execution_count'] = [], None
        cells.append(c)
        if module and ({'export', 'exports'} & dirs.keys()) and 'remove-cell' not in tags:
            public = set(module_all(module))
            names = [n for n in defined_names(src) if n in public]
            if names:
                links = ', '.join(f'{{py:obj}}`~{module}.{n}`' for n in names)
                cells.append({'cell_type': 'markdown', 'metadata': {}, 'id': f"api-{c.get('id', len(cells))}",
                              'source': f'<small>API reference: {links}</small>'})
    nb['cells'] = cells
    return nb


def source_hash(nb: dict) -> str:
    return hashlib.sha256(json.dumps([(c['cell_type'], c['source'], c.get('metadata', {}).get('tags', []))
                                      for c in nb['cells']]).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------------ 2. execute
def execute(rel: str, src_dir: str, cell_timeout: int = CELL_TIMEOUT) -> tuple[str, str | None, float]:
    "Run one notebook of `src_dir` in place: a fresh copy of nbs/ as working directory, a fresh workspace"
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    path = Path(src_dir) / dest(Path(rel))
    nb = nbformat.read(path, as_version=4)
    start, err = time.time(), None
    with tempfile.TemporaryDirectory(prefix='mlops_nb_docs_') as tmp:
        work = Path(tmp) / 'nbs'
        shutil.copytree(NBS, work, ignore=shutil.ignore_patterns('.ipynb_checkpoints'))
        cwd = (work / rel).parent
        env = {**os.environ, 'MLOPS_NB_HOME': str(Path(tmp) / 'workspace'), 'MPLBACKEND': 'module://matplotlib_inline.backend_inline',
               'PYTHONHASHSEED': '0',
               'IN_TEST': '1'}   # as under nbdev-test: the hidden `nbdev_export()` cell returns at once
        env.pop('MLOPS_NB_DOCS_BUILT', None)
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name='python3', allow_errors=False,
                                resources={'metadata': {'path': str(cwd)}}, store_widget_state=True)
        try:
            with client.setup_kernel(env=env, cwd=str(cwd)):
                for i, cell in enumerate(nb.cells):
                    if cell.cell_type != 'code' or 'skip-execution' in cell.metadata.get('tags', []): continue
                    client.execute_cell(cell, i)
                client.set_widgets_metadata()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
            err = f'{type(e).__name__}: ' + str(e)[-3000:]
        except Exception as e:  # a kernel that never started, ...
            err = f'{type(e).__name__}: {e}'
    for cell in nb.cells:   # keep the tags myst-nb reads; drop execution timing noise
        cell.metadata.pop('execution', None)
        for o in cell.get('outputs', []):   # our own mime types (a job's `record`) show as their text/plain
            for k in [k for k in o.get('data', {}) if k.startswith('application/vnd.mlops-nb.')]:
                if len(o['data']) > 1: del o['data'][k]
    if err: nb.metadata[ERROR_KEY] = err[-500:]
    nbformat.write(nb, path)
    return rel, err, time.time() - start


# ------------------------------------------------------------------------------------------------ 3. generated pages
def _default(v) -> str:
    r = repr(v)
    try: ast.parse(r, mode='eval')
    except SyntaxError: return '...'
    return r if len(r) <= 40 else '...'


def signature(obj) -> str:
    "An argument list Sphinx's Python domain can parse: names, defaults when short, no annotations"
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return '()'
    parts, star = [], False
    params = list(sig.parameters.values())
    for i, p in enumerate(params):
        if p.kind is p.POSITIONAL_ONLY and (i + 1 == len(params) or params[i + 1].kind is not p.POSITIONAL_ONLY):
            parts.append(p.name + ('' if p.default is p.empty else '=' + _default(p.default))); parts.append('/'); continue
        if p.kind is p.KEYWORD_ONLY and not star: parts.append('*'); star = True
        if p.kind is p.VAR_POSITIONAL: parts.append('*' + p.name); star = True; continue
        if p.kind is p.VAR_KEYWORD: parts.append('**' + p.name); continue
        parts.append(p.name + ('' if p.default is p.empty else '=' + _default(p.default)))
    return '(' + ', '.join(parts) + ')'


def _anno(a) -> str:
    if a is inspect.Parameter.empty or a is None: return ''
    s = a if isinstance(a, str) else getattr(a, '__name__', None) or str(a)
    return str(s).replace('typing.', '').replace('|', '\\|')


def params_table(obj) -> str:
    "The parameters with their type, default and docment, as a Markdown table"
    from fastcore.docments import docments
    try: docs = docments(obj, full=True)
    except Exception: return ''
    rows = []
    for name, d in docs.items():
        if name in ('self', 'cls', 'return'): continue
        dflt = d.get('default', inspect.Parameter.empty)
        dflt = '' if dflt is inspect.Parameter.empty else f'`{_default(dflt)}`'
        doc = (d.get('docment') or '').replace('|', '\\|').replace('\n', ' ')
        rows.append(f'| `{name}` | {_anno(d.get("anno"))} | {dflt} | {doc} |')
    if not rows: return ''
    ret = docs.get('return') or {}
    tail = f'\n\nReturns: {ret.get("docment")}' if ret.get('docment') else ''
    return '| parameter | type | default | description |\n|---|---|---|---|\n' + '\n'.join(rows) + tail


def docstring(obj) -> str:
    d = inspect.getdoc(obj) or ''
    return d.replace('\n#', '\n\\#')


def where_defined() -> dict:
    "module name -> the notebook page that defines it"
    out = {}
    for rel in notebooks():
        nb = json.loads((NBS / rel).read_text())
        for c in nb['cells']:
            if c['cell_type'] == 'code':
                dirs, _ = split_directives(''.join(c['source']))
                if 'default_exp' in dirs: out['mlops_nb.' + dirs['default_exp'].split()[0]] = dest(rel).with_suffix('').as_posix()
    return out


def api_pages(src: Path):
    "One page per module: each name of its `__all__`, with its docstring, parameters and methods"
    syms = importlib.import_module('mlops_nb._modidx').d['syms']
    pages, defined = {}, where_defined()
    (src / 'api').mkdir(exist_ok=True)
    from mlops_nb.lazy import public_names
    top = public_names('mlops_nb')
    for mod in sorted(syms):
        if mod.rsplit('.', 1)[-1].startswith('_'): continue
        m = importlib.import_module(mod)
        names = list(getattr(m, '__all__', []))
        first = (inspect.getdoc(m) or '').split('\n')[0]
        page = defined.get(mod)
        out = [f'# `{mod}`', '', first, '']
        if page: out += [f'Defined, explained and tested in {{doc}}`/{page}`.', '']
        for name in names:
            obj = getattr(m, name, None)
            seed = name in SEED_CLASSES
            short = f'top-level: `mlops_nb.{name}`' if top.get(name) == mod else ''
            if inspect.isclass(obj):
                own_init = any('__init__' in vars(k) for k in obj.__mro__ if k.__module__ != 'builtins')
                plain_exc = issubclass(obj, BaseException) and not own_init
                out += [f'::::{{py:class}} {name}{"" if plain_exc else signature(obj)}', f':module: {mod}', '']
                if seed: out += ['**Seed class**: one of the original write-up\'s classes; its name and methods are public API kept stable.', '']
                if short: out += [short, '']
                out += [docstring(obj), '', params_table(obj) if own_init else '', '']
                for meth, _ in sorted(syms[mod].items()):
                    pre = f'{mod}.{name}.'
                    if not meth.startswith(pre): continue
                    mname = meth[len(pre):]
                    if mname.startswith('_') or '.' in mname: continue
                    f = inspect.getattr_static(obj, mname, None)
                    if f is None: continue
                    if isinstance(f, property):
                        out += [f':::{{py:property}} {mname}', '', docstring(f), ':::', '']; continue
                    fn = f.__func__ if isinstance(f, (staticmethod, classmethod)) else f
                    if not callable(fn): continue
                    out += [f':::{{py:method}} {mname}{signature(fn)}', '', docstring(fn), '', params_table(fn), ':::', '']
                out += ['::::', '']
            elif callable(obj):
                out += [f':::{{py:function}} {name}{signature(obj)}', f':module: {mod}', '']
                if short: out += [short, '']
                out += [docstring(obj), '', params_table(obj), ':::', '']
            else:
                out += [f':::{{py:data}} {name}', f':module: {mod}', '']
                if short: out += [short, '']
                r = repr(obj)
                out += [f'`{r[:120]}`' if '`' not in r else '', ':::', '']
        pages[mod] = '\n'.join(out)
        (src / 'api' / f'{mod}.md').write_text(pages[mod])
    idx = ['# API reference', '',
           'Every public name: each module\'s `__all__` (the same names `import mlops_nb` gives lazily as '
           '`mlops_nb.NAME`), with the docstring and the documented parameters (nbdev\'s docments, the comment after '
           'each parameter). Each module links the notebook that defines, explains and tests it.', '',
           '## The seed\'s classes', '', 'The classes of the original write-up, whose names and methods are kept:', '',
           '| class | module |', '|---|---|']
    for c in SEED_CLASSES:
        mod = top.get(c)
        idx.append(f'| {{py:class}}`~{mod}.{c}` | `{mod}` |' if mod else f'| `{c}` | (not found) |')
    idx += ['', '## Top-level names', '', '| name | module |', '|---|---|']
    for n, mod in sorted(top.items(), key=lambda kv: kv[0].lower()):
        idx.append(f'| {{py:obj}}`mlops_nb.{n} <{mod}.{n}>` | `{mod}` |')
    idx += ['', '```{toctree}', ':maxdepth: 1', ':hidden:', ''] + [mod for mod in pages] + ['```', '']
    # toctree entries are relative to api/
    (src / 'api' / 'index.md').write_text('\n'.join(idx))
    missing = [c for c in SEED_CLASSES if c not in top]
    return len(top), missing


def cli_help(cmd: list[str]) -> str:
    exe = Path(sys.executable).parent / 'mlops-nb'
    argv = ([str(exe)] if exe.exists() else [sys.executable, '-m', 'mlops_nb.cli']) + cmd + ['--help']
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(argv, capture_output=True, text=True, cwd=tmp, timeout=120,
                           env={**os.environ, 'MLOPS_NB_HOME': tmp, 'COLUMNS': '100'})
    if r.returncode != 0: raise RuntimeError(f'mlops-nb {" ".join(cmd)} --help failed: {r.stderr[-2000:]}')
    return r.stdout


def _commands(help_text: str) -> list[str]:
    m = re.search(r'\{([\w,-]+)\}', help_text)
    if m: return m.group(1).split(',')
    block = help_text.split('positional arguments:', 1)[-1].split('options:', 1)[0]
    return [l.split()[0] for l in block.splitlines() if re.match(r'^ {4}[a-z][\w-]+(\s|$)', l)]


def cli_page(src: Path) -> int:
    "`mlops-nb --help` and `mlops-nb CMD [SUB] --help` of every command, captured at build time"
    main = cli_help([])
    out = ['# The `mlops-nb` command', '',
           'Every command\'s `--help`, captured when this site was built (so it is what the installed command says). '
           'The command is defined, explained and tested in {doc}`/90_cli`; `mlops-nb init` in {doc}`/87_scaffold`, '
           'the pipeline steps in {doc}`/86_pipeline`.', '', '```text', '$ mlops-nb --help', main.rstrip(), '```', '']
    n = 1
    for cmd in _commands(main):
        h = cli_help([cmd]); n += 1
        out += [f'## `mlops-nb {cmd}`', '', '```text', f'$ mlops-nb {cmd} --help', h.rstrip(), '```', '']
        subs = re.search(r'\{([\w,-]+)\}', h)
        for sub in (subs.group(1).split(',') if subs else []):
            hs = cli_help([cmd, sub]); n += 1
            out += [f'### `mlops-nb {cmd} {sub}`', '', '```text', f'$ mlops-nb {cmd} {sub} --help', hs.rstrip(), '```', '']
    (src / 'cli.md').write_text('\n'.join(out))
    return n


def widgets_page(src: Path) -> int:
    "The widgets as the browser test saw them in JupyterLab (its screenshots)"
    shots = Path(os.environ.get('MLOPS_NB_SCREENSHOTS') or Path(tempfile.gettempdir()) / 'mlops_nb_screenshots')
    pngs = sorted(shots.glob('*.png')) if shots.is_dir() else []
    (src / 'img').mkdir(exist_ok=True)
    out = ['# Widgets', '',
           'Three widgets, each a view over the workspace: the runs browser ({doc}`/70_widgets.runs`), the feature '
           'explorer ({doc}`/71_widgets.features`) and the A/B analysis view ({doc}`/72_widgets.abtest`). The magics '
           '(`%runs`, `%features`, `%abtest NAME`, see {doc}`/80_magics`) show them. A widget needs a live kernel, so '
           'the pictures below are screenshots taken by `tests/test_browser.py`, which runs JupyterLab in headless '
           'Chromium, clicks through each widget and saves what it shows. The notebook pages keep the widgets\' '
           'saved state as well.', '']
    if not pngs:
        out += ['```{note}', f'No screenshots were found in `{shots}` when this site was built: run '
                '`pytest tests/test_browser.py` first (or point `MLOPS_NB_SCREENSHOTS` at its screenshots).', '```', '']
    for p in pngs:
        shutil.copy2(p, src / 'img' / p.name)
        title = p.stem.replace('_', ' ').replace('-', ' ')
        out += [f'## {title}', '', f'```{{image}} img/{p.name}', f':alt: {title}', ':width: 100%', '```', '']
    (src / 'widgets.md').write_text('\n'.join(out))
    return len(pngs)


# ---------------------------------------------------------------------------------------------------------- 4. main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('MLOPS_NB_DOCS_JOBS', 2)), help='notebooks executed at once')
    ap.add_argument('--cell-timeout', type=int, default=CELL_TIMEOUT, help='seconds a cell may run ([tool.nbdev] cell_timeout)')
    ap.add_argument('--reuse', action='store_true', help='keep executed notebooks whose source did not change')
    ap.add_argument('--only', default='', help='execute only notebooks whose path contains this (others are reused)')
    ap.add_argument('--out', default=str(ROOT / '_docs'), help='build folder (default: _docs/)')
    a = ap.parse_args(argv)
    t0 = time.time()
    out = Path(a.out).resolve()
    src, html = out / 'src', out / 'html'
    old = {}
    if src.exists():
        for rel in notebooks():
            p = src / dest(rel)
            if p.exists():
                try: old[rel] = json.loads(p.read_text())
                except ValueError: pass
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for p in DOCS.iterdir():        # the hand-written pages
        if p.suffix == '.md' or p.name == '_static':
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, src / p.name)
    (src / '_includes').mkdir()
    shutil.copy2(ROOT / 'README.md', src / '_includes' / 'README.md')

    todo, unexecuted = [], set()
    for rel in notebooks():
        nb = preprocess(json.loads((NBS / rel).read_text()))
        h = source_hash(nb)
        nb.setdefault('metadata', {})[SRC_HASH_KEY] = h
        prev = old.get(rel)
        reuse = prev is not None and prev.get('metadata', {}).get(SRC_HASH_KEY) == h and ERROR_KEY not in prev['metadata'] and (a.reuse or (a.only and a.only not in str(rel)))
        if not reuse and (not a.only or a.only in str(rel)): todo.append(str(rel))
        elif not reuse:
            unexecuted.add(str(rel))
            nb['metadata'][ERROR_KEY] = 'not executed'     # so a later --reuse build runs it
        (src / dest(rel)).parent.mkdir(parents=True, exist_ok=True)
        (src / dest(rel)).write_text(json.dumps(prev if reuse else nb, indent=1))
    print(f'executing {len(todo)} notebooks, {a.jobs} at a time (cell timeout {a.cell_timeout}s)', flush=True)
    failed, times = {}, {}
    with cf.ProcessPoolExecutor(max_workers=max(1, a.jobs), mp_context=mp.get_context('spawn')) as ex:
        futs = [ex.submit(execute, rel, str(src), a.cell_timeout) for rel in sorted(todo, key=_cost, reverse=True)]
        for f in cf.as_completed(futs):
            rel, err, dt = f.result()
            times[rel] = dt
            print(f'  {"FAILED" if err else "ok    "} {dt:6.1f}s  {rel}', flush=True)
            if err: failed[rel] = err
    t_exec = time.time() - t0

    n_names, missing = api_pages(src)
    n_cli = cli_page(src)
    n_shots = widgets_page(src)
    print(f'API reference: {n_names} top-level names; CLI: {n_cli} --help pages; widgets: {n_shots} screenshots', flush=True)
    if missing: failed['api'] = f'seed classes not found among the public names: {missing}'

    t1 = time.time()
    r = subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-j', str(max(1, a.jobs)), '-b', 'html',
                        '-c', str(DOCS), '-d', str(out / 'doctrees'), str(src), str(html)])
    t_sphinx = time.time() - t1
    if html.exists():
        (html / 'build-time.txt').write_text(f'executed {len(todo)} notebooks in {t_exec:.0f}s ({a.jobs} at a time); '
                                             f'sphinx {t_sphinx:.0f}s; total {time.time() - t0:.0f}s\n')
        report = {str(dest(rel).with_suffix('.html')): ('failed' if str(rel) in failed else 'executed' if str(rel) in todo
                                                        else 'NOT EXECUTED' if str(rel) in unexecuted else 'reused') for rel in notebooks()}
        (html / 'build-report.json').write_text(json.dumps({'notebooks': report, 'seconds': {k: round(v, 1) for k, v in times.items()},
                                                            'failed': failed, 'sphinx_returncode': r.returncode,
                                                            'screenshots': n_shots, 'api_names': n_names, 'cli_pages': n_cli}, indent=1))
    print(f'built {html}/index.html: notebooks {t_exec:.0f}s, sphinx {t_sphinx:.0f}s, total {time.time() - t0:.0f}s', flush=True)
    if unexecuted: print(f'not executed (--only): {sorted(unexecuted)}', file=sys.stderr)
    for rel, err in failed.items(): print(f'\nFAILED: {rel}\n{textwrap.indent(err, "    ")}', file=sys.stderr)
    if r.returncode: print('sphinx-build reported warnings or errors (warnings are errors): see above', file=sys.stderr)
    return 1 if (failed or r.returncode) else 0


_SLOW_FIRST = ['e2e_fraud', '22_models.serving', '01_tracking', '31_monitoring.drift', '85_jobs', '21_models.canary', '02_tuning']


def _cost(rel: str) -> int:
    "Start the longest notebooks first, so two workers finish together"
    for i, s in enumerate(_SLOW_FIRST):
        if s in rel: return len(_SLOW_FIRST) - i
    return 0


if __name__ == '__main__':
    sys.exit(main())
