"Hyperparameter search with real storage: two processes on one PostgreSQL study; interrupting and resuming"
import os, subprocess, sys, textwrap, uuid
import psycopg, pytest

WORKER = textwrap.dedent("""
    import sys, optuna
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.linear_model import LogisticRegression
    from optuna.distributions import FloatDistribution
    from mlops_nb.tuning import HyperparameterOptimizer
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0)
    opt = HyperparameterOptimizer(n_trials=0, model=LogisticRegression(max_iter=3000), study_name='shared', storage=sys.argv[1],
                                  search_space={'C': FloatDistribution(1e-3, 1e2, log=True)}, show_progress_bar=False)
    opt.optimize(X_tr, y_tr, X_va, y_va, n_trials=int(sys.argv[2]))
    print(opt.parent_run_id)
""")


@pytest.fixture
def second_db(postgres_url):
    name = f"mlops_nb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as c: c.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit('/', 1)[0] + '/' + name
    with psycopg.connect(postgres_url, autocommit=True) as c: c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_processes_share_one_study_on_postgresql(postgres_db, second_db, tmp_path):
    optuna_url = postgres_db.replace('postgresql://', 'postgresql+psycopg://')
    mlflow_url = second_db.replace('postgresql://', 'postgresql+psycopg://')
    env = {**os.environ, 'MLOPS_NB_HOME': str(tmp_path / 'ws'), 'MLOPS_NB_TRACKING_URI': mlflow_url}
    (tmp_path / 'w.py').write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(tmp_path / 'w.py'), optuna_url, '10'], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs): assert p.returncode == 0, err[-3000:]
    parents = {o.strip().splitlines()[-1] for o, _ in outs}
    assert len(parents) == 1                                     # both processes logged under one parent run
    import optuna
    study = optuna.load_study(study_name='shared', storage=optuna_url)
    nums = sorted(t.number for t in study.trials)
    assert nums == list(range(20)) and all(t.state.name == 'COMPLETE' for t in study.trials)
    from mlflow import MlflowClient
    c = MlflowClient(mlflow_url)
    exp = c.get_experiment_by_name('shared')
    kids = c.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parents.pop()}'", max_results=1000)
    assert sorted(int(r.data.tags['optuna.trial_number']) for r in kids) == nums     # one child run per trial, none lost or doubled
    vals = {t.number: t.value for t in study.trials}
    for r in kids: assert r.data.metrics['roc_auc'] == pytest.approx(vals[int(r.data.tags['optuna.trial_number'])])


def test_interrupt_keeps_finished_trials_and_resume_continues(workspace):
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.linear_model import LogisticRegression
    from optuna.distributions import FloatDistribution
    from mlops_nb.tuning import HyperparameterOptimizer
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0)
    split = (X_tr, y_tr, X_va, y_va)
    def space(trial):
        if trial.number == 4: raise KeyboardInterrupt        # the notebook's stop button during trial 4
        return {'C': trial.suggest_float('C', 1e-3, 1e2, log=True)}
    opt = HyperparameterOptimizer(n_trials=10, model=LogisticRegression(max_iter=3000), search_space=space,
                                  study_name='stoppable', show_progress_bar=False)
    with pytest.warns(UserWarning, match='search interrupted'): opt.optimize(*split)
    done = [t for t in opt.study.trials if t.state.name == 'COMPLETE']
    assert [t.number for t in done] == [0, 1, 2, 3]
    c = opt.tracker.client
    assert c.get_run(opt.parent_run_id).info.status == 'KILLED'
    resumed = HyperparameterOptimizer(n_trials=10, model=LogisticRegression(max_iter=3000), study_name='stoppable',
                                      search_space={'C': FloatDistribution(1e-3, 1e2, log=True)}, show_progress_bar=False)
    resumed.optimize(*split)
    complete = [t.number for t in resumed.study.trials if t.state.name == 'COMPLETE']
    assert complete[:4] == [0, 1, 2, 3] and len(resumed.study.trials) == 10 and complete[-1] == 9
    assert resumed.parent_run_id == opt.parent_run_id and c.get_run(opt.parent_run_id).info.status == 'FINISHED'


KILLED_WORKER = textwrap.dedent("""
    import sys, time, pathlib, optuna
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.linear_model import LogisticRegression
    from mlops_nb.tuning import HyperparameterOptimizer
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0)
    marker = pathlib.Path(sys.argv[1])
    def space(trial):
        C = trial.suggest_float('C', 1e-3, 1e2, log=True)
        if trial.number == 2: marker.write_text('in trial 2'); time.sleep(600)     # killed here
        return {'C': C}
    opt = HyperparameterOptimizer(n_trials=5, model=LogisticRegression(max_iter=3000), study_name='killed', search_space=space,
                                  show_progress_bar=False, heartbeat_interval=1, grace_period=2)
    opt.optimize(X_tr, y_tr, X_va, y_va)
""")


def test_a_trial_killed_with_sigkill_is_marked_failed_on_resume(workspace, tmp_path):
    "kill -9 in the middle of trial 2: the trial stays RUNNING until the next optimize, which marks it FAIL (with a child run)"
    import signal, time, optuna
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.linear_model import LogisticRegression
    from optuna.distributions import FloatDistribution
    from mlops_nb.tuning import HyperparameterOptimizer
    marker = tmp_path / 'in-trial'
    (tmp_path / 'k.py').write_text(KILLED_WORKER)
    env = {**os.environ, 'MLOPS_NB_HOME': str(workspace.home)}
    proc = subprocess.Popen([sys.executable, str(tmp_path / 'k.py'), str(marker)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        end = time.time() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < end, 'the worker never reached trial 2'
            time.sleep(0.2)
        time.sleep(1.5)                                   # a heartbeat or two of the running trial
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    study = optuna.load_study(study_name='killed', storage=workspace.optuna_storage)
    assert [t.state.name for t in study.trials] == ['COMPLETE', 'COMPLETE', 'RUNNING']
    time.sleep(3)                                         # past the grace period
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0)
    resumed = HyperparameterOptimizer(n_trials=5, model=LogisticRegression(max_iter=3000), study_name='killed',
                                      search_space={'C': FloatDistribution(1e-3, 1e2, log=True)}, show_progress_bar=False,
                                      heartbeat_interval=1, grace_period=2)
    resumed.optimize(X_tr, y_tr, X_va, y_va)
    assert [t.state.name for t in resumed.study.trials] == ['COMPLETE', 'COMPLETE', 'FAIL', 'COMPLETE', 'COMPLETE']
    c = resumed.tracker.client
    kids = {r.data.tags['optuna.trial_number']: r for r in
            c.search_runs([resumed.tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{resumed.parent_run_id}'")}
    assert sorted(kids) == ['0', '1', '2', '3', '4']
    assert kids['2'].info.status == 'FAILED' and kids['2'].data.tags['optuna.fail_reason'].startswith('stale: no heartbeat')
    assert c.get_run(resumed.parent_run_id).info.status == 'FINISHED'
