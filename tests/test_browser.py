"""The notebook experience in a real browser: JupyterLab on loopback, a notebook that runs `%load_ext mlops_nb` and
shows the runs browser, the feature explorer and the A/B analysis view, driven in headless Chromium by Playwright.

What a widget's Python tests can't see is checked here: the widget appears in the page (the front-end is installed and
the comm opened), a click or a selection changes what it shows, and no callback raised (the notebook's kernel writes
every traceback and every logged error to a file the test reads; the server's log is read too). Screenshots of each
widget are saved (MLOPS_NB_SCREENSHOTS, default <tmp>/mlops_nb_screenshots) for a person to look at.

Needs Debian's `chromium` and the `playwright` Python package (without its own browser download: it is pointed at
/usr/bin/chromium); `.ci/run` installs both.
"""
import json, os, secrets, shutil, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
import pytest
from conftest import free_port, service_missing, stop_process

CHROMIUM = os.environ.get('MLOPS_NB_CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')
SHOTS = Path(os.environ.get('MLOPS_NB_SCREENSHOTS') or Path(tempfile.gettempdir()) / 'mlops_nb_screenshots')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']

pytestmark = pytest.mark.timeout(420)


def prepare_workspace(home: Path):
    "Runs with metric histories, a feature group (offline, online, registry) and a saved A/B test"
    code = r'''
import numpy as np, mlops_nb
from mlops_nb.datasets import make_transactions
from mlops_nb.features.online import materialize
t = mlops_nb.ExperimentTracker(experiment_name='browser-exp')
for i, (lr, depth) in enumerate([(0.1, 3), (0.05, 3), (0.1, 6), (0.01, 4)]):
    with t.run(f'gbm-{i}'):
        t.log_params({'learning_rate': lr, 'max_depth': depth, 'loss': 'log_loss'})
        for step in range(20): t.log_metric('val_loss', 1 / (1 + lr * (step + 1) * depth) + 0.01 * i, step=step)
        t.log_metrics({'accuracy': 0.8 + lr + 0.01 * depth})
t.flush()
tx = make_transactions(3000, seed=1)
reg = mlops_nb.FeatureRegistry()
reg.register_feature('user_spend', "SELECT user_id AS entity_id, MAX(event_timestamp) AS event_timestamp, AVG(amount) AS avg_amount, "
                     "COUNT(*) AS n_tx, ANY_VALUE(channel) AS channel FROM transactions GROUP BY user_id", owner='data-team')
reg.run('user_spend', {'transactions': tx})
materialize(mlops_nb.OfflineFeatureStore(), mlops_nb.OnlineFeatureStore(), 'user_spend')
print(tx.user_id.iloc[0])
ab = mlops_nb.ABTest('homepage', ['control', 'hero-a', 'hero-b'], [0.34, 0.33, 0.33], ['signup', 'time_on_page'])
rng = np.random.default_rng(3)
for v, p, mu in [('control', 0.10, 60), ('hero-a', 0.125, 61), ('hero-b', 0.10, 58)]:
    k = int(30_000 * ab.traffic_split[v])
    ab.record_many(v, 'signup', rng.random(k) < p); ab.record_many(v, 'time_on_page', rng.gamma(4, mu / 4, k))
ab.save()
'''
    out = subprocess.run([sys.executable, '-c', code], env={**os.environ, 'MLOPS_NB_HOME': str(home)},
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()[-1]          # an entity id to look up online


def write_notebook(path: Path, errors: Path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [
        # every traceback the kernel shows (cells and widget callbacks) and every logged error (comm handlers) -> a file
        f"""import logging, traceback
_errors = open({str(errors)!r}, 'a')
_ip = get_ipython(); _show = _ip.showtraceback
def _record(*a, **k):
    _errors.write(traceback.format_exc() + '\\n'); _errors.flush(); return _show(*a, **k)
_ip.showtraceback = _record
_h = logging.StreamHandler(_errors); _h.setLevel(logging.ERROR); logging.getLogger().addHandler(_h)
%load_ext mlops_nb""",
        "%runs browser-exp",
        "%features",
        "%abtest homepage",
    ]]
    nbformat.write(nb, path)


@pytest.fixture
def jupyterlab(tmp_path):
    "JupyterLab on loopback with a token, on a free port, with the app exposed to the page; stopped afterwards"
    home, root = tmp_path / 'ws', tmp_path / 'lab'
    root.mkdir()
    entity = prepare_workspace(home)
    errors = tmp_path / 'kernel_errors.log'; errors.touch()
    write_notebook(root / 'widgets.ipynb', errors)
    settings = tmp_path / 'jsettings' / '@jupyterlab' / 'apputils-extension'
    settings.mkdir(parents=True)      # no "get notified about Jupyter news?" toast over the widgets (and no request for it)
    (settings / 'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    port, token = free_port(), secrets.token_hex(16)
    log = open(tmp_path / 'jupyter.log', 'w+')
    env = {**os.environ, 'MLOPS_NB_HOME': str(home), 'JUPYTER_CONFIG_DIR': str(tmp_path / 'jcfg'),
           'JUPYTER_RUNTIME_DIR': str(tmp_path / 'jrt'), 'JUPYTERLAB_WORKSPACES_DIR': str(tmp_path / 'jws'), 'JUPYTERLAB_SETTINGS_DIR': str(tmp_path / 'jsettings'), 'MPLBACKEND': 'module://matplotlib_inline.backend_inline'}
    proc = subprocess.Popen([sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--allow-root', f'--port={port}', '--ip=127.0.0.1',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}', '--LabApp.expose_app_in_browser=True',
                             '--ServerApp.disable_check_xsrf=False', '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    try:
        end = time.time() + 90
        while True:
            if proc.poll() is not None:
                log.seek(0); pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2) as r:
                    if r.status == 200: break
            except OSError: pass
            if time.time() > end: pytest.fail('jupyter lab did not answer within 90 s')
            time.sleep(0.3)
        yield dict(url=url, token=token, errors=errors, log=log, entity=entity)
    finally:
        stop_process(proc, timeout=20)
        log.close()


@pytest.fixture
def page():
    try: from playwright.sync_api import sync_playwright
    except ImportError: service_missing('The playwright Python package', '`pip install playwright` (the dev extra has it)')
    if not CHROMIUM or not Path(CHROMIUM).exists():
        service_missing('Chromium', '`apt-get install chromium` (Debian), or set MLOPS_NB_CHROMIUM to a Chromium binary')
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={'width': 1400, 'height': 2600})
            pg.console_errors = []
            pg.on('console', lambda m: m.type == 'error' and pg.console_errors.append(m.text))
            pg.on('pageerror', lambda e: pg.console_errors.append(f'page error: {e}'))
            yield pg
        finally: browser.close()


def kernel_errors(lab) -> str:
    lab['log'].flush(); lab['log'].seek(0)
    server = [l for l in lab['log'].read().splitlines() if 'Traceback' in l or 'Exception in comm' in l]
    return lab['errors'].read_text() + '\n'.join(server)


def wait_text(page, locator, text, timeout=30_000):
    "Wait until the element's visible text contains `text`"
    page.wait_for_function("([el, t]) => el.innerText.includes(t)", arg=[locator.element_handle(), text], timeout=timeout)


def shot(cell, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    cell.scroll_into_view_if_needed()
    cell.screenshot(path=str(SHOTS / f'{name}.png'))


def test_widgets_render_and_respond_in_jupyterlab(jupyterlab, page):
    try: drive_the_widgets(jupyterlab, page)
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / 'failure.png'), full_page=True)
        print(f"the page at the failure: {SHOTS / 'failure.png'}\nkernel errors:\n{kernel_errors(jupyterlab)[-3000:]}")
        raise


def drive_the_widgets(lab, page):
    page.goto(f"{lab['url']}/lab/tree/widgets.ipynb?token={lab['token']}")
    page.wait_for_function("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return k && k.status === 'idle'; }""", timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    cells = page.locator('.jp-Notebook .jp-CodeCell')
    # all four cells ran: each has an execution count
    page.wait_for_function("""() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
        .every(p => /\\[\\d+\\]/.test(p.textContent))""", timeout=120_000)

    # -- the runs browser: rendered with its table; selecting two runs draws the comparison
    runs = cells.nth(1)
    runs.locator('.widget-select-multiple select').wait_for(timeout=60_000)
    table = runs.locator('table').first
    table.wait_for(timeout=30_000)
    assert 'gbm-0' in runs.inner_text() and 'accuracy' in runs.inner_text()
    assert runs.locator('img').count() == 0                      # nothing compared yet
    # best by val_loss, lower is better: the highlighted best run changes to gbm-2 (lowest val_loss)
    runs.locator('.widget-dropdown select').nth(2).select_option('val_loss')
    runs.get_by_role('button', name='higher is better').click()
    runs.get_by_role('button', name='lower is better').wait_for(timeout=10_000)
    wait_text(page, runs, 'best by val_loss: gbm-2')
    runs.locator('.widget-select-multiple select').select_option(index=[0, 1])
    runs.get_by_text('Params that differ').wait_for(timeout=30_000)
    runs.locator('img').first.wait_for(timeout=30_000)          # the metric histories, drawn by matplotlib
    assert 'learning_rate' in runs.inner_text()
    shot(runs, 'runs_browser')

    # -- the feature explorer: statistics and histogram; another feature updates them; an online lookup answers
    fx = cells.nth(2)
    fx.locator('img').first.wait_for(timeout=60_000)
    assert 'avg_amount' in fx.inner_text() and 'user_spend' in fx.inner_text()
    before = fx.inner_text()
    fx.locator('.widget-dropdown select').nth(1).select_option('n_tx')
    wait_text(page, fx, 'user_spend:n_tx')                        # the statistics' heading (not the dropdown's options)
    fx.locator('input[placeholder="entity id"]').fill(lab['entity'])
    fx.get_by_role('button', name='online values').click()
    fx.get_by_text(lab['entity']).last.wait_for(timeout=30_000)
    assert fx.inner_text() != before
    shot(fx, 'feature_explorer')

    # -- the A/B view: the table for the first metric; choosing the other metric updates it
    ab = cells.nth(3)
    ab.get_by_text('A/B test: homepage').wait_for(timeout=60_000)
    ab.locator('img').first.wait_for(timeout=30_000)            # the forest plot
    assert 'hero-a' in ab.inner_text() and 'signup' in ab.inner_text()
    table = ab.locator('table').first
    before = table.inner_text()
    assert '60.' not in before                                    # signup means are shares, around 0.1
    ab.locator('.widget-dropdown select').first.select_option('time_on_page')
    page.wait_for_function("([el, t]) => el.innerText !== t", arg=[table.element_handle(), before], timeout=30_000)
    assert '60.' in table.inner_text()                            # time_on_page: the control's mean is about 60 s
    shot(ab, 'abtest_view')
    page.screenshot(path=str(SHOTS / 'notebook.png'), full_page=True)

    time.sleep(1)                                                 # let a late callback error reach the file
    errs = kernel_errors(lab)
    assert not errs.strip(), f"errors in the kernel while the widgets were driven:\n{errs[-4000:]}"
    widget_errors = [e for e in page.console_errors if 'widget' in e.lower() or 'comm' in e.lower() or 'page error' in e]
    assert not widget_errors, widget_errors
    print(f"screenshots in {SHOTS}")


# ---------------------------------------------------------------- the executed walk-through, as a reader sees it
@pytest.fixture(scope='module')
def walkthrough_html(request) -> Path:
    "The HTML of the executed walk-through: MLOPS_NB_WALKTHROUGH_HTML if set, else the session's run of `mlops-nb demo --full`"
    given = os.environ.get('MLOPS_NB_WALKTHROUGH_HTML')
    if given: return Path(given)
    html = request.getfixturevalue('walkthrough').html
    assert html.exists(), f"no HTML beside {html.with_suffix('.ipynb')}"
    return html


def open_report(page, html: Path) -> str:
    "Open the report; the text of its outputs (not of its code)"
    page.goto(html.resolve().as_uri())
    page.wait_for_load_state('load')
    assert page.locator('.jp-OutputArea-output').count() > 0, 'the report has no outputs: was the notebook executed?'
    return '\n'.join(page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText)"))


# what a reader must never see in a report: a method or a figure printed instead of its value, an object's address,
# a percentage of nothing
BAD_TEXT = ('bound method', '<Figure size', 'object at 0x', 'nan%')


@pytest.mark.timeout(1500)
def test_the_executed_walkthrough_report_shows_values_not_reprs(walkthrough_html, page):
    text = open_report(page, walkthrough_html)
    found = [b for b in BAD_TEXT if b in text]
    assert not found, [text[max(0, text.index(b) - 300):text.index(b) + 200] for b in found]
    assert 'Traceback (most recent call last)' not in text
    # every image was drawn; no number in a table was lost to a formatting slip ('nan' is what formatting a float NaN
    # gives, where a table should say what is missing and why)
    imgs = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output img')].map(i => i.naturalWidth)")
    assert imgs and all(w > 0 for w in imgs), imgs
    cells = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output td')].map(td => td.innerText.trim())""")
    lost = [c for c in cells if c in ('nan', 'nan%', '+nan%', '-nan%', 'inf%', '+inf%', '-inf%')]   # pandas' own 'NaN' is a value
    assert not lost, f"table cells without their number: {lost[:20]}"
    assert any(any(ch.isdigit() for ch in c) for c in cells), 'no table of the report holds a number'


@pytest.mark.timeout(1500)
def test_the_executed_walkthrough_report_has_no_stderr_blocks(walkthrough_html, page):
    open_report(page, walkthrough_html)
    stderr = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]')
    assert stderr.count() == 0, [stderr.nth(i).inner_text()[:300] for i in range(min(stderr.count(), 5))]
