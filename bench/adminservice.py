"""Benchmark: plans of N task sequences over HTTPS+NTLM against ``reconcile site serve``, beside the same plan
against the embedded site file, measured in the same run.

Applies N task sequences to an embedded site, serves that file with ``reconcile site serve`` on 127.0.0.1 and
plans the same manifests through the AdminService client (load, validate, read the site, plan):

- a cold plan: an empty read cache, so every sequence's XML is fetched by key;
- a no-change plan, as the next run makes it (a new client, the cache kept): list requests only, at most
  ceil(N/1000) pages per class, zero gets by key (goal), in at most 2x the embedded site's plan (goal);
- a plan after one sequence changed on the server (a console edit): exactly one get by key (goal).

    python bench/adminservice.py            # N = 1,000 and 10,000
    python bench/adminservice.py 500        # other sizes
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from reconciler.apply.executor import apply_plan
from reconciler.plan.planner import make_plan
from reconciler.site.adminservice import AdminServiceSite
from reconciler.site.demo import add_demo_inventory
from reconciler.site.embedded import EmbeddedSite
from reconciler.site.options import Auth, Credentials, SiteOptions
from reconciler.site.serve import Account, AdminServiceServer, ServeConfig
from reconciler.source.loader import load
from reconciler.state import StateStore
from reconciler.validate import validate

USER, PASSWORD = "CORP\\svc-bench", "Bench-only p4ssword"

STEP = """\
      - name: Step {i}
        type: RunCommandLine
        settings: {{commandLine: cmd.exe /c echo {n} {i}, successCodes: [0, 3010]}}
"""


def write_estate(root: Path, n: int) -> None:
    for i in range(n):
        folder = root / f"group-{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        steps = "".join(STEP.format(i=j, n=i) for j in range(8))
        (folder / f"ts-{i:05d}.yaml").write_text(f"""apiVersion: configmgr.gitops.io/v1alpha1
kind: TaskSequence
metadata: {{name: ts-{i:05d}}}
spec:
  name: Bench sequence {i:05d}
  description: Generated
  folder: Bench/Folder{i % 20}
  steps:
  - group: Prepare
    steps:
{steps}  - name: Apply image
    type: ApplyOperatingSystemImage
    settings: {{image: {{package: Windows 11 23H2 x64}}, index: 1}}
""")


def add_demo_packages() -> tuple[object, ...]:
    from reconciler.site.demo import PACKAGES

    return PACKAGES


def plan_once(manifests: Path, site: object, state: StateStore) -> tuple[float, int]:
    start = time.perf_counter()
    desired = load(manifests)
    validate(desired)
    plan = make_plan(desired, site.read(), state)  # type: ignore[attr-defined]
    return time.perf_counter() - start, len(plan.actions)


def counts(site: AdminServiceSite) -> Counter[str]:
    by_kind: Counter[str] = Counter()
    for (_, kind), number in site.requests.items():
        by_kind[kind] += number
    return by_kind


def describe(by_kind: Counter[str]) -> str:
    return ", ".join(f"{kind} {by_kind[kind]}" for kind in ("metadata", "list", "get") if by_kind[kind])


def measure(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifests = work / "manifests"
        write_estate(manifests, n)
        site_path = work / "site.db"
        embedded = EmbeddedSite(site_path)
        add_demo_inventory(embedded)
        state = StateStore(work / "state.db")
        start = time.perf_counter()
        assert apply_plan(make_plan(load(manifests), embedded.read(), state), embedded, state, manifests).ok
        applied = time.perf_counter() - start
        config = ServeConfig(site=site_path, tls_dir=work / "tls", accounts=(Account.parse(USER, PASSWORD),))
        with AdminServiceServer(config) as server:
            options = SiteOptions(url=server.url.rstrip("/"), ca_bundle=server.tls.ca, auth=Auth.NTLM,
                                  credentials=Credentials(USER, PASSWORD, password_from="bench"))
            cache = work / "cache.db"

            def run() -> tuple[float, int, AdminServiceSite, Counter[str]]:
                server.request_log.clear()
                site = AdminServiceSite(options, cache_path=cache)
                seconds, actions = plan_once(manifests, site, state)
                site.close()
                pages: Counter[str] = Counter(e.path.rsplit("/", 1)[-1] for e in server.request_log.entries()
                                              if e.method == "GET" and "$top=" in e.query and e.status == 200)
                return seconds, actions, site, pages

            cold, cold_actions, cold_site, _ = run()
            embedded_no_change, embedded_actions = min(plan_once(manifests, embedded, state) for _ in range(2))
            no_change, no_change_actions, no_change_site, pages_by_class = min(run(), run(), key=lambda r: r[0])
            ts_id = next(iter(embedded.read().task_sequences))
            live = embedded.get_task_sequence(ts_id)
            assert live is not None
            embedded.update_task_sequence(ts_id, replace(live, sequence=live.sequence.replace("echo", "echo  ", 1)))
            changed, changed_actions, changed_site, _ = run()
        embedded.close()
        state.close()

    assert cold_actions == embedded_actions == no_change_actions == 0, "the plans are not empty"
    # A list ends with a short page: N rows take ceil(N/1000) pages, and one more (empty) when N is a multiple of
    # 1,000. The largest list is SMS_PackageBaseclass: the sequences and the demo inventory's packages.
    rows = n + len(add_demo_packages())
    pages = rows // 1000 + 1
    no_change_counts, changed_counts = counts(no_change_site), counts(changed_site)
    print(f"N={n:>6}  apply to the embedded site={applied:7.1f}s")
    print(f"  cold plan over HTTPS       {cold:7.2f}s  requests: {describe(counts(cold_site))}")
    print(f"  no-change plan over HTTPS  {no_change:7.2f}s  requests: {describe(no_change_counts)}")
    print(f"  no-change plan, embedded   {embedded_no_change:7.2f}s  "
          f"HTTPS / embedded = {no_change / embedded_no_change:4.2f}x (goal: at most 2x)")
    print(f"  one sequence changed       {changed:7.2f}s  requests: {describe(changed_counts)} "
          f"({changed_actions} action: the drift)")
    most = max(pages_by_class.values())
    goals = {
        "no-change plan: zero gets by key": no_change_counts["get"] == 0,
        f"no-change plan: lists only, at most {pages} page(s) per class (ceil({rows}/1000), and the empty page "
        f"after a full one; most: {most}, {max(pages_by_class, key=lambda c: pages_by_class[c])})":
            most <= pages and set(no_change_counts) <= {"list", "metadata"},
        "one changed sequence: exactly one get by key": changed_counts["get"] == 1,
        "no-change plan over HTTPS at most 2x the embedded plan": no_change <= 2 * embedded_no_change,
    }
    for goal, met in goals.items():
        print(f"  {'met   ' if met else 'MISSED'} {goal}")


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10_000]
    for n in sizes:
        measure(n)


if __name__ == "__main__":
    main()
