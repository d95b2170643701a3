"""A trivial parameterised 3-cell notebook run as a job: `mlops-nb run` against the `papermill` CLI, end to end.

Run: .venv/bin/python bench/bench_jobs.py [--reps 5]
Both commands run as fresh processes, interleaved round-robin. `mlops-nb run` does more than papermill: it checks
the parameters first, makes an MLflow run with params, records and the executed notebook, and renders HTML.
Medians of wall time are reported, with mlops_nb's own split of the notebook's time and the overhead.
"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import nbformat

ap = argparse.ArgumentParser(); ap.add_argument('--reps', type=int, default=5); args = ap.parse_args()
tmp = Path(tempfile.mkdtemp())
nb = nbformat.v4.new_notebook(); nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
p = nbformat.v4.new_code_cell("x = 1\nlabel = 'a'"); p.metadata['tags'] = ['parameters']
nb.cells = [p, nbformat.v4.new_code_cell('y = x * 2'), nbformat.v4.new_code_cell('print(label, y)')]
src = tmp / 'trivial.ipynb'; nbformat.write(nb, src)
bin_ = Path(sys.executable).parent
env = {**os.environ, 'MLOPS_NB_HOME': str(tmp / 'ws')}
subprocess.run([str(bin_ / 'mlops-nb'), 'run', str(src), '-p', 'x', '5'], env=env, capture_output=True, check=True)  # store made once
cmds = {'papermill CLI': [str(bin_ / 'papermill'), str(src), str(tmp / 'pm_out.ipynb'), '-p', 'x', '5', '-p', 'label', 'run', '-k', 'python3'],
        'mlops-nb run (tracked, HTML)': [str(bin_ / 'mlops-nb'), 'run', str(src), '-p', 'x', '5', '-p', 'label', 'run', '--output', str(tmp / 'nb_out.ipynb')],
        'mlops-nb run --no-html': [str(bin_ / 'mlops-nb'), 'run', str(src), '-p', 'x', '5', '-p', 'label', 'run', '--output', str(tmp / 'nb_out2.ipynb'), '--no-html']}
times = {k: [] for k in cmds}; split = []
for _ in range(args.reps):
    for k, c in cmds.items():
        t0 = time.perf_counter(); out = subprocess.run(c, env=env, capture_output=True, text=True); dt = time.perf_counter() - t0
        assert out.returncode == 0, out.stderr[-2000:]
        times[k].append(dt)
        if k.startswith('mlops-nb run (') and (m := re.search(r'\(([\d.]+) s in cells, ([\d.]+) s overhead\)', out.stdout)):
            split.append((float(m.group(1)), float(m.group(2))))
med = {k: statistics.median(v) for k, v in times.items()}
print(f"trivial 3-cell parameterised notebook, end to end, median of {args.reps} interleaved reps\n")
print('| command | s | vs papermill CLI |'); print('|---|---:|---:|')
for k, v in med.items(): print(f"| {k} | {v:.2f} | {med['papermill CLI']/v:.2f}x |")
if split:
    print(f"\nmlops-nb's own report: {statistics.median(s[0] for s in split):.3f} s in the notebook's cells, "
          f"{statistics.median(s[1] for s in split):.2f} s overhead (process start, kernel, MLflow, artifacts)")
