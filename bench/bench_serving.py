"""Serving one scikit-learn model: `mlops-nb serve` (/predict) against `mlflow models serve` (/invocations), one
worker each, the same model and the same load generator (wrk, 2 threads, 16 connections), servers alternated.

Run: .venv/bin/python bench/bench_serving.py [--seconds 20] [--rounds 3]
Needs wrk (Debian package `wrk`). Loopback only; every server is stopped at the end. Also: rows/s through
/predict/batch with 1,000-row batches.
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
ap = argparse.ArgumentParser(); ap.add_argument('--seconds', type=int, default=20); ap.add_argument('--rounds', type=int, default=3)
args = ap.parse_args()
if not shutil.which('wrk'): sys.exit('wrk is not installed: apt-get install wrk')
tmp = Path(tempfile.mkdtemp()); home = tmp / 'ws'
os.environ['MLOPS_NB_HOME'] = str(home)
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from mlops_nb.tracking import ExperimentTracker
from mlops_nb.models.registry import ModelRegistry
X, y = make_classification(10_000, 20, random_state=0)
X = pd.DataFrame(X, columns=[f'f{i}' for i in range(20)])
tr = ExperimentTracker(experiment_name='bench-serving')
with tr.run('logreg'): info = tr.log_model(LogisticRegression(max_iter=1000).fit(X, y), 'model', input_example=X.head(3))
reg = ModelRegistry(name='bench'); reg.register_model('v1', info.model_uri); reg.set_current_version('v1')

def port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def wait(url, proc, t=120):
    end = time.time() + t
    while time.time() < end:
        if proc.poll() is not None: raise RuntimeError(f'server exited: {proc.returncode}')
        try: urllib.request.urlopen(url, timeout=2); return
        except Exception: time.sleep(0.3)
    raise TimeoutError(url)

bin_ = Path(sys.executable).parent
env = {**os.environ, 'MLFLOW_TRACKING_URI': tr.tracking_uri, 'MLFLOW_REGISTRY_URI': tr.tracking_uri,
       'PATH': f"{bin_}:{os.environ.get('PATH', '')}"}   # mlflow models serve runs 'uvicorn' from PATH
row = X.iloc[0].tolist()
servers = {
    'mlops-nb serve /predict': dict(cmd=lambda p: [str(bin_/'mlops-nb'), 'serve', 'bench', '--port', str(p)], ready='/ready', path='/predict',
                                    body=json.dumps({'features': row})),
    'mlflow models serve /invocations': dict(cmd=lambda p: [str(bin_/'mlflow'), 'models', 'serve', '-m', 'models:/bench/1', '-h', '127.0.0.1',
                                             '-p', str(p), '--env-manager', 'local'], ready='/ping', path='/invocations',
                                             body=json.dumps({'dataframe_split': {'columns': list(X.columns), 'data': [row]}})),
}

def run_wrk(url, body, seconds):
    lua = tmp / 'post.lua'
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(['wrk', '-t2', '-c16', f'-d{seconds}s', '--timeout', '5s', '--latency', '-s', str(lua), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    unit = lambda v, u: float(v) * {'us': 1e-3, 'ms': 1, 's': 1000}[u]
    lat = dict((q, unit(v, u)) for q, v, u in re.findall(r'\s(50|90|99)%\s+([\d.]+)(us|ms|s)', out))
    rps = float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))
    errs = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return dict(rps=rps, p50=lat['50'], p99=lat['99'], non2xx=int(errs.group(1)) if errs else 0)

res = {k: [] for k in servers}
for rnd in range(args.rounds):
    for name, s in servers.items():
        p = port()
        log = open(tmp / f'server-{rnd}-{len(name)}.log', 'wb')
        proc = subprocess.Popen(s['cmd'](p), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)
        try:
            wait(f'http://127.0.0.1:{p}{s["ready"]}', proc)
            run_wrk(f'http://127.0.0.1:{p}{s["path"]}', s['body'], 3)      # warm-up
            r = run_wrk(f'http://127.0.0.1:{p}{s["path"]}', s['body'], args.seconds); res[name].append(r)
            print(f'round {rnd}: {name}: {r}', file=sys.stderr)
            if name.startswith('mlops'):
                batch = json.dumps({'instances': X.head(1000).values.tolist()}).encode()
                t0 = time.perf_counter(); n = 0
                while time.perf_counter() - t0 < 5:
                    req = urllib.request.Request(f'http://127.0.0.1:{p}/predict/batch', data=batch, headers={'Content-Type': 'application/json'})
                    assert len(json.load(urllib.request.urlopen(req))['predictions']) == 1000; n += 1000
                res.setdefault('batch_rows_per_s', []).append(n / (time.perf_counter() - t0))
        except Exception:
            print(open(log.name).read()[-3000:], file=sys.stderr); raise
        finally:
            if proc.poll() is None: os.killpg(proc.pid, signal.SIGTERM); proc.wait(20)

print(f"\nLogisticRegression (20 features), one worker each, wrk -t2 -c16 -d{args.seconds}s, medians of {args.rounds} rounds\n")
print('| server | req/s | p50 ms | p99 ms | non-2xx |'); print('|---|---:|---:|---:|---:|')
med = {}
for name in servers:
    m = {k: statistics.median(r[k] for r in res[name]) for k in ('rps', 'p50', 'p99', 'non2xx')}; med[name] = m
    print(f"| {name} | {m['rps']:.0f} | {m['p50']:.1f} | {m['p99']:.1f} | {m['non2xx']:.0f} |")
a, b = med['mlops-nb serve /predict'], med['mlflow models serve /invocations']
print(f"\nthroughput {a['rps']/b['rps']:.1f}x mlflow models serve; p99 {b['p99']/a['p99']:.1f}x lower")
print(f"/predict/batch with 1,000-row batches: {statistics.median(res['batch_rows_per_s']):,.0f} rows/s")
