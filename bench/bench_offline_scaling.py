"""Offline store scaling: the embedded engine, DuckDB's ASOF JOIN and the Spark store (local[2]) from 1M entity rows up.

Run: .venv/bin/python bench/bench_offline_scaling.py [--sizes 1000000,5000000,10000000] [--feature-ratio 2] [--engines memory,duckdb,spark]
     [--spark-memory 6g]
For each size: one feature group (5 float features, `--feature-ratio` x as many feature rows as entity rows, ids drawn from
a tenth as many entities, times over 90 days, no ties) written by the embedded store (Parquet + its persisted key),
and an entity frame in a Parquet file. Each engine then runs in a fresh process (as a papermill job or a new kernel
would): read the entity frame, the point-in-time join with a 30-day TTL, the result written to Parquet (Spark: the join
and its write are one job; the session start is timed apart). Answers are checked: every engine's feature columns equal
the embedded engine's, row for row. Prints a table of seconds and ratios (engine / embedded) and the load average.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, textwrap, time
from pathlib import Path
import numpy as np, pandas as pd
ap = argparse.ArgumentParser()
ap.add_argument('--sizes', default='1000000,5000000,10000000', help='entity rows, comma-separated')
ap.add_argument('--feature-ratio', type=float, default=2.0, help='feature rows per entity row')
ap.add_argument('--engines', default='memory,duckdb,spark')
ap.add_argument('--spark-memory', default='6g', help="driver memory of the local[2] Spark (driver and executor in local mode)")
ap.add_argument('--dir', default=None, help='work folder (default: a temp folder, removed at the end)')
args = ap.parse_args()
XS = [f'x{i}' for i in range(5)]

WORKER = textwrap.dedent(r"""
    import json, os, sys, time, warnings
    warnings.filterwarnings('ignore')
    engine, store, ents_path, out_path, mem = sys.argv[1:6]
    import numpy as np, pandas as pd
    xs = [f'x{i}' for i in range(5)]
    res = {}
    if engine == 'memory':
        from mlops_nb.features.offline import OfflineFeatureStore
        t0 = time.perf_counter(); en = pd.read_parquet(ents_path)
        out = OfflineFeatureStore(store).get_historical_features(en, xs, ttl='30d')
        out[xs].to_parquet(out_path); res['join'] = time.perf_counter() - t0
    elif engine == 'duckdb':
        import duckdb
        t0 = time.perf_counter(); con = duckdb.connect()
        sel = ', '.join(f"CASE WHEN e.event_timestamp - f.event_timestamp <= INTERVAL 30 DAY THEN f.{x} END AS {x}" for x in xs)
        con.execute(f"COPY (SELECT {sel} FROM (SELECT *, file_row_number AS _row FROM read_parquet('{ents_path}', file_row_number=true)) e "
                    f"ASOF LEFT JOIN read_parquet('{store}/g/part-*.parquet') f ON e.entity_id = f.entity_id AND e.event_timestamp >= f.event_timestamp "
                    f"ORDER BY e._row) TO '{out_path}' (FORMAT parquet)")
        res['join'] = time.perf_counter() - t0
    else:
        os.environ.setdefault('PYSPARK_PYTHON', sys.executable)
        t0 = time.perf_counter()
        from pyspark.sql import SparkSession
        from mlops_nb.features.spark import SparkOfflineStore
        spark = (SparkSession.builder.master('local[2]').config('spark.driver.memory', mem).config('spark.ui.enabled', 'false')
                 .config('spark.sql.shuffle.partitions', '16').config('spark.sql.warehouse.dir', os.path.dirname(out_path) + '/warehouse').config('spark.sql.session.timeZone', 'UTC').getOrCreate())
        spark.sparkContext.setLogLevel('ERROR')
        spark.range(1).count(); res['session'] = time.perf_counter() - t0
        t0 = time.perf_counter()
        en = spark.read.parquet(ents_path)           # a Spark entity frame: its order is the files' order
        SparkOfflineStore(spark, store).get_historical_features(en, xs, ttl='30d').select(*xs).write.parquet(out_path)
        res['join'] = time.perf_counter() - t0
        spark.stop()
    print(json.dumps(res))
""")


def make(n_e:int, d:Path):
    "Write the feature group (embedded store, with its key) and the entity frame for `n_e` entity rows"
    from mlops_nb.features.offline import OfflineFeatureStore
    rng = np.random.default_rng(7)
    n_f = int(n_e * args.feature_ratio); n_ids = max(1, n_f // 10)
    t0 = pd.Timestamp('2026-01-01', tz='UTC').value // 1000
    # distinct (entity, time) pairs, so DuckDB's ASOF (which picks any of equal times) is comparable
    ent = rng.integers(0, n_ids, n_f); ts = rng.integers(0, 90 * 86400, n_f)
    key = np.unique(ent * (90 * 86400) + ts); ent, ts = key // (90 * 86400), key % (90 * 86400)
    perm = rng.permutation(len(key)); ent, ts = ent[perm], ts[perm]
    fe = pd.DataFrame({'entity_id': pd.array(ent.astype(str), dtype='str'), 'event_timestamp': pd.to_datetime(t0 + ts * 1_000_000, unit='us', utc=True),
                       **{x: rng.normal(size=len(key)) for x in XS}})
    t = time.perf_counter(); OfflineFeatureStore(d / 'store', compact_after=None).write('g', fe); t_write = time.perf_counter() - t
    n_rows = len(fe); del fe
    en = pd.DataFrame({'entity_id': pd.array(rng.integers(0, int(n_ids * 1.1), n_e).astype(str), dtype='str'),
                       'event_timestamp': pd.to_datetime(t0 + rng.integers(0, 90 * 86400, n_e) * 1_000_000, unit='us', utc=True),
                       'label': rng.integers(0, 2, n_e)})
    en.to_parquet(d / 'entities.parquet', row_group_size=1 << 20)
    return n_rows, t_write


def run(engine:str, d:Path)->dict:
    out = d / f'{engine}.parquet'
    worker = d / 'worker.py'; worker.write_text(WORKER)
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    load = os.getloadavg()[0]
    p = subprocess.run([sys.executable, str(worker), engine, str(d / 'store'), str(d / 'entities.parquet'), str(out), args.spark_memory],
                       capture_output=True, text=True, env=env, timeout=3600)
    if p.returncode != 0: return dict(error=p.stderr[-1500:], load=load)
    return {**json.loads(p.stdout.strip().splitlines()[-1]), 'load': load}


def same(d:Path, engine:str)->bool:
    a = pd.read_parquet(d / 'memory.parquet')[XS].to_numpy()
    b = pd.read_parquet(d / f'{engine}.parquet')[XS].to_numpy()      # Spark: a folder of part files, in the result's order
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


if __name__ == '__main__':
    engines = args.engines.split(',')
    rows = []
    base = Path(args.dir or tempfile.mkdtemp(prefix='mlops_nb_scaling_'))
    for n_e in [int(s) for s in args.sizes.split(',')]:
        d = base / f'n{n_e}'; d.mkdir(parents=True, exist_ok=True)
        n_f, t_write = make(n_e, d)
        r = {'entities': n_e, 'features': n_f, 'write': t_write}
        for eng in engines:
            r[eng] = run(eng, d)
            print(f"{n_e:,} x {n_f:,} {eng}: {r[eng]}", file=sys.stderr, flush=True)
        for eng in engines:
            if eng != 'memory' and 'memory' in engines and 'error' not in r[eng] and 'error' not in r['memory']: r[eng]['same'] = same(d, eng)
        rows.append(r)
        shutil.rmtree(d, ignore_errors=True)
    if not args.dir: shutil.rmtree(base, ignore_errors=True)
    fmt = lambda x: '-' if x is None else f'{x:.1f}'
    print(f"\npoint-in-time join, 5 float features, TTL 30 d, each engine in a fresh process, entity frame read from Parquet and the result written to Parquet; "
          f"{os.cpu_count()} cores shared, load average at start of each run in brackets\n")
    print('| entity rows | feature rows | embedded, s | DuckDB ASOF, s | Spark local[2] join, s (+ session start) | DuckDB / embedded | Spark / embedded | answers |')
    print('|---:|---:|---:|---:|---:|---:|---:|---|')
    for r in rows:
        m, k, s = r.get('memory', {}), r.get('duckdb', {}), r.get('spark', {})
        ratio = lambda x: f"{x['join'] / m['join']:.1f}x" if 'join' in x and 'join' in m else '-'
        ok = ', '.join(f"{e}: {'same' if r[e].get('same') else 'DIFFERENT' if 'same' in r[e] else 'n/a'}" for e in engines if e != 'memory')
        print(f"| {r['entities']:,} | {r['features']:,} | {fmt(m.get('join'))} [{m.get('load', 0):.1f}] | {fmt(k.get('join'))} [{k.get('load', 0):.1f}] | "
              f"{fmt(s.get('join'))} (+{fmt(s.get('session'))}) [{s.get('load', 0):.1f}] | {ratio(k)} | {ratio(s)} | {ok} |")
    for r in rows:
        for e in engines:
            if 'error' in r[e]: print(f"\n{r['entities']:,} {e} failed:\n{r[e]['error']}")
