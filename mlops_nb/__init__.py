"""Jupyter-first MLOps: experiment tracking, tuning, features, registry, serving, monitoring and A/B tests from one notebook

`mlops_nb` gives a data scientist, from the same kernel, what the path from an experiment to a model in production
needs: experiment tracking on MLflow, hyperparameter search on Optuna, a feature store, a model registry with canary
rollouts, a model server, drift monitoring and A/B testing, with widgets to look at them, `%load_ext mlops_nb` magics
to drive them and papermill report jobs. Everything lands in one workspace folder with embedded backends (SQLite,
Parquet, files), so it works on a fresh machine with no server; a URL switches any backend to a real server.

Modules:

- `mlops_nb.abtest`: A/B tests from a notebook: sticky uniform assignment, columnar recording, an analysis that is correct by default
- `mlops_nb.abtest_stats`: The statistics behind A/B tests: Welch and proportion tests, delta-method lifts, SRM, CUPED, corrections, sequential and Bayesian views, power
- `mlops_nb.cli`: The `mlops-nb` command: the demo, the settings, the runs and the MLflow UI on the workspace
- `mlops_nb.config`: One workspace folder with embedded backends, switched to real servers by URL
- `mlops_nb.datasets`: A deterministic, realistic synthetic transactions data set with fraud labels and switchable drift
- `mlops_nb.display`: Small HTML and number-formatting helpers shared by every rich display in `mlops_nb`
- `mlops_nb.features.offline`: The offline feature store: feature groups as Parquet in the workspace, atomic appends, point-in-time correct training sets
- `mlops_nb.features.online`: The online feature store: Redis (or SQLite, the embedded default), typed values, one round trip per batch, materialisation
- `mlops_nb.features.pipeline`: Config-driven, fitted feature transforms whose statistics are plain, versioned data: the same transform at training and serving
- `mlops_nb.features.registry`: Versioned, executable feature definitions: immutable versions in the workspace, SQL run with DuckDB into the offline store
- `mlops_nb.jobs`: Notebooks as jobs: parameters checked before anything runs, every run an MLflow run, records, templates and schedules
- `mlops_nb.lazy`: Top-level names that import their module on first use, so `import mlops_nb` stays fast
- `mlops_nb.lineage`: One call from a model version back to its run, training set and feature definitions, and forward to where it is served, its rollouts and its A/B verdicts
- `mlops_nb.magics`: `%load_ext mlops_nb`: track a cell as an MLflow run, browse runs, look at A/B tests and the workspace
- `mlops_nb.models.canary`: Canary rollouts that never block a notebook: a persisted plan, guardrails on live metrics, automatic rollback, promotion
- `mlops_nb.models.registry`: A model registry on MLflow's: versions, the `champion` alias, a recorded history of every move, one-call rollback, comparison
- `mlops_nb.models.serving`: A FastAPI model server: single and batch predictions, validation, Prometheus metrics, canary routing, hot alias moves
- `mlops_nb.monitoring.drift`: Data and prediction drift: per-column tests chosen like Evidently's, computed once per reference, at a fraction of the cost
- `mlops_nb.monitoring.metrics`: Prometheus metrics for models and drift, each monitor with a registry of its own; alert sinks with a cooldown
- `mlops_nb.pipeline`: The CI/CD steps as commands: validate data, check drift, train, evaluate, gate, promote, smoke test — one config file
- `mlops_nb.scaffold`: `mlops-nb init PATH`: a new MLOps project wired to mlops_nb — pipeline config, CI workflow, starter notebooks, deployment, tests
- `mlops_nb.tracking`: Experiment tracking on MLflow 3: runs as context managers, buffered metrics, tracked training, runs as a DataFrame
- `mlops_nb.tracking_buffer`: Metric values that cost the caller microseconds: checked at once, written in batches by a background thread
- `mlops_nb.tracking_eval`: What tracked training measures and draws: test-set metrics, the learning curve, feature importance; runs as a table
- `mlops_nb.tracking_store`: Where tracked values go: opening an MLflow store, and the one adapter that writes metric batches into it
- `mlops_nb.tuning`: Hyperparameter search on Optuna 5, one MLflow parent run per study and a child run per trial, resumable and distributed
- `mlops_nb.widgets.abtest`: An A/B analysis view in the notebook: the table with intervals, a forest plot of lifts, the SRM warning and the decision
- `mlops_nb.widgets.features`: A feature explorer in the notebook: statistics and histogram of a feature, its definition versions, an entity's online values
- `mlops_nb.widgets.runs`: A runs browser in the notebook, on the workspace's MLflow store, with no server: filter, sort, page, compare"""

__version__ = "0.1.0"

# The one hand-kept module: nbdev writes the docstring above and `__version__`; everything else is exported from
# nbs/. Public names load their module on first use (see nbs/00a_lazy.ipynb), so this import stays fast.
def __getattr__(name):
    if name.startswith('__'): raise AttributeError(name)
    from .lazy import lazy_attr
    return lazy_attr(__name__, name)

def __dir__():
    from .lazy import public_names
    return sorted({*globals(), *public_names(__name__)})

def load_ipython_extension(ip):
    "`%load_ext mlops_nb`: the magics, imported only now"
    from .magics import load_ipython_extension as load
    load(ip)

def unload_ipython_extension(ip):
    from .magics import unload_ipython_extension as unload
    unload(ip)
