"""Property tests of the drift report (hypothesis, bounded): whatever frames come in, a column that could not be tested
is never hidden behind "not drifted" or passed=True, and the detector either answers or refuses with a clear error."""
import math, tempfile, warnings
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from mlops_nb.monitoring.drift import DataDriftDetector, ReferenceProfile

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e300, -1e300, 1e-300]
CLEAR = ("must be a DataFrame or a 2-D array", "duplicate column names", "has no columns", "could not be read as a table")

floats = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from(SPECIAL))


@st.composite
def column(draw, n):
    "A column of n values: float (with NaN/inf), int, strings, all missing, or numbers written as strings"
    kind = draw(st.sampled_from(['float', 'int', 'few_ints', 'str', 'nan', 'numstr', 'bool', 'nullable_int']))
    if kind == 'float': return pd.Series(draw(st.lists(floats, min_size=n, max_size=n)), dtype=float)
    if kind == 'int': return pd.Series(draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n)), dtype='int64')
    if kind == 'few_ints': return pd.Series(draw(st.lists(st.integers(0, 7), min_size=n, max_size=n)), dtype='int64')
    if kind == 'str': return pd.Series(draw(st.lists(st.one_of(st.sampled_from(['a', 'b', 'c']), st.none()), min_size=n, max_size=n)), dtype=object)
    if kind == 'nan': return pd.Series([math.nan] * n, dtype=float)
    if kind == 'numstr': return pd.Series([f'{v:.2f}' for v in draw(st.lists(st.floats(-100, 100), min_size=n, max_size=n))], dtype=object)
    if kind == 'bool': return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return pd.Series(draw(st.lists(st.one_of(st.integers(0, 5), st.none()), min_size=n, max_size=n)), dtype='Int64')


@st.composite
def frames(draw):
    "A reference and a current frame over 1-3 named columns; the current may lose columns, rows, or change types"
    names = draw(st.lists(st.sampled_from(['a', 'b', 'c', 'd']), min_size=1, max_size=3, unique=True))
    n_ref, n_cur = draw(st.integers(0, 40)), draw(st.integers(0, 40))
    ref = pd.DataFrame({c: draw(column(n_ref)) for c in names}, index=range(n_ref))
    cur_names = draw(st.lists(st.sampled_from(names + ['x']), max_size=4, unique=True))
    cur = pd.DataFrame({c: draw(column(n_cur)) for c in cur_names}, index=range(n_cur))
    return ref, cur


def expected_untested(ref: pd.DataFrame, cur: pd.DataFrame, min_reference: int) -> set:
    "Columns that can't be tested, decided independently of the detector"
    out = set()
    for c in ref.columns:
        r = ref[c]
        numeric = pd.api.types.is_numeric_dtype(r) and not pd.api.types.is_bool_dtype(r)
        rv = np.isfinite(r.to_numpy(dtype=float, na_value=np.nan)).sum() if numeric else r.notna().sum()
        if c not in cur.columns or rv == 0 or rv < min_reference: out.add(c); continue
        s = cur[c]
        if numeric:
            if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)): out.add(c); continue
            if np.isfinite(s.to_numpy(dtype=float, na_value=np.nan)).sum() == 0: out.add(c)
        elif s.notna().sum() == 0: out.add(c)
    return out


def check_report(rep, ref, cur, min_reference):
    must = expected_untested(ref, cur, min_reference)
    assert must <= set(rep.untested), (must, rep.untested)              # every column that can't be tested is named ...
    assert all(isinstance(r, str) and r for r in rep.untested.values())  # ... with a reason
    texts = [repr(rep), rep._repr_html_(), rep.summary().verdict[0], rep.headline]
    if rep.untested:
        assert rep.passed is False
        for t in texts:
            assert 'not drifted' not in t and 'could not test' in t
        for c in list(rep.untested)[:10]:
            assert str(c) in rep.headline
    assert rep.passed == (not rep.dataset_drift and not rep.untested)
    assert isinstance(rep.dataset_drift, bool) and isinstance(rep.passed, bool)
    tested = rep.table[rep.table.drifted.map(lambda d: isinstance(d, bool))]
    assert len(tested) + len(rep.untested) == len(rep.table) == ref.shape[1]
    assert not tested.statistic.isna().any()                               # a tested column has a statistic
    if len(tested): assert 0.0 <= rep.share <= 1.0
    else: assert math.isnan(rep.share) and not rep.dataset_drift
    p = tested.p_value.dropna()
    assert ((p >= 0) & (p <= 1)).all()


def run(ref, cur, **kw):
    "A report, or a refusal whose message says what is wrong; any other exception fails the property"
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        try: return DataDriftDetector(ref, **kw).report(cur)
        except (ValueError, TypeError) as e:
            assert any(m in str(e) for m in CLEAR), f"unclear error: {type(e).__name__}: {e}"
            return None


_R = pd.DataFrame({'a': np.linspace(0, 1, 30), 'b': ['x', 'y', 'z'] * 10})

@SETTINGS
@given(frames(), st.sampled_from([1, 10]))
@example((_R, _R[['b']]), 10)                                   # a column missing from the batch
@example((_R, _R.assign(a=np.nan)), 10)                          # all missing in the batch
@example((_R.assign(a=np.nan), _R), 10)                          # all missing in the reference
@example((_R, _R.assign(a=_R.a.map('{:.3f}'.format))), 10)       # numbers turned into strings
@example((_R, _R.iloc[:0]), 10)                                  # no rows
@example((_R.iloc[:1], _R), 10)                                  # a one-row reference
@example((_R.iloc[:1], _R), 1)
def test_untested_columns_never_pass(data, min_reference):
    ref, cur = data
    rep = run(ref, cur, min_reference=min_reference)
    if rep is not None: check_report(rep, ref, cur, min_reference)


@SETTINGS
@given(frames())
def test_saved_profile_gives_the_same_verdicts(data):
    ref, cur = data
    rep = run(ref, cur)
    if rep is None: return
    with tempfile.TemporaryDirectory() as d:
        path = DataDriftDetector(ref).profile.save(Path(d) / 'ref.json')
        rep2 = DataDriftDetector(ReferenceProfile.load(path)).report(cur)
    assert rep2.untested == rep.untested and rep2.passed == rep.passed and rep2.drifted_columns == rep.drifted_columns


@settings(SETTINGS, max_examples=20)
@given(frames(), st.sampled_from(['bh', None]))
def test_plot_and_correction_never_crash(data, correction):
    ref, cur = data
    rep = run(ref, cur, correction=correction)
    if rep is None: return
    check_report(rep, ref, cur, 10)
    fig = rep.plot()
    assert fig._repr_png_()[:4] == b'\x89PNG'


@pytest.mark.parametrize('bad', [None, 'a string', 3, np.zeros((2, 2, 2))])
def test_unreadable_input_is_refused_clearly(bad):
    det = DataDriftDetector(pd.DataFrame({'a': np.arange(20.0)}))
    with pytest.raises((TypeError, ValueError), match='must be a DataFrame or a 2-D array'):
        det.report(bad)
