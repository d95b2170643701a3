"""What the serving benchmarks share: a free port, starting a server and waiting until it answers, driving it with wrk,
and calling an ASGI app in process (for profiles). Imported by bench_serving.py and bench_entity_serving.py, which run
as scripts from this folder."""
import json, os, re, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path


def free_port() -> int:
    "A TCP port on 127.0.0.1 nothing listens on right now."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait_until_up(url:str, proc:subprocess.Popen, timeout:float=180, any_status:bool=False):
    "Return once `url` answers 2xx (any HTTP status if `any_status`); raise if `proc` exits or time runs out."
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None: raise RuntimeError(f'server exited: {proc.returncode}')
        try: urllib.request.urlopen(url, timeout=2); return
        except urllib.error.HTTPError:
            if any_status: return
            time.sleep(0.3)
        except Exception: time.sleep(0.3)
    raise TimeoutError(url)


def start_server(name:str, cmd:list, env:dict, ready:str, workdir:Path, procs:list, any_status:bool=False):
    "Start `cmd` in its own process group (stopped with `os.killpg`), log to `workdir/<name>.log`, wait for `ready`."
    log = open(Path(workdir) / f'{name}.log', 'wb')
    p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir)
    procs.append(p)
    try: wait_until_up(ready, p, any_status=any_status)
    except Exception:
        print(open(log.name).read()[-3000:], file=sys.stderr); raise
    return p


def post_lua(body:str) -> str:
    "A wrk script that POSTs the same JSON `body` on every request."
    return f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'


def run_wrk(url:str, seconds:int, lua:str, workdir:Path, threads:int=2, connections:int=2) -> dict:
    "Load `url` with wrk for `seconds` using the Lua script text `lua`: req/s, p50/p99 in ms, non-2xx count, load average."
    script = Path(workdir) / f'wrk-{abs(hash(lua))}.lua'
    script.write_text(lua)
    out = subprocess.run(['wrk', f'-t{threads}', f'-c{connections}', f'-d{seconds}s', '--timeout', '5s', '--latency',
                          '-s', str(script), url], capture_output=True, text=True, timeout=seconds + 60).stdout
    unit = lambda v, u: float(v) * {'us': 1e-3, 'ms': 1, 's': 1000}[u]
    lat = dict((q, unit(v, u)) for q, v, u in re.findall(r'\s(50|90|99)%\s+([\d.]+)(us|ms|s)', out))
    errs = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return dict(rps=float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1)), p50=lat['50'], p99=lat['99'],
                non2xx=int(errs.group(1)) if errs else 0, load=os.getloadavg()[0])


def inline_threadpool():
    "Run Starlette's worker-thread hop inline, so a profiler on this thread samples the handler too."
    import starlette.concurrency
    async def inline(f, *a, **k): return f(*a, **k)
    starlette.concurrency.run_in_threadpool = inline


async def asgi_post(app, path:str, body:bytes) -> list:
    "POST `body` (JSON) to `path` of the ASGI `app` in process, no HTTP server; the ASGI messages it sent (200 asserted)."
    sent = []
    async def receive(): return {'type': 'http.request', 'body': body, 'more_body': False}
    async def send(m): sent.append(m)
    scope = {'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': 'POST', 'scheme': 'http',
             'path': path, 'raw_path': path.encode(), 'query_string': b'', 'root_path': '', 'client': ('127.0.0.1', 1),
             'server': ('127.0.0.1', 80),
             'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode())]}
    await app(scope, receive, send)
    assert sent[0]['status'] == 200, sent
    return sent
