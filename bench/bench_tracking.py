"""Logging metric values: mlops_nb's ExperimentTracker against MLflow's own calls, on the same SQLite store.

Run: .venv/bin/python bench/bench_tracking.py [--reps 3] [--n 10000] [--n-slow 1000]

Variants are interleaved round-robin in each repetition, each on a fresh run of one store; medians are reported.
MLflow's per-value calls cost milliseconds each, so they log `--n-slow` values and are reported per value.
Every variant's stored history is checked to hold exactly the values it logged. The tracker is measured on both
paths of its metric writer (`mlops_nb.tracking_store.MetricWriter`): the direct SQL path, which the workspace's store
takes, and `log_batch`, which any store with an untested schema takes (forced here with `sql=False`).
"""
import argparse, os, statistics, sys, tempfile, time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument('--reps', type=int, default=3)
ap.add_argument('--n', type=int, default=10_000)
ap.add_argument('--n-slow', type=int, default=1_000)
args = ap.parse_args()

tmp = Path(tempfile.mkdtemp())
os.environ['MLOPS_NB_HOME'] = str(tmp / 'ws')
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlops_nb.tracking import ExperimentTracker
from mlops_nb.tracking_store import MetricWriter

tracker = ExperimentTracker(experiment_name='bench')          # the workspace's sqlite store
assert tracker._buffer.write.path == 'sql', tracker._buffer.write.reason
slow_tracker = ExperimentTracker(experiment_name='bench')     # the same store, its writer forced to log_batch
slow_tracker._buffer.write = MetricWriter(slow_tracker.client, sql=False)
assert slow_tracker._buffer.write.path == 'log_batch'
uri = tracker.tracking_uri
mlflow.set_tracking_uri(uri)
client = MlflowClient(uri)
exp = tracker.experiment_id


def ours(n, t=tracker):
    with t.run('ours') as r:
        t0 = time.perf_counter()
        for i in range(n): t.log_metric('loss', 1 / (i + 1))
        t_call = time.perf_counter() - t0
        t.flush()
        t_durable = time.perf_counter() - t0
    return r.info.run_id, t_call, t_durable


def ours_log_batch(n): return ours(n, slow_tracker)


def mlflow_log_metric(n):
    with mlflow.start_run(experiment_id=exp) as r:
        t0 = time.perf_counter()
        for i in range(n): mlflow.log_metric('loss', 1 / (i + 1), step=i)
        t = time.perf_counter() - t0
    return r.info.run_id, t, t


def mlflow_async(n):
    with mlflow.start_run(experiment_id=exp) as r:
        t0 = time.perf_counter()
        for i in range(n): mlflow.log_metric('loss', 1 / (i + 1), step=i, synchronous=False)
        t_call = time.perf_counter() - t0
        mlflow.flush_async_logging()
        t = time.perf_counter() - t0
    return r.info.run_id, t_call, t


def mlflow_log_batch(n):
    with mlflow.start_run(experiment_id=exp) as r:
        t0 = time.perf_counter()
        ts = int(time.time() * 1000)
        for s in range(0, n, 1000):
            chunk = [Metric('loss', 1 / (i + 1), ts, i) for i in range(s, min(n, s + 1000))]
            client.log_batch(r.info.run_id, metrics=chunk)
        t = time.perf_counter() - t0
    return r.info.run_id, t, t


variants = [('mlops_nb ExperimentTracker.log_metric', ours, args.n),
            ('mlops_nb ExperimentTracker.log_metric, log_batch path', ours_log_batch, args.n),
            ('mlflow.log_metric (one call per value)', mlflow_log_metric, args.n_slow),
            ('mlflow.log_metric(synchronous=False) + flush', mlflow_async, args.n_slow),
            ('MlflowClient.log_batch, chunks of 1000', mlflow_log_batch, args.n)]
res = {name: {'call': [], 'durable': []} for name, _, _ in variants}
for rep in range(args.reps):
    for name, fn, n in variants:
        run_id, t_call, t_dur = fn(n)
        got = client.get_metric_history(run_id, 'loss')
        assert len(got) == n, (name, len(got), n)
        res[name]['call'].append(t_call / n * 1e6); res[name]['durable'].append(t_dur / n * 1e6)
        print(f'rep {rep}: {name}: {t_call/n*1e6:.1f} us/value caller, {t_dur/n*1e6:.1f} us/value durable',
              file=sys.stderr)

med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in res.items()}
o = med['mlops_nb ExperimentTracker.log_metric']
print(f"\nmetric logging on {uri.split('://')[0]}, medians of {args.reps} interleaved reps "
      f"(mlops_nb and log_batch: {args.n} values; per-value MLflow calls: {args.n_slow} values)\n")
print("| variant | caller us/value | durable us/value | durable vs mlops_nb |")
print("|---|---:|---:|---:|")
for name, m in med.items():
    print(f"| {name} | {m['call']:.1f} | {m['durable']:.1f} | {m['durable']/o['durable']:.1f}x |")
one = med['mlflow.log_metric (one call per value)']
print(f"\nmlops_nb: {args.n} values durable in {o['durable']*args.n/1e6:.2f} s; caller sees {o['call']:.1f} us/value; "
      f"{one['call']/o['call']:.0f}x less caller time than mlflow.log_metric, "
      f"{one['durable']/o['durable']:.0f}x faster to durable")
