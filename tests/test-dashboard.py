#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/grafana/hami-dra.json is a dashboard Grafana can import, on our metrics only.

Structure: schemaVersion, uid and title; the data source is the template variable
DS_PROMETHEUS (so it imports and provisions alike), every panel and target uses it; the
variables node and namespace; unique panel ids and refIds, panels inside the 24-column
grid and not overlapping; every family of deploy/grafana/metric-families.txt on some
panel.

PromQL: every metric name in every expression (targets and variable queries) is an
exported family of deploy/grafana/metric-families.txt (a histogram's _bucket, _sum and
_count too), and every label name in a matcher, a by/without/on/ignoring list or a
legend's {{label}} is one of those families' labels. Then each expression, variables
substituted, goes to a real Prometheus (loopback, empty TSDB) through /api/v1/query: a
parse error there is an HTTP 400, and fails the test.

Usage: test-dashboard.py [SOURCE_ROOT]   check SOURCE_ROOT's dashboard
       test-dashboard.py --self-test     show that broken dashboards are refused
Exit 77 (skipped) when prometheus is not installed.
"""

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from promserver import PrometheusServer  # noqa: E402
DASHBOARD = "deploy/grafana/hami-dra.json"
FAMILIES = "deploy/grafana/metric-families.txt"
DS_UID = "${DS_PROMETHEUS}"
PANEL_TYPES = {"row", "timeseries", "stat", "table", "bargauge", "gauge", "text"}

# What Grafana puts in place of the variables when it runs a query, for the check.
SUBSTITUTE = {"node": ".*", "namespace": ".*", "__rate_interval": "1m", "__interval": "15s",
              "__range": "15m", "__range_s": "900", "__interval_ms": "15000"}

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
            "bool", "inf", "nan", "atan2"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}@])
  | (?P<space>\s+)
  | (?P<other>.)
""", re.X)


def load_families(path):
    """{metric name: set of label names}: each family, and a histogram's series."""
    names = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3 or parts[1] not in ("gauge", "counter", "histogram", "summary", "info"):
                raise ValueError("%s:%d: want NAME TYPE LABELS, not %r" % (path, n, line))
            name, kind, labels = parts
            labels = set() if labels == "-" else set(labels.split(","))
            if kind == "histogram":
                names[name + "_bucket"] = labels | {"le"}
                names[name + "_sum"] = set(labels)
                names[name + "_count"] = set(labels)
            else:
                names[name] = labels
            names.setdefault("__families__", set()).add(name)
    return names


def family_of(metric, families):
    for fam in families["__families__"]:
        if metric == fam or metric in (fam + "_bucket", fam + "_sum", fam + "_count"):
            return fam
    return None


def tokens(expr):
    out = []
    for m in TOKEN.finditer(expr):
        kind = m.lastgroup
        if kind == "space":
            continue
        out.append((kind, m.group()))
    return out


def names_in(expr):
    """(metric names, label names) an expression mentions, by a small PromQL tokenizer."""
    metrics, labels = set(), set()
    toks = tokens(expr)
    depth_brace = 0
    label_list = False
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else (None, None)
        if text == "{":
            depth_brace += 1
        elif text == "}":
            depth_brace -= 1
        elif kind == "ident" and depth_brace > 0:
            # inside a selector: label OP "value"
            if nxt[0] == "op" and nxt[1] in ("=", "!=", "=~", "!~"):
                if text == "__name__" and i + 2 < len(toks) and toks[i + 2][0] == "string":
                    metrics.add(toks[i + 2][1][1:-1])
                else:
                    labels.add(text)
        elif kind == "ident" and text in LABEL_LIST_KEYWORDS and nxt[1] == "(":
            label_list = True
            i += 1
        elif label_list:
            if text == ")":
                label_list = False
            elif kind == "ident":
                labels.add(text)
        elif kind == "ident" and (nxt[1] == "(" or nxt[1] in ("by", "without")):
            pass  # a function, or an aggregation (sum by (x) (...))
        elif kind == "ident" and text.lower() not in KEYWORDS:
            metrics.add(text)
        i += 1
    return metrics, labels


def substitute(expr):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return SUBSTITUTE.get(name, m.group(0))
    return re.sub(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\[\[(\w+)\]\]|\$([A-Za-z_]\w*)", repl, expr)


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        for q in p.get("panels", []) or []:
            yield q


def expressions(dash):
    """(where, expr, legend) for every target, and the variables' label_values() queries."""
    out = []
    for p in all_panels(dash):
        for t in p.get("targets", []) or []:
            out.append(("panel %r target %s" % (p.get("title"), t.get("refId")), t.get("expr", ""),
                        t.get("legendFormat", "")))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*", q)
        if not m:
            out.append(("variable %s" % v.get("name"), q, ""))
        else:
            out.append(("variable %s" % v.get("name"), m.group(1), "{{%s}}" % m.group(2)))
    return out


def check_structure(dash, families):
    errs = []
    if not isinstance(dash.get("schemaVersion"), int) or not 36 <= dash["schemaVersion"] <= 41:
        errs.append("schemaVersion %r: want 36..41 (Grafana 9.x-11.x)" % dash.get("schemaVersion"))
    for k in ("title", "uid"):
        if not dash.get(k):
            errs.append("no %s" % k)
    if dash.get("id") is not None:
        errs.append("id must be null for an importable dashboard")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errs.append("no template variable DS_PROMETHEUS of type datasource, query prometheus")
    for name in ("node", "namespace"):
        v = variables.get(name)
        if not v or v.get("type") != "query":
            errs.append("no query variable %s" % name)
            continue
        if (v.get("datasource") or {}).get("uid") != DS_UID:
            errs.append("variable %s: datasource is not %s" % (name, DS_UID))
        if not v.get("includeAll") or v.get("allValue") != ".*":
            errs.append("variable %s: want includeAll with allValue .*" % name)
    ids, cells = set(), {}
    for p in all_panels(dash):
        title = p.get("title")
        if p.get("type") not in PANEL_TYPES:
            errs.append("panel %r: type %r" % (title, p.get("type")))
        if p.get("id") in ids or not isinstance(p.get("id"), int):
            errs.append("panel %r: id %r missing or not unique" % (title, p.get("id")))
        ids.add(p.get("id"))
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["w"] < 1 or g["h"] < 1 or g["x"] < 0 \
                or g["x"] + g["w"] > 24 or g["y"] < 0:
            errs.append("panel %r: gridPos %r outside the 24-column grid" % (title, g))
            continue
        for y in range(g["y"], g["y"] + g["h"]):
            for x in range(g["x"], g["x"] + g["w"]):
                if (x, y) in cells:
                    errs.append("panel %r overlaps panel %r at x=%d y=%d" % (title, cells[(x, y)], x, y))
                    break
                cells[(x, y)] = title
            else:
                continue
            break
        if p.get("type") in ("row", "text"):
            continue
        if not title:
            errs.append("panel %r has no title" % p.get("id"))
        if (p.get("datasource") or {}).get("uid") != DS_UID:
            errs.append("panel %r: datasource is not %s" % (title, DS_UID))
        targets = p.get("targets") or []
        if not targets:
            errs.append("panel %r: no targets" % title)
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            errs.append("panel %r: refIds %r not unique" % (title, refs))
        for t in targets:
            if (t.get("datasource") or {}).get("uid") != DS_UID:
                errs.append("panel %r target %s: datasource is not %s" % (title, t.get("refId"), DS_UID))
            if not (t.get("expr") or "").strip():
                errs.append("panel %r target %s: no expr" % (title, t.get("refId")))
    used = set()
    for _, expr, _ in expressions(dash):
        used |= {family_of(m, families) for m in names_in(expr)[0]}
    for fam in sorted(families["__families__"] - used):
        errs.append("family %s is on no panel" % fam)
    return errs


def check_names(dash, families):
    errs = []
    for where, expr, legend in expressions(dash):
        metrics, labels = names_in(expr)
        if not metrics:
            errs.append("%s: no metric in %r" % (where, expr))
        known = set()
        for m in sorted(metrics):
            if m not in families or m == "__families__":
                errs.append("%s: %s is not an exported metric" % (where, m))
            else:
                known |= families[m]
        labels |= set(re.findall(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}", legend or ""))
        for lab in sorted(labels - known):
            if metrics <= set(families):
                errs.append("%s: label %s is on none of %s" % (where, lab, ", ".join(sorted(metrics))))
        left = substitute(expr)
        if "$" in left:
            errs.append("%s: a variable the check does not know is left in %r" % (where, left))
    return errs


class Prometheus(PrometheusServer):
    """A real Prometheus on loopback with an empty TSDB and nothing to scrape."""

    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="test-dashboard.")
        try:
            super().__init__(self.dir, binary=binary)
        except RuntimeError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def query(self, expr):
        """(HTTP status, the answer's JSON)"""
        return self.query_json(expr)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def check_queries(dash, prom):
    errs = []
    for where, expr, _ in expressions(dash):
        status, answer = prom.query(substitute(expr))
        if status != 200 or answer.get("status") != "success":
            errs.append("%s: Prometheus answers %d: %s (%s)" % (where, status, answer.get("error"), expr))
    return errs


def check(dash, families, prom):
    return check_structure(dash, families) + check_names(dash, families) + check_queries(dash, prom)


def first_target(dash, title):
    for p in all_panels(dash):
        if p.get("title") == title:
            return p, p["targets"][0]
    raise KeyError(title)


def self_test(dash, families, prom):
    """Each broken copy must be refused, with the reason we expect."""
    cases = []

    def case(name, want, edit):
        d = copy.deepcopy(dash)
        edit(d)
        cases.append((name, want, d))

    def set_expr(title, expr):
        return lambda d: first_target(d, title)[1].__setitem__("expr", expr)

    case("unknown metric", "hami_dra_gpu_memory_used_bytes is not an exported metric",
         set_expr("GPU memory: allocated vs limit", 'hami_dra_gpu_memory_used_bytes{node=~"$node"}'))
    case("HAMi's own name", "vGPU_device_memory_usage_in_bytes is not an exported metric",
         set_expr("GPU memory: allocated vs limit", 'vGPU_device_memory_usage_in_bytes'))
    case("unknown label", "label deviceuuid is on none of",
         set_expr("Processes per claim", 'hami_dra_claim_processes{deviceuuid="x"}'))
    case("label in by()", "label container is on none of",
         set_expr("Processes per claim", 'sum by (container) (hami_dra_claim_processes)'))
    case("label in legend", "label podname is on none of",
         lambda d: first_target(d, "Processes per claim")[1].__setitem__("legendFormat", "{{podname}}"))
    case("histogram base name", "hami_dra_prepare_duration_seconds is not an exported metric",
         set_expr("Prepared claims", 'hami_dra_prepare_duration_seconds'))
    case("parse error", "Prometheus answers 400",
         set_expr("Prepared claims", 'sum(hami_dra_prepared_claims{node=~"$node"}'))
    case("unknown function", "Prometheus answers 400",
         set_expr("Prepared claims", 'summ(hami_dra_prepared_claims)'))
    case("range on an instant vector", "Prometheus answers 400",
         set_expr("Prepared claims", 'rate(sum(hami_dra_prepared_claims))'))
    case("unknown variable", "a variable the check does not know",
         set_expr("Prepared claims", 'sum(hami_dra_prepared_claims{node=~"$nodes"})'))
    case("wrong datasource", "datasource is not",
         lambda d: first_target(d, "Prepared claims")[1].__setitem__("datasource", {"uid": "prometheus"}))
    case("overlapping panels", "overlaps panel",
         lambda d: first_target(d, "Healthy GPUs")[0]["gridPos"].__setitem__("x", 2))
    case("outside the grid", "outside the 24-column grid",
         lambda d: first_target(d, "Build info")[0]["gridPos"].__setitem__("w", 9))
    case("a family left out", "family hami_dra_claim_processes is on no panel",
         lambda d: d.__setitem__("panels", [p for p in d["panels"] if p.get("title") != "Processes per claim"]))
    case("no node variable", "no query variable node",
         lambda d: d["templating"].__setitem__("list", [v for v in d["templating"]["list"] if v["name"] != "node"]))
    case("old schema", "schemaVersion",
         lambda d: d.__setitem__("schemaVersion", 16))
    failed = 0
    if check(dash, families, prom):
        print("self-test: the real dashboard must pass first")
        return 1
    for name, want, d in cases:
        errs = check(d, families, prom)
        if not any(want in e for e in errs):
            print("self-test: %s: not refused as %r; got %r" % (name, want, errs))
            failed += 1
        else:
            print("self-test: %s: refused (%s)" % (name, next(e for e in errs if want in e)))
    # The tokenizer finds what it must.
    m, lab = names_in('histogram_quantile(0.99, sum by (le) (rate(a_bucket{node=~"$node", x!="y"}[5m]))) '
                      '/ on (node) group_left (version) b offset 5m > bool 0 or {__name__="c"} unless d[1h:1m]')
    if m != {"a_bucket", "b", "c", "d"} or lab != {"le", "node", "x", "version"}:
        print("self-test: tokenizer: metrics %r labels %r" % (m, lab))
        failed += 1
    return 1 if failed else 0


def main():
    args = sys.argv[1:]
    self = args[:1] == ["--self-test"]
    root = SRC if self or not args else args[0]
    binary = shutil.which("prometheus")
    if not binary:
        print("prometheus is not installed (apt-get install prometheus): skipped")
        return 77
    with open(os.path.join(root, DASHBOARD)) as f:
        dash = json.load(f)
    families = load_families(os.path.join(root, FAMILIES))
    prom = Prometheus(binary)
    try:
        if self:
            return self_test(dash, families, prom)
        errs = check(dash, families, prom)
        n = len(expressions(dash))
    finally:
        prom.close()
    for e in errs:
        print(e)
    if errs:
        return 1
    print("%s: %d panels, %d expressions, all on exported families, all parsed by Prometheus"
          % (DASHBOARD, sum(1 for p in all_panels(dash) if p.get("type") != "row"), n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
