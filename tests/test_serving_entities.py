"""Predictions by entity id against a real server: `uvicorn` on a free port reading the embedded SQLite online store and
the real Redis (own key prefix, removed afterwards).

The served model contains its fitted `FeatureEngineeringPipeline` (a scikit-learn Pipeline taking raw columns) and its
run's lineage says where its features are online (two groups). Checked: entity predictions equal `model.predict` on the
same raw values; `return_features`; an unknown entity is a per-row error, a gap the pipeline imputes is answered and
named; canary routing by entity id; every bad input a 4xx that `/metrics` does not count as a model error; and the skew
test: the model input built offline (point-in-time training set -> pipeline) equals the one the server builds online
(online store -> pipeline), value for value."""
import json, os, shutil, urllib.error, urllib.request, uuid
import numpy as np, pandas as pd
import pytest
from conftest import REDIS_URL, stop_process
from test_serving import start_server, _samples, _post

COLS = ['amount', 'country', 'n_tx', 'age']
REFS = ['accounts:amount', 'accounts:country', 'accounts:n_tx', 'profile:age']
T0 = pd.Timestamp('2026-01-01', tz='UTC')


def _fep():
    from mlops_nb.features.pipeline import FeatureEngineeringPipeline
    return FeatureEngineeringPipeline({'features': [
        {'name': 'amount', 'transform': 'log', 'impute': 'median'},
        {'name': 'country', 'transform': 'onehot', 'unseen': 'error'},
        {'name': 'n_tx', 'transform': 'standard', 'impute': 'mean'},
        {'name': 'age', 'transform': 'passthrough'}]})


@pytest.fixture(scope='module')
def world(tmp_path_factory, mlflow_db_template):
    """A workspace with two feature groups offline, two registered versions (v1 champion) each a Pipeline(features, model)
    trained on a point-in-time training set, and the latest values materialised into SQLite and into Redis"""
    import redis
    from mlops_nb.config import configure
    tmp = tmp_path_factory.mktemp('entities'); home = tmp / 'ws'; home.mkdir()
    shutil.copy(mlflow_db_template, home / 'mlflow.db')
    try: redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as e: pytest.skip(f'Redis at {REDIS_URL} is not available: {e}')
    prefix = f'mlops_nb_test:{uuid.uuid4().hex[:12]}'
    cwd = os.getcwd(); os.chdir(tmp)
    try:
        with configure(reset=True, home=home):
            from sklearn.pipeline import Pipeline
            from sklearn.linear_model import LogisticRegression
            from mlops_nb.features.offline import OfflineFeatureStore
            from mlops_nb.features.online import OnlineFeatureStore, materialize
            from mlops_nb.features.pipeline import serving_signature
            from mlops_nb.lineage import log_training_set
            from mlops_nb.tracking import ExperimentTracker
            from mlops_nb.models.registry import ModelRegistry
            rng = np.random.default_rng(0)
            n = 600
            acct = pd.DataFrame({'account_id': [f'a{i % 40}' for i in range(n)], 'event_timestamp': T0 + pd.to_timedelta(np.arange(n) * 37, 'min'),
                                 'amount': rng.gamma(2, 30, n).round(2), 'country': rng.choice(['de', 'fr', 'us'], n),
                                 'n_tx': rng.integers(0, 20, n)})
            prof = pd.DataFrame({'account_id': [f'a{i}' for i in range(40)], 'event_timestamp': T0 - pd.Timedelta(days=1),
                                 'age': rng.integers(18, 80, 40)})
            off = OfflineFeatureStore()
            off.write('accounts', acct, entity_col='account_id'); off.write('profile', prof, entity_col='account_id')
            labels = pd.DataFrame({'entity_id': acct.account_id, 'event_timestamp': acct.event_timestamp + pd.Timedelta('10min')})
            ts = off.get_historical_features(labels, REFS)
            y = ((ts.amount > 70) | (ts.age > 70)).astype(int)
            tr = ExperimentTracker(experiment_name='entities')
            uris = []
            for name, C in (('v1', 1.0), ('v2', 0.001)):
                model = Pipeline([('features', _fep()), ('model', LogisticRegression(C=C))]).fit(ts[COLS], y)
                with tr.run(name):
                    uris.append(tr.log_model(model, 'model', signature=serving_signature(model, ts[COLS].head(5)),
                                             input_example=ts[COLS].head(2)).model_uri)
                    log_training_set(ts, tracker=tr, source='offline: accounts, profile', pipeline=model.named_steps['features'],
                                     online_features=REFS)
            reg = ModelRegistry(name='acc')
            reg.register_model('v1', uris[0]); reg.register_model('v2', uris[1]); reg.set_current_version('v1')
            stores = {'sqlite': OnlineFeatureStore(), 'redis': OnlineFeatureStore(REDIS_URL, prefix=prefix)}
            for s in stores.values():
                for g in ('accounts', 'profile'): materialize(off, s, g)
                s.write_features('a_new', {'country': 'fr'}, group='accounts'); s.write_features('a_new', {'age': 40}, group='profile')
                s.write_features('a_noage', {'amount': 10.0, 'country': 'de', 'n_tx': 3}, group='accounts')
                s.write_features('a_newcountry', {'amount': 10.0, 'country': 'jp', 'n_tx': 3}, group='accounts')
                s.write_features('a_newcountry', {'age': 30}, group='profile')
            yield dict(tmp=tmp, home=home, prefix=prefix, off=off, acct=acct, reg=reg, uris=uris, stores=stores)
    finally:
        os.chdir(cwd)
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=prefix + ':*', count=1000))
        if keys: r.delete(*keys)


@pytest.fixture(scope='module', params=['sqlite', 'redis'])
def served(request, world):
    "`uvicorn` serving acc@champion, reading the SQLite online store of the workspace, or Redis under the test's prefix"
    env = {'MLOPS_NB_SERVE_RELOAD': '0.5'}
    if request.param == 'redis': env.update(MLOPS_NB_ONLINE_STORE=REDIS_URL, MLOPS_NB_ONLINE_PREFIX=world['prefix'])
    proc, url = start_server(world['home'], 'acc', world['tmp'], **env)
    try: yield request.param, url
    finally: stop_process(proc)


def _model(world, i=0):
    import mlflow
    return mlflow.sklearn.load_model(world['uris'][i])


def test_entity_predictions_equal_the_model_on_the_same_raw_values(world, served):
    backend, url = served
    info = json.load(urllib.request.urlopen(url + '/model/info'))
    assert info['online_store']['backend'] == backend and info['online_features']['features']['age'] == 'profile'
    assert info['online_store']['source'] == ('default' if backend == 'sqlite' else 'env MLOPS_NB_ONLINE_STORE')
    model = _model(world)
    ids = [f'a{i}' for i in range(40)]
    st, b = _post(url + '/predict/batch', {'entities': ids, 'return_features': True})
    assert st == 200 and b['errors'] == [None] * 40 and b['model_versions'] == ['1'] * 40, b
    raw = pd.DataFrame(b['features'])[COLS]
    latest = world['acct'].groupby('account_id').tail(1).set_index('account_id')
    assert raw.amount.tolist() == latest.loc[ids, 'amount'].tolist() and raw.country.tolist() == latest.loc[ids, 'country'].tolist()
    assert b['predictions'] == model.predict(raw).tolist()
    np.testing.assert_allclose(b['probabilities'], model.predict_proba(raw).max(axis=1))
    st, one = _post(url + '/predict', {'entities': ['a7']})
    assert st == 200 and one['entity'] == 'a7' and 'features' not in one and one['prediction'] == b['predictions'][7]
    st, f = _post(url + '/predict', {'features': raw.iloc[7].to_dict()})           # the same raw values by hand: the same answer
    assert st == 200 and f['prediction'] == one['prediction'] and f['probability'] == pytest.approx(one['probability'])


def test_unknown_entity_is_a_row_error_and_a_gap_the_pipeline_fills_is_imputed(world, served):
    backend, url = served
    st, b = _post(url + '/predict/batch', {'entities': ['a1', 'a_new', 'ghost', 'a_noage', 'a_newcountry'], 'return_features': True})
    assert st == 200, b
    assert b['errors'][0] is None and b['errors'][1] is None
    assert b['imputed'][1] == ['amount', 'n_tx'] and b['features'][1] == {'amount': None, 'country': 'fr', 'n_tx': None, 'age': 40}
    assert b['predictions'][1] == _model(world).predict(pd.DataFrame([{'amount': np.nan, 'country': 'fr', 'n_tx': np.nan, 'age': 40}]))[0]
    assert b['predictions'][2:] == [None, None, None]
    assert b['errors'][2].startswith("entity 'ghost' is not in the online store (group 'accounts', 'profile')"), b['errors']
    assert b['errors'][3].startswith("entity 'a_noage' has no value for ['age']") and "imputes only ['amount', 'n_tx']" in b['errors'][3]
    assert "feature 'country' of entity 'a_newcountry' in the online store is 'jp', a category never seen" in b['errors'][4]
    st, e = _post(url + '/predict', {'entities': ['ghost']})
    assert st == 404 and "entity 'ghost' is not in the online store" in e['error']


def test_bad_input_is_a_4xx_never_a_model_error_and_the_server_keeps_serving(world, served):
    backend, url = served
    row = {'amount': 12.0, 'country': 'de', 'n_tx': 3, 'age': 30}
    bad = {'unknown entity': ('/predict', {'entities': ['nobody']}, 404, "entity 'nobody' is not in the online store"),
           'entity of the wrong type': ('/predict/batch', {'entities': ['a1', True]}, 422, 'true (entity 1) is not'),
           'entity a float': ('/predict', {'entities': [1.5]}, 422, '1.5 is not'),
           'entity an object': ('/predict', {'entities': [{'id': 'a1'}]}, 422, 'an object is not'),
           'a string for a number': ('/predict', {'features': {**row, 'amount': 'lots'}}, 422, "feature 'amount' must be a number"),
           'missing column': ('/predict', {'features': {k: v for k, v in row.items() if k != 'age'}}, 422, "missing features ['age']"),
           'extra column': ('/predict', {'features': {**row, 'colour': 'red'}}, 422, "unknown features ['colour']"),
           'category never seen': ('/predict', {'features': {**row, 'country': 'jp'}}, 422, "unknown category 'jp'"),
           'NaN where forbidden': ('/predict', {'features': {**row, 'age': float('nan')}}, 422, "feature 'age' is nan"),
           'null where not imputed': ('/predict', {'features': {**row, 'age': None}}, 422, "feature 'age' is null"),
           'empty batch': ('/predict/batch', {'entities': []}, 422, '`entities` is empty'),
           'too large a batch': ('/predict/batch', {'entities': ['a1'] * 10_001}, 413, 'the limit is 10000'),
           'both forms': ('/predict/batch', {'entities': ['a1'], 'instances': [row]}, 422, 'not both'),
           'return_features not a boolean': ('/predict/batch', {'entities': ['a1'], 'return_features': 'yes'}, 422, 'must be true or false')}
    for what, (path, payload, status, msg) in bad.items():
        st, e = _post(url + path, payload)
        assert st == status and msg in e['error'], (what, st, e)
    st, ok = _post(url + '/predict', {'features': {**row, 'amount': None}})       # a null the pipeline imputes is fine
    assert st == 200, ok
    assert _samples(url, 'ml_prediction_errors_total') == {}
    assert _post(url + '/predict/batch', {'entities': ['a1', 'a2']})[0] == 200


def test_canary_routes_each_entity_by_its_id(world, served):
    backend, url = served
    from mlops_nb.config import configure
    from mlops_nb.models.canary import CanaryDeployment
    with configure(reset=True, home=world['home']):
        cd = CanaryDeployment(world['reg'])
        cd.set_traffic_split({'v1': 0.5, 'v2': 0.5})
        try:
            ids = [f'a{i}' for i in range(40)]
            want = [cd.route_request(e) for e in ids]
            assert set(want) == {'1', '2'}
            import time
            end = time.time() + 30
            while time.time() < end and _post(url + '/predict/batch', {'entities': ids})[1]['model_versions'] != want: time.sleep(0.3)
            st, b = _post(url + '/predict/batch', {'entities': ids, 'return_features': True})
            assert b['model_versions'] == want and b['model_version'] == '1,2'
            models = {'1': _model(world, 0), '2': _model(world, 1)}
            raw = pd.DataFrame(b['features'])[COLS]
            assert b['predictions'] == [int(models[v].predict(raw.iloc[[i]])[0]) for i, v in enumerate(want)]
            for e, v in zip(ids[:10], want):                     # alone, an entity reaches the version it reached in the batch
                assert _post(url + '/predict', {'entities': [e]})[1]['model_version'] == v
            per_version = {dict(k)['model_version'] for k in _samples(url, 'ml_predictions_total')}
            assert per_version >= {'1', '2'}
        finally: cd.set_traffic_split({'v1': 1.0})



def test_a_hot_alias_move_reaches_the_entity_path(world, served):
    "The champion moves in the registry: entity requests are answered by the new version, without a restart"
    import time
    backend, url = served
    from mlops_nb.config import configure
    with configure(reset=True, home=world['home']):
        reg = world['reg']
        reg.set_current_version('v2', reason='test: hot move')
        try:
            end = time.time() + 30
            while time.time() < end and _post(url + '/predict', {'entities': ['a1']})[1]['model_version'] != '2': time.sleep(0.3)
            st, b = _post(url + '/predict/batch', {'entities': ['a1', 'a2'], 'return_features': True})
            assert st == 200 and b['model_versions'] == ['2', '2']
            assert b['predictions'] == _model(world, 1).predict(pd.DataFrame(b['features'])[COLS]).tolist()
        finally:
            reg.set_current_version('v1', reason='test: back')
            end = time.time() + 30
            while time.time() < end and _post(url + '/predict', {'entities': ['a1']})[1]['model_version'] != '1': time.sleep(0.3)

def test_skew_offline_training_input_equals_the_online_serving_input(world, served):
    "For the same entities at the same time: point-in-time training set -> pipeline == online store -> the server's input -> pipeline"
    backend, url = served
    from mlops_nb.config import configure
    from mlops_nb.models.serving import ModelServer, entity_input, PipelineRows
    ids = [f'a{i}' for i in range(40)]
    t = world['acct'].event_timestamp.max() + pd.Timedelta('1h')        # the online store holds what was latest at t
    with configure(reset=True, home=world['home']):
        offline = world['off'].get_historical_features(pd.DataFrame({'entity_id': ids, 'event_timestamp': t}), REFS)
        srv = ModelServer('acc', reload_interval=0, online_store=world['stores'][backend])
        m = srv.models[srv.primary]
        r = srv.answer_entities(ids, return_features=True)
    assert r['errors'] == [None] * len(ids)
    fep = m.fep
    want = fep.transform(offline[COLS])
    got = entity_input(m, r['features'])       # what the server hands the estimator: the pipeline's one-row path
    assert isinstance(got, PipelineRows), type(got)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.asarray(got), want.to_numpy(dtype=float))   # value for value (NaN equals NaN)
    assert r['predictions'] == m.model.predict(offline[COLS]).tolist()
    st, b = _post(url + '/predict/batch', {'entities': ids, 'return_features': True})    # and over HTTP, the same raw values
    assert st == 200 and pd.DataFrame(b['features'])[COLS].equals(offline[COLS].astype({'n_tx': 'int64', 'age': 'int64'}))
