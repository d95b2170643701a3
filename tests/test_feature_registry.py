"""FeatureRegistry with real processes: many writers on a fresh registry file, and the SQL sandbox of `run`."""
import subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

from mlops_nb.features.registry import FeatureRegistry

_WRITER = r"""
import sys, time
from mlops_nb.features.registry import FeatureRegistry
path, k, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
r = FeatureRegistry(path)
while time.time() < start: time.sleep(0.001)
got = [r.register_feature('f', f'SELECT {k} * 1000 + {i} AS x', owner=str(k)) for i in range(4)]
got.append(r.register_feature(f'own_{k}', 'SELECT 1 AS x'))
print(' '.join(map(str, got)))
"""


@pytest.mark.parametrize('round_', range(3))
def test_eight_processes_on_a_fresh_registry_file_keep_every_registration(tmp_path, round_):
    "8 processes register at the same instant on a registry file that does not exist yet: no error, nothing lost"
    path = tmp_path / f'round{round_}' / 'feature_registry.db'
    start = time.time() + 4   # all processes wait for this instant, after their imports
    procs = [subprocess.Popen([sys.executable, '-c', _WRITER, str(path), str(k), str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(8)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs): assert p.returncode == 0, err[-2000:]
    returned = [list(map(int, out.split())) for out, _ in outs]
    vs = FeatureRegistry(path).versions('f')
    assert [v.version for v in vs] == list(range(1, 33))                      # 8 x 4 versions, no gaps
    assert len({v.computation_logic for v in vs}) == 32                        # none overwritten
    assert sorted(v for r in returned for v in r[:4]) == list(range(1, 33))    # each process got its own numbers
    assert FeatureRegistry(path).list_features() == {'f': 32, **{f'own_{k}': 1 for k in range(8)}}


@pytest.fixture
def reg_ws(workspace, tmp_path, monkeypatch):
    "A registry in a fresh workspace, run from an empty folder (so a file written by a relative path would show)"
    cwd = tmp_path / 'cwd'; cwd.mkdir(); monkeypatch.chdir(cwd)
    return FeatureRegistry(), cwd


def _files(*dirs):
    return sorted(str(p) for d in dirs for p in Path(d).rglob('*'))


def test_run_reads_a_parquet_path_with_a_quote_in_it(reg_ws, tmp_path):
    from mlops_nb.features.offline import OfflineFeatureStore
    reg, _ = reg_ws
    d = tmp_path / "o'brien's data"; d.mkdir()
    pd.DataFrame({'entity_id': ['a', 'b'], 'event_timestamp': pd.to_datetime(['2026-01-01', '2026-01-02'], utc=True),
                  'amount': [1.0, 2.0]}).to_parquet(d / 'tx.parquet')
    reg.register_feature('amt', 'SELECT entity_id, event_timestamp, amount * 2 AS amt FROM tx')
    out = reg.run('amt', {'tx': d / 'tx.parquet'})
    assert out.amt.tolist() == [2.0, 4.0]
    assert OfflineFeatureStore().groups() == ['amt']


@pytest.mark.parametrize('name,sql,error,match', [
    ('passwd', "SELECT * FROM read_csv('/etc/passwd')", PermissionError, r'passwd v1 was refused: .*"/etc/passwd"'),
    ('text', "SELECT * FROM read_text('/etc/hostname')", PermissionError, 'was refused'),
    ('glob', "SELECT * FROM glob('/etc/*')", PermissionError, 'was refused'),
    ('any_parquet', "SELECT * FROM read_parquet('{secret}')", PermissionError, r'may only read the tables given to run \(\[\'t\'\]\)'),
    ('parquet_replacement', "SELECT * FROM '{secret}'", PermissionError, 'was refused'),
    ('url', "SELECT * FROM read_csv('https://example.com/x.csv')", PermissionError, 'was refused'),
    ('copy', "COPY (SELECT 1) TO '{out}/leak.csv'", ValueError, r'exactly one SELECT .* \(COPY\)'),
    ('hidden_copy', "SELECT 1 AS x;\nCOPY (SELECT 1) TO '{out}/leak.csv'", ValueError, r'2 statements \(SELECT, COPY\)'),
    ('attach', "ATTACH '{out}/leak.db'", ValueError, r'\(ATTACH\)'),
    ('install', 'INSTALL httpfs', ValueError, r'\(LOAD\)'),
    ('load', 'LOAD httpfs', ValueError, r'\(LOAD\)'),
    ('set', 'SET enable_external_access = true', ValueError, r'\(SET\)'),
    ('pragma', 'PRAGMA enable_profiling', ValueError, r'\(PRAGMA\)'),
    ('export', "EXPORT DATABASE '{out}/dump'", ValueError, r'\(EXPORT\)'),
    ('secret', "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", ValueError, r'\(CREATE\)'),
    ('pyvar', 'SELECT * FROM _PRIVATE_FRAME', ValueError, None),
])
def test_each_escape_is_refused_and_nothing_is_written(reg_ws, tmp_path, name, sql, error, match):
    "Refused at registration (not one SELECT) or by the sandbox at run; no file appears anywhere, the store stays empty"
    from mlops_nb.features.offline import OfflineFeatureStore
    from mlops_nb.config import get_settings
    reg, cwd = reg_ws
    out = tmp_path / 'out'; out.mkdir()
    secret = tmp_path / 'secret.parquet'
    pd.DataFrame({'pin': [1234]}).to_parquet(secret)
    sql = sql.format(out=out, secret=secret)
    t = pd.DataFrame({'entity_id': ['a'], 'event_timestamp': pd.to_datetime(['2026-01-01'], utc=True)})
    before = _files(out, cwd, get_settings().home)
    if name == 'pyvar':      # a Python variable that is not in `tables` is not found by name
        _PRIVATE_FRAME = pd.DataFrame({'pin': [1234]})  # noqa: F841
        reg.register_feature(name, sql)
        with pytest.raises(ValueError, match='_PRIVATE_FRAME does not exist'): reg.run(name, {'t': t})
    elif error is ValueError:
        with pytest.raises(ValueError, match=match): reg.register_feature(name, sql)
        assert name not in reg.list_features()
    else:
        reg.register_feature(name, sql)
        with pytest.raises(error, match=match): reg.run(name, {'t': t})
    after = _files(out, cwd, get_settings().home)
    assert [f for f in after if f not in before and 'feature_registry' not in f] == []
    assert OfflineFeatureStore().groups() == []


def test_a_stored_definition_that_escapes_is_refused_by_run(reg_ws, tmp_path):
    "A definition written into the registry file by hand (or before the check existed) is checked again when run"
    import sqlite3
    reg, cwd = reg_ws
    reg.register_feature('ok', 'SELECT 1 AS x')
    with sqlite3.connect(reg.path) as c:
        c.execute("INSERT INTO features VALUES ('old', 1, ?, '', '', '2026-01-01T00:00:00+00:00', '')",
                  (f"SELECT 1 AS x; COPY (SELECT 1) TO '{tmp_path}/leak.csv'",))
    with pytest.raises(ValueError, match=r'old v1: a feature definition must be exactly one SELECT'): reg.run('old', {})
    assert not (tmp_path / 'leak.csv').exists()
