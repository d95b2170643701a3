"The online store against the real Redis: typed values, TTLs, pipelined bulk writes, errors that hide passwords; materialisation"
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
