"""What every site refuses the way ConfigMgr does, whichever implementation carries the write.

The embedded site and the AdminService client check the same things before a write, so a plan behaves
the same against either: variable names are case-insensitive (one name given twice is refused), a
computer holds at most 1,000 variables, and the deployment verification settings keep the console's own
rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.site.errors import PermanentSiteError
from reconciler.site.records import VerificationSettings

#: ConfigMgr refuses more than this many variables on one computer.
MAX_VARIABLES_PER_COMPUTER = 1000


def refuse_duplicate_variables(variables: Iterable[tuple[str, str, bool]]) -> None:
    """Variable names are case-insensitive in ConfigMgr: two that differ only by case are one name twice."""
    seen: dict[str, str] = {}
    for name, _, _ in variables:
        first = seen.get(name.casefold())
        if first is not None:
            raise PermanentSiteError(f"variable {name!r} is given twice (as {first!r} too): names are case-insensitive")
        seen[name.casefold()] = name


def changed_verification(current: VerificationSettings, default_size: int | None, maximum_size: int | None,
                         site_systems: str | None) -> VerificationSettings:
    """The verification settings with the given ones changed, refused as the console refuses them."""
    new = VerificationSettings(current.default_size if default_size is None else default_size,
                               current.maximum_size if maximum_size is None else maximum_size,
                               current.site_systems if site_systems is None else site_systems)
    if new.default_size < 0 or new.maximum_size < 0:
        raise PermanentSiteError("collection sizes cannot be negative")
    if new.maximum_size and new.maximum_size <= new.default_size:
        raise PermanentSiteError(f"the maximum size ({new.maximum_size}) must be larger than the default size "
                                 f"({new.default_size}), or 0 to turn it off")
    if new.site_systems not in ("block", "warn"):
        raise PermanentSiteError("collections with site system servers: 'block' or 'warn'")
    return new
