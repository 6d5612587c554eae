"""Task sequence variables of collections (``SMS_CollectionSettings``) and computers (``SMS_MachineSettings``)
over the AdminService.

A write replaces the whole variable array with a PUT. A masked value reads back empty, and whether a PUT keeps a
masked value it did not send is unproven, so an array holding a masked variable goes over WinRM (the
``*-CMDevice(Collection)Variable`` cmdlets) unless ``rest_unproven``: the precedence and the plain variables go
over REST first when the precedence changes, then the cmdlets make the variables exactly the ones given.
"""

from __future__ import annotations

from reconciler.site.adminservice import wire
from reconciler.site.adminservice.connection import WINRM, SiteConnection
from reconciler.site.adminservice.reading import convert
from reconciler.site.adminservice.winrm import VariableWrite, WinRMSession
from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import CollectionSettings, MachineSettings
from reconciler.site.refusals import MAX_VARIABLES_PER_COMPUTER, refuse_duplicate_variables


class Variables(SiteConnection):
    def get_collection_settings(self, collection_id: str) -> CollectionSettings | None:
        row = self._transport.get("SMS_CollectionSettings", collection_id)
        if row is None:
            return None
        settings = convert("SMS_CollectionSettings", wire.collection_settings_record, wire.strip_system(row))
        return settings if settings.variables else None

    def get_machine_settings(self, resource_id: int) -> MachineSettings | None:
        row = self._transport.get("SMS_MachineSettings", int(resource_id))
        if row is None:
            return None
        settings = convert("SMS_MachineSettings", wire.machine_settings_record, wire.strip_system(row))
        return settings if settings.variables else None

    def _masked_session(self, variables: list[tuple[str, str, bool]], operation: str) -> WinRMSession | None:
        if not any(masked for _, _, masked in variables) or self._paths["masked_variables"] != WINRM:
            return None
        return self._session("masked_variables")

    def set_collection_variables(self, collection_id: str, precedence: int,
                                 variables: list[tuple[str, str, bool]]) -> None:
        self._writable("set_collection_variables")
        if collection_id.startswith("SMS"):
            raise PermanentSiteError(f"{collection_id} is a built-in collection; it cannot hold variables")
        refuse_duplicate_variables(variables)
        session = self._masked_session(variables, "set_collection_variables")
        cls = "SMS_CollectionSettings"
        try:
            if not variables:
                self._transport.delete(cls, collection_id)
                return
            current = self._transport.get(cls, collection_id)
            locale = wire._int((current or {}).get("LocaleID"), 1033)
            if session is None:
                self._transport.update(cls, collection_id, {
                    "CollectionID": collection_id, "CollectionVariablePrecedence": precedence, "LocaleID": locale,
                    "CollectionVariables": wire.variables_wire("SMS_CollectionVariable", variables)})
                return
            # Masked values never travel in a REST array: the plain ones and the precedence go over REST, then
            # the cmdlets make the collection's variables exactly these, masked ones with their values.
            if current is None or wire._int(current.get("CollectionVariablePrecedence")) != precedence:
                plain = [v for v in variables if not v[2]]
                current = self._transport.update(cls, collection_id, {
                    "CollectionID": collection_id, "CollectionVariablePrecedence": precedence, "LocaleID": locale,
                    "CollectionVariables": wire.variables_wire("SMS_CollectionVariable", plain)}) or \
                    self._transport.get(cls, collection_id)
            existing = [str(v.get("Name")) for v in (current or {}).get("CollectionVariables") or ()]
            session.set_collection_variables(collection_id, [VariableWrite(n, v, m) for n, v, m in variables],
                                             existing)
        finally:
            self._forget(cls, collection_id)

    def set_computer_variables(self, resource_id: int, variables: list[tuple[str, str, bool]]) -> None:
        self._writable("set_computer_variables")
        if len(variables) > MAX_VARIABLES_PER_COMPUTER:
            raise PermanentSiteError(f"a computer can hold at most {MAX_VARIABLES_PER_COMPUTER} variables")
        refuse_duplicate_variables(variables)
        session = self._masked_session(variables, "set_computer_variables")
        rid = int(resource_id)
        cls = "SMS_MachineSettings"
        try:
            if not variables:
                self._transport.delete(cls, rid)
                return
            if self._transport.get("SMS_R_System", rid) is None:
                raise PermanentSiteError(f"computer {rid} does not exist")
            current = self._transport.get(cls, rid)
            if session is not None:
                existing = [str(v.get("Name")) for v in (current or {}).get("MachineVariables") or ()]
                session.set_device_variables(rid, [VariableWrite(n, v, m) for n, v, m in variables], existing)
                return
            self._transport.update(cls, rid, {
                "ResourceID": rid, "SourceSite": self.site_code,
                "LocaleID": wire._int((current or {}).get("LocaleID"), 1033),
                "MachineVariables": wire.variables_wire("SMS_MachineVariable", variables)})
        finally:
            self._forget(cls, str(rid))
            self._forget("SMS_R_System", str(rid))
