"Notebook jobs in real kernels: failures that must not hang, the CLI's exit codes, the templates and the scheduler"
import os, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path
import nbformat, pytest
from conftest import stop_process

BIN = Path(sys.executable).parent


def _nb(path, *cells, params=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    if params is not None:
        c = nbformat.v4.new_code_cell(params); c.metadata['tags'] = ['parameters']; nb.cells.append(c)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path); return Path(path)


def _cli(*args, home, cwd, timeout=300):
    env = {**os.environ, 'MLOPS_NB_HOME': str(home)}
    return subprocess.run([str(BIN / 'mlops-nb'), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_a_dying_kernel_fails_the_job_without_hanging(workspace, tmp_path):
    from mlops_nb.jobs import run_notebook, JobFailed
    nb = _nb(tmp_path / 'dies.ipynb', 'import os; os._exit(1)', 'print("never")')
    t0 = time.time()
    with pytest.raises(JobFailed, match='kernel died') as e: run_notebook(nb, timeout=60)
    assert time.time() - t0 < 90
    from mlflow import MlflowClient
    run = MlflowClient(workspace.tracking_uri).get_run(e.value.result.run_id)
    assert run.info.status == 'FAILED' and 'kernel died' in run.data.tags['mlops_nb.error']


def test_a_cell_past_its_time_limit_fails_the_job(workspace, tmp_path):
    from mlops_nb.jobs import run_notebook
    nb = _nb(tmp_path / 'slow.ipynb', 'x = 1', 'import time; time.sleep(60)', 'print("never")')
    t0 = time.time()
    res = run_notebook(nb, timeout=3, raise_on_error=False)
    assert res.status == 'FAILED' and 'time limit' in res.error and res.failed_cell == 1
    assert time.time() - t0 < 45
    from mlflow import MlflowClient
    assert MlflowClient(workspace.tracking_uri).get_run(res.run_id).data.tags['mlops_nb.failed_cell'] == '1'
    # from the command line: one message naming the cell, no zmq traceback from the stopped kernel
    out = _cli('run', str(nb), '--timeout', '3', '--no-html', home=workspace.home, cwd=tmp_path)
    assert out.returncode == 1 and 'slow.ipynb failed in cell 1: a cell ran past the time limit' in out.stderr
    assert 'Traceback' not in out.stderr and 'zmq' not in out.stderr, out.stderr


def test_a_notebook_without_a_kernelspec_runs_on_python3_and_a_bad_kernel_is_refused(workspace, tmp_path):
    nb = nbformat.v4.new_notebook(); nb.cells = [nbformat.v4.new_code_cell('from mlops_nb import record; record("y", 2)')]
    nbformat.write(nb, tmp_path / 'bare.ipynb')
    out = _cli('run', 'bare.ipynb', '--no-html', home=workspace.home, cwd=tmp_path)
    assert out.returncode == 0 and 'recorded y = 2' in out.stdout, out.stderr
    written = out.stdout.split('output notebook: ')[1].split()[0]
    assert Path(written).exists()
    before = sorted((Path(workspace.home) / 'reports').rglob('*.ipynb'))
    out = _cli('run', 'bare.ipynb', '--kernel', 'nosuch', home=workspace.home, cwd=tmp_path)
    assert out.returncode == 2 and "No Jupyter kernel named 'nosuch' for bare.ipynb; the installed kernels are: " in out.stderr
    assert 'python3' in out.stderr and 'output notebook' not in out.stderr and 'Traceback' not in out.stderr
    assert sorted((Path(workspace.home) / 'reports').rglob('*.ipynb')) == before        # nothing run, nothing written


def test_cli_run_exit_codes_and_messages(workspace, tmp_path):
    ok = _nb(tmp_path / 'ok.ipynb', 'from mlops_nb import record\nrecord("y", x * 2)', params='x = 1  # the input')
    out = _cli('run', str(ok), '-p', 'x', '21', home=workspace.home, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'FINISHED' in out.stdout and 'recorded y = 42' in out.stdout and 's overhead' in out.stdout
    bad_param = _cli('run', str(ok), '-p', 'y', '1', home=workspace.home, cwd=tmp_path)
    assert bad_param.returncode == 2
    assert "Unknown parameter 'y' for ok.ipynb. Accepted parameters:\n  x: int = 1  # the input" in bad_param.stderr
    bad_type = _cli('run', str(ok), '-p', 'x', 'many', home=workspace.home, cwd=tmp_path)
    assert bad_type.returncode == 2 and "must be int, got str 'many'" in bad_type.stderr
    fails = _nb(tmp_path / 'fails.ipynb', 'raise ValueError("bad input data")', params='x = 1')
    out = _cli('run', str(fails), home=workspace.home, cwd=tmp_path)
    assert out.returncode == 1 and 'fails.ipynb failed in cell 1: ValueError: bad input data' in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fails.ipynb', 'ok.ipynb', 'ws']


def test_training_report_template_runs_with_its_defaults(workspace, tmp_path):
    from mlops_nb.jobs import run_notebook, list_templates
    assert 'training_report' in list_templates()
    res = run_notebook('training_report', timeout=300)
    assert res.ok and res.records['n_runs'] == 3 and res.records['best_accuracy'] > 0.9
    assert res.output.with_suffix('.html').exists()
    # and by parameters on an experiment with runs of its own
    from mlops_nb.tracking import ExperimentTracker
    t = ExperimentTracker(experiment_name='mine')
    for i, loss in enumerate([0.5, 0.2, 0.9]):
        with t.run(f'r{i}', params={'i': i}): t.log_metric('loss', loss)
    res = run_notebook('training_report', {'experiment': 'mine', 'metric': 'loss', 'higher_is_better': False,
                                           'train_if_empty': False})
    assert res.records['best_loss'] == 0.2 and res.records['best_run_name'] == 'r1'


def test_scheduler_process_runs_a_due_job(workspace, tmp_path):
    "`mlops-nb schedule add`, then the scheduler process runs the job when it is due, and history shows it"
    nb = _nb(tmp_path / 'tick.ipynb', 'from mlops_nb import record\nrecord("n", n)', params='n = 0')
    out = _cli('schedule', 'add', 'tick', str(nb), '--cron', '0 3 * * *', '-p', 'n', '7', home=workspace.home, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listed = _cli('schedule', 'list', home=workspace.home, cwd=tmp_path)
    assert 'tick' in listed.stdout and "{'n': 7}" in listed.stdout
    from mlops_nb.jobs import job_store, job_history
    with job_store() as (store, _):                                                    # make it due now
        job = store.lookup_job('tick'); job._modify(next_run_time=datetime.now(timezone.utc)); store.update_job(job)
    env = {**os.environ, 'MLOPS_NB_HOME': str(workspace.home)}
    proc = subprocess.Popen([str(BIN / 'mlops-nb'), 'schedule', 'run'], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.time() + 120
        while time.time() < end:
            h = job_history('tick')
            if len(h) and h.status[0] in ('FINISHED', 'FAILED'): break
            time.sleep(1)
        assert len(h) == 1 and h.status[0] == 'FINISHED' and h['params.n'][0] == 7
    finally: stop_process(proc)
    assert _cli('schedule', 'remove', 'tick', home=workspace.home, cwd=tmp_path).returncode == 0
    assert 'tick' not in _cli('schedule', 'list', home=workspace.home, cwd=tmp_path).stdout


def test_drift_and_abtest_templates_run_with_their_defaults_and_by_parameters(workspace, tmp_path):
    from mlops_nb.jobs import run_notebook, list_templates
    import numpy as np, pandas as pd
    assert {'drift_report', 'abtest_report', 'training_report'} <= set(list_templates())
    res = run_notebook('drift_report', timeout=300)
    assert res.ok and res.records['dataset_drifted'] == 1 and 'amount' in res.records['drifted_columns']
    rng = np.random.default_rng(0)
    pd.DataFrame({'x': rng.normal(0, 1, 3000), 'c': rng.choice(['a', 'b'], 3000)}).to_parquet(tmp_path / 'ref.parquet')
    pd.DataFrame({'x': rng.normal(0, 1, 3000), 'c': rng.choice(['a', 'b'], 3000)}).to_parquet(tmp_path / 'cur.parquet')
    res = run_notebook('drift_report', {'reference': str(tmp_path / 'ref.parquet'), 'current': str(tmp_path / 'cur.parquet'),
                                        'log_to_mlflow': False})
    assert res.records['drift_share'] == 0.0 and res.records['dataset_drifted'] == 0
    from mlops_nb.abtest import ABTest
    t = ABTest('saved-for-report', ['a', 'b'], [0.5, 0.5], ['x'])
    t.record_many('a', 'x', rng.normal(10, 2, 4000)); t.record_many('b', 'x', rng.normal(10.5, 2, 4000)); t.save()
    res = run_notebook('abtest_report', {'name': 'saved-for-report'})
    assert res.records['winner'] == 'b' and res.records['p_value_adj.x.b'] < 1e-6
    assert run_notebook('abtest_report').records['winner'] == 'treatment'


@pytest.mark.timeout(1800)   # the walk-through is run once for the session (conftest.walkthrough)
def test_end_to_end_walkthrough_runs_as_a_job(walkthrough):
    "`mlops-nb demo --full`: the tutorial from raw data to an A/B report, in a fresh workspace"
    out, tmp_path = walkthrough, walkthrough.folder
    assert 'roc_auc:' in out.stdout and 'ab_winner: v2' in out.stdout and "drifted_columns: ['amount'" in out.stdout
    assert 'lineage_training_set_hash:' in out.stdout
    lin = _cli('lineage', 'fraud-detector', 'v2', home=tmp_path / 'ws', cwd=tmp_path)
    assert lin.returncode == 0, lin.stderr[-3000:]
    for step in ('feature definitions  user_daily v1', 'training set         30,000 rows', 'feature pipeline', 'training run',
                 'model version        fraud-detector v2', 'A/B test             fraud-model-v1-vs-v2'):
        assert step in lin.stdout, lin.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ws']
