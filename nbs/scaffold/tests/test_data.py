"Tests of __NAME__'s data and config, run by CI (`pytest tests/`)."
from pathlib import Path
from mlops_nb.pipeline import load_config, validate_data, split_data

ROOT = Path(__file__).resolve().parents[1]

def test_config_loads_and_names_the_model():
    cfg = load_config(ROOT/'mlops.yaml')
    assert cfg['model']['name'] == '__NAME__'

def test_training_data_matches_the_schema():
    assert validate_data(load_config(ROOT/'mlops.yaml'), say=lambda s: None)['train']['rows'] > 0

def test_holdout_is_the_same_every_time():
    cfg = load_config(ROOT/'mlops.yaml')
    assert split_data(cfg)[1].index.equals(split_data(cfg)[1].index)
