"""Parse Prometheus text format from stdin with prometheus_client's own
parser and print every sample as JSON: [name, labels, value]."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

out = []
types = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    types[fam.name] = fam.type
    for s in fam.samples:
        v = s.value
        out.append([s.name, s.labels, None if math.isinf(v) else v])
json.dump({"samples": out, "types": types}, sys.stdout)
