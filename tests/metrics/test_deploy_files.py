"""deploy/grafana and deploy/prometheus refer only to metrics a running broker exports, and
(when promtool is available) the rules parse and the scrape passes promtool's linter."""
import json
import os
import re
import subprocess

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from promparse import http_get, scrape

REPO = os.environ['VARVE_REPO']
DASHBOARD = os.path.join(REPO, 'deploy/grafana/varve.json')
RULES = os.path.join(REPO, 'deploy/prometheus/alerts.yml')
NAME = re.compile(r'\b(?:varve|process)_[a-z0-9_]+\b')
HIST_SUFFIXES = ('_bucket', '_sum', '_count')
PROMTOOL = os.environ.get('PROMTOOL')


def exported_families():
    # A little traffic so that every family has samples (not needed for names, which come
    # from the TYPE lines, but the promtool lint below looks at samples too).
    bootstrap = os.environ['VARVE_BOOTSTRAP']
    p = Producer({'bootstrap.servers': bootstrap})
    p.produce('deploy-check', b'v')
    assert p.flush(30) == 0
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'deploy-check'})
    c.commit(offsets=[TopicPartition('deploy-check', 0, 1)], asynchronous=False)
    c.close()
    return scrape().types


def referenced(text):
    return set(NAME.findall(text))


def known(name, types):
    if name in types:
        return True
    for suffix in HIST_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) == 'histogram':
            return True
    return False


def test_dashboard_and_rules_use_only_exported_metrics():
    types = exported_families()
    dash = json.load(open(DASHBOARD))
    dash_exprs = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ('expr', 'query') and isinstance(v, str):
                    dash_exprs.append(v)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(dash)
    dash_names = referenced('\n'.join(dash_exprs))
    rule_names = referenced(open(RULES).read())
    assert len(dash_names) >= 20, dash_names
    # The seed's alerts: under-replicated, offline, ISR shrink rate, lag, under-min-ISR.
    for must in ('varve_under_replicated_partitions', 'varve_offline_partitions',
                 'varve_isr_shrinks_total', 'varve_consumer_group_lag',
                 'varve_under_min_isr_partitions'):
        assert must in rule_names, must
    missing = sorted(n for n in dash_names | rule_names if not known(n, types))
    assert not missing, f'referenced but not exported: {missing}'


def test_alert_rules_parse_with_promtool():
    if not PROMTOOL:
        pytest.skip('promtool not available (tests/metrics/install.sh extracts it from '
                    "Debian's prometheus package)")
    r = subprocess.run([PROMTOOL, 'check', 'rules', RULES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_scrape_passes_promtool_lint():
    if not PROMTOOL:
        pytest.skip('promtool not available')
    status, body, _ = http_get('/metrics')
    assert status == 200
    r = subprocess.run([PROMTOOL, 'check', 'metrics'], input=body, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
