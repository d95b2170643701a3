"The deployment files parse, probe the server's real endpoints, and start it with a command the CLI accepts"
import re, shlex
from pathlib import Path
import yaml
from mlops_nb.cli import make_parser

DEPLOY = Path(__file__).resolve().parents[1] / 'deploy'


def test_manifests_parse_and_match_the_cli_and_the_server():
    for env in ('staging', 'production'):
        docs = list(yaml.safe_load_all((DEPLOY / 'k8s' / f'{env}.yaml').read_text()))
        dep = next(d for d in docs if d['kind'] == 'Deployment')
        c = dep['spec']['template']['spec']['containers'][0]
        args = make_parser().parse_args(c['command'][1:])            # the CLI accepts the command
        assert c['command'][0] == 'mlops-nb' and args.command == 'serve' and args.port == 8000 and args.host == '0.0.0.0'
        assert c['readinessProbe']['httpGet']['path'] == '/ready' and c['livenessProbe']['httpGet']['path'] == '/health'
        ann = dep['spec']['template']['metadata']['annotations']
        assert ann['prometheus.io/scrape'] == 'true' and ann['prometheus.io/path'] == '/metrics'
        assert {'Deployment', 'Service'} == {d['kind'] for d in docs}


def test_dockerfile_starts_the_cli():
    text = (DEPLOY / 'Dockerfile').read_text()
    cmd = re.search(r'^CMD \["sh", "-c", "exec (.*)"\]$', text, re.M).group(1).replace('\\"', '"')
    argv = shlex.split(cmd.replace('"$MODEL_NAME"', 'm').replace('"$MODEL_ALIAS"', 'champion').replace('"$PORT"', '8000').replace('"$WORKERS"', '1'))
    args = make_parser().parse_args(argv[1:])
    assert argv[0] == 'mlops-nb' and args.command == 'serve' and args.host == '0.0.0.0'
    assert '/health' in text
