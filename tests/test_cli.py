"The real `mlops-nb` command in a subprocess: short errors with the right exit codes, and servers that start and stop"
import os, signal, subprocess, sys, time, urllib.request
from pathlib import Path
import nbformat, pytest
from conftest import free_port, stop_process

BIN = Path(sys.executable).parent / 'mlops-nb'


def _cli(*args, home, cwd, env=None, timeout=300):
    env = {**os.environ, 'MLOPS_NB_HOME': str(home), **(env or {})}
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _nb(path, params='x = 1'):
    nb = nbformat.v4.new_notebook()
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    c = nbformat.v4.new_code_cell(params); c.metadata['tags'] = ['parameters']
    nb.cells = [c, nbformat.v4.new_code_cell('print(x)')]
    nbformat.write(nb, path); return Path(path)


def _short(out, code):
    "The exit code is `code`, and stderr is a line or two without a traceback"
    assert out.returncode == code, (out.returncode, out.stderr)
    assert 'Traceback' not in out.stderr, out.stderr
    assert 1 <= len(out.stderr.strip().splitlines()) <= 3, out.stderr
    return out.stderr


def test_ordinary_user_errors_are_a_line_or_two_with_exit_codes(tmp_path):
    ws = tmp_path / 'ws'
    nb = _nb(tmp_path / 'nb.ipynb')
    err = _short(_cli('run', 'missing.ipynb', home=ws, cwd=tmp_path), 2)
    assert "No notebook 'missing.ipynb'" in err and 'shipped templates' in err
    err = _short(_cli('schedule', 'add', 's', str(nb), '--cron', '61 * * * *', home=ws, cwd=tmp_path), 2)
    assert "Bad cron expression '61 * * * *'" in err
    err = _short(_cli('schedule', 'add', 's', str(nb), '--cron', '0 6 31 2 *', home=ws, cwd=tmp_path), 2)
    assert "'0 6 31 2 *' never fires" in err
    err = _short(_cli('schedule', 'add', 's', str(nb), '--cron', '0 6 * * *', '-p', 'bogus', '1', home=ws, cwd=tmp_path), 2)
    assert "Unknown parameter 'bogus' for nb.ipynb" in err
    err = _short(_cli('schedule', 'remove', 'nope', home=ws, cwd=tmp_path), 1)
    assert f"No schedule named 'nope' in the workspace {ws}" in err
    err = _short(_cli('serve', 'no_such_model', home=ws, cwd=tmp_path), 1)
    assert f"no registered model 'no_such_model' in the workspace {ws}" in err
    err = _short(_cli('runs', '-e', 'nope', home=ws, cwd=tmp_path), 1)
    assert f"no experiment 'nope' in the workspace {ws}" in err
    err = _short(_cli('runs', home=ws, cwd=tmp_path, env={'MLOPS_NB_TRACKING_URI': f'http://127.0.0.1:{free_port()}'}), 1)
    assert "Can't reach the MLflow tracking server" in err
    out = _cli('schedule', 'add', 's', str(nb), home=ws, cwd=tmp_path)                    # argparse's own usage error
    assert out.returncode == 2 and 'the following arguments are required: --cron' in out.stderr
    # --debug adds the traceback, before or after the command
    for argv in (['--debug', 'schedule', 'remove', 'nope'], ['schedule', 'remove', 'nope', '--debug']):
        out = _cli(*argv, home=ws, cwd=tmp_path)
        assert out.returncode == 1 and 'Traceback' in out.stderr and "No schedule named 'nope'" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['nb.ipynb', 'ws']


def test_a_second_schedule_of_the_same_name_needs_replace_and_list_shows_what_add_printed(tmp_path):
    ws = tmp_path / 'ws'
    nb = _nb(tmp_path / 'nb.ipynb')
    add = _cli('schedule', 'add', "Bob's", 'nb.ipynb', '--cron', '0 6 * * 1-5', home=ws, cwd=tmp_path)
    assert add.returncode == 0, add.stderr
    assert f"scheduled \"Bob's\": {nb.resolve()} at '0 6 * * 1-5'" in add.stdout
    err = _short(_cli('schedule', 'add', "Bob's", 'nb.ipynb', '--cron', '0 7 * * *', home=ws, cwd=tmp_path), 2)
    assert "A schedule named \"Bob's\" already exists" in err and '--replace' in err
    assert _cli('schedule', 'add', "Bob's", 'nb.ipynb', '--cron', '0 7 * * *', '--replace', home=ws, cwd=tmp_path).returncode == 0
    listed = _cli('schedule', 'list', home=ws, cwd=tmp_path).stdout
    assert "Bob's" in listed and str(nb.resolve()) in listed and '0 7 * * *' in listed and 'cron[' not in listed
    hist = _cli('schedule', 'history', "Bob's", home=ws, cwd=tmp_path)                 # a quote in the name is fine
    assert hist.returncode == 0 and 'no job runs yet' in hist.stdout, hist.stderr


def test_schedule_run_says_it_is_in_the_foreground_and_stops_cleanly_on_ctrl_c(tmp_path):
    env = {**os.environ, 'MLOPS_NB_HOME': str(tmp_path / 'ws')}
    proc = subprocess.Popen([str(BIN), 'schedule', 'run'], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = proc.stdout.readline()
        assert 'in the foreground' in first and 'Ctrl-C' in first, first
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and 'scheduler stopped' in out, (proc.returncode, out, err)
        assert 'Traceback' not in err, err
    finally: stop_process(proc)


def test_ui_answers_with_one_worker_and_stops_cleanly_on_sigterm(tmp_path):
    "`mlops-nb ui`: one uvicorn worker and no job runner by default; SIGTERM leaves no process behind"
    port = free_port()
    env = {**os.environ, 'MLOPS_NB_HOME': str(tmp_path / 'ws')}
    t0 = time.time()
    proc = subprocess.Popen([str(BIN), 'ui', '--port', str(port)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert 'Ctrl-C stops it' in proc.stdout.readline()
        while True:       # a few seconds on an idle 2-core machine; the bound is for a CI machine under load
            assert time.time() - t0 < 120 and proc.poll() is None, 'the UI did not answer'
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2) as r:
                    if r.status == 200: break
            except OSError: time.sleep(0.25)
        print(f"ui answered after {time.time() - t0:.1f} s")
        t1 = time.time()
        proc.send_signal(signal.SIGTERM)                               # to the main process only, as a supervisor does
        proc.wait(timeout=30)
        print(f"ui stopped {time.time() - t1:.1f} s after SIGTERM")
        time.sleep(1)
        with pytest.raises(ProcessLookupError): os.killpg(proc.pid, 0)  # no worker or job runner left behind
    finally: stop_process(proc)


def test_help_of_every_command_shows_defaults(tmp_path):
    for argv, want in ((['ui', '--help'], '(default: 1)'), (['serve', '--help'], '(default: champion)'),
                       (['schedule', 'add', '--help'], '(default: reports)'), (['runs', '--help'], 'written to last'),
                       (['init', '--help'], '(default: the folder name)'), (['lineage', '--help'], '(default: champion)')):
        out = _cli(*argv, home=tmp_path / 'ws', cwd=tmp_path)
        assert out.returncode == 0 and want in ' '.join(out.stdout.split()), (argv, out.stdout)
