"""Property tests of the offline feature store (hypothesis, bounded): whatever frame a user writes is either refused with
a clear error, leaving the store as it was, or read back exactly (under the documented normalisation of entity ids and
event times); point-in-time answers, on every join path (packed keys persisted or rebuilt, keys by time rank where the µs key would not
fit in 62 bits, merge_asof, out of core in DuckDB), equal a brute-force reference."""
import math, os, shutil, tempfile, warnings
from contextlib import contextmanager
from pathlib import Path
import numpy as np, pandas as pd
from hypothesis import HealthCheck, assume, event, example, given, settings, strategies as st
from mlops_nb.features.offline import OfflineFeatureStore, OutOfCoreJoin, normalize_entity_ids

SETTINGS = settings(max_examples=int(os.environ.get('MLOPS_NB_HYPOTHESIS_EXAMPLES', 50)),   # bounded for CI; more locally
                     deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
T0 = pd.Timestamp('2026-01-01', tz='UTC')


@contextmanager
def fresh_store():
    "An offline store in a temporary folder, removed afterwards (hypothesis runs the test body many times per fixture)"
    d = tempfile.mkdtemp(prefix='mlops_nb_prop_')
    try: yield OfflineFeatureStore(Path(d) / 'store', compact_after=None)
    finally: shutil.rmtree(d, ignore_errors=True)


def ref_entity(v):
    "The documented rule, written independently: None for missing, a string for a good id, an exception class for a bad one"
    if v is None or (isinstance(v, float) and math.isnan(v)): return None
    if isinstance(v, bool): return TypeError
    if isinstance(v, str): return v
    if isinstance(v, int): return str(v)
    if isinstance(v, float): return str(int(v)) if math.isfinite(v) and v.is_integer() else ValueError
    return TypeError


entity_vals = st.one_of(st.text(min_size=0, max_size=4), st.integers(-10**20, 10**20), st.sampled_from([1.0, 2.0, -3.0, 1.5, float('nan'), float('inf')]),
                        st.none(), st.booleans())
good_times = st.integers(-10**6, 10**6).map(lambda s: T0 + pd.Timedelta(seconds=s))
time_vals = st.one_of(good_times, st.none())
feature_cols = st.sampled_from(['float', 'int', 'str', 'mixed', 'none', 'bool', 'floatnan'])


def make_col(kind, n, draw):
    if kind == 'float': return draw(st.lists(st.floats(allow_nan=False, allow_infinity=True, width=64), min_size=n, max_size=n))
    if kind == 'floatnan': return draw(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.just(float('nan'))), min_size=n, max_size=n))
    if kind == 'int': return draw(st.lists(st.integers(-2**62, 2**62), min_size=n, max_size=n))
    if kind == 'str': return draw(st.lists(st.text(max_size=5), min_size=n, max_size=n))
    if kind == 'bool': return draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if kind == 'none': return [None] * n
    return draw(st.lists(st.one_of(st.text(max_size=3), st.floats(allow_nan=False), st.none()), min_size=n, max_size=n))


@st.composite
def frames(draw, kinds=None):
    n = draw(st.integers(0, 6))
    kinds = kinds or draw(st.sampled_from([['float'], ['str', 'int'], None])) or draw(st.lists(feature_cols, min_size=1, max_size=3))
    dirty = draw(st.integers(0, 3)) == 0                                  # a quarter of the frames have any id or time, the rest good ones
    ev = entity_vals if dirty else st.one_of(st.text(max_size=4), st.integers(-10**20, 10**20), st.sampled_from([1.0, 7.0]))
    tv = time_vals if dirty else good_times
    cols = {'entity_id': pd.Series(draw(st.lists(ev, min_size=n, max_size=n)), dtype=object),
            'event_timestamp': pd.Series(draw(st.lists(tv, min_size=n, max_size=n)), dtype=object)}
    for i, k in enumerate(kinds):
        v = make_col(k, n, draw)
        cols[f'f{i}'] = pd.Series(v, dtype=object) if k in ('mixed', 'none') else pd.Series(v) if n else pd.Series(v, dtype={'float': 'float64', 'floatnan': 'float64', 'int': 'int64', 'str': 'str', 'bool': 'bool'}[k])
    return pd.DataFrame(cols), kinds


def check_refusal(e):
    assert isinstance(e, (ValueError, TypeError)) and str(e).strip(), repr(e)
    assert 'Traceback' not in str(e)


def expected_rows(df):
    "What the store should hold for `df` (or the exception class it should refuse it with)"
    ents = [ref_entity(v) for v in df.entity_id]
    for e in ents:
        if isinstance(e, type): return e
    if any(e is None for e in ents) or df.event_timestamp.isna().any(): return ValueError
    out = df.assign(entity_id=ents, event_timestamp=pd.to_datetime(df.event_timestamp, utc=True).astype('datetime64[us, UTC]'))
    return out


def same(got, exp, feats):
    assert got.entity_id.tolist() == exp.entity_id.tolist()
    assert got.event_timestamp.tolist() == exp.event_timestamp.tolist()
    for f in feats:
        g, x = got[f].tolist(), exp[f].tolist()
        for a, b in zip(g, x, strict=True):
            if b is None or (isinstance(b, float) and math.isnan(b)): assert a is None or (isinstance(a, float) and math.isnan(a)), (f, a, b)
            else: assert a == b and type(a) is type(b) or (isinstance(b, (int, float)) and not isinstance(b, bool) and a == b), (f, a, b)


@SETTINGS
@given(first=frames(), second=frames())
def test_any_frame_is_refused_clearly_or_read_back_exactly(first, second):
    with fresh_store() as store: check_frames(store, first, second)


def check_frames(store, first, second):
    written = []
    for df, kinds in (first, second):
        before = store.read('g') if 'g' in store.groups() else None
        exp = expected_rows(df)
        try: store.write('g', df)
        except (ValueError, TypeError) as e:
            check_refusal(e); event(f'refused: {type(e).__name__} {str(e)[:30]}')
            if before is None: assert 'g' not in store.groups() or store.read('g').empty
            else: pd.testing.assert_frame_equal(store.read('g'), before)      # nothing of a refused write is stored
            continue
        except Exception as e: raise AssertionError(f"raw {type(e).__name__} for a frame: {e}")
        assert not isinstance(exp, type), f"accepted a frame the rule refuses with {exp.__name__}: {df}"
        written.append(exp); event('accepted')
        feats = [c for c in df.columns if c not in ('entity_id', 'event_timestamp')]
        want = pd.concat([w[['entity_id', 'event_timestamp', *feats]] for w in written], ignore_index=True).sort_values('event_timestamp', kind='stable', ignore_index=True)
        same(store.read('g'), want, feats)


@st.composite
def pit_case(draw):
    writes = draw(st.lists(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30), st.floats(-1e6, 1e6)), min_size=1, max_size=15), min_size=1, max_size=3))
    queries = draw(st.lists(st.tuples(st.one_of(st.integers(0, 5), st.just(2.0), st.none()), st.one_of(st.integers(-2, 35), st.none())), min_size=0, max_size=20))
    ttl = draw(st.one_of(st.none(), st.integers(0, 20)))
    return writes, queries, ttl


@SETTINGS
@given(case=pit_case())
def test_point_in_time_answers_equal_a_brute_force_reference(case):
    with fresh_store() as store: check_pit(store, *case)


def key_names(d):
    "The data files the key files of group folder `d` belong to, of either kind (`key-part-X.arrow`, `rkey-part-X.arrow`)"
    return sorted(p.name.split('-', 1)[1][:-len('.arrow')] for p in [*d.glob('key-*.arrow'), *d.glob('rkey-*.arrow')])


MILLENNIUM = 1000 * 365 * 86400     # seconds: a file spanning 19 of them (59 bits of µs) with 4+ entities (3 bits)
                                    # needs over 62 bits, so it is keyed by time rank
WIDE = [(0, 0, 1.0), (1, 30, 2.0), (2, 5, 3.0), (3, 20, 4.0), (4, 30, 5.0)]   # 5 entities over 30 millennia
WIDE_QUERIES = [(1, 30), (1, 29), (4, 35), (3, 19), (0, None), (2, 5)]


def test_a_file_spanning_millennia_is_keyed_by_time_rank():
    with fresh_store() as store:
        check_pit(store, [WIDE], WIDE_QUERIES, None, unit=MILLENNIUM)    # (it compacts at the end: the merged file too)
        assert [p.name.split('-')[0] for p in (store.storage_path / 'g').glob('*key-*.arrow')] == ['rkey']


@settings(SETTINGS, max_examples=max(10, SETTINGS.max_examples // 2))
@example(case=([WIDE], WIDE_QUERIES, 0))                                  # always keyed by time rank
@given(case=pit_case())
def test_point_in_time_answers_on_keys_by_time_rank_equal_the_reference(case):
    writes, queries, ttl = case
    assume(queries)                                                        # (an empty frame: the test above)
    ttl = None if ttl is None else 0                                       # exact times only (millennia overflow a Timedelta)
    with fresh_store() as store: check_pit(store, writes, queries, ttl, unit=MILLENNIUM)


def check_pit(store, writes, queries, ttl, unit=1):
    "Write `writes` (entity, time, value) and ask `queries` (entity, time) on every join path; times count `unit` seconds"
    def at(ss):             # seconds from T0 in `unit`s (None: no time) -> datetime64[us, UTC] (pandas 3.1 wraps a *list*
        us = [np.datetime64('NaT') if s is None else np.datetime64(T0.tz_localize(None), 'us') + np.timedelta64(s * unit, 's')
              for s in ss]  # of Timestamps past 2262 around silently, so the column is built from numpy's µs)
        return pd.Series(np.array(us, dtype='datetime64[us]')).dt.tz_localize('UTC')
    rows = []                                                              # (entity, second, value) in write order
    for w in writes:
        store.write('g', pd.DataFrame({'entity_id': [e for e, _, _ in w], 'event_timestamp': at([s for _, s, _ in w]),
                                       'x': [v for _, _, v in w]}))
        rows += w
    q = pd.DataFrame({'entity_id': pd.Series([e for e, _ in queries], dtype=object),      # as a user's frame: objects, None
                      'event_timestamp': pd.Series([None if s is None else T0 + pd.Timedelta(seconds=s) for _, s in queries],
                                                   dtype=object) if unit == 1 else at([s for _, s in queries])})

    def brute(e, s):
        if e is None or s is None: return np.nan
        best = None
        for i, (re_, rs, rv) in enumerate(rows):
            if str(re_) == normalize_entity_ids([e])[0] and rs <= s and (ttl is None or s - rs <= ttl):
                if best is None or rs >= best[0]: best = (rs, rv)            # the latest; equal times: the last written
        return np.nan if best is None else best[1]

    ref = [brute(e, s) for e, s in queries]
    for packed in (True, False):
        OfflineFeatureStore._packed = packed
        try: got = store.get_historical_features(q, ['g:x'], ttl=None if ttl is None else f'{ttl}s')
        finally: OfflineFeatureStore._packed = True
        assert len(got) == len(q) and store.last_engines == {'g': 'memory' if packed else 'merge_asof'}
        np.testing.assert_array_equal(got.x.to_numpy(dtype=float), np.array(ref, dtype=float))
    from mlops_nb.features import offline
    d = store.storage_path / 'g'
    data = sorted(p.name for p in d.glob('part-*.parquet'))
    assert key_names(d) == [n[:-len('.parquet')] for n in data]           # a key per file, written with it
    for rebuilt in (False, True):                                          # as a fresh process: the persisted keys, then keys rebuilt from the files
        offline._keys.clear()
        if rebuilt:
            for k in [*d.glob('key-*.arrow'), *d.glob('rkey-*.arrow')]: k.unlink()
        got = OfflineFeatureStore(store.storage_path, compact_after=None).get_historical_features(q, ['g:x'], ttl=None if ttl is None else f'{ttl}s')
        np.testing.assert_array_equal(got.x.to_numpy(dtype=float), np.array(ref, dtype=float))
    ooc = OfflineFeatureStore(store.storage_path, compact_after=None, join_memory_budget=1)   # past the budget: out of core in DuckDB
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', OutOfCoreJoin)
        got = ooc.get_historical_features(q, ['g:x'], ttl=None if ttl is None else f'{ttl}s')
    assert ooc.last_engines == {'g': 'duckdb' if len(q) else 'memory'} and len(got) == len(q)   # an empty frame needs no memory
    np.testing.assert_array_equal(got.x.to_numpy(dtype=float), np.array(ref, dtype=float))
    store.compact('g')                                                     # the same answers from one compacted file
    assert key_names(d) == sorted(p.name[:-8] for p in d.glob('part-*.parquet'))   # the compaction's key replaces theirs
    got = store.get_historical_features(q, ['g:x'], ttl=None if ttl is None else f'{ttl}s')
    np.testing.assert_array_equal(got.x.to_numpy(dtype=float), np.array(ref, dtype=float))
