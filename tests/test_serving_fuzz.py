"""The running model server fuzzed through its own OpenAPI document (schemathesis): no 5xx, answers as documented.

A real uvicorn server on a free loopback port serves a small model (iris, 4 named features, its run's lineage naming
an online feature group, so `{"entities": [...]}` is a request form too, read from the workspace's SQLite online
store); schemathesis reads
`/openapi.json` from it and sends, per operation (`/invocations`, MLflow's scoring protocol, included), bounded
examples of valid requests (which must be answered 2xx) and
of invalid ones (which must get a documented 4xx), with its default checks (`not_a_server_error`, status codes,
content types and bodies conforming to the document, positive data accepted, negative data rejected). The strategies
are driven from a plain test (schemathesis' lazy `from_fixture` loader does not run under pytest 9 here)."""
import os, shutil
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from conftest import stop_process
from test_serving import start_server, _samples


@pytest.fixture(scope='module')
def api_url(tmp_path_factory, mlflow_db_template):
    "A served iris classifier in a workspace of its own; yields the server's URL"
    from mlops_nb.config import configure
    tmp = tmp_path_factory.mktemp('fuzz'); home = tmp / 'ws'; home.mkdir()
    shutil.copy(mlflow_db_template, home / 'mlflow.db')
    cwd = os.getcwd(); os.chdir(tmp)                 # nothing lands in the repository
    try:
        with configure(reset=True, home=home):
            from sklearn.datasets import load_iris
            from sklearn.linear_model import LogisticRegression
            from mlops_nb.tracking import ExperimentTracker
            from mlops_nb.models.registry import ModelRegistry
            X, y = load_iris(return_X_y=True, as_frame=True)
            tr = ExperimentTracker(experiment_name='fuzz')
            from mlops_nb.lineage import log_training_set
            from mlops_nb.features.online import OnlineFeatureStore
            with tr.run('iris'):
                info = tr.log_model(LogisticRegression(max_iter=300).fit(X, y), 'model', input_example=X.head(2))
                log_training_set(X.assign(entity_id=[f'e{i}' for i in range(len(X))]), tracker=tr, online_features='iris')  # entity requests too
            OnlineFeatureStore().write_frame(X.head(20).assign(entity_id=[f'e{i}' for i in range(20)]), group='iris')
            reg = ModelRegistry(name='iris'); reg.register_model('v1', info.model_uri); reg.set_current_version('v1')
            proc, url = start_server(home, 'iris', tmp)
    finally: os.chdir(cwd)
    try: yield url
    finally: stop_process(proc)


def test_the_server_survives_its_own_openapi_document(api_url):
    "Every operation, valid and invalid examples (30 of each per operation): no 5xx, every answer as documented"
    from schemathesis import GenerationMode
    from schemathesis.config import SchemathesisConfig
    from schemathesis.config._checks import NegativeDataRejectionConfig
    # a body over the documented batch limit is refused with 413 Content Too Large: a rejection, as 400/422 are
    refusals = [*NegativeDataRejectionConfig._DEFAULT_EXPECTED_STATUSES, '413']
    config = SchemathesisConfig.from_dict({'checks': {'negative_data_rejection': {'expected-statuses': refusals}}})
    schema = schemathesis.openapi.from_url(api_url + '/openapi.json', config=config)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {o.label for o in ops} >= {'POST /predict', 'POST /predict/batch', 'POST /invocations', 'GET /model/info', 'GET /health', 'GET /ready', 'GET /metrics'}
    failures = {}
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and op.method.upper() == 'GET': continue    # nothing to break in a GET without parameters
            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
            def run(case): case.call_and_validate(timeout=30)
            try: run()
            except Exception as e: failures[f'{op.label} ({mode.value})'] = f'{type(e).__name__}: {str(e)[:1500]}'
    assert not failures, '\n\n'.join(f'{k}: {v}' for k, v in failures.items())
    answered = _samples(api_url, 'ml_http_requests_total')          # the examples did reach the model's endpoints
    for ep in ('/predict', '/predict/batch', '/invocations'):
        assert sum(v for k, v in answered.items() if dict(k)['endpoint'] == ep and dict(k)['status'] == '200') >= 10, answered
        assert sum(v for k, v in answered.items() if dict(k)['endpoint'] == ep and dict(k)['status'].startswith('4')) >= 10, answered
    assert not any(dict(k)['status'].startswith('5') for k in answered), answered
