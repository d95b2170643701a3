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


# ---------------------------------------------------------------- the metric writer: direct SQL path and log_batch
def _batches(seed=0, n=3, size=700):
    "Metric batches that exercise every rule: out-of-order steps, ties, duplicates within and across batches, NaN, ±inf"
    import random
    from mlflow.entities import Metric
    rnd, keys = random.Random(seed), ['loss', 'acc', 'val/f1 score', 'lr']
    special = [float('nan'), float('inf'), float('-inf'), 0.0, -1e-300, 1e308]
    out, prev = [], []
    for b in range(n):
        batch = []
        for _ in range(size):
            v = rnd.choice(special) if rnd.random() < 0.1 else rnd.uniform(-5, 5)
            batch.append(Metric(rnd.choice(keys), v, 1_700_000_000_000 + rnd.randrange(50), rnd.randrange(40)))
        batch += rnd.sample(batch, 20) + rnd.sample(prev, min(20, len(prev)))   # duplicates, in and across batches
        rnd.shuffle(batch)
        out.append(batch); prev = batch
    return out, keys


def _stored(client, engine, run_id, keys):
    "What a run holds: every value in its history, its latest values through MlflowClient, and its latest_metrics rows"
    import sqlalchemy as sa
    hist = {k: sorted((m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run_id, k)) for k in keys}
    latest = {k: repr(v) for k, v in client.get_run(run_id).data.metrics.items()}
    with engine.connect() as c:
        rows = sorted(tuple(r) for r in c.execute(sa.text(
            'SELECT key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_uuid = :r'), {'r': run_id}))
        raw = sorted(tuple(r) for r in c.execute(sa.text(
            'SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = :r'), {'r': run_id}))
    return hist, latest, rows, raw


def _same_as_log_batch(tracker):
    "Write the same batches with log_batch and with the tracker's writer; both runs must hold exactly the same"
    from mlops_nb.tracking_store import MetricWriter
    c = tracker.client
    a, b = (c.create_run(tracker.experiment_id).info.run_id for _ in range(2))
    batches, keys = _batches()
    w = MetricWriter(c)
    assert w.path == 'sql', w.reason
    for batch in batches:
        for i in range(0, len(batch), 1000): c.log_batch(a, metrics=batch[i:i + 1000])
        w(b, batch)
    assert w.path == 'sql', w.reason                       # no write fell back
    engine = c._tracking_client.store.engine
    got_a, got_b = _stored(c, engine, a, keys), _stored(c, engine, b, keys)
    assert sum(len(h) for h in got_b[0].values()) > 1500    # the histories hold what was written...
    assert got_b == got_a                                  # ...and exactly what log_batch stores
    return w


def test_direct_path_writes_exactly_what_log_batch_writes_on_sqlite(workspace):
    from mlops_nb.tracking import ExperimentTracker
    _same_as_log_batch(ExperimentTracker(experiment_name='paths'))


def test_direct_path_writes_exactly_what_log_batch_writes_on_postgresql(postgres_db, workspace):
    from mlops_nb.tracking import ExperimentTracker
    tracker = ExperimentTracker(postgres_db.replace('postgresql://', 'postgresql+psycopg://'), 'paths-pg')
    try:
        w = _same_as_log_batch(tracker)
        assert w.reason.startswith('postgresql store, schema ')
    finally: tracker.client._tracking_client.store.engine.dispose()


def test_installed_mlflow_makes_a_schema_the_direct_path_was_tested_on(workspace):
    "Fails on purpose after an MLflow upgrade with a new schema: rerun the equality tests, then add the revision"
    from mlflow.store.db.utils import _get_alembic_config
    from alembic.script import ScriptDirectory
    from mlops_nb.tracking_store import TESTED_SCHEMAS, read_schema, schema_problem
    from mlops_nb.tracking import ExperimentTracker
    t = ExperimentTracker(experiment_name='schema')
    engine = t.client._tracking_client.store.engine
    head = ScriptDirectory.from_config(_get_alembic_config(str(engine.url))).get_current_head()
    assert read_schema(engine)['revision'] == [head]
    assert head in TESTED_SCHEMAS, f"MLflow's store schema is now {head}: check the direct path against it"
    assert schema_problem(read_schema(engine)) is None
    assert t._buffer.write.path == 'sql'


def _log_and_read(tracker, n=2500):
    with tracker.run('values') as r:
        for i in range(n): tracker.log_metric('loss', 1 / (i + 1), timestamp=1_700_000_000_000 + i)
        tracker.log_metric('acc', float('nan'))
    c = tracker.client
    hist = c.get_metric_history(r.info.run_id, 'loss')
    assert sorted(m.step for m in hist) == list(range(n)) and len({m.step for m in hist}) == n   # all, once each
    assert c.get_run(r.info.run_id).data.metrics['loss'] == 1 / n
    return r.info.run_id


def test_unknown_schema_revision_falls_back_to_log_batch_on_a_sqlite_copy(workspace, tmp_path, caplog):
    import logging, shutil, sqlite3
    from mlops_nb.tracking import ExperimentTracker
    copy = tmp_path / 'copy.db'
    shutil.copy(workspace.home / 'mlflow.db', copy)
    t = ExperimentTracker(f'sqlite:///{copy}', 'other-schema')   # MLflow checks the revision when it opens a store
    with sqlite3.connect(copy) as db: db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    with caplog.at_level(logging.DEBUG, logger='mlops_nb.tracking'):
        _log_and_read(t)
    assert t._buffer.write.path == 'log_batch'
    assert t._buffer.write.reason.startswith('schema revision ffffffffffff is not one the direct path was tested')
    assert any('log_batch path (schema revision ffffffffffff' in m for m in caplog.messages), caplog.messages


def test_changed_metrics_columns_fall_back_to_log_batch(workspace):
    import sqlite3
    from mlops_nb.tracking import ExperimentTracker
    t = ExperimentTracker(experiment_name='new-column')
    with sqlite3.connect(workspace.home / 'mlflow.db') as db: db.execute("ALTER TABLE metrics ADD COLUMN origin TEXT")
    _log_and_read(t)
    assert t._buffer.write.path == 'log_batch' and 'table metrics has columns' in t._buffer.write.reason


def test_unknown_schema_revision_falls_back_to_log_batch_on_postgresql(postgres_db, workspace):
    import psycopg
    from mlops_nb.tracking import ExperimentTracker
    t = ExperimentTracker(postgres_db.replace('postgresql://', 'postgresql+psycopg://'), 'other-schema-pg')
    try:
        with psycopg.connect(postgres_db, autocommit=True) as c:
            c.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
        _log_and_read(t, n=1200)
        assert t._buffer.write.path == 'log_batch'
    finally: t.client._tracking_client.store.engine.dispose()


def test_sql_error_in_the_transaction_falls_back_without_losing_values(workspace, monkeypatch):
    "A SQL error after the values were inserted rolls them back; log_batch then writes each value once"
    import sqlalchemy as sa
    import mlops_nb.tracking_store as ts
    from mlops_nb.tracking import ExperimentTracker
    t = ExperimentTracker(experiment_name='sql-error')
    def broken(conn, *a): conn.execute(sa.text('SELECT * FROM no_such_table'))
    monkeypatch.setattr(ts, '_merge_latest', broken)
    _log_and_read(t)
    assert t._buffer.write.path == 'log_batch'
    assert t._buffer.write.reason.startswith('the direct path failed (OperationalError: ')


def test_error_after_a_committed_write_falls_back_without_duplicates(workspace, monkeypatch):
    "The direct path committed, then failed (a dropped connection, say): log_batch's duplicate check drops the values"
    import sqlalchemy as sa
    from mlops_nb.tracking_store import MetricWriter
    from mlops_nb.tracking import ExperimentTracker
    real = MetricWriter._write_sql
    def commit_then_fail(self, run_id, metrics):
        real(self, run_id, metrics)
        raise sa.exc.OperationalError('COMMIT', {}, Exception('connection lost'))
    monkeypatch.setattr(MetricWriter, '_write_sql', commit_then_fail)
    t = ExperimentTracker(experiment_name='committed')
    _log_and_read(t)
    assert t._buffer.write.path == 'log_batch'


def test_when_both_paths_fail_the_error_reaches_the_caller_and_the_path_stays(workspace, monkeypatch):
    from mlflow.entities import Metric
    from mlops_nb.tracking_store import MetricWriter
    from mlops_nb.tracking import ExperimentTracker, TrackingStoreError
    t = ExperimentTracker(experiment_name='both-fail')
    r = t.start_run('both fail')
    w = t._buffer.write
    assert w.path == 'sql'
    def down(*a, **k): raise ConnectionError('store down')
    monkeypatch.setattr(MetricWriter, '_write_sql', down)
    monkeypatch.setattr(t.client, 'log_batch', down)
    with pytest.raises(ConnectionError, match='store down'): w(r.info.run_id, [Metric('loss', 1.0, 1, 0)])
    assert w.path == 'sql'
    for i in range(10): t.log_metric('loss', float(i))
    with pytest.raises(TrackingStoreError, match='10 metric values could not be written'): t.flush()
    monkeypatch.undo()
    t.end_run()
    assert sorted(m.value for m in t.client.get_metric_history(r.info.run_id, 'loss')) == [float(i) for i in range(10)]
    assert w.path == 'sql'
