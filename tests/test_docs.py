"""The documentation site: built from the executed notebooks, every public name in the API reference, every internal
link resolving, and pages that show their figures and tables in headless Chromium.

The site is built once (`python docs/build.py`, several minutes) into a temporary folder, or taken from
`$MLOPS_NB_DOCS_BUILT` (the `html` folder `docs/build.py` wrote, e.g. `_docs/html`) so CI builds it once.
Needs the `docs` extra (`pip install -e ".[dev,docs]"`), Debian's `chromium` and `playwright` (pointed at it).
"""
import importlib, json, os, re, shutil, subprocess, sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
import pytest
from conftest import service_missing

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get('MLOPS_NB_CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
LEAKS = ['&lt;Figure size', '<Figure size', '&lt;bound method', '<bound method']
SEED_CLASSES = ['ExperimentTracker', 'HyperparameterOptimizer', 'FeatureStore', 'OfflineFeatureStore',
                'OnlineFeatureStore', 'FeatureEngineeringPipeline', 'FeatureVersion', 'FeatureRegistry',
                'ModelService', 'BatchPredictionService', 'ModelVersion', 'ModelRegistry', 'CanaryDeployment',
                'ModelMonitor', 'DataDriftDetector', 'ABTest']


def _git_status() -> str:
    r = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all'], cwd=ROOT, capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ''


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The built site's html folder"
    built = os.environ.get('MLOPS_NB_DOCS_BUILT')
    if built:
        html = Path(built).resolve()
        assert (html / 'index.html').is_file(), f'MLOPS_NB_DOCS_BUILT={built} holds no index.html: run `python docs/build.py`'
        return html
    try: import sphinx, myst_nb  # noqa: F401
    except ImportError: service_missing('the docs builder', 'pip install -e ".[dev,docs]" (Sphinx, myst-nb, furo)')
    out = tmp_path_factory.mktemp('docs')
    before = _git_status()
    r = subprocess.run([sys.executable, str(ROOT / 'docs' / 'build.py'), '--out', str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, (r.stdout[-4000:] + r.stderr[-6000:])
    assert _git_status() == before, 'building the site changed files in the repository'
    return out / 'html'


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.links, self.ids = [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        for k in ('href', 'src'):
            if a.get(k) and tag in ('a', 'img', 'link', 'script'): self.links.append(a[k])


def _parse(page: Path) -> _Links:
    p = _Links(); p.feed(page.read_text(encoding='utf-8', errors='replace')); return p


def _internal(href: str) -> bool:
    u = urlsplit(href)
    return not (u.scheme or u.netloc or href.startswith(('mailto:', 'javascript:', 'data:')))


def _notebook_pages(html: Path) -> list:
    nbs = [p.relative_to(ROOT / 'nbs') for p in (ROOT / 'nbs').rglob('*.ipynb') if 'scaffold' not in p.parts]
    return [html / ('overview.html' if str(p) == 'index.ipynb' else p.with_suffix('.html')) for p in nbs]


@pytest.mark.timeout(3600)
def test_internal_links_resolve(site):
    "Every internal href/src of every page names a file of the site, and every #anchor on another page exists"
    pages = sorted(site.rglob('*.html'))
    assert len(pages) > 30, pages
    ids, broken = {}, []
    for page in pages:
        parsed = _parse(page); ids[page] = parsed.ids
        for href in parsed.links:
            if not _internal(href): continue
            u = urlsplit(href)
            target = (page.parent / unquote(u.path)).resolve() if u.path else page
            if target.is_dir(): target = target / 'index.html'
            if not target.exists(): broken.append(f'{page.relative_to(site)} -> {href}')
    assert not broken, 'broken internal links:\n' + '\n'.join(broken[:50])
    # anchors: every #fragment that points into a page of the site is an id there
    missing = []
    for page in pages:
        for href in _parse(page).links:
            u = urlsplit(href)
            if not _internal(href) or not u.fragment or not (u.path.endswith('.html') or not u.path): continue
            target = (page.parent / unquote(u.path)).resolve() if u.path else page
            if target.suffix == '.html' and target in ids and unquote(u.fragment) not in ids[target]:
                missing.append(f'{page.relative_to(site)} -> {href}')
    assert not missing, 'links to anchors that do not exist:\n' + '\n'.join(missing[:50])


def test_every_notebook_executed_and_nothing_leaked(site):
    "Each notebook is a page with outputs; no '<Figure size ...>' or '<bound method ...>' repr leaked into any page"
    pages = _notebook_pages(site)
    missing = [p.name for p in pages if not p.exists()]
    assert not missing, f'notebooks without a page: {missing}'
    report = json.loads((site / 'build-report.json').read_text())
    assert report['failed'] == {} and report['sphinx_returncode'] == 0, report['failed']
    assert sorted(report['notebooks']) == sorted(str(p.relative_to(site)) for p in pages)
    assert 'NOT EXECUTED' not in report['notebooks'].values(), report['notebooks']
    if not os.environ.get('MLOPS_NB_DOCS_BUILT'): assert set(report['notebooks'].values()) == {'executed'}
    key = ['tutorials/e2e_fraud.html', '01_tracking.html', '31_monitoring.drift.html', '41_abtest.html',
           'reports/training_report.html', 'reports/drift_report.html', 'reports/abtest_report.html']
    no_output = [k for k in key if 'cell_output' not in (site / k).read_text(encoding='utf-8')]
    assert not no_output, f'pages whose outputs are missing: {no_output}'
    # what a reader sees: a test's code may name '<Figure size' in a string literal (a highlighted string token)
    import re as _re
    shown = lambda p: _re.sub(r'<span class="s[a-z0-9]*">.*?</span>', '', p.read_text(encoding='utf-8'))
    leaks = [f'{p.relative_to(site)}: {s}' for p in site.rglob('*.html') for s in LEAKS if s in shown(p)]
    assert not leaks, 'text reprs where a figure or a value belongs:\n' + '\n'.join(leaks)
    # nbdev's directives are for nbdev, not for a reader: none may show in a page's prose
    directives = [f'{p.relative_to(site)}' for p in _notebook_pages(site)
                  if _re.search(r'<p>#\|\s*\w+', p.read_text(encoding='utf-8'))]
    assert not directives, f'pages showing an nbdev directive in their prose: {directives}'
    tutorial = (site / 'tutorials' / 'e2e_fraud.html').read_text(encoding='utf-8')
    assert '<table' in tutorial, 'the walk-through shows no table'


def test_api_reference_covers_every_public_name(site):
    "Every name of every module's __all__ (so every top-level name) has an entry; the seed's classes are marked"
    syms = importlib.import_module('mlops_nb._modidx').d['syms']
    from mlops_nb.lazy import public_names
    missing = []
    for mod in syms:
        if mod.rsplit('.', 1)[-1].startswith('_'): continue
        page = site / 'api' / f'{mod}.html'
        ids = _parse(page).ids if page.exists() else set()
        for name in getattr(importlib.import_module(mod), '__all__', []):
            if f'{mod}.{name}' not in ids: missing.append(f'{mod}.{name}')
    assert not missing, f'public names without an API entry: {missing}'
    top = public_names('mlops_nb')
    index = (site / 'api' / 'index.html').read_text(encoding='utf-8')
    assert all(f'#{mod}.{n}' in index for n, mod in top.items()), 'a top-level name is missing from the API index'
    for c in SEED_CLASSES:
        assert c in top, f'seed class {c} is not a public name'
        page = (site / 'api' / f'{top[c]}.html').read_text(encoding='utf-8')
        entry = page.split(f'id="{top[c]}.{c}"', 1)[1].split('</dd>', 1)[0]
        assert 'Seed class' in entry, f'{c} is not marked as a seed class'
    # docments: a parameter's comment shows in its table
    tracking = (site / 'api' / 'mlops_nb.tracking.html').read_text(encoding='utf-8')
    assert 'MLflow tracking URI' in tracking
    # a notebook page links a name it defines to its entry, and the entry's module page links back to the notebook
    assert 'api/mlops_nb.tracking.html#mlops_nb.tracking.ExperimentTracker' in (site / '01_tracking.html').read_text(encoding='utf-8')
    assert '01_tracking.html' in tracking


@pytest.mark.timeout(600)
def test_pages_in_chromium(site):
    "Pages open in headless Chromium: figures load (non-zero natural size), tables show, no leaked reprs in the text"
    if not CHROMIUM: service_missing('Chromium', '`apt-get install chromium` (Debian), or set MLOPS_NB_CHROMIUM')
    try: from playwright.sync_api import sync_playwright
    except ImportError: service_missing('playwright', 'pip install -e ".[dev]"')
    pages = {'index.html': (0, 1), 'tutorials/e2e_fraud.html': (1, 1), '01_tracking.html': (1, 1),
             '31_monitoring.drift.html': (1, 1), 'reports/training_report.html': (1, 1),
             'reports/drift_report.html': (1, 1), 'reports/abtest_report.html': (1, 1), 'widgets.html': (0, 0),
             'api/mlops_nb.tracking.html': (0, 1), 'cli.html': (0, 0)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route(re.compile(r'^https?://'), lambda route: route.abort())   # offline: only the site's own files
            for rel, (min_imgs, min_tables) in pages.items():
                page.goto((site / rel).as_uri())
                text = page.inner_text('body')
                assert not any(s in text for s in ('<Figure size', '<bound method')), rel
                imgs = page.eval_on_selector_all('article img', 'els => els.map(e => [e.complete, e.naturalWidth, e.src])')
                assert len(imgs) >= min_imgs, f'{rel}: {len(imgs)} figures'
                assert all(ok and w > 0 for ok, w, _ in imgs), f'{rel}: figures that did not load: {imgs}'
                tables = page.locator('article table').count()
                assert tables >= min_tables, f'{rel}: {tables} tables'
                assert page.title(), rel
            # the widgets page shows each screenshot the browser test saved
            shots = json.loads((site / 'build-report.json').read_text()).get('screenshots', 0)
            page.goto((site / 'widgets.html').as_uri())
            assert page.locator('article img').count() == shots
            # the CLI page holds every command's --help
            page.goto((site / 'cli.html').as_uri())
            body = page.inner_text('body')
            for cmd in ['demo', 'config', 'runs', 'run', 'serve', 'pipeline', 'lineage', 'init']:
                assert f'mlops-nb {cmd} --help' in body, cmd
            # following a link from a notebook page reaches the API entry
            page.goto((site / '01_tracking.html').as_uri())
            page.locator('a[href*="api/mlops_nb.tracking.html#mlops_nb.tracking.ExperimentTracker"]').first.click()
            page.wait_for_load_state()
            assert page.url.endswith('#mlops_nb.tracking.ExperimentTracker'), page.url
            assert page.locator('[id="mlops_nb.tracking.ExperimentTracker"]').count() == 1
        finally:
            browser.close()
