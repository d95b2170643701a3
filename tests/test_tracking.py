"ExperimentTracker against real stores: the workspace's SQLite file, a real `mlflow server`, and PostgreSQL"
import json, os, subprocess, sys, textwrap, time, urllib.request
from pathlib import Path
import pytest
from conftest import free_port, stop_process, wait_http

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.ensemble import RandomForestClassifier


@pytest.fixture(scope='module')
def data():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


def _check_readback(uri, run_id, metrics, X_te):
    "A plain MlflowClient sees the params, metrics, both figures and a loadable model"
    import mlflow
    from mlflow import MlflowClient
    c = MlflowClient(uri)
    run = c.get_run(run_id)
    assert run.info.status == 'FINISHED'
    assert run.data.params['n_estimators'] == '20'
    assert run.data.metrics['accuracy'] == pytest.approx(metrics['accuracy'])
    assert {'learning_curve.png', 'feature_importance.png'} <= {a.path for a in c.list_artifacts(run_id)}
    mlflow.set_tracking_uri(uri)
    model = mlflow.sklearn.load_model(run.data.tags['mlops_nb.model_uri'])
    assert model.predict(X_te[:3]).shape == (3,)
    return run


def test_workspace_store_read_back_and_listed_by_mlflow_server(workspace, data, tmp_path):
    from mlops_nb.tracking import ExperimentTracker, train_model_with_tracking
    X_tr, X_te, y_tr, y_te = data
    tracker = ExperimentTracker(experiment_name='readback')
    _, metrics, run_id = train_model_with_tracking(RandomForestClassifier(random_state=0), X_tr, y_tr, X_te, y_te,
                                                   params={'n_estimators': 20}, tracker=tracker)
    _check_readback(workspace.tracking_uri, run_id, metrics, X_te)
    # `mlflow server` started on the workspace's store lists the run (what `mlops-nb ui` does)
    port = free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'mlflow', 'server', '--backend-store-uri', workspace.tracking_uri,
                             '--host', '127.0.0.1', '--port', str(port), '--workers', '1'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path)
    try:
        wait_http(f'http://127.0.0.1:{port}/health', timeout=90, proc=proc)
        req = urllib.request.Request(f'http://127.0.0.1:{port}/api/2.0/mlflow/runs/search', method='POST',
                                     data=json.dumps({'experiment_ids': [tracker.experiment_id]}).encode(),
                                     headers={'Content-Type': 'application/json'})
        runs = json.load(urllib.request.urlopen(req, timeout=10))['runs']
        assert [r['info']['run_id'] for r in runs] == [run_id]
    finally: stop_process(proc)


def test_real_mlflow_server_by_url(mlflow_server, data, workspace):
    from mlops_nb.tracking import ExperimentTracker, train_model_with_tracking
    X_tr, X_te, y_tr, y_te = data
    tracker = ExperimentTracker(mlflow_server, 'over-http')
    with tracker.run('loop') as r:
        for i in range(2500): tracker.log_metric('loss', 1 / (i + 1))
    assert len(tracker.client.get_metric_history(r.info.run_id, 'loss')) == 2500
    _, metrics, run_id = train_model_with_tracking(RandomForestClassifier(random_state=0), X_tr, y_tr, X_te, y_te,
                                                   params={'n_estimators': 20}, tracker=tracker, learning_curve=True)
    _check_readback(mlflow_server, run_id, metrics, X_te)
    # nothing went to the workspace's embedded store
    assert not (Path(workspace.home) / 'artifacts' / 'over-http').exists()


def test_postgresql_store_by_url(postgres_db, workspace):
    from mlops_nb.tracking import ExperimentTracker
    uri = postgres_db.replace('postgresql://', 'postgresql+psycopg://')
    tracker = ExperimentTracker(uri, 'on-postgres')
    with tracker.run('pg', params={'lr': 0.1}) as r:
        tracker.log_metrics({'loss': 0.5, 'acc': 0.9})
    df = tracker.runs()
    assert df.loc[0, 'run_id'] == r.info.run_id and df.loc[0, 'metrics.acc'] == 0.9 and df.loc[0, 'params.lr'] == 0.1
    tracker.client._tracking_client.store.engine.dispose()   # let the fixture drop the database


def test_unreachable_stores_fail_fast_with_a_clear_message(workspace):
    from mlops_nb.tracking import ExperimentTracker, TrackingStoreError
    t0 = time.time()
    with pytest.raises(TrackingStoreError, match=r"Can't reach the MLflow tracking server at http://u:\*\*\*@127.0.0.1"):
        ExperimentTracker(f'http://u:secret@127.0.0.1:{free_port()}', 'x')
    with pytest.raises(TrackingStoreError, match=r"Can't open the MLflow tracking store postgresql\+psycopg://u:\*\*\*@127.0.0.1") as e:
        ExperimentTracker(f'postgresql+psycopg://u:secret@127.0.0.1:{free_port()}/nodb', 'x')
    assert 'secret' not in str(e.value)
    assert time.time() - t0 < 20


def test_failed_block_is_failed_and_reraised(workspace):
    from mlops_nb.tracking import ExperimentTracker
    t = ExperimentTracker(experiment_name='fails')
    with pytest.raises(KeyError):
        with t.run('boom') as r:
            t.log_metric('loss', 1.0)
            raise KeyError('missing column')
    run = t.client.get_run(r.info.run_id)
    assert run.info.status == 'FAILED' and run.data.metrics == {'loss': 1.0}
    assert run.data.tags['mlops_nb.error'] == "KeyError: 'missing column'"


def test_buffered_metrics_are_written_when_the_process_exits(workspace, tmp_path):
    "A script that logs and exits without ending its run loses nothing"
    code = textwrap.dedent("""
        from mlops_nb.tracking import ExperimentTracker
        t = ExperimentTracker(experiment_name='exit')
        r = t.start_run('no end_run')
        for i in range(5000): t.log_metric('loss', float(i))
        print(r.info.run_id)
    """)
    env = {**os.environ, 'MLOPS_NB_HOME': str(workspace.home)}
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    from mlflow import MlflowClient
    hist = MlflowClient(workspace.tracking_uri).get_metric_history(out.stdout.strip(), 'loss')
    assert sorted(m.value for m in hist) == [float(i) for i in range(5000)]
    assert not (tmp_path / 'mlflow.db').exists() and not (tmp_path / 'mlruns').exists()


def test_background_write_failure_is_reported_and_values_kept(workspace):
    "If the store fails under the buffer, flush() raises and the values stay queued for the next try"
    from mlops_nb.tracking import ExperimentTracker, TrackingStoreError
    t = ExperimentTracker(experiment_name='flaky')
    r = t.start_run('flaky')
    real = t._buffer.write
    t._buffer.write = lambda *a, **k: (_ for _ in ()).throw(OSError('disk full'))
    for i in range(10): t.log_metric('loss', float(i))
    with pytest.raises(TrackingStoreError, match='10 metric values could not be written.*disk full'):
        t.flush()
    t._buffer.write = real
    t.end_run()
    assert len(t.client.get_metric_history(r.info.run_id, 'loss')) == 10


def test_import_is_light_and_names_are_lazy():
    code = ("import sys, mlops_nb; T = mlops_nb.ExperimentTracker; "
            "print(sorted(m for m in ('mlflow','sklearn','pandas','scipy','matplotlib','optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]'


def test_cli_demo_in_a_fresh_folder(tmp_path):
    env = {**os.environ, 'MLOPS_NB_HOME': str(tmp_path / 'ws')}
    exe = Path(sys.executable).parent / 'mlops-nb'
    out = subprocess.run([str(exe), 'demo'], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'test metrics: accuracy=' in out.stdout and 'mlflow ui --backend-store-uri' in out.stdout
    # it prints what it says it prints: the params and the model's signature
    assert 'params: n_estimators=100, max_depth=6, random_state=0, n_train=426, n_test=143' in out.stdout
    assert 'signature: inputs [mean radius: double' in out.stdout and '(30 columns)] -> outputs [' in out.stdout
    # `mlops-nb runs` straight after shows the demo's run, and says where it looked
    t0 = time.time()
    runs = subprocess.run([str(exe), 'runs'], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    print(f"mlops-nb runs: {time.time() - t0:.2f} s")
    assert runs.returncode == 0, runs.stderr
    assert f"workspace {tmp_path / 'ws'}" in runs.stdout and "experiment 'demo-breast-cancer'" in runs.stdout
    assert ': 1 run' in runs.stdout and 'random-forest' in runs.stdout and 'FINISHED' in runs.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ws']


class _BasicAuthProxy:
    "A loopback HTTP proxy that requires `Authorization: Basic` for user:password and forwards to `upstream`"
    def __init__(self, upstream, user, password):
        import base64, http.server, threading, urllib.error
        want = 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()
        self.ok = self.refused = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def _any(self):
                if self.headers.get('Authorization') != want:
                    proxy.refused += 1
                    self.send_response(401); self.send_header('WWW-Authenticate', 'Basic realm="mlflow"')
                    self.send_header('Content-Length', '0'); self.end_headers(); return
                proxy.ok += 1
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0)) or None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ('host', 'authorization', 'content-length')}
                req = urllib.request.Request(upstream + self.path, data=body, headers=headers, method=self.command)
                try: r = urllib.request.urlopen(req, timeout=60)
                except urllib.error.HTTPError as e: r = e
                data = r.read()
                self.send_response(r.status if hasattr(r, 'status') else r.code)
                for k, v in r.headers.items():
                    if k.lower() not in ('transfer-encoding', 'connection', 'content-length', 'date', 'server'): self.send_header(k, v)
                self.send_header('Content-Length', str(len(data))); self.end_headers(); self.wfile.write(data)
            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self): self.server.shutdown(); self.server.server_close()


def test_tracking_server_behind_basic_auth_by_url_with_credentials(mlflow_server, workspace, monkeypatch):
    "http://user:password@host:port works (the credentials go to MLflow as MLFLOW_TRACKING_USERNAME/PASSWORD) and never shows"
    from mlops_nb.tracking import ExperimentTracker, TrackingStoreError
    from mlflow import MlflowClient
    for k in ('MLFLOW_TRACKING_USERNAME', 'MLFLOW_TRACKING_PASSWORD'): monkeypatch.delenv(k, raising=False)
    proxy = _BasicAuthProxy(mlflow_server, 'alice', 's3cr@t:x')
    try:
        url = f'http://alice:s3cr%40t%3Ax@127.0.0.1:{proxy.port}'
        tracker = ExperimentTracker(url, 'behind-auth')
        with tracker.run('r', params={'lr': 0.1}) as r:
            for i in range(5): tracker.log_metric('loss', 1 / (i + 1))
            tracker.log_dict({'a': 1}, 'd.json')
        run = MlflowClient(mlflow_server).get_run(r.info.run_id)           # straight to the server, past the proxy
        assert run.info.status == 'FINISHED' and run.data.params == {'lr': '0.1'} and run.data.metrics['loss'] == 0.2
        assert [a.path for a in MlflowClient(mlflow_server).list_artifacts(r.info.run_id)] == ['d.json']
        assert proxy.ok > 5 and tracker.tracking_uri == f'http://127.0.0.1:{proxy.port}'
        for text in (repr(tracker), tracker.tracking_uri, tracker.ui_command(), str(tracker._repr_mimebundle_())):
            assert 's3cr' not in text
        assert len(tracker.runs()) == 1
        # wrong credentials: a clear error, without the password
        monkeypatch.delenv('MLFLOW_TRACKING_PASSWORD')
        with pytest.raises(TrackingStoreError, match=r'refused the credentials \(HTTP 401\)') as e:
            ExperimentTracker(f'http://alice:wrong-pw@127.0.0.1:{proxy.port}', 'behind-auth')
        assert 'wrong-pw' not in str(e.value) and 'alice:***@' in str(e.value)
    finally: proxy.close()
