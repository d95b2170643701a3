"""The CI/CD pipeline as a user runs it: `mlops-nb init` makes a project, then the commands of its GitHub Actions
workflow run in order, as the workflow would run them (kubectl and the actions themselves skipped), on the embedded
workspace and on a real PostgreSQL tracking store; then the ways each step fails."""
import json, os, re, shlex, subprocess, sys
from pathlib import Path
import pytest, yaml

EXE = Path(sys.executable).parent / 'mlops-nb'


def mlops(args, cwd, env, timeout=300):
    return subprocess.run([str(EXE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def workflow_commands(project: Path) -> list:
    "The `run:` lines of the workflow that are ours (mlops-nb ... and pytest), in job order"
    wf = yaml.safe_load((project / '.github/workflows/mlops-pipeline.yml').read_text())
    return [s['run'] for job in wf['jobs'].values() for s in job['steps']
            if 'run' in s and s['run'].split()[0] in ('mlops-nb', 'pytest')]


@pytest.fixture
def project(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('MLOPS_NB_') and k != 'STAGING_URL'}
    out = mlops(['init', 'churn-model'], tmp_path, env)
    assert out.returncode == 0, out.stderr
    assert 'created' in out.stdout and 'mlops.yaml' in out.stdout
    return tmp_path / 'churn-model', env


def run_workflow(project: Path, env: dict) -> dict:
    outs = {}
    for cmd in workflow_commands(project):
        argv = ['bash', '-c', cmd.replace('pytest ', f'{shlex.quote(sys.executable)} -m pytest -p no:cacheprovider ', 1)]
        out = subprocess.run(argv, cwd=project, env={**env, 'PATH': f"{EXE.parent}:{env.get('PATH', '')}"},
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"`{cmd}` failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        outs[cmd] = out.stdout
    return outs


@pytest.mark.timeout(1200)
@pytest.mark.parametrize('store', ['embedded', 'postgresql'])
def test_the_workflow_runs_end_to_end_on_a_new_project(project, store, request):
    root, env = project
    if store == 'postgresql':
        db = request.getfixturevalue('postgres_db')
        env = {**env, 'MLOPS_NB_TRACKING_URI': db.replace('postgresql://', 'postgresql+psycopg://'),
               'MLOPS_NB_ARTIFACTS': str(root / 'artifacts')}
    outs = run_workflow(root, env)
    cmds = list(outs)
    assert [c.split()[2] if c.startswith('mlops-nb pipeline') else c.split()[0] for c in cmds] == \
        ['validate-data', 'check-drift', 'train', 'pytest', 'evaluate', 'gate', 'materialize', 'smoke-test', 'promote', 'mlops-nb']
    assert 'match the schema' in outs['mlops-nb pipeline validate-data']
    assert "registered churn-model version 1 as 'challenger'" in outs['mlops-nb pipeline train']
    assert 'passed' in outs['mlops-nb pipeline gate']
    for floor in ('recall', 'precision', 'pr_auc'):       # the scaffold's gate has floors a do-nothing model fails
        assert re.search(rf'ok    {floor} 0\.\d+ ≥ min', outs['mlops-nb pipeline gate']), outs['mlops-nb pipeline gate']
    assert 'caught' in outs['mlops-nb pipeline train'] and 'pr_auc=' in outs['mlops-nb pipeline train']
    assert re.search(r"materialize: the latest values of [\d,]+ entities \(user_id; 5 features\) written to online group 'transactions'",
                     outs['mlops-nb pipeline materialize']), outs['mlops-nb pipeline materialize']
    assert 'serves churn-model version 1 (challenger)' in outs[cmds[7]]
    # the scaffold turns the entity path on: the smoke test also asked the server by user_id, from the online store
    assert 'by entity id: 50 of 50 entities answered from the online store' in outs[cmds[7]], outs[cmds[7]]
    assert 'is the first champion' in outs['mlops-nb pipeline promote']
    lineage = outs['mlops-nb lineage churn-model']
    assert 'alias champion' in lineage and 'pipeline gate' in lineage and 'passed' in lineage
    assert 'training set         20,000 rows' in lineage and 'data/train.parquet' in lineage
    # the embedded store stays inside the project; a URL sends it elsewhere
    assert (root / 'mlops_workspace' / 'mlflow.db').exists() == (store == 'embedded')
    lin = json.loads(mlops(['lineage', 'churn-model', '--json'], root, env).stdout)
    assert lin['model']['number'] == '1' and lin['gate']['passed'] is True
    assert lin['history'][-1]['reason'].startswith('pipeline promote: gate passed')


@pytest.mark.timeout(900)
def test_a_second_version_that_regresses_is_not_promoted(project):
    root, env = project
    for step in ('train', 'evaluate', 'gate', 'promote'):       # a first champion (the whole workflow is tested above)
        out = mlops(['pipeline', step], root, env); assert out.returncode == 0, out.stderr[-2000:]
    cfg = yaml.safe_load((root / 'mlops.yaml').read_text())
    cfg['model']['params'] = {'max_iter': 3, 'max_depth': 1, 'random_state': 0}      # a much weaker model
    cfg['gate'] = {'max_regression': 0.0}
    (root / 'mlops.yaml').write_text(yaml.safe_dump(cfg))
    assert mlops(['pipeline', 'train'], root, env).returncode == 0
    assert mlops(['pipeline', 'evaluate'], root, env).returncode == 0
    gate = mlops(['pipeline', 'gate'], root, env)
    assert gate.returncode == 1, gate.stdout
    assert 'gate FAILED for churn-model version 2' in gate.stderr and 'vs champion v1' in gate.stderr
    promote = mlops(['pipeline', 'promote'], root, env)
    assert promote.returncode == 1 and 'failed its gate' in promote.stderr
    lin = json.loads(mlops(['lineage', 'churn-model', '--json'], root, env).stdout)
    assert lin['model']['number'] == '1'            # the champion did not move
    forced = mlops(['pipeline', 'promote', '--force'], root, env)
    assert forced.returncode == 0
    lin = json.loads(mlops(['lineage', 'churn-model', '--json'], root, env).stdout)
    assert lin['model']['number'] == '2' and 'FORCED' in lin['history'][-1]['reason']


@pytest.mark.timeout(900)
def test_failures_exit_non_zero_with_a_message_a_ci_log_reader_understands(project):
    root, env = project
    import pandas as pd
    df = pd.read_parquet(root / 'data/train.parquet')
    df.loc[[5, 9], 'amount'] = -3.0
    df.drop(columns=['hour']).to_parquet(root / 'data/train.parquet')
    out = mlops(['pipeline', 'validate-data'], root, env)
    assert out.returncode == 1
    assert 'validate-data FAILED: data/train.parquet breaks the schema' in out.stderr
    assert "the model's columns ['hour'] are missing" in out.stderr
    assert 'amount: 2 row(s) fail greater_than_or_equal_to(0)' in out.stderr and 'rows [5, 9]' in out.stderr
    assert 'Warning' not in out.stderr, out.stderr     # no library chatter: pandera's checks load pyspark.pandas, quietly

    out = mlops(['pipeline', 'check-drift'], root, env)
    assert out.returncode == 1 and "check-drift FAILED: data/train.parquet lacks the columns ['hour']" in out.stderr
    df.to_parquet(root / 'data/train.parquet')

    from mlops_nb.datasets import make_transactions
    cols = ['amount', 'hour', 'is_foreign', 'account_age_days', 'tx_last_hour', 'is_fraud']
    make_transactions(5000, seed=9, start='2026-03-05', drift=True)[cols].to_parquet(root / 'data/current.parquet')
    out = mlops(['pipeline', 'check-drift'], root, env)
    assert out.returncode == 1 and 'check-drift FAILED' in out.stderr and 'DRIFTED' in out.stderr

    out = mlops(['pipeline', 'gate'], root, env)
    assert out.returncode == 1 and 'Run `mlops-nb pipeline train` first' in out.stderr

    (root / 'mlops.yaml').write_text('data: {train: data/train.parquet}\nmodel: {name: m, estimator: x.Y}\n')
    out = mlops(['pipeline', 'train'], root, env)
    assert out.returncode == 2 and 'config error' in out.stderr and 'data.target' in out.stderr
    out = mlops(['pipeline', 'train', '-c', 'nope.yaml'], root, env)
    assert out.returncode == 2 and 'no config file at nope.yaml' in out.stderr

    out = mlops(['init', 'churn-model'], root.parent, env)
    assert out.returncode == 1 and 'nothing was written' in out.stderr


@pytest.mark.timeout(900)
def test_the_starter_notebooks_run_as_jobs(project):
    root, env = project
    for nb in ('notebooks/01_train.ipynb', 'notebooks/02_monitor.ipynb'):
        out = mlops(['run', nb, '--experiment', 'starter'], root, env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    assert 'recorded drift_share' in out.stdout
    # the jobs used the project's workspace, not one of their own in the output folder
    assert not list((root / 'mlops_workspace' / 'reports').rglob('mlops_workspace'))


@pytest.mark.timeout(900)
def test_a_model_that_catches_no_fraud_fails_the_scaffold_gate(project):
    "The issue: the scaffold's gate promoted a model with recall 0; its floors on recall and precision now refuse it"
    root, env = project
    cfg = yaml.safe_load((root / 'mlops.yaml').read_text())
    cfg['model']['decision_threshold'] = 0.9999          # it never says "fraud"
    (root / 'mlops.yaml').write_text(yaml.safe_dump(cfg))
    for step in ('train', 'evaluate'):
        out = mlops(['pipeline', step], root, env); assert out.returncode == 0, out.stderr[-2000:]
    gate = mlops(['pipeline', 'gate'], root, env)
    assert gate.returncode == 1, gate.stdout
    assert 'gate FAILED for churn-model version 1' in gate.stderr
    assert re.search(r'recall 0\.0+ < min', gate.stderr) and re.search(r'precision 0\.0+ < min', gate.stderr), gate.stderr
    assert mlops(['pipeline', 'promote'], root, env).returncode == 1


@pytest.mark.timeout(900)
def test_check_drift_fails_on_an_empty_or_untestable_current_data_set(project):
    root, env = project
    import pandas as pd
    cur = pd.read_parquet(root / 'data/current.parquet')
    cur.head(0).to_parquet(root / 'data/current.parquet')
    out = mlops(['pipeline', 'check-drift'], root, env)
    assert out.returncode == 1, out.stdout
    assert 'check-drift FAILED: data/current.parquet has 0 rows' in out.stderr and 'Traceback' not in out.stderr
    cur.assign(hour='h' + cur.hour.astype(str)).to_parquet(root / 'data/current.parquet')    # a feed that sends text
    out = mlops(['pipeline', 'check-drift'], root, env)
    assert out.returncode == 1, out.stdout
    assert 'could not be tested' in out.stderr and 'hour: NOT TESTED' in out.stderr and 'Traceback' not in out.stderr


@pytest.mark.timeout(900)
def test_train_with_text_in_a_number_column_says_so_in_one_line(project):
    "`mlops-nb pipeline train` on 'abc' in a float column: the line validate-data gives, exit 1, no pandas traceback"
    root, env = project
    import pandas as pd
    df = pd.read_parquet(root / 'data/train.parquet').astype({'amount': object})
    df.loc[7, 'amount'] = 'abc'
    df.to_csv(root / 'data/train.csv', index=False)
    cfg = yaml.safe_load((root / 'mlops.yaml').read_text())
    cfg['data']['train'] = 'data/train.csv'
    (root / 'mlops.yaml').write_text(yaml.safe_dump(cfg))
    line = "  - amount: its dtype is str; the schema says float64, e.g. 'abc' (rows [7])"
    val = mlops(['pipeline', 'validate-data'], root, env)
    assert val.returncode == 1 and line in val.stderr.splitlines(), val.stderr
    out = mlops(['pipeline', 'train'], root, env)
    assert out.returncode == 1, out.stdout
    assert 'Traceback' not in out.stderr and 'could not convert' not in out.stderr
    assert 'train FAILED: data/train.csv breaks the schema' in out.stderr and line in out.stderr.splitlines(), out.stderr
