"""Import time: `import mlops_nb` (and its lazy top-level names) against `import mlflow`, in fresh interpreters.

Run: .venv/bin/python bench/bench_import.py [--reps 7]
Each command runs in a new process, interleaved round-robin; medians of wall time are reported with their ratio.
"""
import argparse, statistics, subprocess, sys, time

ap = argparse.ArgumentParser(); ap.add_argument('--reps', type=int, default=7); args = ap.parse_args()
cmds = {'python -c pass': 'pass',
        'import mlops_nb': 'import mlops_nb',
        'import mlops_nb; mlops_nb.configure; mlops_nb.ExperimentTracker': 'import mlops_nb; mlops_nb.configure; mlops_nb.ExperimentTracker',
        'import mlflow': 'import mlflow'}
times = {k: [] for k in cmds}
for _ in range(args.reps + 1):                      # the first round warms the file cache and is dropped
    for k, code in cmds.items():
        t0 = time.perf_counter(); subprocess.run([sys.executable, '-c', code], check=True); times[k].append(time.perf_counter() - t0)
med = {k: statistics.median(v[1:]) * 1000 for k, v in times.items()}
print(f"median wall time of a fresh interpreter, {args.reps} interleaved reps\n")
print('| command | ms | vs import mlflow |'); print('|---|---:|---:|')
for k, v in med.items(): print(f"| `{k}` | {v:.0f} | {med['import mlflow']/v:.1f}x faster |" if k != 'import mlflow' else f"| `{k}` | {v:.0f} | 1.0x |")
print(f"\nimport mlops_nb costs {med['import mlops_nb'] - med['python -c pass']:.0f} ms over a bare interpreter")
