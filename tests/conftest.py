"""Fixtures for real services: Redis, PostgreSQL, an MLflow store and an `mlflow server` process.

Each test isolates itself (its own key prefix, its own database, its own workspace folder, its own server on a free
port) and cleans up. When a service is missing: under CI=true the test fails and says what is missing; elsewhere it is
skipped with that message -- never a silent pass.
"""
import os, shutil, socket, subprocess, sys, time, uuid, urllib.request
from pathlib import Path
import pytest

REDIS_URL = os.environ.get('MLOPS_NB_TEST_REDIS', 'redis://127.0.0.1:6379/0')
POSTGRES_URL = os.environ.get('MLOPS_NB_TEST_POSTGRES', 'postgresql://postgres@127.0.0.1:5432/postgres')
ROOT = Path(__file__).resolve().parents[1]


def service_missing(what: str, how: str):
    "Fail under CI (the service must be there), skip elsewhere; both say what is missing and how to start it"
    msg = f"{what} is not available: {how}"
    if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'): pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60, proc=None):
    "Poll `url` until it answers 200; fail early if `proc` died"
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200: return
        except Exception: time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process(proc, timeout: float = 10):
    "Stop a process started with start_new_session=True, and its children"
    if proc.poll() is not None: return
    import signal
    try: os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError: return
    try: proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout)


# ---------------------------------------------------------------- Redis
@pytest.fixture(scope='session')
def redis_url():
    "URL of the machine's Redis server (MLOPS_NB_TEST_REDIS to change)"
    import redis
    try: redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as e:
        service_missing(f"Redis at {REDIS_URL}", f"{e}. Start it with `redis-server --daemonize yes --port 6379 --save ''`")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url):
    "A fresh key prefix on the real Redis; every key under it is deleted after the test"
    import redis
    prefix = f"mlops_nb_test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=prefix + '*', count=1000))
    if keys: r.delete(*keys)


# ---------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope='session')
def postgres_url():
    "URL of the machine's PostgreSQL server (MLOPS_NB_TEST_POSTGRES to change)"
    import psycopg
    try: psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as e:
        service_missing(f"PostgreSQL at {POSTGRES_URL}",
                        f"{e}. Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    return POSTGRES_URL


@pytest.fixture
def postgres_db(postgres_url):
    "A fresh, empty PostgreSQL database (its URL for psycopg); dropped after the test"
    import psycopg
    name = f"mlops_nb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as c: c.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit('/', 1)[0] + '/' + name
    with psycopg.connect(postgres_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- MLflow
@pytest.fixture(scope='session')
def mlflow_db_template(tmp_path_factory):
    "An MLflow SQLite store with its migrations run, made once per session (creating one takes seconds)"
    path = tmp_path_factory.mktemp('mlflow_template') / 'mlflow.db'
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    SqlAlchemyStore(f'sqlite:///{path}', str(path.parent / 'artifacts')).engine.dispose()
    return path


@pytest.fixture
def workspace(tmp_path, mlflow_db_template):
    "A fresh workspace folder configured for the test, with a ready MLflow store copied in"
    from mlops_nb.config import configure
    home = tmp_path / 'ws'
    home.mkdir()
    shutil.copy(mlflow_db_template, home / 'mlflow.db')
    with configure(reset=True, home=home) as s: yield s


@pytest.fixture
def mlflow_server(tmp_path, mlflow_db_template):
    "A real `mlflow server` on a free loopback port over its own store; yields its URL"
    db, art = tmp_path / 'server.db', tmp_path / 'server-artifacts'
    shutil.copy(mlflow_db_template, db)
    port = free_port()
    cmd = [sys.executable, '-m', 'mlflow', 'server', '--host', '127.0.0.1', '--port', str(port),
           '--backend-store-uri', f'sqlite:///{db}', '--artifacts-destination', str(art), '--workers', '1']
    log = open(tmp_path / 'mlflow-server.log', 'wb')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    url = f'http://127.0.0.1:{port}'
    try:
        wait_http(url + '/health', timeout=90, proc=proc)
        yield url
    finally:
        stop_process(proc); log.close()


@pytest.fixture(autouse=True)
def _no_writes_into_repo(monkeypatch, tmp_path):
    "Tests run from a temporary folder, so nothing (MLflow's ./mlflow.db, ./mlruns) lands in the repository"
    monkeypatch.chdir(tmp_path)


# ---------------------------------------------------------------- the walk-through, run once for the whole session
class Walkthrough:
    "One run of `mlops-nb demo --full` in a fresh folder: its workspace, what it printed, its executed notebook and HTML"
    def __init__(self, folder: Path, out: subprocess.CompletedProcess):
        import re
        self.folder, self.home, self.stdout, self.stderr = folder, folder / 'ws', out.stdout, out.stderr
        m = re.search(r'executed notebook: (\S+\.ipynb)', out.stdout)
        assert m, f"`mlops-nb demo --full` printed no executed notebook:\n{out.stdout[-2000:]}"
        self.notebook = Path(m.group(1)); self.html = self.notebook.with_suffix('.html')


@pytest.fixture(scope='session')
def walkthrough(tmp_path_factory) -> Walkthrough:
    "The end-to-end walk-through as a user runs it (`mlops-nb demo --full`), made once for every test that reads it"
    folder = tmp_path_factory.mktemp('walkthrough')
    env = {k: v for k, v in os.environ.items() if not k.startswith('MLOPS_NB_')}
    env['MLOPS_NB_HOME'] = str(folder / 'ws')
    out = subprocess.run([str(Path(sys.executable).parent / 'mlops-nb'), 'demo', '--full'], env=env, cwd=folder,
                         capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return Walkthrough(folder, out)
