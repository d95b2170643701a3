"""A/B analysis of 10,000,000 recorded values (2 variants x 4 metrics): mlops_nb's ABTest against the seed's list-based one.

Run: .venv/bin/python bench/bench_abtest.py [--n 10000000] [--reps 3]
The seed's class is reproduced verbatim below (it is the code our users start from). Both record the same values:
the seed one value at a time (its only API), ours with `record_many` and, separately, one value at a time with the
seed's `record_metric`. Then each analyses its data; medians of interleaved repetitions. Also: ids assigned per second.
"""
import argparse, statistics, time
import numpy as np
from scipy import stats

ap = argparse.ArgumentParser(); ap.add_argument('--n', type=int, default=10_000_000); ap.add_argument('--reps', type=int, default=3)
args = ap.parse_args()


class SeedABTest:   # the seed's ABTest (../shared/seed), unchanged but for the imports
    def __init__(self, name, variants, traffic_split, metrics):
        self.name, self.variants, self.traffic_split, self.metrics = name, variants, traffic_split, metrics
        self.results = {variant: {metric: [] for metric in metrics} for variant in variants}
    def record_metric(self, variant, metric, value):
        if variant not in self.results: raise ValueError(f"Unknown variant: {variant}")
        if metric not in self.metrics: raise ValueError(f"Unknown metric: {metric}")
        self.results[variant][metric].append(value)
    def analyze(self):
        analysis = {}
        for metric in self.metrics:
            metric_analysis = {}
            for variant in self.variants:
                values = self.results[variant][metric]
                if len(values) == 0: continue
                metric_analysis[variant] = {'mean': np.mean(values), 'std': np.std(values), 'count': len(values)}
            variant_a, variant_b = self.variants[0], self.variants[1]
            values_a, values_b = self.results[variant_a][metric], self.results[variant_b][metric]
            if len(values_a) > 0 and len(values_b) > 0:
                t_stat, p_value = stats.ttest_ind(values_a, values_b)
                metric_analysis['comparison'] = {'t_statistic': t_stat, 'p_value': p_value, 'significant': p_value < 0.05,
                    'lift': (metric_analysis[variant_b]['mean'] - metric_analysis[variant_a]['mean']) / metric_analysis[variant_a]['mean']}
            analysis[metric] = metric_analysis
        return analysis


from mlops_nb.abtest import ABTest
variants, metrics = ['control', 'treatment'], ['revenue', 'conversion', 'time_on_site', 'items']
per = args.n // (len(variants) * len(metrics))
rng = np.random.default_rng(0)
data = {(v, m): (rng.random(per) < (0.10 if v == 'control' else 0.104)).astype(float) if m == 'conversion'
        else rng.gamma(2, 10 * (1.01 if v == 'treatment' else 1), per) for v in variants for m in metrics}
lists = {k: v.tolist() for k, v in data.items()}

res = {k: [] for k in ('seed: record (per value)', 'seed: analyze', 'ours: record_many', 'ours: analyze',
                       'ours: record_metric (per value)', 'ours: analyze after per-value')}
for rep in range(args.reps):
    seed = SeedABTest('bench', variants, {'control': 0.5, 'treatment': 0.5}, metrics)
    t0 = time.perf_counter()
    for (v, m), vals in lists.items():
        rec = seed.record_metric
        for x in vals: rec(v, m, x)
    res['seed: record (per value)'].append(time.perf_counter() - t0)
    t0 = time.perf_counter(); sa = seed.analyze(); res['seed: analyze'].append(time.perf_counter() - t0)
    del seed
    ours = ABTest('bench', variants, [0.5, 0.5], metrics)
    t0 = time.perf_counter()
    for (v, m), vals in data.items(): ours.record_many(v, m, vals)
    res['ours: record_many'].append(time.perf_counter() - t0)
    t0 = time.perf_counter(); oa = ours.analyze(); res['ours: analyze'].append(time.perf_counter() - t0)
    # same numbers where the seed's are right: means and counts
    for m in metrics:
        for v in variants:
            assert sa[m][v]['count'] == oa[m][v]['count'] and abs(sa[m][v]['mean'] - oa[m][v]['mean']) < 1e-9 * max(1, abs(sa[m][v]['mean']))
    del ours
    one = ABTest('bench', variants, [0.5, 0.5], metrics)
    t0 = time.perf_counter()
    for (v, m), vals in lists.items():
        rec = one.record_metric
        for x in vals: rec(v, m, x)
    res['ours: record_metric (per value)'].append(time.perf_counter() - t0)
    t0 = time.perf_counter(); one.analyze(); res['ours: analyze after per-value'].append(time.perf_counter() - t0)
    del one

med = {k: statistics.median(v) for k, v in res.items()}
print(f"\n{args.n:,} values (2 variants x 4 metrics x {per:,}), medians of {args.reps} interleaved reps\n")
print('| step | seconds |'); print('|---|---:|')
for k, v in med.items(): print(f'| {k} | {v:.4f} |')
print(f"\nanalyze: ours {med['seed: analyze']/med['ours: analyze']:.0f}x faster than the seed's")
print(f"record + analyze: ours (record_many) {(med['seed: record (per value)']+med['seed: analyze'])/(med['ours: record_many']+med['ours: analyze']):.0f}x faster; "
      f"ours one value at a time {(med['seed: record (per value)']+med['seed: analyze'])/(med['ours: record_metric (per value)']+med['ours: analyze after per-value']):.2f}x")

ids = np.array([f'user-{i}' for i in range(1_000_000)], dtype=object)
t = ABTest('assign', ['a', 'b', 'c'], [0.5, 0.3, 0.2], ['m'])
times = []
for _ in range(5):
    t0 = time.perf_counter(); t.assign_variants(ids); times.append(time.perf_counter() - t0)
ints = np.arange(1_000_000); it = []
for _ in range(5):
    t0 = time.perf_counter(); t.assign_variants(ints); it.append(time.perf_counter() - t0)
print(f"assignment: {1/statistics.median(times):.1f} M string ids/s, {1/statistics.median(it):.1f} M integer ids/s")
import hashlib
t0 = time.perf_counter()
for i in range(200_000): int(hashlib.md5(f"assign:user-{i}".encode()).hexdigest(), 16) / (2 ** 32 - 1)
print(f"seed's md5 assignment: {200_000/(time.perf_counter()-t0)/1e6:.2f} M ids/s (and every id lands in the last variant)")
