"The model server as a real process: every endpoint, validation, canary stickiness, a hot alias move, body limits"
import json, os, socket, subprocess, sys, threading, time, urllib.error, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT, free_port, wait_http, stop_process


def _post(url, payload, headers=None):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method='POST',
                                 headers={'Content-Type': 'application/json', **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r: return r.status, json.load(r)
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
    st, e = _post(url + '/predict', {'features': [None] * 30}); assert st == 422 and "feature 'mean radius' is null" in e['error']
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


# ---------------------------------------------------------------- helpers for a server started straight on uvicorn
def start_server(home, model, tmp_path, **env):
    "`uvicorn --factory mlops_nb.models.serving:app_from_env` on a free loopback port; returns (process, url)"
    port = free_port()
    env = {**os.environ, 'MLOPS_NB_HOME': str(home), 'MLOPS_NB_SERVE_MODEL': model, 'MLOPS_NB_SERVE_RELOAD': '0', **env}
    proc = subprocess.Popen([sys.executable, '-m', 'uvicorn', '--factory', 'mlops_nb.models.serving:app_from_env',
                             '--host', '127.0.0.1', '--port', str(port), '--log-level', 'warning', '--no-access-log'],
                            env=env, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / f'{model}-server.log', 'wb'))
    url = f'http://127.0.0.1:{port}'
    try: wait_http(url + '/ready', timeout=120, proc=proc)
    except Exception:
        stop_process(proc); raise
    return proc, url


def _samples(url, name):
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen(url + '/metrics', timeout=10).read().decode()
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


# ---------------------------------------------------------------- 12.1: batch prediction of files, outside the notebook
def test_batch_prediction_writes_parquet_files(workspace, tmp_path):
    "predict_frame with str paths (a frame in, a Parquet file in): the module imports what it uses (was NameError: Path)"
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from mlops_nb.tracking import ExperimentTracker
    from mlops_nb.models.registry import ModelRegistry
    from mlops_nb.models.serving import BatchPredictionService
    X, y = load_iris(return_X_y=True, as_frame=True)
    tr = ExperimentTracker(experiment_name='batch-files')
    with tr.run('iris'): info = tr.log_model(LogisticRegression(max_iter=300).fit(X, y), 'model', input_example=X.head(2))
    reg = ModelRegistry(name='iris'); reg.register_model('v1', info.model_uri); reg.set_current_version('v1')
    svc = BatchPredictionService('models:/iris@champion')
    out = svc.predict_frame(X, str(tmp_path / 'out.parquet'), chunk_size=40, progress=False)
    scored = pd.read_parquet(out)
    assert out == tmp_path / 'out.parquet' and len(scored) == len(X) and set(scored.model_version) == {'champion'}
    X.to_parquet(tmp_path / 'in.parquet')
    again = pd.read_parquet(svc.predict_frame(str(tmp_path / 'in.parquet'), str(tmp_path / 'out2.parquet'), progress=False))
    assert again.prediction.tolist() == scored.prediction.tolist()


def test_modules_are_pyflakes_clean():
    "No undefined names (a name only a notebook's test cell provides) and no unused imports in the server's modules"
    r = subprocess.run([str(Path(sys.executable).parent / 'ruff'), 'check', '--select', 'F', '--no-cache',
                        'mlops_nb/models/serving.py', 'mlops_nb/monitoring/metrics.py'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- 12.5: client errors, body limits, a free event loop
def test_bad_input_is_a_client_error_never_counted_against_the_version(served):
    "[1e308]*30 used to reach the model, answer 500 and count a model error: five of them rolled back a healthy canary"
    url, reg, X, y = served
    from mlops_nb.models.canary import version_stats
    for payload, msg in [({'features': [1e308] * 30}, 'feature values must be within'),
                         ({'features': [True] * 30}, 'features must be numbers'),
                         ({'features': ['1'] * 30}, 'features must be numbers'),
                         ({'instances': [[1.0] * 30, [1e200] * 30]}, 'of row 1 is 1e+200')]:
        for _ in range(5):
            st, e = _post(url + ('/predict/batch' if 'instances' in payload else '/predict'), payload)
            assert st == 422 and msg in e['error'], (st, e)
    req = urllib.request.Request(url + '/predict', data=b'{"features": [1e999]}', method='POST')   # JSON's "infinity"
    with pytest.raises(urllib.error.HTTPError) as e: urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 422
    assert _post(url + '/predict', {'features': X.iloc[0].tolist()})[0] == 200
    assert _samples(url, 'ml_prediction_errors_total') == {}
    stats = version_stats(urllib.request.urlopen(url + '/metrics').read().decode())
    assert stats['1']['errors'] == 0 and stats['1']['requests'] == 1


def _timed_health(url, stop, out):
    "Poll /health until `stop` is set; append each answer's latency"
    while not stop.is_set():
        t = time.perf_counter()
        urllib.request.urlopen(url + '/health', timeout=30).read()
        out.append(time.perf_counter() - t)
        time.sleep(0.02)


def _upload(port, headers:bytes, chunks, read_timeout=30):
    "Send a request head then body chunks from a thread; return (status line, seconds to it, bytes sent by then)"
    s = socket.create_connection(('127.0.0.1', port))
    sent = [0]
    def pump():
        try:
            for c in chunks: s.sendall(c); sent[0] += len(c)
        except OSError: pass           # the server answered and closed: stop sending
    t0 = time.perf_counter(); s.sendall(headers)
    th = threading.Thread(target=pump, daemon=True); th.start()
    s.settimeout(read_timeout)
    try: first = s.recv(4096).split(b'\r\n', 1)[0].decode()
    except ConnectionResetError: first = 'reset'
    dt = time.perf_counter() - t0
    s.close(); th.join(10)
    return first, dt, sent[0]


def test_a_100mb_body_is_refused_fast_and_health_answers_meanwhile(served):
    url, reg, X, y = served
    port = int(url.rsplit(':', 1)[1])
    lat, stop = [], threading.Event()
    th = threading.Thread(target=_timed_health, args=(url, stop, lat), daemon=True); th.start()
    mb = b' ' * 2**20
    try:
        # declared size over the limit: 413 before the body is read
        head = b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n'
        first, dt, sent = _upload(port, head, (mb for _ in range(100)))
        assert first.startswith('HTTP/1.1 413'), first
        assert dt < 2, dt
        print(f'100 MB declared: {first!r} after {dt*1000:.0f} ms, {sent/2**20:.0f} MiB sent by then')
        # no declared size (chunked): counted as it streams, refused once past the limit (8 MiB by default)
        head = b'POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
        chunk = b'%x\r\n' % len(mb) + mb + b'\r\n'
        first, dt, sent = _upload(port, head, (chunk for _ in range(100)))
        assert first.startswith('HTTP/1.1 413'), first
        assert dt < 5 and sent < 40 * 2**20, (dt, sent)
        print(f'100 MB chunked: {first!r} after {dt*1000:.0f} ms, {sent/2**20:.0f} MiB sent by then')
    finally:
        stop.set(); th.join(30)
    assert lat and max(lat) < 1.0, sorted(lat)[-5:]
    print(f'/health meanwhile: {len(lat)} answers, max {max(lat)*1000:.0f} ms')
    assert _post(url + '/predict', {'features': X.iloc[0].tolist()})[0] == 200      # still serving
    assert _samples(url, 'ml_http_requests_total')[(('endpoint', '/predict'), ('status', '413'))] == 1


# ---------------------------------------------------------------- 15.5: a regressor's metrics stay bounded
def test_a_regressor_makes_a_bounded_number_of_series(workspace, tmp_path):
    "10,000 predictions of a Ridge model: one counter series and one histogram per version (it was 20,046 lines, 1.7 MB)"
    import numpy as np
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from prometheus_client.parser import text_string_to_metric_families
    from mlops_nb.tracking import ExperimentTracker
    from mlops_nb.models.registry import ModelRegistry
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    tr = ExperimentTracker(experiment_name='ridge')
    with tr.run('ridge'): info = tr.log_model(Ridge().fit(X, y), 'model', input_example=X.head(2))
    reg = ModelRegistry(name='diabetes'); reg.register_model('r1', info.model_uri); reg.set_current_version('r1')
    proc, url = start_server(workspace.home, 'diabetes', tmp_path)
    try:
        rng = np.random.default_rng(0)
        rows = (X.sample(10_000, replace=True, random_state=0).to_numpy() + rng.normal(0, 0.01, (10_000, X.shape[1]))).tolist()
        import http.client
        conn = http.client.HTTPConnection('127.0.0.1', int(url.rsplit(':', 1)[1]), timeout=30)
        def post(path, payload):
            conn.request('POST', path, json.dumps(payload), {'Content-Type': 'application/json'})
            r = conn.getresponse(); body = json.loads(r.read()); assert r.status == 200, body; return body
        values = [post('/predict', {'features': r})['prediction'] for r in rows[:1_000]]     # one request each
        for i in range(1_000, 10_000, 100): values += post('/predict/batch', {'instances': rows[i:i+100]})['predictions']
        conn.close()
        assert len(set(values)) > 9_000                       # (nearly) every prediction a distinct value
        text = urllib.request.urlopen(url + '/metrics', timeout=10).read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        assert [(s.labels, s.value) for s in fams['ml_predictions'].samples if s.name == 'ml_predictions_total'] == \
               [({'model_version': '1', 'prediction': 'value'}, 10_000.0)]
        buckets = {s.labels['le']: s.value for s in fams['ml_prediction_value'].samples if s.name == 'ml_prediction_value_bucket'}
        assert len(buckets) == 56 and buckets['+Inf'] == 10_000
        assert buckets['200.0'] == sum(v <= 200 for v in values)
        assert len(text) < 25_000 and len(text.splitlines()) < 200, (len(text), len(text.splitlines()))
        assert 'ml_dataset_drift_share' not in text and 'ml_drift_last_check_timestamp_seconds' not in text
        info = json.load(urllib.request.urlopen(url + '/model/info'))
        assert info['task'] == 'regression' and info['label'] == 'r1' and info['version'] == '1'
    finally: stop_process(proc)
