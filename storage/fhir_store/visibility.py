"""What one caller may see: per resource type, alternatives of search criteria.

The authorization layer (smart_auth) turns a token's scopes and launch context into
a `Visibility`; the search use case applies it inside the same SQL as the search
itself, so a search, a read, an `_include` and `_summary=count` all see exactly the
same resources, and nothing is read before the decision is made:

- a type absent from `rules` is invisible;
- each alternative is a conjunction of criteria (the patient compartment, a granular
  scope's `?param=value`); alternatives are ORed (two scopes on one type);
- an alternative with no criteria sees every resource of the type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from storage.fhir_store.criteria import Criterion

Alternatives = tuple[tuple[Criterion, ...], ...]


@dataclass(frozen=True)
class Visibility:
    rules: Mapping[str, Alternatives] = field(default_factory=dict)
    everything: bool = False  # internal callers (publishing, the patient picker of a practitioner)

    def sees_type(self, res_type: str) -> bool:
        return self.everything or res_type in self.rules

    def alternatives(self, res_type: str) -> Alternatives | None:
        """None: the whole type; () : nothing; else the alternatives to OR."""
        if self.everything:
            return None
        alts = self.rules.get(res_type, ())
        if any(not alt for alt in alts):
            return None
        return alts


ALL = Visibility(everything=True)
NOTHING = Visibility()
