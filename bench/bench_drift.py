"""Data drift on 1,000,000 x (20 numeric + 5 categorical) rows: mlops_nb's DataDriftDetector against Evidently's
DataDriftPreset and a plain per-column scipy loop, on the same data with shifts injected into some columns.

Run: .venv/bin/python bench/bench_drift.py [--rows 1000000] [--reps 3] [--evidently-python PATH] [--evidently-rows N]

Evidently 0.7 needs pandas < 3, so it runs in its own environment (default /tmp/evvenv:
`python3 -m venv /tmp/evvenv && /tmp/evvenv/bin/pip install evidently==0.7.23 pandas==2.3.3`), in a subprocess on
the same Parquet files, and times itself the same way (datasets, report, snapshot dict). Without that environment
the Evidently rows are skipped and the script says so. Flagged columns are compared with both on their default tests.
"""
import argparse, json, statistics, subprocess, sys, tempfile, textwrap, time
from pathlib import Path
import numpy as np, pandas as pd

ap = argparse.ArgumentParser()
ap.add_argument('--rows', type=int, default=1_000_000); ap.add_argument('--reps', type=int, default=3)
ap.add_argument('--evidently-python', default='/tmp/evvenv/bin/python'); ap.add_argument('--evidently-rows', type=int, default=None)
ap.add_argument('--scipy-loop', action='store_true', help='also time a per-column scipy loop (slow)')
args = ap.parse_args()


def make(n, seed, shifted):
    "The PERF_ANCHORS data: normal, lognormal, uniform, gamma and integer columns; categoricals of 5/10/20/50/3 levels"
    rng = np.random.default_rng(seed); d = {}
    for i in range(20):
        kind = i % 5
        x = [rng.normal(0, 1, n), rng.lognormal(0, 0.5, n), rng.uniform(0, 1, n), rng.gamma(2, 1, n), rng.integers(0, 10, n).astype(float)][kind]
        sd = x.std()
        if shifted:
            if i == 0: x = x + 0.5 * sd
            if i == 1: x = x + 0.2 * sd
            if i == 2: x = (x - x.mean()) * 1.5 + x.mean()
            if i == 3: x = x + 0.02 * sd
            if i == 4: x = x + 0.05 * sd
        d[f'num_{i}'] = x
    for j, k in enumerate([5, 10, 20, 50, 3]):
        p = np.linspace(1, 2, k); p /= p.sum()
        if shifted and j == 0: p = p[::-1]
        levels = np.array([f'c{j}_{i}' for i in range(k)], dtype=object)
        col = levels[rng.choice(k, n, p=p)]
        if shifted and j == 1: col[rng.random(n) < 0.05] = 'c1_new'
        if shifted and j == 2:
            extra = rng.random(n) < 0.005; col[extra] = levels[0]
        d[f'cat_{j}'] = col
    return pd.DataFrame(d)

tmp = Path(tempfile.mkdtemp())
ref, cur = make(args.rows, 7, False), make(args.rows, 8, True)
from mlops_nb.monitoring.drift import DataDriftDetector, ReferenceProfile

times = {'mlops_nb end to end (profile + report)': [], 'mlops_nb second batch vs saved profile': []}
for _ in range(args.reps):
    t0 = time.perf_counter(); det = DataDriftDetector(ref); rep = det.report(cur); times['mlops_nb end to end (profile + report)'].append(time.perf_counter() - t0)
    det.profile.save(tmp / 'profile.json')
    t0 = time.perf_counter(); rep2 = DataDriftDetector(ReferenceProfile.load(tmp / 'profile.json')).report(cur)
    times['mlops_nb second batch vs saved profile'].append(time.perf_counter() - t0)
ours_flag = sorted(rep.drifted_columns)
assert ours_flag == sorted(rep2.drifted_columns)
profile_kb = (tmp / 'profile.json').stat().st_size / 1024

if args.scipy_loop:
    from scipy import stats
    t0 = time.perf_counter()
    for c in ref.columns:
        if c.startswith('num'): stats.ks_2samp(ref[c], cur[c]); stats.wasserstein_distance(ref[c], cur[c])
        else: stats.chi2_contingency(pd.crosstab(np.r_[np.zeros(len(ref)), np.ones(len(cur))], np.r_[ref[c], cur[c]]))
    times['per-column scipy loop (KS, W1, chi2)'] = [time.perf_counter() - t0]

ev_rows = args.evidently_rows or args.rows
ev = None
if Path(args.evidently_python).exists():
    ref.iloc[:ev_rows].to_parquet(tmp / 'ref.parquet'); cur.iloc[:ev_rows].to_parquet(tmp / 'cur.parquet')
    if ev_rows != args.rows:   # ours at Evidently's size too, for a same-size ratio
        r_s, c_s = ref.iloc[:ev_rows], cur.iloc[:ev_rows]
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter(); DataDriftDetector(r_s).report(c_s); ts.append(time.perf_counter() - t0)
        times[f'mlops_nb end to end at {ev_rows:,} rows'] = ts
    script = textwrap.dedent(f"""
        import json, time, pandas as pd
        from evidently import Report, Dataset, DataDefinition
        from evidently.presets import DataDriftPreset
        ref, cur = pd.read_parquet({str(tmp/'ref.parquet')!r}), pd.read_parquet({str(tmp/'cur.parquet')!r})
        dd = DataDefinition(numerical_columns=[c for c in ref if c.startswith('num')], categorical_columns=[c for c in ref if c.startswith('cat')])
        t0 = time.perf_counter()
        snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
        d = snap.dict()
        secs = time.perf_counter() - t0
        flagged = sorted(m['config']['column'] for m in d['metrics'] if m['config']['type'].endswith('ValueDrift') and m['value'] >= m['config']['threshold'])
        print(json.dumps(dict(seconds=secs, flagged=flagged)))
    """)
    (tmp / 'ev.py').write_text(script)
    out = subprocess.run([args.evidently_python, str(tmp / 'ev.py')], capture_output=True, text=True, timeout=1800)
    if out.returncode == 0:
        ev = json.loads(out.stdout.strip().splitlines()[-1]); times[f'Evidently 0.7 DataDriftPreset at {ev_rows:,} rows (1 run)'] = [ev['seconds']]
    else: print('Evidently failed:', out.stderr[-1500:], file=sys.stderr)
else: print(f'Evidently environment {args.evidently_python} not found: its rows are skipped', file=sys.stderr)

med = {k: statistics.median(v) for k, v in times.items()}
print(f"\n{args.rows:,} reference and {args.rows:,} current rows, 20 numeric + 5 categorical columns; medians of {args.reps} reps\n")
print('| method | seconds |'); print('|---|---:|')
for k, v in med.items(): print(f'| {k} | {v:.2f} |')
print(f"\nsaved reference profile: {profile_kb:.0f} KB for {args.rows:,} rows")
print(f"flagged by mlops_nb (default tests): {ours_flag}")
if ev:
    same = f'mlops_nb end to end at {ev_rows:,} rows' if ev_rows != args.rows else 'mlops_nb end to end (profile + report)'
    print(f"flagged by Evidently (default tests, {ev_rows:,} rows): {ev['flagged']}")
    print(f"Evidently / mlops_nb at {ev_rows:,} rows: {ev['seconds'] / med[same]:.0f}x")
