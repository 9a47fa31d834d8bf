"""A strict-enough parser of the Prometheus text format (0.0.4) for the metrics tests."""
import os
import re
import urllib.request

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


class Scrape:
    def __init__(self, text):
        self.text = text
        self.types = {}      # family name -> type
        self.samples = []    # (name, labels dict, value)
        for line in text.splitlines():
            if line.startswith('# TYPE '):
                _, _, name, typ = line.split(' ', 3)
                assert name not in self.types, f'family {name} declared twice'
                self.types[name] = typ
                continue
            if line.startswith('#') or not line:
                continue
            m = _SAMPLE.match(line)
            assert m, f'malformed sample line: {line!r}'
            labels = {}
            if m.group(3):
                rest = m.group(3)
                pos = 0
                while pos < len(rest):
                    lm = _LABEL.match(rest, pos)
                    assert lm, f'malformed labels in {line!r}'
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
            self.samples.append((m.group(1), labels, float(m.group(4))))

    def get(self, name, **labels):
        """The value of the one sample of `name` whose labels include `labels`."""
        found = [v for n, l, v in self.samples
                 if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
        assert len(found) == 1, f'{name}{labels}: {len(found)} samples'
        return found[0]

    def all(self, name):
        return [(l, v) for n, l, v in self.samples if n == name]


def admin_url(path):
    return f'http://{os.environ["VARVE_ADMIN"]}{path}'


def http_get(path):
    """(status, body) of a GET on the broker's admin listener."""
    try:
        with urllib.request.urlopen(admin_url(path), timeout=10) as r:
            return r.status, r.read().decode(), r.headers.get('Content-Type')
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get('Content-Type')


def scrape():
    status, body, ctype = http_get('/metrics')
    assert status == 200, body
    assert ctype.startswith('text/plain; version=0.0.4'), ctype
    return Scrape(body)
