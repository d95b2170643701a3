"""Serving one scikit-learn model: `mlops-nb serve` (/predict and /invocations) against `mlflow models serve`
(/invocations), one worker each, the same model, the same request and the same load generator (wrk), servers
alternated and their order reversed every round, each round reported (the machine is shared: the spread is the noise).

Run: .venv/bin/python bench/bench_serving.py [--seconds 15] [--rounds 2] [--threads 2] [--connections 2]
Needs wrk (Debian package `wrk`). /invocations gets MLflow's scoring protocol, `dataframe_split` with the column
names, one row per request, on both servers; /predict gets `{"features": [...]}`. Loopback only; every server is
stopped at the end (by process group). Also: rows/s through /predict/batch with 1,000-row batches.
`--profile`: a pyinstrument profile of our /invocations and /predict through the ASGI app in process (needs pyinstrument
importable, e.g. PYTHONPATH=DIR after `pip install --target DIR pyinstrument`). `--what-if [--fast-http DIR]`: /invocations
of our server with candidate changes patched in at start-up (no thread-pool hop; no predict_proba on /invocations; uvicorn
with uvloop + httptools from DIR, for both servers), interleaved with the stock servers: what each change would buy.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
import _httpbench
from _httpbench import free_port, wait_until_up, post_lua, inline_threadpool, asgi_post
ap = argparse.ArgumentParser()
ap.add_argument('--seconds', type=int, default=15); ap.add_argument('--rounds', type=int, default=2)
ap.add_argument('--threads', type=int, default=2); ap.add_argument('--connections', type=int, default=2)
ap.add_argument('--profile', action='store_true', help='profile our /invocations handler in process with pyinstrument, then exit')
ap.add_argument('--what-if', action='store_true', help='measure /invocations with candidate changes to the server patched in at start-up, then exit')
ap.add_argument('--fast-http', default=None, help='--what-if: a directory holding uvloop and httptools (pip install --target DIR uvloop httptools)')
args = ap.parse_args()
if not shutil.which('wrk') and not args.profile: sys.exit('wrk is not installed: apt-get install wrk')
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
row = X.iloc[0].tolist()
split_body = json.dumps({'dataframe_split': {'columns': list(X.columns), 'data': [row]}})

if args.profile:       # where our /invocations time goes, through the whole ASGI app, every part on this thread
    import asyncio
    from pyinstrument import Profiler
    inline_threadpool()                                         # the handler's worker-thread hop, done inline so it is sampled
    from mlops_nb.models.serving import create_app
    app = create_app('bench', reload_interval=0)
    async def loop(path, body, n):
        for _ in range(n): await asgi_post(app, path, body)
    for path, body in (('/invocations', split_body.encode()), ('/predict', json.dumps({'features': row}).encode())):
        asyncio.run(loop(path, body, 200))                     # warm-up
        t0 = time.perf_counter(); asyncio.run(loop(path, body, 2000)); dt = (time.perf_counter() - t0) / 2000
        print(f'{path}: {dt*1e3:.3f} ms per request in process (ASGI app, no HTTP server, no threadpool hop)')
        p = Profiler(interval=0.0002); p.start(); asyncio.run(loop(path, body, 2000)); p.stop()
        (tmp / f'profile{path.replace("/", "_")}.txt').write_text(p.output_text(unicode=False, color=False, show_all=False))
        print(p.output_text(unicode=False, color=False))
    sys.exit(0)

bin_ = Path(sys.executable).parent
env = {**os.environ, 'MLFLOW_TRACKING_URI': tr.tracking_uri, 'MLFLOW_REGISTRY_URI': tr.tracking_uri,
       'PATH': f"{bin_}:{os.environ.get('PATH', '')}"}   # mlflow models serve runs 'uvicorn' from PATH
servers = {   # server -> the (name, path, body) loads it gets
    'mlops-nb serve': dict(cmd=lambda p: [str(bin_/'mlops-nb'), 'serve', 'bench', '--port', str(p)], ready='/ready',
                           loads=[('mlops-nb serve /invocations (dataframe_split)', '/invocations', split_body),
                                  ('mlops-nb serve /predict', '/predict', json.dumps({'features': row}))]),
    'mlflow models serve': dict(cmd=lambda p: [str(bin_/'mlflow'), 'models', 'serve', '-m', 'models:/bench/1', '-h', '127.0.0.1',
                                               '-p', str(p), '--env-manager', 'local'], ready='/ping',
                                loads=[('mlflow models serve /invocations (dataframe_split)', '/invocations', split_body)]),
}

def run_wrk(url, body, seconds):
    return _httpbench.run_wrk(url, seconds, post_lua(body), tmp, args.threads, args.connections)


LAUNCH = """
import os, sys, warnings
patches = sys.argv[1].split(',')
if 'inline' in patches:          # parse + predict on the event loop, no hop to a worker thread
    import starlette.concurrency
    async def inline(f, *a, **k): return f(*a, **k)
    starlette.concurrency.run_in_threadpool = inline
if 'noproba' in patches:         # scikit-learn's predict only (MLflow's scoring answer has no probabilities)
    from mlops_nb.models import serving
    orig = serving.LoadedModel.predict
    def predict(self, X, params=None):
        if self.kind != 'sklearn': return orig(self, X, params)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            return self.model.predict(X), None
    serving.LoadedModel.predict = predict
import uvicorn
from mlops_nb.config import settings_env
os.environ.update(settings_env()); os.environ.update(MLOPS_NB_SERVE_MODEL='bench', MLOPS_NB_SERVE_ALIAS='champion', MLOPS_NB_SERVE_RELOAD='5')
uvicorn.run('mlops_nb.models.serving:app_from_env', factory=True, host='127.0.0.1', port=int(sys.argv[2]), log_level='warning', access_log=False)
"""
if args.what_if:
    (tmp / 'launch.py').write_text(LAUNCH)
    fast = {'PYTHONPATH': args.fast_http} if args.fast_http else None
    ours = lambda patches: lambda p: [sys.executable, str(tmp / 'launch.py'), patches, str(p)]
    variants = [('ours, as is', ours('none'), '/ready', None), ('ours, no thread-pool hop', ours('inline'), '/ready', None),
                ('ours, no predict_proba', ours('noproba'), '/ready', None),
                ('ours, no hop + no predict_proba', ours('inline,noproba'), '/ready', None)]
    if fast: variants += [('ours, no hop + no predict_proba + uvloop/httptools', ours('inline,noproba'), '/ready', fast),
                          ('ours, as is + uvloop/httptools', ours('none'), '/ready', fast)]
    variants += [('mlflow models serve, as is', servers['mlflow models serve']['cmd'], '/ping', None)]
    if fast: variants += [('mlflow models serve + uvloop/httptools', servers['mlflow models serve']['cmd'], '/ping', fast)]
    wres = {v[0]: [] for v in variants}
    for rnd in range(args.rounds):
        for name, cmd, ready, extra in (variants if rnd % 2 == 0 else variants[::-1]):
            p = free_port(); log = open(tmp / f'whatif-{rnd}-{len(wres[name])}-{abs(hash(name))}.log', 'wb')
            proc = subprocess.Popen(cmd(p), env={**env, **(extra or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)
            try:
                wait_until_up(f'http://127.0.0.1:{p}{ready}', proc, timeout=120)
                run_wrk(f'http://127.0.0.1:{p}/invocations', split_body, 3)
                r = run_wrk(f'http://127.0.0.1:{p}/invocations', split_body, args.seconds); wres[name].append(r)
                print(f'round {rnd}: {name}: {r}', file=sys.stderr, flush=True)
            except Exception:
                print(open(log.name).read()[-3000:], file=sys.stderr); raise
            finally:
                if proc.poll() is None: os.killpg(proc.pid, signal.SIGTERM); proc.wait(20)
    print(f"\n/invocations (dataframe_split, 1 row), one worker, wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
          f"{args.rounds} rounds (order reversed each round); 2 shared cores, each round shown\n")
    print('| server | req/s per round | p50 ms per round | p99 ms per round | x mlflow as is (median req/s) |'); print('|---|---:|---:|---:|---:|')
    base = statistics.median(r['rps'] for r in wres['mlflow models serve, as is'])
    for name, rs in wres.items():
        f = lambda k, d: ' / '.join(f'{r[k]:.{d}f}' for r in rs)
        print(f"| {name} | {f('rps', 0)} | {f('p50', 1)} | {f('p99', 1)} | {statistics.median(r['rps'] for r in rs)/base:.1f}x |")
    sys.exit(0)

names = [n for s in servers.values() for n, _, _ in s['loads']]
res, batch_rps, answers = {n: [] for n in names}, [], {}
for rnd in range(args.rounds):
    for sname in (list(servers) if rnd % 2 == 0 else list(servers)[::-1]):
        s, p = servers[sname], free_port()
        log = open(tmp / f'server-{rnd}-{len(sname)}.log', 'wb')
        proc = subprocess.Popen(s['cmd'](p), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)
        try:
            wait_until_up(f'http://127.0.0.1:{p}{s["ready"]}', proc, timeout=120)
            answers[sname] = json.load(urllib.request.urlopen(urllib.request.Request(
                f'http://127.0.0.1:{p}/invocations', data=split_body.encode(), headers={'Content-Type': 'application/json'})))
            for name, path, body in s['loads']:
                run_wrk(f'http://127.0.0.1:{p}{path}', body, 3)      # warm-up
                r = run_wrk(f'http://127.0.0.1:{p}{path}', body, args.seconds); res[name].append(r)
                print(f'round {rnd}: {name}: {r}', file=sys.stderr, flush=True)
            if sname == 'mlops-nb serve':
                batch = json.dumps({'instances': X.head(1000).values.tolist()}).encode()
                t0 = time.perf_counter(); n = 0
                while time.perf_counter() - t0 < 3:
                    req = urllib.request.Request(f'http://127.0.0.1:{p}/predict/batch', data=batch, headers={'Content-Type': 'application/json'})
                    assert len(json.load(urllib.request.urlopen(req))['predictions']) == 1000; n += 1000
                batch_rps.append(n / (time.perf_counter() - t0))
        except Exception:
            print(open(log.name).read()[-3000:], file=sys.stderr); raise
        finally:
            if proc.poll() is None: os.killpg(proc.pid, signal.SIGTERM); proc.wait(20)
assert answers['mlops-nb serve'] == answers['mlflow models serve'], answers     # the same answer to the same request

print(f"\nLogisticRegression (20 features), one row per request, one server worker each; wrk -t{args.threads} -c{args.connections} "
      f"-d{args.seconds}s, {args.rounds} rounds, server order reversed each round. The machine has 2 cores shared with other "
      f"work (wrk and the server share them too): each round is shown, the spread is the noise.\n")
print('| endpoint | req/s per round | p50 ms per round | p99 ms per round | median req/s | median p50 | median p99 | non-2xx |')
print('|---|---:|---:|---:|---:|---:|---:|---:|')
med = {}
for name in names:
    rs = res[name]; m = {k: statistics.median(r[k] for r in rs) for k in ('rps', 'p50', 'p99')}; med[name] = m
    f = lambda k, d: ' / '.join(f'{r[k]:.{d}f}' for r in rs)
    print(f"| {name} | {f('rps', 0)} | {f('p50', 1)} | {f('p99', 1)} | {m['rps']:.0f} | {m['p50']:.1f} | {m['p99']:.1f} | {sum(r['non2xx'] for r in rs)} |")
b = med['mlflow models serve /invocations (dataframe_split)']
print('\n| ours vs `mlflow models serve` /invocations | throughput ratio (median; per round) | p50 ratio | p99 ratio |')
print('|---|---:|---:|---:|')
ref = res['mlflow models serve /invocations (dataframe_split)']
for name in names[:2]:
    a = med[name]; per = ' / '.join(f"{x['rps']/y['rps']:.1f}x" for x, y in zip(res[name], ref))
    print(f"| {name} | {a['rps']/b['rps']:.1f}x ({per}) | {b['p50']/a['p50']:.1f}x lower | {b['p99']/a['p99']:.1f}x lower |")
print(f"\n/predict/batch with 1,000-row batches: {statistics.median(batch_rps):,.0f} rows/s (median of {len(batch_rps)})")
print(f"load average (1 min) during the runs: {min(r['load'] for n in names for r in res[n]):.1f}-{max(r['load'] for n in names for r in res[n]):.1f}")
