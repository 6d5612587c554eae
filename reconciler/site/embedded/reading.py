"""Reading the embedded site: one snapshot for a plan, devices one at a time, and cheap change checks."""

from __future__ import annotations

from reconciler.collector import paused
from reconciler.site.embedded.database import SiteDatabase
from reconciler.site.embedded.deployments import deployment_from_row
from reconciler.site.embedded.sequences import ts_from_row
from reconciler.site.embedded.settings import read_verification
from reconciler.site.records import (
    Collection,
    CollectionSettings,
    Computer,
    ContentState,
    ContentStatus,
    DistributionPoint,
    DistributionPointGroup,
    LiveState,
    LiveVariable,
    MachineSettings,
    Package,
    PackageType,
)


class Reading(SiteDatabase):
    _seen_version: int | None = None

    def read(self) -> LiveState:
        with paused():
            return self._read()

    def _read(self) -> LiveState:
        db = self._db
        state = LiveState(site_code=self.site_code, devices=self)
        db.execute("BEGIN")  # one consistent snapshot (WAL readers do not block writers)
        try:
            for row in db.execute("SELECT id, name, member_count, has_site_systems, built_in FROM collections"):
                state.collections[row[0]] = Collection(row[0], row[1], row[2], bool(row[3]), bool(row[4]))
            for name, code in db.execute("SELECT name, site_code FROM distribution_points"):
                state.distribution_points[name] = DistributionPoint(name, code)
            members: dict[str, list[str]] = {}
            for grp, dp in db.execute("SELECT grp, dp FROM dp_group_members ORDER BY grp, dp"):
                members.setdefault(grp, []).append(dp)
            assoc: dict[str, list[str]] = {}
            for grp, cid in db.execute("SELECT grp, collection_id FROM dp_group_collections ORDER BY 1, 2"):
                assoc.setdefault(grp, []).append(cid)
            for (name,) in db.execute("SELECT name FROM dp_groups"):
                state.dp_groups[name] = DistributionPointGroup(name, tuple(members.get(name, ())),
                                                               tuple(assoc.get(name, ())))
            for pid, name, ptype, version, share in db.execute("SELECT * FROM packages"):
                state.packages[pid] = Package(pid, name, PackageType(ptype), version, bool(share))
            for pid, dp, st, version in db.execute("SELECT * FROM content_status"):
                state.content[(pid, dp)] = ContentStatus(pid, dp, ContentState(st), version)
            for ts_id, record, sequence in db.execute("SELECT id, record, sequence FROM task_sequences"):
                state.task_sequences[ts_id] = ts_from_row(ts_id, record, sequence)
            for dep_id, record in db.execute("SELECT id, record FROM deployments"):
                state.deployments[dep_id] = deployment_from_row(dep_id, record)
            collection_vars: dict[str, list[LiveVariable]] = {}
            for cid, name, value, masked in db.execute(
                    "SELECT collection_id, name, value, masked FROM collection_variables ORDER BY 1, rowid"):
                collection_vars.setdefault(cid, []).append(LiveVariable(name, None if masked else value, bool(masked)))
            for cid, precedence in db.execute("SELECT collection_id, precedence FROM collection_settings"):
                state.collection_settings[cid] = CollectionSettings(cid, precedence,
                                                                    tuple(collection_vars.get(cid, ())))
            # Only the computers that hold variables: any other device is looked up when a manifest names it.
            for rid, name in db.execute("SELECT resource_id, name FROM computers WHERE resource_id IN "
                                        "(SELECT resource_id FROM computer_variables)"):
                state.computers[rid] = Computer(rid, name)
            machine_vars: dict[int, list[LiveVariable]] = {}
            for rid, name, value, masked in db.execute(
                    "SELECT resource_id, name, value, masked FROM computer_variables ORDER BY 1, rowid"):
                machine_vars.setdefault(rid, []).append(LiveVariable(name, None if masked else value, bool(masked)))
            for rid, variables in machine_vars.items():
                state.machine_settings[rid] = MachineSettings(rid, tuple(variables))
            state.verification = read_verification(db)
        finally:
            db.execute("COMMIT")
        return state

    # -- devices, one at a time (the DeviceLookup of the Site protocol) ---------------------------

    def computer(self, resource_id: int) -> Computer | None:
        row = self._db.execute("SELECT resource_id, name FROM computers WHERE resource_id = ?",
                               (resource_id,)).fetchone()
        return Computer(row[0], row[1]) if row else None

    def computers_named(self, name: str) -> list[Computer]:
        if name.isascii():  # the column compares without case (NOCASE) for ASCII, and is indexed
            rows = self._db.execute("SELECT resource_id, name FROM computers WHERE name = ? ORDER BY resource_id",
                                    (name,)).fetchall()
            return [Computer(rid, found) for rid, found in rows]
        # NOCASE folds ASCII only; a name with other letters is compared as Python folds case (rare: a scan).
        folded = name.casefold()
        return [Computer(rid, found) for rid, found in self._db.execute(
            "SELECT resource_id, name FROM computers ORDER BY resource_id") if found.casefold() == folded]

    def memberships(self, resource_id: int) -> tuple[str, ...]:
        rows = self._db.execute("SELECT collection_id FROM collection_members WHERE resource_id = ? ORDER BY 1",
                                (resource_id,))
        return tuple(r[0] for r in rows)

    # -- cheap looks ------------------------------------------------------------------------------

    def paths(self) -> dict[str, str]:
        """One path: every write is a transaction on the file."""
        return {}

    def changed_since_read(self) -> bool:
        """Whether another connection (a console, another tool) wrote to the site since our last look.

        SQLite's data_version changes only for commits made by other connections, so a controller tick
        with no new commit and no live change can skip the plan entirely.
        """
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._seen_version
        self._seen_version = version
        return changed

    def manageable(self) -> dict[str, int]:
        """How many objects of the kinds this tool manages the site holds (task sequences, deployments,
        collections and computers with variables): cheap counts, without reading the site."""
        return {
            "task sequence(s)": self._db.execute("SELECT COUNT(*) FROM task_sequences").fetchone()[0],
            "deployment(s)": self._db.execute("SELECT COUNT(*) FROM deployments").fetchone()[0],
            "collection(s) with variables": self._db.execute(
                "SELECT COUNT(DISTINCT collection_id) FROM collection_variables").fetchone()[0],
            "computer(s) with variables": self._db.execute(
                "SELECT COUNT(DISTINCT resource_id) FROM computer_variables").fetchone()[0],
        }
