"""The magics as a notebook shows them: executed in a real Jupyter kernel (jupyter_client's KernelManager), with
every output message the front-end would render collected and checked. A temporary workspace (MLOPS_NB_HOME in the
kernel's environment) is used, so the first `%%track` meets a store that does not exist yet."""
import os, re, sys
import pytest

pytestmark = pytest.mark.timeout(300)
ANSI = re.compile(r'\x1b\[[0-9;]*m')


@pytest.fixture
def kernel(tmp_path):
    "A python3 kernel on a fresh workspace; `run(code)` returns the cell's output messages as (type, content)"
    from jupyter_client.manager import KernelManager
    km = KernelManager(kernel_name='python3')
    env = {**os.environ, 'MLOPS_NB_HOME': str(tmp_path / 'ws'), 'PYTHONPATH': os.pathsep.join(sys.path)}
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client(); kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)

        def run(code, timeout=180):
            msg_id = kc.execute(code)
            outs = []
            while True:
                m = kc.get_iopub_msg(timeout=timeout)
                if m['parent_header'].get('msg_id') != msg_id: continue
                t = m['msg_type']
                if t == 'status' and m['content']['execution_state'] == 'idle': break
                if t in ('stream', 'display_data', 'execute_result', 'error'): outs.append((t, m['content']))
            while True:
                reply = kc.get_shell_msg(timeout=timeout)
                if reply['parent_header'].get('msg_id') == msg_id: return outs, reply['content']['status']
        yield run
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)


def text_of(outs) -> str:
    "Everything a person would read in the cell's output"
    parts = []
    for t, c in outs:
        if t == 'stream': parts.append(c['text'])
        elif t == 'error': parts.append('\n'.join(c['traceback']))
        else: parts.append(c['data'].get('text/plain', ''))
    return ANSI.sub('', '\n'.join(parts))


def test_track_shows_one_line_and_no_mlflow_chatter_and_a_traceback_once(kernel, tmp_path):
    outs, status = kernel('%load_ext mlops_nb')
    assert status == 'ok' and not outs, outs

    outs, status = kernel('%%track exp --run-name first -p lr,depth -m acc\nlr = 0.1\ndepth = 3\nacc = 0.9')
    text = text_of(outs)
    assert status == 'ok', text
    assert 'INFO' not in text and 'Creating initial MLflow database tables' not in text, text
    assert not [c for t, c in outs if t == 'stream' and c['name'] == 'stderr'], outs
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, lines                                    # one line: name, id, what was logged, where to look
    run_id = re.search(r'\(([0-9a-f]{32})\)', lines[0]).group(1)
    for x in ("'first'", "'exp'", 'lr=0.1', 'depth=3', 'acc=0.9', '%runs exp', 'mlflow ui --backend-store-uri'):
        assert x in lines[0], (x, lines[0])

    # what the line says is what MLflow holds
    outs, _ = kernel(f"from mlops_nb.tracking import ExperimentTracker\n"
                     f"r = ExperimentTracker(experiment_name='exp').client.get_run({run_id!r})\n"
                     f"print(r.info.status, r.info.run_name, sorted(r.data.params.items()), r.data.metrics)")
    assert "FINISHED first [('depth', '3'), ('lr', '0.1')] {'acc': 0.9}" in text_of(outs), text_of(outs)

    # a cell that raises: one traceback, the error raised again (status 'error'), a line saying the run FAILED
    outs, status = kernel('%%track exp --run-name broken\nx = 1\ny = x/0')
    text = text_of(outs)
    assert status == 'error'
    errors = [c for t, c in outs if t == 'error']
    assert len(errors) == 1 and errors[0]['ename'] == 'ZeroDivisionError', outs
    assert text.count('ZeroDivisionError') == 2 and text.count('Traceback') == 1, text   # the header and the last line
    assert 'y = x/0' in text and 'run_cell_magic' not in text and 'magics.py' not in text, text
    assert re.search(r"run 'broken' \([0-9a-f]{32}\) in experiment 'exp' was marked FAILED", text), text

    # a variable that the cell did not define: one line, no frames of ours
    outs, status = kernel('%%track exp -m nope\nz = 1')
    text = text_of(outs)
    assert status == 'error' and "NameError: %%track: the cell defined no variable 'nope' to log" in text, text
    assert 'Traceback' not in text and 'magics.py' not in text, text
