"""The README is a tested document: its blocks run as written, in order, on a fresh workspace.

Every ```python block runs in ONE real Jupyter kernel (the way a reader pastes them into one notebook), every ```sh
block in bash with the project's virtualenv on PATH (the README activates it first), all in one fresh folder, so the
blocks share `./mlops_workspace` exactly as a reader's notebook and shell do. A Python block fails the test when it
raises, when its last line shows nothing, or when what it shows is a repr a reader can't use (`<Figure ...>`,
`<bound method ...>`, an empty frame). A shell block fails when a command exits non-zero. Commands that serve until
stopped (`mlops-nb serve`, `mlops-nb ui`, `mlops-nb schedule run`) are started, checked to answer, and stopped.
The install command itself is not re-run (the test runs inside the environment it made).
"""
import os, re, shlex, signal, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BAD_REPRS = ('<Figure size', '<bound method', 'Empty DataFrame', '<mlops_nb.', 'object at 0x')


def readme_blocks(text: str) -> list:
    "The fenced ```python and ```sh blocks of a markdown text, in order, as (language, code)"
    return [(m.group(1), m.group(2)) for m in re.finditer(r'^```(python|sh)\n(.*?)^```', text, re.S | re.M)]


def test_readme_blocks_parsed():
    blocks = readme_blocks((ROOT/'README.md').read_text())
    langs = [l for l, _ in blocks]
    assert langs.count('python') >= 5 and langs.count('sh') >= 4, langs


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith('MLOPS_NB_') and k not in ('MLFLOW_TRACKING_URI',)}
    env['PATH'] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env['VIRTUAL_ENV'] = str(BIN.parent)
    env['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'  # what a Jupyter kernel has
    return env


class Kernel:
    "One real IPython kernel; `run` executes a cell and returns its outputs as Jupyter messages' content"
    def __init__(self, cwd: Path, env: dict):
        from jupyter_client.manager import KernelManager
        self.km = KernelManager(kernel_name='python3')
        self.km.start_kernel(cwd=str(cwd), env=env)
        self.kc = self.km.client(); self.kc.start_channels(); self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 600) -> list:
        msg_id = self.kc.execute(code)
        outs, end = [], time.time() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(1, end - time.time()))
            if msg['parent_header'].get('msg_id') != msg_id: continue
            t, c = msg['msg_type'], msg['content']
            if t == 'status' and c['execution_state'] == 'idle': return outs
            if t in ('stream', 'display_data', 'execute_result', 'error'): outs.append((t, c))

    def stop(self):
        self.kc.stop_channels(); self.km.shutdown_kernel(now=True)


def _shown(outs) -> list:
    "What the cell showed: text/plain, text/html and whether there was an image, per display"
    return [c['data'] for t, c in outs if t in ('display_data', 'execute_result')]


SERVING = re.compile(r'\bmlops-nb (serve|ui|schedule run)\b')


def _run_sh(code: str, cwd: Path, env: dict):
    "Run a README shell block line by line in one bash (so `cd` carries over); long-running servers are checked and stopped"
    lines = [l for l in code.splitlines() if l.strip() and not l.lstrip().startswith('#')]
    script = []
    for line in lines:
        cmd = line.split('  #')[0].rstrip()
        # the install command made the environment this test runs in: run what follows it
        if 'pip install' in cmd:
            cmd = ' && '.join(p for p in cmd.split(' && ') if 'pip install' not in p and 'venv' not in p and 'activate' not in p)
            if not cmd: continue
        if cmd.startswith(('source ', '. ')): continue
        # the README's test command is what CI runs around this very test: running it here would recurse
        if cmd == 'nbdev-test && pytest': continue
        if SERVING.search(cmd): _run_server(cmd, cwd, env, script); continue
        script.append(cmd)
    _bash(script, cwd, env)


def _bash(script, cwd, env):
    if not script: return
    r = subprocess.run(['bash', '-euo', 'pipefail', '-c', '\n'.join(script)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, f"README shell block failed ({r.returncode}):\n{chr(10).join(script)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    script.clear()


def _run_server(cmd, cwd, env, script):
    "Start a serving command (after the lines before it ran), check that it answers, stop it with SIGTERM"
    _bash(script, cwd, env)
    for part in cmd.split(' && '):
        if not SERVING.search(part): _bash([part], cwd, env); continue
        port = free_port()
        argv = shlex.split(part)
        if '--port' in argv: argv[argv.index('--port') + 1] = str(port)
        elif 'schedule' not in argv: argv += ['--port', str(port)]
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        try:
            if 'schedule' in argv:
                time.sleep(5); assert p.poll() is None, p.stdout.read()
            else:
                url = f'http://127.0.0.1:{port}/' + ('health' if 'serve' in argv else '')
                end = time.time() + 90
                while True:
                    assert p.poll() is None, f"`{part}` exited with {p.returncode}:\n{p.stdout.read()}"
                    try:
                        with urllib.request.urlopen(url, timeout=2) as r:
                            if r.status == 200: break
                    except Exception:
                        if time.time() > end: raise AssertionError(f"`{part}` did not answer on {url}")
                        time.sleep(0.5)
        finally:
            os.killpg(p.pid, signal.SIGINT if 'schedule' in argv else signal.SIGTERM)
            try: out, _ = p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                stop_process(p); out = ''
        assert 'Traceback' not in (out or ''), out


@pytest.mark.timeout(1800)
def test_readme_runs_as_written(tmp_path):
    env = _env(tmp_path)
    blocks = readme_blocks((ROOT/'README.md').read_text())
    k = Kernel(tmp_path, env)
    try:
        for i, (lang, code) in enumerate(blocks):
            where = f"README block {i} ({lang}):\n{code}"
            if lang == 'sh':
                _run_sh(code, tmp_path, env); continue
            outs = k.run(code)
            errs = [c for t, c in outs if t == 'error']
            assert not errs, f"{where}\nraised {errs[0]['ename']}: {errs[0]['evalue']}\n" + '\n'.join(errs[0]['traceback'])[-4000:]
            stderr = ''.join(c['text'] for t, c in outs if t == 'stream' and c['name'] == 'stderr')
            assert 'Traceback' not in stderr, f"{where}\n{stderr}"
            shown = _shown(outs)
            assert shown, f"{where}\nshows nothing: its last line should be the thing to look at"
            for d in shown:
                text = d.get('text/plain', '') + d.get('text/html', '')
                for bad in BAD_REPRS:
                    if bad == '<Figure size' and 'image/png' in d: continue
                    assert bad not in text, f"{where}\nshows {bad!r}:\n{text[:2000]}"
    finally:
        k.stop()
