"""The cost of mlops_nb's MLflow link per Optuna trial, against plain Optuna running the same objective, both on a
SQLite study in the workspace; and `%load_ext mlops_nb` against `import mlflow`.

Run: .venv/bin/python bench/bench_tuning.py [--trials 100] [--reps 3]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path
ap = argparse.ArgumentParser(); ap.add_argument('--trials', type=int, default=100); ap.add_argument('--reps', type=int, default=3)
args = ap.parse_args()
tmp = Path(tempfile.mkdtemp()); os.environ['MLOPS_NB_HOME'] = str(tmp / 'ws')
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier
from optuna.distributions import IntDistribution
from mlops_nb.tuning import HyperparameterOptimizer
X, y = load_breast_cancer(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0)
space = {'max_depth': IntDistribution(1, 12), 'min_samples_leaf': IntDistribution(1, 20)}   # a cheap objective: the link's cost shows
mk = lambda name: HyperparameterOptimizer(n_trials=args.trials, model=DecisionTreeClassifier(random_state=0), search_space=space,
                                          study_name=name, show_progress_bar=False, seed=0)
mk('warmup').optimize(X_tr, y_tr, X_va, y_va, n_trials=3)

plain, ours = [], []
for rep in range(args.reps):
    ref = mk(f'objective-only-{rep}'); ref._setup(y_tr)      # the same objective, no MLflow: plain Optuna on the same storage
    study = optuna.create_study(study_name=f'plain-{rep}', storage=ref.storage, direction='maximize', sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter(); study.optimize(lambda t: ref.objective(t, X_tr, y_tr, X_va, y_va), n_trials=args.trials)
    plain.append((time.perf_counter() - t0) / args.trials)
    opt = mk(f'linked-{rep}')
    t0 = time.perf_counter(); opt.optimize(X_tr, y_tr, X_va, y_va); ours.append((time.perf_counter() - t0) / args.trials)
    kids = opt.tracker.client.search_runs([opt.tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{opt.parent_run_id}'", max_results=5000)
    assert len(kids) == args.trials
p, o = statistics.median(plain), statistics.median(ours)
print(f"\n{args.trials} trials of a decision tree on a SQLite study, medians of {args.reps} interleaved reps\n")
print('| | ms per trial |'); print('|---|---:|')
print(f'| plain Optuna, same objective | {p*1000:.1f} |'); print(f'| mlops_nb (parent run + a child run per trial) | {o*1000:.1f} |')
print(f"\nMLflow link overhead: {(o - p)*1000:.1f} ms per trial (target < 20 ms)")

code_ext = "import time; t=time.perf_counter(); from IPython.testing.globalipapp import get_ipython; ip=get_ipython(); t1=time.perf_counter(); ip.run_line_magic('load_ext','mlops_nb'); print(time.perf_counter()-t1)"
code_mlf = "import time; t=time.perf_counter(); import mlflow; print(time.perf_counter()-t)"
ext, mlf = [], []
for _ in range(5):
    ext.append(float(subprocess.run([sys.executable, '-c', code_ext], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]))
    mlf.append(float(subprocess.run([sys.executable, '-c', code_mlf], capture_output=True, text=True, check=True).stdout.strip()))
print(f"%load_ext mlops_nb in a running IPython: {statistics.median(ext)*1000:.0f} ms; import mlflow: {statistics.median(mlf)*1000:.0f} ms "
      f"({statistics.median(mlf)/statistics.median(ext):.0f}x)")
