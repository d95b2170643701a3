"Check-then-act races in the registry and the canary, with real processes on one MLflow store (SQLite; PostgreSQL too)"
import multiprocessing as mp, traceback
import pytest

ROUNDS = 4


def _open(uri, name='race'):
    from mlops_nb.models.registry import ModelRegistry
    from mlops_nb.tracking import ExperimentTracker
    return ModelRegistry(name=name, tracker=ExperimentTracker(uri, registry_uri=uri))


def _register_worker(uri, model_uri, barrier, out, idx):
    "Each round: wait for the other process, then register the same label"
    import warnings; warnings.simplefilter('ignore')
    try:
        reg = _open(uri)
        for r in range(ROUNDS):
            barrier.wait(120)
            try: out.put((idx, r, 'ok', reg.register_model(f'v{4 + r}', model_uri).number))
            except ValueError as e: out.put((idx, r, 'ValueError', str(e)))
            except Exception as e: out.put((idx, r, type(e).__name__, f'{e}\n{traceback.format_exc()}'))
    except Exception as e: out.put((idx, -1, type(e).__name__, f'{e}\n{traceback.format_exc()}'))


def _rollout_worker(uri, barrier, out, idx):
    "Each round: both processes start a rollout at once (v2 and v3); then process 0 rolls back whichever won"
    import warnings; warnings.simplefilter('ignore')
    try:
        from mlops_nb.models.canary import CanaryDeployment
        cd = CanaryDeployment(_open(uri))
        for r in range(ROUNDS):
            barrier.wait(120)
            try: out.put((idx, r, 'ok', cd.gradual_rollout(f'v{2 + idx}', steps=2, duration_hours=0)['canary']))
            except ValueError as e: out.put((idx, r, 'ValueError', str(e)))
            except Exception as e: out.put((idx, r, type(e).__name__, f'{e}\n{traceback.format_exc()}'))
            barrier.wait(120)
            if idx == 0: cd.rollback_canary('next round')
            barrier.wait(120)
    except Exception as e: out.put((idx, -1, type(e).__name__, f'{e}\n{traceback.format_exc()}'))


def _run(target, *args):
    ctx = mp.get_context('spawn')
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, out, i)) for i in range(2)]
    for p in procs: p.start()
    res = []
    try:
        while len(res) < 2*ROUNDS:
            res.append(out.get(timeout=300))
            assert res[-1][1] >= 0, res[-1]
    finally:
        for p in procs: p.join(60)
        for p in procs:
            if p.is_alive(): p.kill()
    return res


@pytest.fixture(params=['sqlite', 'postgresql'])
def store(request, tmp_path, mlflow_db_template):
    "An MLflow store (a SQLite file in a tmp workspace, or a fresh PostgreSQL database) with a logged model and v1, v2, v3"
    import shutil
    import numpy as np
    from sklearn.dummy import DummyClassifier
    if request.param == 'sqlite':
        shutil.copy(mlflow_db_template, tmp_path / 'mlflow.db')
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    else:
        uri = request.getfixturevalue('postgres_db').replace('postgresql://', 'postgresql+psycopg://', 1)
    from mlops_nb.config import configure
    with configure(reset=True, home=tmp_path / 'ws', tracking_uri=uri):
        from mlops_nb.tracking import ExperimentTracker
        tr = ExperimentTracker(uri, registry_uri=uri, experiment_name='races')
        with tr.run('m'):
            model_uri = tr.log_model(DummyClassifier().fit(np.zeros((4, 2)), [0, 1, 0, 1]), 'model', pip_requirements=['scikit-learn']).model_uri
        reg = _open(uri)
        for v in ('v1', 'v2', 'v3'): reg.register_model(v, model_uri)
        reg.set_current_version('v1')
        yield uri, model_uri, reg


def test_two_processes_register_the_same_label(store):
    "Issue 15.4: two processes register_model('v4', uri) at once -> exactly one v4, the other a clear error"
    uri, model_uri, reg = store
    res = _run(_register_worker, uri, model_uri)
    for r in range(ROUNDS):
        got = sorted(x[2] for x in res if x[1] == r)
        assert got == ['ValueError', 'ok'], [x for x in res if x[1] == r]
        err = next(x[3] for x in res if x[1] == r and x[2] == 'ValueError')
        assert f"Version label 'v{4 + r}' is already used in model 'race'" in err
        labelled = [str(v.version) for v in reg._all() if (v.tags or {}).get('mlops_nb.label') == f'v{4 + r}']
        assert len(labelled) == 1 and reg.version_number(f'v{4 + r}', aliases=False) == labelled[0]
    assert len(reg._all()) == 3 + ROUNDS                                    # no orphan versions
    assert not [m.name for m in reg.client.search_registered_models() if 'lock' in m.name]   # no lock left behind


def test_two_processes_start_a_rollout(store):
    "Issue 15.4: two gradual_rollout at once -> one wins, the other a clear error (never a raw IntegrityError)"
    uri, model_uri, reg = store
    res = _run(_rollout_worker, uri)
    for r in range(ROUNDS):
        rnd = [x for x in res if x[1] == r]
        assert sorted(x[2] for x in rnd) == ['ValueError', 'ok'], rnd
        winner = next(x[3] for x in rnd if x[2] == 'ok')
        assert f'a rollout of {winner} (against v1) is running' in next(x[3] for x in rnd if x[2] == 'ValueError')
    from mlops_nb.models.canary import CanaryDeployment
    assert CanaryDeployment(reg).status()['status'] == 'rolled_back'


def test_rollback_canary_without_a_rollout_changes_nothing(store):
    "Issue 15.4: rollback_canary() with no rollout -> a clear error, and the split stays (was: AttributeError after deleting it)"
    uri, model_uri, reg = store
    from mlops_nb.models.canary import CanaryDeployment
    cd = CanaryDeployment(reg)
    split = cd.set_traffic_split({'v1': 0.9, 'v2': 0.1})
    with pytest.raises(ValueError, match="no rollout of model 'race' is running; nothing was changed"): cd.rollback_canary()
    assert cd.traffic_split == split and cd.status() is None and reg.current_version == '1'


@pytest.mark.parametrize('bad,msg', [(dict(steps=0), 'steps must be a whole number >= 1, got 0'),
                                     (dict(steps=-3), 'steps must be a whole number >= 1, got -3'),
                                     (dict(duration_hours=-1), 'duration_hours must be a number >= 0'),
                                     (dict(min_requests=-1), 'min_requests must be a whole number >= 0')])
def test_bad_plans_are_refused_before_anything_is_stored(workspace, bad, msg):
    from mlops_nb.models.canary import CanaryDeployment
    from mlops_nb.models.registry import ModelRegistry
    reg = ModelRegistry(name='plans')
    cd = CanaryDeployment(reg)
    with pytest.raises(ValueError, match=msg): cd.gradual_rollout('v2', **bad)
    assert cd.status() is None and cd.traffic_split == {}
