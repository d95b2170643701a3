"""The Spark offline store against the embedded one: the same answers (ties, TTL, rows with no match, several groups), each
reading what the other wrote (with compaction and key files), the same refusals with the same messages, materialisation to
a real Redis and to SQLite, a registry definition run as Spark SQL. Spark on local[2], one session for the module."""
import os, sys, subprocess, uuid
from pathlib import Path
import numpy as np, pandas as pd, pytest

if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'): import pyspark   # CI installs the spark extra: fail loudly without it
else: pyspark = pytest.importorskip('pyspark', reason="pip install 'mlops-nb[spark]' to run the Spark store's tests")

from mlops_nb.features.offline import OfflineFeatureStore, key_file_path
from mlops_nb.features.online import OnlineFeatureStore, materialize
from mlops_nb.features.registry import FeatureRegistry
from mlops_nb.features.spark import SparkOfflineStore

pytestmark = [pytest.mark.filterwarnings('ignore:PySpark does not yet fully support pandas'), pytest.mark.filterwarnings('ignore:The copy keyword is deprecated')]


@pytest.fixture(scope='module')
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession
    os.environ.setdefault('PYSPARK_PYTHON', sys.executable)     # Spark's Python workers: this environment (mlops_nb, pandas)
    s = (SparkSession.builder.master('local[2]').appName('mlops_nb-tests').config('spark.sql.shuffle.partitions', '2')
         .config('spark.ui.enabled', 'false').config('spark.ui.showConsoleProgress', 'false').config('spark.sql.session.timeZone', 'UTC')
         .config('spark.sql.warehouse.dir', str(tmp_path_factory.mktemp('warehouse'))).getOrCreate())
    s.sparkContext.setLogLevel('ERROR')
    yield s
    s.stop()


@pytest.fixture
def stores(tmp_path, monkeypatch, spark):
    monkeypatch.setenv('MLOPS_NB_HOME', str(tmp_path / 'ws'))
    return OfflineFeatureStore(tmp_path / 'offline'), SparkOfflineStore(spark, tmp_path / 'offline')


T0 = pd.Timestamp('2024-01-01', tz='UTC')
def day(d, h=0): return T0 + pd.Timedelta(days=d, hours=h)


def txn():
    "Feature rows with ties (same entity and time, the later written wins), int and string ids that are one entity, two groups"
    a = pd.DataFrame({'entity_id': [1, 1, 2, 2, 3, '1'], 'event_timestamp': [day(0), day(2), day(1), day(1), day(5), day(2)],
                      'amount': [10., 20., 30., 31., 50., 21.], 'kind': ['a', 'b', 'c', 'd', 'e', 'f']})
    b = pd.DataFrame({'entity_id': ['1', '2', '4'], 'event_timestamp': [day(1), day(3), day(0)], 'score': [0.1, 0.2, 0.4]})
    return a, b


def ents():
    "Entity rows out of order: exact-time matches, rows before any value, an unknown entity, a NaT time, a missing id, repeated rows"
    return pd.DataFrame({'entity_id': [2, 1, 1, 3, 9, 1, 2, None, 1],
                         'event_timestamp': [day(1), day(2), day(1, 5), day(4), day(3), pd.NaT, day(40), day(3), day(2)],
                         'label': list(range(9))})


def same(spark_df, pandas_df):
    "The Spark result, collected, equals the embedded store's: the same columns, rows in the same order, the same values (missing as missing)"
    got = spark_df.toPandas()
    assert list(got.columns) == list(pandas_df.columns)
    for c in pandas_df.columns:
        a, b = got[c].tolist(), pandas_df[c].tolist()
        norm = lambda v: None if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)) else (pd.Timestamp(v).tz_localize('UTC') if isinstance(v, pd.Timestamp) and v.tz is None else v)
        assert [norm(v) for v in a] == [norm(v) for v in b], c


@pytest.mark.parametrize('ttl', [None, pd.Timedelta(hours=30)])
def test_same_answers_as_embedded(stores, ttl):
    emb, sp = stores
    a, b = txn()
    emb.write('txn', a.iloc[:3]); emb.write('txn', a.iloc[3:]); emb.write('risk', b)
    feats = ['amount', 'kind', 'risk:score']
    want = emb.get_historical_features(ents(), feats, ttl=ttl)
    same(sp.get_historical_features(ents(), feats, ttl=ttl), want)
    if ttl is None: assert want['amount'].tolist()[:3] == [31., 21., 10.]     # the tie: the later written row; '1' and 1 are one entity
    # a Spark entity frame: the same values in its (partition) order
    same(sp.get_historical_features(sp.spark.createDataFrame(ents().astype({'entity_id': 'str'}).replace('nan', None)), feats, ttl=ttl),
         emb.get_historical_features(ents().astype({'entity_id': 'str'}).replace('nan', None), feats, ttl=ttl))


def test_spark_writes_embedded_reads(stores, spark):
    emb, sp = stores
    a, b = txn()
    sdf = spark.createDataFrame(a.astype({'entity_id': 'str'})).repartition(1)
    files = sp.write('txn', sdf.union(sdf.limit(0)))
    assert files and all(f.parent.name == 'txn' and not key_file_path(f).exists() for f in files)
    assert sorted(p.name for p in (sp.storage_path / 'txn').iterdir() if p.name.startswith('_spark')) == []   # staging removed
    meta = emb.group_info('txn')
    assert meta['features'] == ['amount', 'kind'] and meta['schema']['kind']['family'] == 'string'
    feats = ['amount', 'kind']
    first = emb.get_historical_features(ents(), feats)                 # builds and persists the Spark files' keys
    assert all(key_file_path(f).exists() for f in files)
    same(sp.get_historical_features(ents(), feats), first)
    # an embedded append, then a Spark append after the keys exist: each engine sees every row, the keys stay per file
    emb.write('txn', pd.DataFrame({'entity_id': ['1'], 'event_timestamp': [day(2)], 'amount': [22.], 'kind': ['g']}))
    sp.write('txn', spark.createDataFrame(pd.DataFrame({'entity_id': ['2'], 'event_timestamp': [day(1)], 'amount': [32.], 'kind': ['h']})))
    again = emb.get_historical_features(ents(), feats)
    assert again['amount'].tolist()[:2] == [32., 22.]
    same(sp.get_historical_features(ents(), feats), again)
    assert OfflineFeatureStore(sp.storage_path).get_historical_features(ents(), feats).equals(again)   # a fresh store: the same
    # compaction by the embedded engine: the replaced files are gone from both engines' view, the answers unchanged
    assert emb.compact('txn') >= 3
    same(sp.get_historical_features(ents(), feats), again)
    assert emb.get_historical_features(ents(), feats).equals(again)
    # a Spark append after the compaction is read by both
    sp.write('txn', spark.createDataFrame(pd.DataFrame({'entity_id': ['3'], 'event_timestamp': [day(4)], 'amount': [40.], 'kind': ['i']})))
    last = OfflineFeatureStore(sp.storage_path).get_historical_features(ents(), feats)
    assert last['amount'].tolist()[3] == 40.
    same(sp.get_historical_features(ents(), feats), last)


def test_embedded_writes_spark_reads_after_compaction(stores):
    emb, sp = stores
    a, b = txn()
    for i in range(len(a)): emb.write('txn', a.iloc[[i]])
    emb.compact('txn')
    emb.write('txn', pd.DataFrame({'entity_id': ['3'], 'event_timestamp': [day(5)], 'amount': [51.], 'kind': ['z']}))   # a tie with a compacted row
    want = emb.get_historical_features(ents(), 'txn:amount', ttl='3d')
    same(sp.get_historical_features(ents(), 'txn:amount', ttl='3d'), want)
    assert sp.get_historical_features(pd.DataFrame({'entity_id': [3], 'event_timestamp': [day(6)]}), ['amount']).toPandas()['amount'].tolist() == [51.]


def test_refusals_match(stores, spark):
    emb, sp = stores
    a, _ = txn()
    emb.write('txn', a)
    def both(fn_emb, fn_sp, exc):
        with pytest.raises(exc) as e1: fn_emb()
        with pytest.raises(exc) as e2: fn_sp()
        assert str(e1.value) == str(e2.value)
        return str(e1.value)
    bad = a.copy(); bad.loc[1, 'entity_id'] = None
    assert 'missing in 1 of 6 rows' in both(lambda: emb.write('txn', bad), lambda: sp.write('txn', spark.createDataFrame(bad.astype({'entity_id': 'str'}).replace('None', None))), ValueError)
    nat = a.copy(); nat.loc[2, 'event_timestamp'] = pd.NaT
    assert 'every row needs an event time' in both(lambda: emb.write('txn', nat), lambda: sp.write('txn', spark.createDataFrame(nat.astype({'entity_id': 'str'}))), ValueError)
    typ = a.assign(amount=['x'] * len(a))
    assert 'is stored as float64 (number)' in both(lambda: emb.write('txn', typ), lambda: sp.write('txn', spark.createDataFrame(typ.astype({'entity_id': 'str'}))), TypeError)
    extra = a.assign(more=1.)
    both(lambda: emb.write('txn', extra), lambda: sp.write('txn', spark.createDataFrame(extra.astype({'entity_id': 'str'}))), ValueError)
    frac = pd.DataFrame({'entity_id': [1.5], 'event_timestamp': [day(0)], 'amount': [1.], 'kind': ['a']})
    both(lambda: emb.write('txn', frac), lambda: sp.write('txn', spark.createDataFrame(frac)), ValueError)
    both(lambda: emb.write('bad name', a), lambda: sp.write('bad name', a), ValueError)
    taken = a.rename(columns={'kind': '__key'})                           # a key file's own column name, for a new group
    assert "are the store's own" in both(lambda: emb.write('new', taken), lambda: sp.write('new', spark.createDataFrame(taken.astype({'entity_id': 'str'}))), ValueError)
    both(lambda: emb.write('txn', [1]), lambda: sp.write('txn', [1]), TypeError)
    e = ents()
    e_sp = spark.createDataFrame(pd.DataFrame({'entity_id': ['2', '1'], 'event_timestamp': [day(1), day(2)], 'label': [0, 1]}))
    for kw, exc in [(dict(ttl='-1d'), ValueError), (dict(ttl='soon'), ValueError), (dict(features=['nope']), KeyError),
                    (dict(features=['txn:nope']), KeyError), (dict(entity_col='id'), ValueError), (dict(features=[1]), TypeError)]:
        kw = {'features': ['amount'], **kw}
        both(lambda: emb.get_historical_features(e, **kw), lambda: sp.get_historical_features(e, **kw), exc)
        both(lambda: emb.get_historical_features(e, **kw), lambda: sp.get_historical_features(e_sp, **kw), exc)
    both(lambda: emb.get_historical_features(e.assign(amount=1.), ['amount']), lambda: sp.get_historical_features(e_sp.selectExpr('*', '1.0 AS amount'), ['amount']), ValueError)
    both(lambda: emb.get_historical_features(e.assign(event_timestamp='later'), ['amount']),
         lambda: sp.get_historical_features(e_sp.selectExpr('entity_id', "'later' AS event_timestamp", 'label'), ['amount']), ValueError)
    both(lambda: emb.get_historical_features([1], ['amount']), lambda: sp.get_historical_features([1], ['amount']), TypeError)
    assert list(sp.storage_path.glob('txn/part-*.parquet')).__len__() == 1    # nothing refused was written
    assert not (sp.storage_path / 'new').exists()


def test_materialize_to_redis_and_sqlite(stores, spark, redis_url, tmp_path):
    import redis
    emb, sp = stores
    a, b = txn()
    emb.write('txn', a)
    sp.write('txn', spark.createDataFrame(pd.DataFrame({'entity_id': ['5'], 'event_timestamp': [day(9)], 'amount': [5.], 'kind': ['q']})))
    ids = ['1', '2', '3', '5', '7']
    prefix = f'mlops_nb_test_spark:{uuid.uuid4().hex[:8]}'
    r = redis.Redis.from_url(redis_url)
    try:
        on_sp = OnlineFeatureStore(redis_url, prefix=prefix + ':sp')
        on_emb = OnlineFeatureStore(redis_url, prefix=prefix + ':emb')
        assert sp.materialize(on_sp, 'txn') == 4
        assert materialize(emb, on_emb, 'txn') == 4
        got, want = on_sp.get_features(ids, ['amount', 'kind'], group='txn'), on_emb.get_features(ids, ['amount', 'kind'], group='txn')
        pd.testing.assert_frame_equal(got, want)
        assert got['amount'].tolist()[:4] == [21., 31., 50., 5.] and pd.isna(got['amount'][4])
        assert 0 < r.ttl(f'{prefix}:sp:txn:1') <= 7 * 86400                 # the online store's TTL
        assert sp.materialize(on_sp, 'txn', end=day(1, 12)) == 2            # a range: the latest up to then
        assert on_sp.get_features(['1', '2'], ['amount'], group='txn')['amount'].tolist() == [10., 31.]
    finally:
        keys = list(r.scan_iter(match=prefix + ':*'))
        if keys: r.delete(*keys)
    on_sql = OnlineFeatureStore(f'sqlite:///{tmp_path}/online.db')
    assert sp.materialize(on_sql, 'txn') == 4
    pd.testing.assert_frame_equal(on_sql.get_features(ids, ['amount', 'kind'], group='txn'), want)
    assert materialize(emb, on_sql, 'txn') == 4        # Spark dropped the embedded bookkeeping for this store: it writes all again


def test_registry_definition_as_spark_sql(stores, spark, tmp_path):
    emb, sp = stores
    reg = FeatureRegistry(tmp_path / 'reg.db')
    sql = "SELECT user AS entity_id, ts AS event_timestamp, amount * 2 AS doubled FROM events WHERE amount > 1"
    v = reg.register_feature('doubled', sql)
    events = pd.DataFrame({'user': ['1', '2', '1'], 'ts': [day(0), day(1), day(2)], 'amount': [1., 2., 3.]})
    out = sp.run_definition(reg, 'doubled', {'events': spark.createDataFrame(events)})
    assert sorted(out.toPandas()['doubled']) == [4., 6.]
    assert not spark.catalog.tableExists('events')                     # the view lived only while the definition ran
    got = emb.get_historical_features(pd.DataFrame({'entity_id': ['1', '2'], 'event_timestamp': [day(3), day(3)]}), ['doubled'])
    assert got['doubled'].tolist() == [6., 4.]
    import json
    lin = json.loads((sp.storage_path / 'doubled' / '_lineage.json').read_text())
    assert lin[-1]['version'] == v and lin[-1]['rows'] == 2 and lin[-1]['engine'] == 'spark'
    reg.register_feature('files', "SELECT * FROM parquet.`/etc`")
    with pytest.raises(ValueError, match='files v1 failed'): sp.run_definition(reg, 'files', {})
    with pytest.raises(ValueError, match='failed'): sp.run_definition(reg, 'doubled', {'other': events})


def test_import_mlops_nb_does_not_import_pyspark():
    code = "import sys, mlops_nb, mlops_nb.features.offline, mlops_nb.features.online; assert 'pyspark' not in sys.modules, 'pyspark imported'"
    subprocess.run([sys.executable, '-c', code], check=True, cwd=Path(__file__).parents[1])


def test_other_session_time_zone_and_naive_times(stores, spark):
    "A session in another time zone and naive (TIMESTAMP_NTZ) times: read as UTC, as the embedded store reads naive times"
    emb, sp = stores
    a, _ = txn()
    naive = a.astype({'entity_id': 'str'}).assign(event_timestamp=a['event_timestamp'].dt.tz_localize(None))
    old = spark.conf.get('spark.sql.session.timeZone')
    spark.conf.set('spark.sql.session.timeZone', 'Asia/Kolkata')
    try:
        sdf = spark.createDataFrame(naive).selectExpr('entity_id', 'CAST(event_timestamp AS TIMESTAMP_NTZ) AS event_timestamp', 'amount', 'kind')
        sp.write('txn', sdf)
        emb.write('txn2', naive)
        e = ents()
        got = sp.get_historical_features(e, ['txn:amount'], ttl='2d')
        want = emb.get_historical_features(e, ['txn2:amount'], ttl='2d')
        same(got.select('label', 'amount'), want[['label', 'amount']])     # (toPandas shows the kept times in the session's zone)
        assert want['amount'].notna().sum() >= 3
        assert emb.get_historical_features(e, ['txn:amount'], ttl='2d').equals(want)
    finally: spark.conf.set('spark.sql.session.timeZone', old)


def test_killed_spark_writer_leftovers_removed(stores, spark):
    "A Spark writer killed while staging leaves `_spark-<id>/` and its lock file: the next store opened removes them; a live writer's stay"
    emb, sp = stores
    emb.write('txn', txn()[0])
    g = sp.storage_path / 'txn'
    (g / '_spark-dead').mkdir(); (g / '_spark-dead' / 'part-00000-x.parquet').write_bytes(b'half')
    (g / '_spark-dead.lock').write_bytes(b'')
    import fcntl
    (g / '_spark-live').mkdir(); live = open(g / '_spark-live.lock', 'wb'); fcntl.flock(live.fileno(), fcntl.LOCK_EX)
    try:
        again = SparkOfflineStore(spark, sp.storage_path)
        assert again.removed_leftovers == 1
        assert not (g / '_spark-dead').exists() and not (g / '_spark-dead.lock').exists()
        assert (g / '_spark-live').exists() and (g / '_spark-live.lock').exists()
        assert OfflineFeatureStore(sp.storage_path).read('txn').shape[0] == 6      # staged files were never part of the group
    finally: live.close()
