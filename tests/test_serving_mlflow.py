"""Any MLflow model, MLflow's scoring protocol: models logged with MLflow's OWN API, served by a real uvicorn server.

Each signature style -- a DataFrame example with a string column (a scikit-learn Pipeline with a categorical column),
a numpy example (a tensor signature), no example and no signature, a plain `mlflow.pyfunc.PythonModel` -- is logged
with `mlflow.sklearn.log_model` / `mlflow.pyfunc.log_model` into a tmp workspace, registered, and served by
`uvicorn --factory mlops_nb.models.serving:app_from_env`. Every request form of MLflow's scoring protocol
(`dataframe_split`, `dataframe_records`, `instances`, `inputs`, CSV) is sent to it and to MLflow's own scoring app
(`mlflow.pyfunc.scoring_server.init`, what `mlflow models serve` runs), and the answers must be the same JSON, equal to
`mlflow.pyfunc.load_model(uri).predict`."""
import json, urllib.error, urllib.request
import pytest
from conftest import stop_process
from test_serving import start_server, _samples


def _send(url, body:bytes, content_type='application/json', headers=None):
    req = urllib.request.Request(url, data=body, method='POST', headers={'Content-Type': content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r: return r.status, json.load(r), r.headers
    except urllib.error.HTTPError as e: return e.code, json.load(e), e.headers


def _shop(n=200):
    import numpy as np, pandas as pd
    rng = np.random.default_rng(0)
    df = pd.DataFrame({'amount': rng.gamma(2, 50, n).round(2), 'color': rng.choice(['red', 'green', 'blue'], n),
                       'items': rng.integers(1, 5, n), 'member': rng.random(n) > .5})
    return df, ((df.color == 'red') ^ (df.amount > 100)).astype(int)


def _log(style, ws):
    "Log one model with MLflow's own API into the workspace's store; returns (model URI, the frame of rows to send)"
    import mlflow, numpy as np, pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    mlflow.set_tracking_uri(ws.tracking_uri); mlflow.set_registry_uri(ws.registry_uri)
    mlflow.set_experiment('plain-mlflow')
    rng = np.random.default_rng(1)
    Xn = rng.normal(size=(100, 6)); yn = (Xn[:, 0] + Xn[:, 1] > 0).astype(int)
    with mlflow.start_run():
        if style == 'dataframe-with-strings':
            df, y = _shop()
            pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ['color']), (StandardScaler(), ['amount', 'items', 'member'])),
                                 LogisticRegression()).fit(df, y)
            return mlflow.sklearn.log_model(pipe, name='model', input_example=df.head(3)).model_uri, df.head(6)
        if style == 'numpy':
            return mlflow.sklearn.log_model(LogisticRegression().fit(Xn, yn), name='model', input_example=Xn[:2]).model_uri, pd.DataFrame(Xn[:6])
        if style == 'no-signature':
            return mlflow.sklearn.log_model(LogisticRegression().fit(Xn, yn), name='model').model_uri, pd.DataFrame(Xn[:6])
        class Scaled(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None): return model_input['a'] * 2 + model_input['b']
        example = pd.DataFrame({'a': [1.5, 2.0], 'b': [3, 4]})
        return mlflow.pyfunc.log_model(name='model', python_model=Scaled(), input_example=example).model_uri, \
            pd.DataFrame({'a': [0.5, 1.0, -2.25], 'b': [1, 2, 3]})


def _requests(rows, named:bool):
    "The requests MLflow's own scoring tests send, for a frame of rows"
    split = json.loads(rows.to_json(orient='split', index=False))
    reqs = {'dataframe_split': {'dataframe_split': split if named else {'data': split['data']}},
            'instances': {'instances': rows.to_dict('records') if named else rows.values.tolist()},
            'inputs': {'inputs': rows.to_dict('list') if named else rows.values.tolist()}}
    if named: reqs['dataframe_records'] = {'dataframe_records': rows.to_dict('records')}
    out = {k: (json.dumps(v, default=lambda x: x.item()).encode(), 'application/json') for k, v in reqs.items()}
    out['charset'] = (out['dataframe_split'][0], 'application/json; charset=UTF-8')
    out['csv'] = (rows.to_csv(index=False).encode(), 'text/csv')
    return out


@pytest.mark.parametrize('style', ['dataframe-with-strings', 'numpy', 'no-signature', 'pyfunc'])
def test_models_logged_by_plain_mlflow_answer_invocations_as_mlflow_does(workspace, tmp_path, style):
    import mlflow
    from fastapi.testclient import TestClient
    from mlflow.pyfunc.scoring_server import init
    from mlops_nb.models.registry import ModelRegistry
    uri, rows = _log(style, workspace)
    name = style.replace('-', '_')
    reg = ModelRegistry(name=name); reg.register_model('v1', uri); reg.set_current_version('v1')
    pyfunc = mlflow.pyfunc.load_model(uri)
    reference = TestClient(init(pyfunc))
    expected = {'dataframe-with-strings': lambda: pyfunc.predict(rows).tolist(), 'pyfunc': lambda: None}.get(
        style, lambda: pyfunc.predict(rows.to_numpy()).tolist())()          # what mlflow.pyfunc.load_model(uri).predict answers
    proc, url = start_server(workspace.home, name, tmp_path)
    try:
        named = style in ('dataframe-with-strings', 'pyfunc')
        for form, (body, ct) in _requests(rows, named).items():
            st, ours, headers = _send(url + '/invocations', body, ct)
            theirs = reference.post('/invocations', content=body, headers={'Content-Type': ct})
            if (style, form) == ('numpy', 'csv'):     # MLflow's own server can't read CSV for a tensor signature (400); we answer it
                assert theirs.status_code == 400 and 'Failed to parse input' in theirs.json()['message'], theirs.json()
            else: assert (st, ours) == (theirs.status_code, theirs.json()), (form, st, ours, theirs.json())
            assert st == 200 and headers.get('X-Model-Version') == '1', (form, ours)
            if expected is not None: assert ours['predictions'] == expected, form
        info = json.load(urllib.request.urlopen(url + '/model/info'))
        n = rows.shape[1]
        assert info['n_features'] == n, info
        # /predict and /predict/batch take the same rows: a list in signature order, or (named models) an object
        first = json.loads(rows.head(1).to_json(orient='records'))[0]
        st, one, _ = _send(url + '/predict', json.dumps({'features': list(first.values())}).encode())
        assert st == 200, one
        if named:
            st, by_name, _ = _send(url + '/predict', json.dumps({'features': first}).encode())
            assert st == 200 and by_name['prediction'] == one['prediction'], by_name
            st, b, _ = _send(url + '/predict/batch', json.dumps({'instances': json.loads(rows.to_json(orient='records'))}).encode())
            assert st == 200 and len(b['predictions']) == len(rows), b
        # bad input: a 4xx in MLflow's error shape naming the problem, never counted against the version
        st, e, _ = _send(url + '/invocations', json.dumps({'instances': [[1.0] * (n + 1)]}).encode())
        assert st == 422 and e['error_code'] == 'INVALID_PARAMETER_VALUE' and f'expected {n} features per row, got {n + 1}' in e['message'], e
        st, e, _ = _send(url + '/invocations', b'{"records": []}')
        assert st == 400 and e['error_code'] == 'BAD_REQUEST' and "got the fields ['records']" in e['message'], e
        assert _samples(url, 'ml_prediction_errors_total') == {}
    finally: stop_process(proc)


def test_a_categorical_pipeline_bad_values_limits_and_canary_on_invocations(workspace, tmp_path):
    "Strings for numbers, unseen categories, NaN, empty and too-large batches: 4xx, never counted; a canary split reaches /invocations"
    from mlops_nb.models.registry import ModelRegistry
    uri1, rows = _log('dataframe-with-strings', workspace); uri2, _ = _log('dataframe-with-strings', workspace)
    reg = ModelRegistry(name='shop'); reg.register_model('v1', uri1); reg.register_model('v2', uri2); reg.set_current_version('v1')
    proc, url = start_server(workspace.home, 'shop', tmp_path, MLOPS_NB_SERVE_RELOAD='0.5', MLOPS_NB_SERVE_MAX_BODY='64KiB')
    try:
        cols = list(rows.columns)
        split = lambda *data: json.dumps({'dataframe_split': {'columns': cols, 'data': list(data)}}).encode()
        for body, ct, status, msg in [
                (split([1.0, 'red', 2, True], ['lots', 'red', 2, True]), 'application/json', 422,
                 "feature 'amount' of row 1 must be a number (the signature says double); it is the string 'lots'"),
                (split([1.0, 'purple', 2, True]), 'application/json', 422, 'Found unknown categories'),
                (split([1.0, 3, 2, True]), 'application/json', 422, "feature 'color' must be a string (the signature says string); it is 3"),
                (b'{"dataframe_split": {"columns": ["amount", "color", "items", "member"], "data": [[NaN, "red", 2, true]]}}', 'application/json', 422,
                 "feature 'amount' is nan: numbers must be finite"),
                (json.dumps({'dataframe_records': [{'amount': 1.0, 'color': 'red'}]}).encode(), 'application/json', 422, "missing features ['items', 'member']"),
                (split(), 'application/json', 422, 'the batch is empty'),
                (b'amount,color,items,member\n1.0,red,,True\n', 'text/csv', 422, "feature 'items' is null"),
                (b'<xml/>', 'application/xml', 415, 'application/json or text/csv'),
                (split(*[[1.0, 'red', 2, True]] * 5000), 'application/json', 413, 'larger than the limit of 65,536 bytes')]:
            st, e, _ = _send(url + '/invocations', body, ct)
            assert st == status and msg in e['message'] and set(e) == {'error_code', 'message'}, (st, e)
        assert _samples(url, 'ml_prediction_errors_total') == {}
        refused = _samples(url, 'ml_http_requests_total')
        assert refused[(('endpoint', '/invocations'), ('status', '422'))] == 7 and refused[(('endpoint', '/invocations'), ('status', '413'))] == 1
        # the canary split set in the registry reaches /invocations, sticky by X-Request-Key
        reg.client.set_registered_model_tag('shop', 'mlops_nb.traffic_split', json.dumps({'1': 0.5, '2': 0.5}))   # as CanaryDeployment writes it: with the champion's share
        body = split([120.0, 'red', 2, True])
        version = lambda i: _send(url + '/invocations', body, headers={'X-Request-Key': f'user-{i}'})[2].get('X-Model-Version')
        import time
        end, seen = time.time() + 30, set()
        while time.time() < end and seen != {'1', '2'}:
            seen = {version(i) for i in range(30)}; time.sleep(0.3)
        assert seen == {'1', '2'}
        assert all(len({version(i) for _ in range(3)}) == 1 for i in range(20))
        counted = {dict(k)['model_version'] for k in _samples(url, 'ml_predictions_total')}
        assert counted == {'1', '2'}
    finally: stop_process(proc)
