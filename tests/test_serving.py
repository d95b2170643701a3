"The model server as a real process: every endpoint, validation, canary stickiness, a hot alias move"
import json, os, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path
import pytest
from conftest import free_port, wait_http, stop_process


def _post(url, payload, headers=None):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method='POST',
                                 headers={'Content-Type': 'application/json', **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r: return r.status, json.load(r)
    except urllib.error.HTTPError as e: return e.code, json.load(e)


@pytest.fixture
def served(workspace, tmp_path):
    "Two registered versions (v1 champion); `mlops-nb serve` running on a free port"
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from mlops_nb.tracking import ExperimentTracker
    from mlops_nb.models.registry import ModelRegistry
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    tr = ExperimentTracker(experiment_name='serve-test')
    uris = []
    for m in (make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), DummyClassifier(strategy='constant', constant=1)):
        with tr.run(type(m).__name__): uris.append(tr.log_model(m.fit(X, y), 'model', input_example=X.head(2)).model_uri)
    reg = ModelRegistry(name='cancer')
    reg.register_model('v1', uris[0]); reg.register_model('v2', uris[1]); reg.set_current_version('v1')
    port = free_port()
    env = {**os.environ, 'MLOPS_NB_HOME': str(workspace.home)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / 'mlops-nb'), 'serve', 'cancer', '--port', str(port),
                             '--reload-interval', '0.5'], env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / 'server.log', 'wb'))
    url = f'http://127.0.0.1:{port}'
    try:
        wait_http(url + '/ready', timeout=120, proc=proc)
        yield url, reg, X, y
    finally: stop_process(proc)


def test_endpoints_validation_and_a_hot_alias_move(served):
    url, reg, X, y = served
    row = X.iloc[0].tolist()
    st, r = _post(url + '/predict', {'features': row})
    assert st == 200 and r['prediction'] == int(y.iloc[0]) and r['model_version'] == '1' and 0.5 <= r['probability'] <= 1
    st, b = _post(url + '/predict/batch', {'instances': X.head(50).values.tolist()})
    assert st == 200 and len(b['predictions']) == 50
    info = json.load(urllib.request.urlopen(url + '/model/info'))
    assert info['n_features'] == 30 and info['label'] == 'v1' and info['alias'] == 'champion'
    assert json.load(urllib.request.urlopen(url + '/health')) == {'status': 'ok'}
    assert _post(url + '/predict', {'features': row[:3]}) [0] == 422
    st, e = _post(url + '/predict/batch', {'instances': [row] * 10_001}); assert st == 413 and 'limit is 10000' in e['error']
    st, e = _post(url + '/predict', {'features': [None] * 30}); assert st == 422 and 'must be finite' in e['error']
    reg.set_current_version('v2', reason='test hot move')           # the server picks it up without a restart
    end = time.time() + 30
    while time.time() < end and _post(url + '/predict', {'features': row})[1]['model_version'] != '2': time.sleep(0.3)
    st, r = _post(url + '/predict', {'features': row})
    assert r['model_version'] == '2' and r['prediction'] == 1
    text = urllib.request.urlopen(url + '/metrics').read().decode()
    from prometheus_client.parser import text_string_to_metric_families
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    by_version = {s.labels['model_version'] for s in fams['ml_predictions'].samples if s.name == 'ml_predictions_total'}
    assert by_version == {'1', '2'}
    assert any(s.labels == {'endpoint': '/predict', 'status': '422'} for s in fams['ml_http_requests'].samples)


def test_canary_split_is_sticky_and_a_failing_rollout_rolls_back(served):
    "A rollout set in the registry reaches the live server; its guardrail fails on the server's own metrics"
    url, reg, X, y = served
    from mlops_nb.models.canary import CanaryDeployment
    cd = CanaryDeployment(reg)
    metrics = lambda: urllib.request.urlopen(url + '/metrics').read().decode()
    cd.gradual_rollout('v2', steps=2, duration_hours=0, min_requests=30, metrics_text=metrics())   # canary v2 at 50%
    end = time.time() + 30
    seen = set()
    while time.time() < end and seen != {'1', '2'}:
        seen = {_post(url + '/predict', {'features': X.iloc[i].tolist()}, {'X-Request-Key': f'user-{i}'})[1]['model_version'] for i in range(40)}
        time.sleep(0.3)
    assert seen == {'1', '2'}
    for i in range(40):        # sticky: the same key always reaches the same version
        vs = {_post(url + '/predict', {'features': X.iloc[i].tolist()}, {'X-Request-Key': f'user-{i}'})[1]['model_version'] for _ in range(3)}
        assert len(vs) == 1
    for i in range(200): _post(url + '/predict', {'features': X.iloc[i % len(X)].tolist()}, {'X-Request-Key': f'k{i}'})
    st = cd.advance(metrics())
    assert st['status'] == 'rolled_back' and 'prediction drift' in st['reason']   # v2 always says 1
    end = time.time() + 30
    while time.time() < end and {_post(url + '/predict', {'features': X.iloc[i].tolist()}, {'X-Request-Key': f'user-{i}'})[1]['model_version'] for i in range(40)} != {'1'}:
        time.sleep(0.3)
    assert {_post(url + '/predict', {'features': X.iloc[i].tolist()}, {'X-Request-Key': f'user-{i}'})[1]['model_version'] for i in range(40)} == {'1'}
    assert reg.current_version == '1'
