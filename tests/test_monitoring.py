"Monitoring against real endpoints: the Prometheus exporter scraped over HTTP, a webhook sink posting to a real server"
import json, threading, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
import numpy as np, pandas as pd, pytest
from prometheus_client.parser import text_string_to_metric_families
from mlops_nb.monitoring.metrics import MonitoringMetrics, Alerter, webhook_sink
from mlops_nb.monitoring.drift import DataDriftDetector, ModelMonitor


def test_drift_gauges_are_scraped_from_the_exporter():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({'amount': rng.normal(50, 10, 5000), 'country': rng.choice(['de', 'fr'], 5000)})
    cur = pd.DataFrame({'amount': rng.normal(60, 10, 5000), 'country': rng.choice(['de', 'fr'], 5000)})
    m = MonitoringMetrics('v3')
    m.observe_drift(DataDriftDetector(ref).report(cur).table)
    server, port = m.serve()
    try: body = urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5).read().decode()
    finally: server.shutdown(); server.server_close()
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    drifted = {s.labels['feature']: s.value for s in fams['ml_feature_drifted'].samples}
    assert drifted == {'amount': 1.0, 'country': 0.0}
    assert fams['ml_dataset_drift_share'].samples[0].value == 0.5
    score = {(s.labels['feature'], s.labels['test']): s.value for s in fams['ml_feature_drift_score'].samples}
    assert score[('amount', 'wasserstein')] == pytest.approx(1.0, abs=0.1)


def test_webhook_sink_posts_one_alert_per_incident():
    got = []
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers['Content-Length']))))
            self.send_response(204); self.end_headers()
        def log_message(self, *a): pass
    srv = HTTPServer(('127.0.0.1', 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    try:
        mon = ModelMonitor('v1', {0: 0.9, 1: 0.1}, min_samples=50,
                           alerter=Alerter([webhook_sink(f'http://127.0.0.1:{srv.server_address[1]}/hook')], cooldown=3600))
        for p in [1] * 40 + [0] * 60: mon.log_prediction(p, latency=0.002)
        for _ in range(5): assert mon.check_drift()          # drifted on every check ...
    finally: srv.shutdown(); srv.server_close()
    assert len(got) == 1                                     # ... one alert
    assert got[0]['name'] == 'PredictionDrift' and got[0]['labels'] == {'model_version': 'v1'}
    fams = {f.name: f for f in text_string_to_metric_families(mon.metrics.exposition().decode())}
    assert {s.labels['prediction_class']: s.value for s in fams['ml_prediction_distribution'].samples} == {'0': 0.6, '1': 0.4}


def test_empty_parquet_batch_fails_the_drift_check(tmp_path):
    "The scaffold's case: a 0-row data/current.parquet is a failed check that names every column, never 'not drifted'"
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({'amount': rng.normal(50, 10, 3000), 'country': rng.choice(['de', 'fr'], 3000), 'n': rng.integers(0, 8, 3000)})
    ref.iloc[:0].to_parquet(tmp_path / 'current.parquet')
    rep = DataDriftDetector(ref).report(pd.read_parquet(tmp_path / 'current.parquet'))
    assert rep.untested == {c: 'no rows in current data' for c in ref.columns}
    assert rep.passed is False and rep.dataset_drift is False and rep.drifted_columns == []
    assert 'not drifted' not in repr(rep) and 'could not test 3 of 3 columns' in rep.headline
    ok = DataDriftDetector(ref).report(ref.sample(1000, random_state=1))
    assert ok.untested == {} and ok.passed is True and 'data set not drifted' in ok.headline
    assert ok.table.set_index('column').test.to_dict() == {'amount': 'wasserstein', 'country': 'jensenshannon', 'n': 'jensenshannon'}
