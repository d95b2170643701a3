"""The feature stores against real Redis and real processes: typed values, TTLs, pipelined bulk writes, errors that hide passwords;
materialisation with late data; writers killed with SIGKILL or racing to create a group; compaction under concurrent readers"""
import os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, redis
from mlops_nb.features.online import OnlineFeatureStore, materialize
from mlops_nb.features.offline import OfflineFeatureStore


def test_redis_store_by_url_roundtrips_types_and_ttls(redis_url, redis_prefix):
    s = OnlineFeatureStore(redis_url, prefix=redis_prefix.rstrip(':'), ttl='2h')
    n = s.write_frame(pd.DataFrame({'entity_id': [f'e{i}' for i in range(3000)], 'x': np.arange(3000.0),
                                    'n': np.arange(3000), 'tier': ['gold', 'silver', None] * 1000}))
    assert n == 3000
    got = s.get_features(['e2', 'missing', 'e0', 'e1'], ['x', 'n', 'tier'])
    assert got.entity_id.tolist() == ['e2', 'missing', 'e0', 'e1']
    assert got.x.tolist()[2:] == [0.0, 1.0] and got.n.tolist()[2:] == [0, 1]
    assert got.tier[2] == 'gold' and got.tier[3] == 'silver' and got.tier.isna()[[0, 1]].all()
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=redis_prefix + '*'))
    assert len(keys) == 3000 and 7000 < r.ttl(keys[0]) <= 7200
    s.write_features('e0', {'x': 5.5})                     # the seed's call merges into what the entity had
    assert s.get_features(['e0'], ['x', 'tier']).iloc[0].tolist() == ['e0', 5.5, 'gold']


def test_redis_errors_name_the_host_not_the_password(redis_url, tmp_path):
    "A Redis of our own that requires a password refuses a wrong one; the error names the host, never the password"
    import shutil, subprocess, time
    from conftest import free_port, stop_process
    if not shutil.which('redis-server'):
        from conftest import service_missing; service_missing('redis-server binary', 'apt-get install redis-server')
    port = free_port()
    proc = subprocess.Popen(['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '', '--requirepass', 'right-one',
                             '--dir', str(tmp_path)], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(50):
            try: redis.Redis(port=port, password='right-one').ping(); break
            except redis.ConnectionError: time.sleep(0.1)
        with pytest.raises(ConnectionError) as e: OnlineFeatureStore(f'redis://:hunter2@127.0.0.1:{port}/0')
        assert 'hunter2' not in str(e.value) and f'127.0.0.1:{port}' in str(e.value) and 'refused the credentials' in str(e.value)
        ok = OnlineFeatureStore(f'redis://:right-one@127.0.0.1:{port}/0')
        ok.write_features('e', {'x': 1.0}); assert ok.get_features(['e'], ['x']).x[0] == 1.0
        assert 'right-one' not in repr(ok)
    finally: stop_process(proc)
    with pytest.raises(ConnectionError, match=r"Can't reach Redis at redis://127.0.0.1:1/0"): OnlineFeatureStore('redis://127.0.0.1:1/0')


def test_materialize_into_redis_incrementally(workspace, redis_url, redis_prefix):
    off = OfflineFeatureStore()
    t0 = pd.Timestamp('2026-03-01', tz='UTC')
    off.write('stats', pd.DataFrame({'entity_id': ['a', 'b', 'a'], 'event_timestamp': t0 + pd.to_timedelta([0, 1, 2], unit='h'),
                                     'amount': [1.0, 2.0, 3.0]}))
    on = OnlineFeatureStore(redis_url, prefix=redis_prefix.rstrip(':'))
    assert materialize(off, on, 'stats') == 2 and materialize(off, on, 'stats') == 0
    off.write('stats', pd.DataFrame({'entity_id': ['b'], 'event_timestamp': [t0 + pd.Timedelta(hours=5)], 'amount': [9.0]}))
    assert materialize(off, on, 'stats') == 1
    assert on.get_features(['a', 'b'], ['amount'], group='stats').amount.tolist() == [3.0, 9.0]


def test_two_processes_registering_at_once_lose_nothing(workspace, tmp_path):
    import os, subprocess, sys
    code = ("import sys\nfrom mlops_nb.features.registry import FeatureRegistry\nr = FeatureRegistry()\n"
            "for i in range(25): r.register_feature('f', f'SELECT {sys.argv[1]} + {i} AS x')\n")
    env = {**os.environ, 'MLOPS_NB_HOME': str(workspace.home)}
    procs = [subprocess.Popen([sys.executable, '-c', code, str(k * 1000)], env=env, cwd=tmp_path) for k in (1, 2)]
    assert all(p.wait(120) == 0 for p in procs)
    from mlops_nb.features.registry import FeatureRegistry
    vs = FeatureRegistry().versions('f')
    assert [v.version for v in vs] == list(range(1, 51))
    assert len({v.computation_logic for v in vs}) == 50


# ---------------------------------------------------------------- hardening: writers killed or racing, late data, small files, TTLs
ROOT = Path(__file__).resolve().parents[1]


def _py(code, *args, env=None):
    return subprocess.Popen([sys.executable, '-c', code, *map(str, args)], env={**os.environ, 'PYTHONPATH': str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


_BIG_WRITER = """
import sys, numpy as np, pandas as pd
from mlops_nb.features.offline import OfflineFeatureStore
s = OfflineFeatureStore(sys.argv[1]); n = int(sys.argv[2])
df = pd.DataFrame({'entity_id': np.arange(n).astype(str), 'event_timestamp': pd.Timestamp('2026-01-01', tz='UTC') + pd.to_timedelta(np.arange(n), unit='s'),
                   **{f'x{i}': np.random.default_rng(i).normal(size=n) for i in range(4)}})
for _ in range(int(sys.argv[3])): s.write('big', df)
print('done')
"""


def test_a_killed_writer_leaves_no_temp_files_and_a_live_one_is_left_alone(tmp_path):
    store = tmp_path / 'store'
    from mlops_nb.features.offline import OfflineFeatureStore
    kills = 0
    for _ in range(3):                                       # kill -9 while a part-*.tmp is being written
        p = _py(_BIG_WRITER, store, 400_000, 1000)
        end = time.time() + 60
        while time.time() < end and not list((store / 'big').glob('part-*.tmp')): time.sleep(0.005)
        os.kill(p.pid, signal.SIGKILL); p.wait()
        kills += bool(list((store / 'big').glob('part-*.tmp')))
    assert kills >= 1                                        # at least one kill left a temp file behind
    s = OfflineFeatureStore(store)                           # opening the store removes them
    assert s.removed_leftovers >= 1 and not list((store / 'big').glob('*.tmp'))
    n = len(s.read('big')); assert n % 400_000 == 0          # whole appends only
    p = _py(_BIG_WRITER, store, 200_000, 6)                  # a live writer's temp files are never taken from it
    while p.poll() is None: OfflineFeatureStore(store); time.sleep(0.01)
    out, err = p.communicate()
    assert p.returncode == 0 and 'done' in out, err
    assert len(OfflineFeatureStore(store).read('big')) == n + 6 * 200_000


_CREATOR = """
import sys, time, pandas as pd
from mlops_nb.features.offline import OfflineFeatureStore
store, group, who, col, kind, at = sys.argv[1:7]
vals = [1.0, 2.0] if kind == 'float' else ['a', 'b']
df = pd.DataFrame({'entity_id': [who + '1', who + '2'], 'event_timestamp': [pd.Timestamp('2026-01-01', tz='UTC')] * 2, col: vals})
while time.time() < float(at): pass
try: OfflineFeatureStore(store).write(group, df); print('ok')
except (ValueError, TypeError) as e: print('refused:', e)
"""


@pytest.mark.parametrize('a,b', [(('x', 'float'), ('x', 'float')), (('x', 'float'), ('y', 'float')), (('x', 'float'), ('x', 'str'))])
def test_two_processes_creating_one_group_agree_or_one_is_refused(tmp_path, a, b):
    from mlops_nb.features.offline import OfflineFeatureStore
    store = tmp_path / 'store'
    for rnd in range(4):
        at = time.time() + 1.5                               # both start the write at the same instant
        procs = [_py(_CREATOR, store, f'g{rnd}', who, *spec, at) for who, spec in (('p', a), ('q', b))]
        outs = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        said = [o.strip() for o, _ in outs]
        s = OfflineFeatureStore(store)
        df = s.read(f'g{rnd}')                               # readable whatever happened
        if a == b:
            assert said == ['ok', 'ok'] and sorted(df.entity_id) == ['p1', 'p2', 'q1', 'q2']
        else:
            assert sorted(x[:3] for x in said) == ['ok', 'ref'], said
            winner = 'pq'[said.index('ok')]
            assert sorted(df.entity_id) == [winner + '1', winner + '2']
            assert ('has features' in ''.join(said)) or ('is stored as' in ''.join(said))
        assert not list((store / f'g{rnd}').glob('*.tmp'))


def test_materialize_late_rows_and_backfills_reach_redis(workspace, redis_url, redis_prefix):
    off = OfflineFeatureStore(compact_after=None)
    t0 = pd.Timestamp('2026-03-01', tz='UTC')
    on = OnlineFeatureStore(redis_url, prefix=redis_prefix.rstrip(':'))
    w = lambda e, h, v: off.write('late', pd.DataFrame({'entity_id': e, 'event_timestamp': [t0 + pd.Timedelta(hours=x) for x in h], 'amount': v}))
    w(['a', 'b'], [5, 6], [1.0, 2.0])
    assert materialize(off, on, 'late') == 2
    w(['c', 'b', 'a'], [1, 2, 7], [999.0, -1.0, 3.0])         # late: c is new, b's row is older than b's latest, a's is newer
    assert materialize(off, on, 'late') == 2
    assert on.get_features(['a', 'b', 'c'], ['amount'], group='late').amount.tolist() == [3.0, 2.0, 999.0]
    off.compact('late')                                       # the same rows in other files: nothing to write
    assert materialize(off, on, 'late') == 0
    w(['b'], [6], [42.0])                                    # a correction at the same time: the last written wins
    assert materialize(off, on, 'late') == 1
    assert on.get_features(['b'], ['amount'], group='late').amount.tolist() == [42.0]
    on2 = OnlineFeatureStore(redis_url, prefix=redis_prefix + 'other')   # another store on the same Redis keeps its own books
    assert materialize(off, on2, 'late') == 3


_APPENDER = """
import sys, pandas as pd
from mlops_nb.features.offline import OfflineFeatureStore
s = OfflineFeatureStore(sys.argv[1], compact_after=int(sys.argv[3]))
for i in range(int(sys.argv[2])):
    s.write('feed', pd.DataFrame({'entity_id': [f'e{i % 7}'], 'event_timestamp': [pd.Timestamp('2026-01-01', tz='UTC') + pd.Timedelta(seconds=i)], 'v': [float(i)]}))
print('done')
"""
_READER = """
import sys, time
from mlops_nb.features.offline import OfflineFeatureStore
s = OfflineFeatureStore(sys.argv[1]); last, reads = 0, 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try: df = s.read('feed')
    except KeyError: continue
    s._cache.clear()
    assert not df.duplicated(['entity_id', 'event_timestamp']).any(), 'a row read twice'
    assert len(df) >= last, f'rows went from {last} to {len(df)}'
    assert df.v.tolist() == sorted(df.v.tolist()) and (len(df) == 0 or df.v.iloc[-1] == len(df) - 1), 'a row missing'
    last, reads = len(df), reads + 1
print('reads', reads, 'rows', last)
"""
_COMPACTOR = """
import sys, time
from mlops_nb.features.offline import OfflineFeatureStore
s = OfflineFeatureStore(sys.argv[1]); end = time.time() + float(sys.argv[2]); n = 0
while time.time() < end:
    try: n += s.compact('feed')
    except KeyError: pass
    time.sleep(0.05)
print('replaced', n)
"""


def test_many_small_appends_are_compacted_without_breaking_readers(tmp_path):
    store = tmp_path / 'store'
    w = _py(_APPENDER, store, 300, 16)
    rd, cp = _py(_READER, store, 8), _py(_COMPACTOR, store, 8)
    outs = [p.communicate(timeout=180) for p in (w, rd, cp)]
    assert [p.returncode for p in (w, rd, cp)] == [0, 0, 0], outs
    assert int(outs[1][0].split()[1]) > 5                   # the reader really read while files were swapped
    from mlops_nb.features.offline import OfflineFeatureStore
    s = OfflineFeatureStore(store)
    files = s.live_files('feed')
    assert len(files) <= 17                                  # not 300 files
    df = s.read('feed')
    assert df.v.tolist() == [float(i) for i in range(300)]   # every append exactly once, in order
    assert int(outs[2][0].split()[1]) > 0                   # the on-demand compactions replaced files as they went
    s.compact('feed'); assert len(s.live_files('feed')) == 1
    assert len(list((store / 'feed').glob('part-*'))) == 1   # the replaced files are gone
    assert s.get_features(['e3'], ['v']).v.tolist() == [297.0]


def test_online_ttls_agree_on_redis_and_sqlite_and_keys_never_collide(workspace, redis_url, redis_prefix):
    rs = OnlineFeatureStore(redis_url, prefix=redis_prefix.rstrip(':'))
    sq = OnlineFeatureStore()
    for s in (rs, sq):
        for bad, msg in (('0s', 'is under 1 second'), ('0.5s', 'is under 1 second'), ('-1s', 'is negative'), ('soon', 'ttl must be a duration')):
            with pytest.raises(ValueError, match=msg): s.write_features('e', {'x': 1.0}, ttl=bad)
            with pytest.raises(ValueError, match=msg): OnlineFeatureStore(redis_url if s is rs else None, prefix=redis_prefix.rstrip(':'), ttl=bad)
        s.write_frame(pd.DataFrame({'entity_id': ['short', 'long'], 'x': [1.0, 2.0]}), group='t', ttl='1.5s')
        s.write_features('forever', {'x': 3.0}, group='t')
        s.write_features('c', {'x': 1.0}, group='a:b'); s.write_features('b:c', {'x': 2.0}, group='a')
    r = redis.Redis.from_url(redis_url)
    assert 1000 < r.pttl(rs.backend._key('t', 'short')) <= 1500
    time.sleep(1.7)
    for s in (rs, sq):
        assert s.get_features(['short', 'forever'], ['x'], group='t').x.fillna(-1).tolist() == [-1, 3.0]
        assert s.get_features(['c'], ['x'], group='a:b').x[0] == 1.0 and s.get_features(['b:c'], ['x'], group='a').x[0] == 2.0


# ---------------------------------------------------------------- cold joins: the persisted sorted key, writers killed while writing it
_KEY_WRITER = """
import sys, numpy as np, pandas as pd
from mlops_nb.features.offline import OfflineFeatureStore
s = OfflineFeatureStore(sys.argv[1], compact_after=None); n = int(sys.argv[2])
for i in range(int(sys.argv[3])):
    rng = np.random.default_rng(i)
    s.write('k', pd.DataFrame({'entity_id': rng.integers(0, 300, n).astype(str), 'event_timestamp': pd.Timestamp('2026-01-01', tz='UTC') + pd.to_timedelta(rng.integers(0, 10**5, n), unit='s'),
                               'x': rng.normal(size=n), 'w': rng.integers(0, 9, n)}))
print('done')
"""


def _brute_pit(rows:pd.DataFrame, q:pd.DataFrame, ttl_s:int)->np.ndarray:
    "For each query row: x of the entity's latest row at or before its time, within ttl_s (equal times: the last in `rows`' order)"
    out = []
    by = {e: g for e, g in rows.groupby('entity_id', sort=False)}
    for e, t in zip(q.entity_id, q.event_timestamp):
        g = by.get(e)
        if g is None: out.append(np.nan); continue
        m = g[(g.event_timestamp <= t) & (g.event_timestamp >= t - pd.Timedelta(seconds=ttl_s))]
        out.append(m.x.iloc[np.flatnonzero(m.event_timestamp == m.event_timestamp.max())[-1]] if len(m) else np.nan)
    return np.array(out, dtype=float)


def test_a_writer_killed_while_writing_the_join_key_leaves_the_last_complete_state(tmp_path):
    store = tmp_path / 'store'
    from mlops_nb.features.offline import OfflineFeatureStore
    hits = 0
    for rnd in range(4):                                     # kill -9 while a key file (written before its data file) is in flight
        p = _py(_KEY_WRITER, store, 150_000, 1000)
        end = time.time() + 60
        while time.time() < end and p.poll() is None:
            d = store / 'k'
            if d.exists():
                names = set(os.listdir(d))
                keys_in_flight = [n for n in names if n.startswith('key-') and n.endswith('.tmp')]
                orphans = [n for n in names if n.startswith('key-') and n.endswith('.arrow') and n[4:-6] + '.parquet' not in names]
                if (keys_in_flight or orphans) and len([n for n in names if n.endswith('.parquet')]) > rnd: break
        os.kill(p.pid, signal.SIGKILL); p.wait()
        names = set(os.listdir(store / 'k'))
        hits += any(n.startswith('key-') and (n.endswith('.tmp') or n[4:-6] + '.parquet' not in names) for n in names)
    assert hits >= 1                                         # at least one kill landed between a key and its data file
    s = OfflineFeatureStore(store, compact_after=None)
    assert not list((store / 'k').glob('*.tmp'))             # a killed writer's key and data temp files are removed on open
    rows = s.read('k')                                       # the rows of whole appends only
    assert len(rows) % 150_000 == 0 and len(rows) > 0
    rng = np.random.default_rng(99)
    q = pd.DataFrame({'entity_id': rng.integers(0, 320, 400).astype(str),
                      'event_timestamp': pd.Timestamp('2026-01-01', tz='UTC') + pd.to_timedelta(rng.integers(-10, 10**5 + 10, 400), unit='s')})
    ref = _brute_pit(pd.concat([pd.read_parquet(f) for f in s.live_files('k')], ignore_index=True), q, 3600)
    got = s.get_historical_features(q, ['x'], ttl='1h')
    np.testing.assert_array_equal(got.x.to_numpy(dtype=float), ref)
    assert got.entity_id.tolist() == q.entity_id.tolist()
    # a fresh process reads the persisted keys (built by the writer, none rebuilt) and gives the same answers
    q.to_parquet(tmp_path / 'q.parquet')
    code = ("import sys, os, pandas as pd\nfrom mlops_nb.features.offline import OfflineFeatureStore\n"
            "d = sys.argv[1] + '/k'; before = {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d) if n.startswith('key-')}\n"
            "s = OfflineFeatureStore(sys.argv[1], compact_after=None)\n"
            "s.get_historical_features(pd.read_parquet(sys.argv[2]), ['x'], ttl='1h')[['x']].to_parquet(sys.argv[3])\n"
            "after = {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d) if n.startswith('key-')}\n"
            "print('rebuilt', sum(before.get(n) != i for n, i in after.items()))\n")
    p = _py(code, store, tmp_path / 'q.parquet', tmp_path / 'got.parquet'); out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.split() == ['rebuilt', '0']
    np.testing.assert_array_equal(pd.read_parquet(tmp_path / 'got.parquet').x.to_numpy(dtype=float), ref)
    s.compact('k')                                           # one file, one key built once from the merged rows: the same answers
    assert len(s.live_files('k')) == 1 and (store / 'k' / ('key-' + s.live_files('k')[0].stem + '.arrow')).exists()
    np.testing.assert_array_equal(OfflineFeatureStore(store).get_historical_features(q, ['x'], ttl='1h').x.to_numpy(dtype=float), ref)


def test_out_of_core_join_matches_in_memory_across_files_ties_and_a_stopped_compaction(tmp_path):
    "A tiny budget sends the join to DuckDB: the same frame as in memory, with ties across files, TTLs, missing times, and a covered file left behind"
    import shutil
    from mlops_nb.features.offline import OfflineFeatureStore, OutOfCoreJoin, join_memory
    s = OfflineFeatureStore(tmp_path / 'store', compact_after=None)
    t0 = pd.Timestamp('2026-01-01', tz='UTC')
    rng = np.random.default_rng(3)
    for i in range(4):
        n = 500
        s.write('g', pd.DataFrame({'entity_id': rng.integers(0, 40, n), 'event_timestamp': t0 + pd.to_timedelta(rng.integers(0, 200, n), unit='h'),
                                   'x': rng.normal(size=n), 'n': rng.integers(0, 5, n), 'tag': rng.choice(['a', 'b'], n)}))
    first = s.live_files('g')[0]; keep = tmp_path / first.name; shutil.copy(first, keep)
    s.compact('g')
    shutil.copy(keep, first)                                 # a compaction stopped before removing a file it covers
    q = pd.DataFrame({'entity_id': list(rng.integers(0, 45, 300)) + [None], 'event_timestamp': list(t0 + pd.to_timedelta(rng.integers(-5, 210, 300), unit='h')) + [t0],
                      'label': range(301)}).sample(frac=1, random_state=1)
    q.loc[q.index[5], 'event_timestamp'] = pd.NaT
    mem = s.get_historical_features(q, ['x', 'n', 'tag'], ttl='2d')
    tiny = OfflineFeatureStore(tmp_path / 'store', join_memory_budget='1KB')
    with pytest.warns(OutOfCoreJoin, match=r"needs about .* MB in memory, over this store's join_memory_budget"):
        ooc = tiny.get_historical_features(q, ['x', 'n', 'tag'], ttl='2d')
    assert (mem.attrs['engines'], ooc.attrs['engines']) == ({'g': 'memory'}, {'g': 'duckdb'})
    pd.testing.assert_frame_equal(mem, ooc)
    assert ooc.label.tolist() == q.label.tolist() and mem.x.notna().sum() > 50
    assert join_memory(len(q), 3) > 1024
    with pytest.raises(ValueError, match="join_memory_budget must be a positive number of bytes"): OfflineFeatureStore(tmp_path / 'store', join_memory_budget='-1GB')
