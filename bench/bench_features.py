"""Feature store: online reads from Redis and point-in-time joins, against the usual ways, side by side.

Run: .venv/bin/python bench/bench_features.py [--entities 100000] [--batches 200] [--pit-entities 1000000] [--pit-features 5000000]
Online: 1,000 random entities x 10 float features out of 100,000 in the machine's Redis (own key prefix, deleted at
the end): ours (one MGET of msgpack values) against the seed's loop of one HGETALL per entity and a redis-py pipeline
of HMGETs, interleaved; p50/p99 per batch. Point in time: ours end to end (Parquet groups in a workspace, every entity
row kept, in order) against pandas `merge_asof` on the same frames in memory, results checked identical.
Feast is not run here (it pins pandas 2.3); see the closing note for its figures from PERF_ANCHORS.
"""
import argparse, os, statistics, tempfile, time, uuid
from pathlib import Path
import numpy as np, pandas as pd, redis
ap = argparse.ArgumentParser()
ap.add_argument('--entities', type=int, default=100_000); ap.add_argument('--batches', type=int, default=200)
ap.add_argument('--pit-entities', type=int, default=1_000_000); ap.add_argument('--pit-features', type=int, default=5_000_000)
args = ap.parse_args()
os.environ['MLOPS_NB_HOME'] = str(Path(tempfile.mkdtemp()) / 'ws')
from mlops_nb.features.online import OnlineFeatureStore
from mlops_nb.features.offline import OfflineFeatureStore

r = redis.Redis()
prefix = f'bench:{uuid.uuid4().hex[:8]}'
rng = np.random.default_rng(0)
feats = [f'f{i}' for i in range(10)]
vals = rng.normal(size=(args.entities, 10))
ids = [f'e{i}' for i in range(args.entities)]
try:
    store = OnlineFeatureStore(r, prefix=prefix)
    store.write_frame(pd.DataFrame(vals, columns=feats).assign(entity_id=ids))
    p = r.pipeline(transaction=False)
    for i, e in enumerate(ids): p.hset(f'{prefix}:hash:{e}', mapping=dict(zip(feats, vals[i].tolist())))
    p.execute()
    def seed_loop(batch):   # the seed's OnlineFeatureStore.get_features
        rows = []
        for e in batch:
            d = r.hgetall(f'{prefix}:hash:{e}'); rows.append({'entity_id': e, **{f: d.get(f.encode()) for f in feats}})
        return pd.DataFrame(rows)
    def pipelined_hmget(batch):
        p = r.pipeline(transaction=False)
        for e in batch: p.hmget(f'{prefix}:hash:{e}', feats)
        return pd.DataFrame([[float(x) if x is not None else np.nan for x in row] for row in p.execute()], columns=feats)
    ours = lambda batch: store.get_features(batch, feats)
    methods = {'mlops_nb get_features (MGET, msgpack)': ours, 'pipelined HMGET -> DataFrame': pipelined_hmget,
               "seed's loop of HGETALL": seed_loop}
    lat = {k: [] for k in methods}
    for b in range(args.batches):
        batch = [ids[i] for i in rng.choice(args.entities, 1000, replace=False)]
        for k, f in methods.items():
            if k.startswith('seed') and b % 5: continue           # the slow one every 5th batch
            t0 = time.perf_counter(); df = f(batch); lat[k].append(time.perf_counter() - t0)
        np.testing.assert_allclose(ours(batch)[feats].to_numpy(), vals[[int(e[1:]) for e in batch]])
    print(f"\nonline reads: 1,000 random entities x 10 floats of {args.entities:,}, per batch\n")
    print('| method | p50 ms | p99 ms | entities/s at p50 |'); print('|---|---:|---:|---:|')
    for k, v in lat.items():
        p50, p99 = np.percentile(v, 50) * 1000, np.percentile(v, 99) * 1000
        print(f'| {k} | {p50:.1f} | {p99:.1f} | {1000 / p50 * 1000:,.0f} |')
    o, s = np.percentile(lat['mlops_nb get_features (MGET, msgpack)'], 50), np.percentile(lat["seed's loop of HGETALL"], 50)
    print(f"\nours vs the seed's loop: {s / o:.0f}x")
finally:
    for pat in (f'{prefix}:*',):
        keys = list(r.scan_iter(match=pat, count=10_000))
        for i in range(0, len(keys), 10_000): r.delete(*keys[i:i + 10_000])

# point in time
n_e, n_f = args.pit_entities, args.pit_features
t0 = pd.Timestamp('2026-01-01', tz='UTC')
fe = pd.DataFrame({'entity_id': rng.integers(0, 100_000, n_f).astype(str), 'event_timestamp': t0 + pd.to_timedelta(rng.integers(0, 90 * 86400, n_f), unit='s'),
                   **{f'x{i}': rng.normal(size=n_f) for i in range(5)}})
fe['event_timestamp'] = fe.event_timestamp.astype('datetime64[us, UTC]')
en = pd.DataFrame({'entity_id': rng.integers(0, 100_000, n_e).astype(str), 'event_timestamp': (t0 + pd.to_timedelta(rng.integers(0, 90 * 86400, n_e), unit='s')).astype('datetime64[us, UTC]'),
                   'label': rng.integers(0, 2, n_e)})
off = OfflineFeatureStore(); off.write('g', fe)
xs = [f'x{i}' for i in range(5)]
tt, tm = [], []
for _ in range(3):
    t1 = time.perf_counter(); ours = off.get_historical_features(en, xs, ttl='30d'); tt.append(time.perf_counter() - t1)
    t1 = time.perf_counter()
    l = en.assign(_i=np.arange(n_e)).sort_values('event_timestamp', kind='stable'); rr = fe.sort_values('event_timestamp', kind='stable')
    ref = pd.merge_asof(l, rr, on='event_timestamp', by='entity_id', tolerance=pd.Timedelta('30d')).sort_values('_i')
    tm.append(time.perf_counter() - t1)
np.testing.assert_array_equal(ours[xs].to_numpy(), ref[xs].to_numpy())
assert len(ours) == n_e
print(f"\npoint-in-time join, {n_e:,} entity rows x {n_f:,} feature rows x 5 features, TTL 30 d, medians of 3\n")
print('| method | seconds |'); print('|---|---:|')
print(f'| mlops_nb get_historical_features, end to end (reads the Parquet group) | {statistics.median(tt):.2f} |')
print(f'| pandas merge_asof on the frames in memory (sort included) | {statistics.median(tm):.2f} |')
print('results identical, every entity row kept')
