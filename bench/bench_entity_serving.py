"""One prediction by entity id, features from Redis: `mlops-nb serve` (`POST /predict {"entities": [id]}`, one hop) against
the two-hop path a client builds without it (read the online store, then call `mlflow models serve`), and against
Feast's feature server plus `mlflow models serve` (two HTTP hops), side by side in one run.

Run: .venv/bin/python bench/bench_entity_serving.py [--seconds 15] [--rounds 2] [--clients 2] [--entities 20000]
     [--feast-python /tmp/feastvenv/bin/python]
The same LogisticRegression (20 float features) everywhere, the same entities (random ids out of `--entities`, written
to the machine's Redis at 127.0.0.1:6379 under our own key prefix, and by Feast under its own project; every key is deleted
at the end). Every path is driven by the same closed-loop Python client (`--clients` processes, one request in flight
each, keep-alive connections; the client's own time is part of every path alike), paths interleaved and their order
reversed every round; p50/p99 per round. Ours is also loaded with wrk (`-t2 -c2`, a Lua script picking a random id
per request). The two-hop client reads Redis directly (one GET of the msgpack value `OnlineFeatureStore` wrote, the
cheapest read there is), then POSTs `dataframe_split` to `/invocations`. Feast 0.67 (pandas < 3) runs in its own
environment (`python3 -m venv /tmp/feastvenv && /tmp/feastvenv/bin/pip install 'feast[redis]'`, as for
bench_features.py): `feast serve` (one worker, access log off, `--max-requests` raised so its default recycling of the
worker every 1,000 requests does not count against it); without that environment the Feast rows are skipped.
Before timing, every path must give the same prediction for the same entities. Servers bind 127.0.0.1 and are stopped
at the end (by process group). `--skip-ours` measures the baselines only (before the entity API exists).
`--pipeline`: the served model is Pipeline(FeatureEngineeringPipeline, LogisticRegression) on raw values (issue #13 item 4),
on every path. `--profile`: a pyinstrument profile of our entity path in process (needs pyinstrument importable, e.g.
PYTHONPATH=DIR after `pip install --target DIR pyinstrument`). (The `--what-if` patch of the entity path measured in
issue #13 — the model input built on the feature pipeline's one-row path, without pandas — is now the server's own code.)
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, textwrap, time, uuid
from pathlib import Path
import _httpbench
from _httpbench import free_port, start_server, inline_threadpool, asgi_post
ap = argparse.ArgumentParser()
ap.add_argument('--seconds', type=int, default=15); ap.add_argument('--rounds', type=int, default=2)
ap.add_argument('--clients', type=int, default=2, help='client processes, one request in flight each')
ap.add_argument('--entities', type=int, default=20_000)
ap.add_argument('--feast-python', default='/tmp/feastvenv/bin/python', help="python of an environment with 'feast[redis]' (pandas < 3)")
ap.add_argument('--pipeline', action='store_true', help="the served model is Pipeline([FeatureEngineeringPipeline (standardise, impute the mean), LogisticRegression]) on raw values, on every path")
ap.add_argument('--skip-ours', action='store_true', help='only the two-hop and Feast baselines')
ap.add_argument('--redis', default='redis://127.0.0.1:6379/0')
ap.add_argument('--profile-requests', type=int, default=1000)
ap.add_argument('--profile', action='store_true', help='profile our entity path in process with pyinstrument (the ASGI app, every part on one thread), then exit')
args = ap.parse_args()
tmp = Path(tempfile.mkdtemp()); home = tmp / 'ws'
os.environ['MLOPS_NB_HOME'] = str(home)
os.environ['MLOPS_NB_ONLINE_STORE'] = args.redis          # the online store the server reads entities from, and its key prefix
import numpy as np, pandas as pd, redis
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from mlops_nb.tracking import ExperimentTracker
from mlops_nb.models.registry import ModelRegistry
from mlops_nb.features.online import OnlineFeatureStore

run_id = uuid.uuid4().hex[:8]
GROUP, PREFIX = 'g', f'bench_entity:{run_id}'          # our keys: <PREFIX>:g:<id>, deleted at the end
FEAST_PROJECT = f'bench_entity_{run_id}'
cols = [f'f{i}' for i in range(20)]
X, y = make_classification(10_000 + args.entities, 20, random_state=0)
train = pd.DataFrame(X[:10_000], columns=cols)
ents = pd.DataFrame(X[10_000:], columns=cols); ents.insert(0, 'entity_id', [f'u{i}' for i in range(args.entities)])

os.environ['MLOPS_NB_ONLINE_PREFIX'] = PREFIX
online = OnlineFeatureStore(args.redis, group=GROUP, prefix=PREFIX)
t0 = time.perf_counter(); online.write_frame(ents, ttl=None); print(f'ours: wrote {len(ents):,} entities to Redis in {time.perf_counter()-t0:.1f} s', file=sys.stderr)
r = redis.Redis.from_url(args.redis)

def cleanup():
    for pat in (f'{PREFIX}:*', f'*{FEAST_PROJECT}*'):
        keys = list(r.scan_iter(match=pat, count=10_000))
        for i in range(0, len(keys), 10_000): r.delete(*keys[i:i + 10_000])

procs = []
def stop_all():
    for p in procs:
        if p.poll() is None:
            try: os.killpg(p.pid, signal.SIGTERM); p.wait(20)
            except Exception: pass
    cleanup()
import atexit; atexit.register(stop_all)                  # the keys and the servers go, whatever happens below

# ---- the model, registered; ours also needs its lineage to name the online features (see setup_ours)
tr = ExperimentTracker(experiment_name='bench-entity-serving')
if args.pipeline:         # the fitted feature pipeline travels with the model (issue #13 item 4); every path sends raw values
    from sklearn.pipeline import Pipeline
    from mlops_nb.features.pipeline import FeatureEngineeringPipeline, serving_signature
    fep = FeatureEngineeringPipeline({'features': [{'name': c, 'transform': 'standard', 'impute': 'mean'} for c in cols]})
    model = Pipeline([('features', fep), ('model', LogisticRegression(max_iter=1000))]).fit(train, y[:10_000])
    log_kw = dict(signature=serving_signature(model, train.head(5)), input_example=train.head(2))
else:
    model = LogisticRegression(max_iter=1000).fit(train, y[:10_000])
    log_kw = dict(input_example=train.head(3))

def setup_ours():
    "Log and register the model with the lineage the entity path reads: its features come from online group GROUP"
    from mlops_nb.lineage import log_training_set
    ts = train.assign(entity_id=[f't{i}' for i in range(len(train))], event_timestamp=pd.Timestamp('2026-01-01', tz='UTC'), label=y[:10_000])
    with tr.run('logreg'):
        info = tr.log_model(model, 'model', **log_kw)
        log_training_set(ts, tracker=tr, source='bench', online_features=GROUP, pipeline=model.named_steps['features'] if args.pipeline else None)
    return info

def setup_plain():
    with tr.run('logreg'): return tr.log_model(model, 'model', **log_kw)

info = setup_plain() if args.skip_ours else setup_ours()
reg = ModelRegistry(name='bench_entity'); reg.register_model('v1', info.model_uri); reg.set_current_version('v1')



if args.profile:
    import asyncio, random
    from pyinstrument import Profiler
    inline_threadpool()                                         # the handler's worker-thread hop, done inline so it is sampled
    from mlops_nb.models.serving import create_app
    app = create_app('bench_entity', reload_interval=0, online_store=args.redis, online_prefix=PREFIX)
    rng = random.Random(0)
    async def loop(n):
        for _ in range(n): await asgi_post(app, '/predict', json.dumps({'entities': [f'u{rng.randrange(args.entities)}']}).encode())
    asyncio.run(loop(min(200, args.profile_requests)))
    n = args.profile_requests
    for _ in range(2):
        t0 = time.perf_counter(); asyncio.run(loop(n)); print(f'/predict by entity: {(time.perf_counter()-t0)/n*1e3:.3f} ms per request in process')
    p = Profiler(interval=0.0002); p.start(); asyncio.run(loop(n)); p.stop()
    print(p.output_text(unicode=False, color=False))
    sys.exit(0)

def start(name, cmd, env, ready):
    return start_server(name, cmd, env, ready, tmp, procs, any_status=True)

# ---- Feast: a feature repo (file source, Redis online store), the same entities written by Feast itself
FEAST_SETUP = textwrap.dedent(r"""
    import json, sys, time, warnings
    from datetime import timedelta
    from pathlib import Path
    import pandas as pd
    warnings.filterwarnings('ignore')
    from feast import Entity, FeatureView, Field, FileSource, FeatureStore
    from feast.types import Float64, String
    from feast.value_type import ValueType
    task = json.loads(Path(sys.argv[1]).read_text())
    store = FeatureStore(repo_path=task['repo'])
    ent = Entity(name='entity', join_keys=['entity_id'], value_type=ValueType.STRING)
    src = FileSource(path=task['parquet'], timestamp_field='event_timestamp')
    fv = FeatureView(name='g', entities=[ent], ttl=timedelta(days=3650), online=True, source=src,
                     schema=[Field(name='entity_id', dtype=String), *[Field(name=f, dtype=Float64) for f in task['features']]])
    store.apply([ent, fv])
    df = pd.read_parquet(task['parquet'])
    t0 = time.perf_counter(); store.write_to_online_store('g', df); print(json.dumps({'write_s': time.perf_counter() - t0}))
""")

def setup_feast():
    if not Path(args.feast_python).exists():
        print(f'Feast environment {args.feast_python} not found: the Feast rows are skipped', file=sys.stderr); return None
    repo = tmp / 'feast_repo'; repo.mkdir()
    (repo / 'feature_store.yaml').write_text(textwrap.dedent(f"""\
        project: {FEAST_PROJECT}
        registry: {repo / 'registry.db'}
        provider: local
        online_store:
          type: redis
          connection_string: "127.0.0.1:6379"
        entity_key_serialization_version: 3
        """))
    pq = tmp / 'entities.parquet'
    ents.assign(event_timestamp=pd.Timestamp('2026-01-01', tz='UTC')).to_parquet(pq)
    (tmp / 'feast_setup.py').write_text(FEAST_SETUP)
    (tmp / 'feast_task.json').write_text(json.dumps(dict(repo=str(repo), parquet=str(pq), features=cols)))
    out = subprocess.run([args.feast_python, str(tmp / 'feast_setup.py'), str(tmp / 'feast_task.json')], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0: print('Feast setup failed:', out.stderr[-3000:], file=sys.stderr); return None
    print(f"feast: wrote {len(ents):,} entities to Redis in {json.loads(out.stdout.strip().splitlines()[-1])['write_s']:.1f} s", file=sys.stderr)
    p = free_port()
    feast_bin = str(Path(args.feast_python).parent / 'feast')
    start('feast', [feast_bin, '-c', str(repo), 'serve', '-h', '127.0.0.1', '-p', str(p), '--no-access-log', '-w', '1',
                    '--max-requests', '1000000'], {**os.environ, 'PATH': f"{Path(args.feast_python).parent}:{os.environ['PATH']}"},
          f'http://127.0.0.1:{p}/health')
    return p

# ---- the closed-loop client: one process per connection, one request in flight, latencies of whole predictions
CLIENT = textwrap.dedent(r"""
    import http.client, json, random, sys, time
    import msgpack, redis
    cfg = json.loads(sys.argv[1]); kind, cols, n = cfg['kind'], cfg['cols'], cfg['entities']
    rng = random.Random(cfg['seed'])
    def post(c, path, body):
        c.request('POST', path, body, {'Content-Type': 'application/json'}); resp = c.getresponse(); data = resp.read()
        if resp.status != 200: raise SystemExit(f'{kind} {path}: HTTP {resp.status}: {data[:400]!r}')
        return json.loads(data)
    conn = lambda port: http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    if kind.startswith('ours'): ours = conn(cfg[kind + '_port'])
    else: mlf = conn(cfg['mlflow_port'])
    if kind == 'twohop': rc = redis.Redis.from_url(cfg['redis']); prefix = cfg['key_prefix']
    if kind == 'feast': fst = conn(cfg['feast_port']); refs = [f'g:{c}' for c in cols]
    def predict(e):
        if kind.startswith('ours'): return post(ours, '/predict', json.dumps({'entities': [e]}))['prediction']
        if kind == 'twohop':
            v = msgpack.unpackb(rc.get(prefix + e))
            row = [v[c] for c in cols]
        else:
            fo = post(fst, '/get-online-features', json.dumps({'features': refs, 'entities': {'entity_id': [e]}}))
            got = {k: res['values'][0] for k, res in zip(fo['metadata']['feature_names'], fo['results'])}
            row = [got[c] for c in cols]
        return post(mlf, '/invocations', json.dumps({'dataframe_split': {'columns': cols, 'data': [row]}}))['predictions'][0]
    if cfg.get('check'): print(json.dumps([predict(e) for e in cfg['check']])); sys.exit(0)
    for _ in range(20): predict(f'u{rng.randrange(n)}')       # connections open, caches warm
    lat, end = [], time.perf_counter() + cfg['seconds']
    while True:
        e = f'u{rng.randrange(n)}'
        t0 = time.perf_counter(); predict(e); t1 = time.perf_counter()
        if t1 > end: break
        lat.append(t1 - t0)
    print(json.dumps(lat))
""")
(tmp / 'client.py').write_text(CLIENT)

def run_clients(kind, cfg, seconds):
    ps = [subprocess.Popen([sys.executable, str(tmp / 'client.py'), json.dumps({**cfg, 'kind': kind, 'seconds': seconds, 'seed': i})],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(args.clients)]
    lat = []
    for p in ps:
        out, err = p.communicate(timeout=seconds + 120)
        if p.returncode != 0: raise RuntimeError(f'{kind} client failed: {err[-2000:]}')
        lat += json.loads(out)
    a = np.asarray(lat) * 1e3
    return dict(n=len(a), rps=len(a) / seconds, p50=float(np.percentile(a, 50)), p99=float(np.percentile(a, 99)), load=os.getloadavg()[0])

def run_wrk(url, seconds):
    return _httpbench.run_wrk(url, seconds, textwrap.dedent(f"""\
        math.randomseed(7)
        request = function()
          return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, '{{"entities": ["u' .. math.random(0, {args.entities - 1}) .. '"]}}')
        end
        """), tmp)

try:
    bin_ = Path(sys.executable).parent
    env = {**os.environ, 'MLFLOW_TRACKING_URI': tr.tracking_uri, 'MLFLOW_REGISTRY_URI': tr.tracking_uri, 'PATH': f"{bin_}:{os.environ.get('PATH', '')}"}
    pm = free_port()
    start('mlflow', [str(bin_/'mlflow'), 'models', 'serve', '-m', 'models:/bench_entity/1', '-h', '127.0.0.1', '-p', str(pm), '--env-manager', 'local'],
          env, f'http://127.0.0.1:{pm}/ping')
    cfg = dict(cols=cols, entities=args.entities, mlflow_port=pm, redis=args.redis, key_prefix=online.backend._key(GROUP, ''))
    paths = {'two-hop: Redis GET, then mlflow models serve /invocations': 'twohop'}
    if not args.skip_ours:
        po = free_port()
        start('ours', [str(bin_/'mlops-nb'), 'serve', 'bench_entity', '--port', str(po)], env, f'http://127.0.0.1:{po}/ready')
        cfg['ours_port'] = po
        paths = {'mlops-nb serve /predict {"entities": [id]}': 'ours', **paths}
    pf = setup_feast()
    if pf: cfg['feast_port'] = pf; paths['Feast feature server, then mlflow models serve /invocations'] = 'feast'

    # the same answer from every path, for the same entities
    check = [f'u{i}' for i in range(0, args.entities, max(1, args.entities // 10))]
    def ask(kind):
        out = subprocess.run([sys.executable, str(tmp / 'client.py'), json.dumps({**cfg, 'kind': kind, 'seconds': 0, 'seed': 0, 'check': check})],
                             capture_output=True, text=True)
        if out.returncode != 0: raise RuntimeError(f'{kind}: {out.stderr[-2000:]}')
        return json.loads(out.stdout)
    answers = {k: ask(k) for k in paths.values()}
    assert all(a == answers['twohop'] for a in answers.values()), answers
    expected = model.predict(ents.set_index('entity_id').loc[check, cols]).tolist()
    assert answers['twohop'] == expected, (answers['twohop'], expected)

    res = {k: [] for k in paths}
    wrk_name = 'mlops-nb serve /predict {"entities": [id]}, wrk -t2 -c2'
    if not args.skip_ours and shutil.which('wrk'): res[wrk_name] = []
    for rnd in range(args.rounds):
        order = list(paths) if rnd % 2 == 0 else list(paths)[::-1]
        for name in order:
            run_clients(paths[name], cfg, 3)                           # warm-up
            x = run_clients(paths[name], cfg, args.seconds); res[name].append(x)
            print(f'round {rnd}: {name}: {x}', file=sys.stderr, flush=True)
        if not args.skip_ours and shutil.which('wrk'):
            url = f"http://127.0.0.1:{cfg['ours_port']}/predict"
            run_wrk(url, 3); x = run_wrk(url, args.seconds); res[wrk_name].append(x)
            print(f'round {rnd}: {wrk_name}: {x}', file=sys.stderr, flush=True)
finally:
    stop_all()

what = 'Pipeline(FeatureEngineeringPipeline, LogisticRegression), 20 raw float features' if args.pipeline else 'LogisticRegression, 20 float features'
print(f"\nOne prediction by entity id ({what}; {args.entities:,} entities in Redis, a random one per "
      f"request), one server worker each; {args.clients} closed-loop Python clients (one request in flight each, keep-alive), "
      f"{args.seconds} s per run, {args.rounds} rounds, paths interleaved, order reversed each round. The machine has 2 cores shared "
      f"with other work (clients, servers and Redis share them too): each round is shown, the spread is the noise.\n")
print('| path | req/s per round | p50 ms per round | p99 ms per round | median p50 | median p99 |'); print('|---|---:|---:|---:|---:|---:|')
med = {}
for name, rs in res.items():
    med[name] = {k: statistics.median(x[k] for x in rs) for k in ('rps', 'p50', 'p99')}
    f = lambda k, d: ' / '.join(f'{x[k]:.{d}f}' for x in rs)
    print(f"| {name} | {f('rps', 0)} | {f('p50', 2)} | {f('p99', 2)} | {med[name]['p50']:.2f} | {med[name]['p99']:.2f} |")
ours = next((n for n in paths if paths[n] == 'ours'), None)
mine = [n for n in paths if paths[n].startswith('ours')]
others = [n for n in paths if not paths[n].startswith('ours')]
if mine:
    print('\n| baseline | ' + ' | '.join(f'{n}: p50 / p99 / req/s, x better' for n in mine) + ' |'); print('|---|' + '---:|' * len(mine))
    for name in others:
        b = med[name]
        print(f'| {name} | ' + ' | '.join(f"{b['p50']/med[n]['p50']:.1f}x / {b['p99']/med[n]['p99']:.1f}x / {med[n]['rps']/b['rps']:.1f}x" for n in mine) + ' |')
    print('(ratios of medians; above 1: ours is faster, below 1: slower)')
for n in mine:
    via_wrk = f"; {med[wrk_name]['p99']:.1f} ms with wrk" if n == ours and res.get(wrk_name) else ''
    print(f"\ntarget p99 <= 15 ms, {n}: {'met' if med[n]['p99'] <= 15 else 'NOT met'} (median {med[n]['p99']:.1f} ms, Python client{via_wrk})")
print(f"load average (1 min) during the runs: {min(x['load'] for rs in res.values() for x in rs):.1f}-{max(x['load'] for rs in res.values() for x in rs):.1f}")
