"A/B statistics by simulation: A/A false-positive rate, repeated looks, planned power; saving across processes"
import json, subprocess, sys, textwrap
import numpy as np, pytest
from mlops_nb.abtest import ABTest
from mlops_nb.abtest_stats import sample_size


def _aa(seed, n=500, binary=False, sequential=False):
    rng = np.random.default_rng(seed)
    t = ABTest(f'aa{seed}', ['a', 'b'], [0.5, 0.5], ['x'], sequential=sequential)
    for v in t.variants: t.record_many(v, 'x', rng.random(n) < 0.1 if binary else rng.lognormal(0, 1, n))
    return t.analyze().to_frame().iloc[0]


@pytest.mark.parametrize('binary', [False, True])
def test_aa_tests_reject_at_the_nominal_rate(binary):
    "2,000 A/A tests at alpha 0.05: about 5% significant (3 binomial standard deviations either side)"
    sig = np.mean([_aa(s, n=2000 if binary else 500, binary=binary).significant for s in range(2000)])
    assert 0.05 - 3*0.0049 < sig < 0.05 + 3*0.0049, sig


def test_repeated_looks_inflate_fixed_horizon_but_not_sequential():
    "20 looks at a growing A/A test: the fixed-horizon p-value 'finds' an effect far more often than 5%; the sequential one does not"
    fixed = seq = 0
    sims, looks, batch = 400, 20, 200
    for s in range(sims):
        rng = np.random.default_rng(10_000 + s)
        tf = ABTest('f', ['a', 'b'], [0.5, 0.5], ['x'])
        ts = ABTest('s', ['a', 'b'], [0.5, 0.5], ['x'], sequential=True)
        hit_f = hit_s = False
        for _ in range(looks):
            for v in ('a', 'b'):
                vals = rng.normal(0, 1, batch); tf.record_many(v, 'x', vals); ts.record_many(v, 'x', vals)
            hit_f |= bool(tf.analyze().to_frame().significant[0]); hit_s |= bool(ts.analyze().to_frame().significant[0])
        fixed += hit_f; seq += hit_s
    assert fixed/sims > 0.12, fixed/sims          # peeking inflates the false-positive rate
    assert seq/sims <= 0.05 + 0.02, seq/sims        # always-valid: stays at or below alpha


def test_an_injected_effect_is_found_with_the_planned_power():
    "A 10% relative lift on a 10% conversion, with the planned sample size: found about 80% of the time"
    n = sample_size(0.10, 0.10, power=0.8)
    found = 0
    sims = 300
    for s in range(sims):
        rng = np.random.default_rng(20_000 + s)
        t = ABTest('p', ['a', 'b'], [0.5, 0.5], ['conv'])
        t.record_many('a', 'conv', rng.random(n) < 0.10); t.record_many('b', 'conv', rng.random(n) < 0.11)
        found += bool(t.get_winner() == 'b')
    assert 0.8 - 3*0.023 < found/sims < 0.8 + 3*0.023, found/sims


def test_saved_experiment_is_analysed_the_same_in_another_process(workspace, tmp_path):
    rng = np.random.default_rng(0)
    t = ABTest('saved', ['control', 'new'], {'control': 0.5, 'new': 0.5}, ['spend', 'conv'])
    for v, mu in (('control', 10), ('new', 10.4)):
        t.record_many(v, 'spend', rng.gamma(4, mu/4, 3000), covariates=rng.gamma(4, 2.5, 3000))
        t.record_many(v, 'conv', rng.random(3000) < 0.1)
    t.save()
    code = textwrap.dedent("""
        import json; from mlops_nb.abtest import ABTest
        df = ABTest.load('saved').analyze().to_frame()
        print(json.dumps(df[['p_value', 'diff', 'cuped_variance_removed']].fillna(-1).values.tolist()))
    """)
    import os
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env={**os.environ, 'MLOPS_NB_HOME': str(workspace.home)})
    theirs = np.array(json.loads(out.stdout))
    ours = t.analyze().to_frame()[['p_value', 'diff', 'cuped_variance_removed']].fillna(-1).values
    np.testing.assert_allclose(theirs, ours, rtol=1e-9)
