"Lineage from the command line: a typo in a model name is an error that lists the models, and creates nothing"
import os, subprocess, sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / 'mlops-nb'


def _models(client):
    return sorted(m.name for m in client.search_registered_models(max_results=1000))


def test_cli_lineage_of_an_unknown_model_lists_the_models_and_creates_none(workspace, tmp_path):
    from mlflow import MlflowClient
    c = MlflowClient(workspace.tracking_uri, registry_uri=workspace.registry_uri)
    c.create_registered_model('fraud')
    env = {**os.environ, 'MLOPS_NB_HOME': str(workspace.home)}
    out = subprocess.run([str(BIN), 'lineage', 'frod'], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Model 'frod' not found; the registered models are ['fraud']" in out.stderr
    assert 'Traceback' not in out.stderr
    assert _models(c) == ['fraud']                        # the typo did not become an empty registered model


def test_model_lineage_of_an_unknown_model_creates_none(workspace):
    from mlflow import MlflowClient
    from mlops_nb.lineage import model_lineage
    c = MlflowClient(workspace.tracking_uri)
    with pytest.raises(ValueError, match=r"Model 'nope' not found; the registered models are \[\]"): model_lineage('nope')
    with pytest.raises(ValueError, match=r"Model 'nope' not found"): model_lineage('nope', 'v1')
    assert _models(c) == []
