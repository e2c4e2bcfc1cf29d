"""Pure planning: compare a bucket's lifecycle with the rules strata wants.

A :class:`Plan` lists one :class:`RuleChange` per strata rule (add, change, remove or
keep) and carries the merged configuration to apply: every foreign rule exactly as the
bucket has it, followed by strata's desired rules. Foreign rules are never changed,
reordered among themselves or dropped.

Which rules are strata's:

* S3: the rule ``ID`` starts with ``strata-``. Nothing else is looked at, so ops can
  keep any rule of their own (even one on strata's prefixes) by naming it otherwise.
* GCS: rules have no IDs, so a rule is strata's when it has a ``matchesPrefix`` list
  and every prefix in it lies under one of strata's kind prefixes for this store
  (``<prefix>/traces/``, ``<prefix>/unmatched/``). A rule with no ``matchesPrefix``,
  or with any prefix outside strata's kinds, is foreign and kept. Consequence: a rule
  ops add on, say, ``<prefix>/traces/shop/`` is treated as strata's and removed by
  ``apply``; that is intended, since any extra rule there could delete pinned traces.

Foreign rules that can still delete strata's trace objects (and so pinned traces)
are reported in :attr:`Plan.warnings`; planning never changes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from lifecycle_policies.layout import RULE_ID_PREFIX, KeyPrefixes, key_prefixes
from lifecycle_policies.render import (
    GCS_ABORT_MULTIPART,
    GCS_DELETE,
    S3_MULTIPART_RULE,
    S3_TRACES_RULE,
    S3_UNMATCHED_RULE,
)
from trace_store.keys import EXPIRABLE_TAG

ChangeKind = Literal["add", "change", "remove", "keep"]
Provider = Literal["s3", "gcs"]
Rule = dict[str, Any]

_SYMBOLS: dict[ChangeKind, str] = {"add": "+", "change": "~", "remove": "-", "keep": "="}


@dataclass(frozen=True, slots=True)
class RuleChange:
    """What happens to one strata rule. ``before`` is the bucket's rule (``None`` for
    an add), ``after`` the desired one (``None`` for a remove)."""

    kind: ChangeKind
    name: str
    before: Rule | None
    after: Rule | None

    def field_changes(self) -> list[tuple[str, Any, Any]]:
        """``(dotted.path, before, after)`` for every leaf that differs (``None`` when
        absent on that side)."""
        old = _flatten(self.before or {})
        new = _flatten(self.after or {})
        return [
            (path, old.get(path), new.get(path))
            for path in sorted(old.keys() | new.keys())
            if old.get(path) != new.get(path)
        ]


@dataclass(frozen=True, slots=True)
class Plan:
    """The difference between a bucket's lifecycle and strata's desired rules."""

    provider: Provider
    changes: tuple[RuleChange, ...]
    foreign: tuple[Rule, ...]
    merged: dict[str, Any]
    warnings: tuple[str, ...] = field(default=())

    @property
    def has_drift(self) -> bool:
        """Whether any strata rule must be added, changed or removed."""
        return any(change.kind != "keep" for change in self.changes)

    def count(self, kind: ChangeKind) -> int:
        """How many strata rules get ``kind``."""
        return sum(change.kind == kind for change in self.changes)

    def render_text(self) -> str:
        """A human-readable plan, one block per rule, for ``strata lifecycle plan``."""
        foreign = len(self.foreign)
        lines = [
            f"{self.provider.upper()} lifecycle plan: {self.count('add')} to add, "
            f"{self.count('change')} to change, {self.count('remove')} to remove, "
            f"{self.count('keep')} unchanged; {foreign} foreign "
            f"rule{'' if foreign == 1 else 's'} left as "
            f"{'it is' if foreign == 1 else 'they are'}."
        ]
        for change in self.changes:
            lines.append(f"  {_SYMBOLS[change.kind]} {change.kind:<6} {change.name}")
            for path, old, new in change.field_changes():
                if change.kind == "change":
                    lines.append(f"      {path}: {_show(old)} -> {_show(new)}")
                else:  # an add or a remove: the whole rule, one leaf a line
                    lines.append(f"      {path} = {_show(new if old is None else old)}")
        for rule in self.foreign:
            lines.append(f"    foreign {_foreign_name(self.provider, rule)} (untouched)")
        lines.extend(f"  ! {warning}" for warning in self.warnings)
        lines.append("No changes." if not self.has_drift else "Drift: apply to repair.")
        return "\n".join(lines) + "\n"


def plan_s3(current: dict[str, Any] | None, desired: dict[str, Any], prefix: str = "") -> Plan:
    """Plan the S3 change from ``current`` (the bucket's ``{"Rules": [...]}``, or
    ``None`` when it has no lifecycle configuration) to ``desired`` (from
    :func:`~lifecycle_policies.render.render_s3`). ``prefix`` only scopes warnings."""
    current_rules = list((current or {}).get("Rules") or [])
    desired_rules = list(desired["Rules"])
    for rule in desired_rules:
        if not str(rule.get("ID", "")).startswith(RULE_ID_PREFIX):
            raise ValueError(f"desired S3 rule without a {RULE_ID_PREFIX!r} ID: {rule!r}")
    is_ours = [str(rule.get("ID", "")).startswith(RULE_ID_PREFIX) for rule in current_rules]
    ours = {rule["ID"]: rule for rule, mine in zip(current_rules, is_ours, strict=True) if mine}
    foreign = tuple(rule for rule, mine in zip(current_rules, is_ours, strict=True) if not mine)

    changes = [_compare(rule["ID"], ours.pop(rule["ID"], None), rule) for rule in desired_rules]
    changes.extend(RuleChange("remove", rule_id, rule, None) for rule_id, rule in ours.items())
    keys = key_prefixes(prefix)
    warnings = tuple(
        f"foreign rule {_foreign_name('s3', rule)} can expire trace objects under "
        f"{keys.traces!r} without the {EXPIRABLE_TAG} tag, pinned ones included"
        for rule in foreign
        if _s3_threatens_traces(rule, keys)
    )
    return Plan(
        provider="s3",
        changes=tuple(changes),
        foreign=foreign,
        merged={"Rules": [*foreign, *desired_rules]},
        warnings=warnings,
    )


def plan_gcs(current: dict[str, Any] | None, desired: dict[str, Any], prefix: str = "") -> Plan:
    """Plan the GCS change from ``current`` (the bucket's ``{"lifecycle": {"rule":
    [...]}}``, or ``None``/``{}`` without one) to ``desired`` (from
    :func:`~lifecycle_policies.render.render_gcs` with the same ``prefix``, which here
    also decides which rules are strata's)."""
    keys = key_prefixes(prefix)
    current_rules = list(((current or {}).get("lifecycle") or {}).get("rule") or [])
    desired_rules = list(desired["lifecycle"]["rule"])
    for rule in desired_rules:
        if not _gcs_is_ours(rule, keys):
            raise ValueError(f"desired GCS rule outside strata's prefixes: {rule!r}")
    foreign = tuple(rule for rule in current_rules if not _gcs_is_ours(rule, keys))
    ours = [rule for rule in current_rules if _gcs_is_ours(rule, keys)]

    changes: list[RuleChange] = []
    for want in desired_rules:
        candidates = [rule for rule in ours if _gcs_signature(rule) == _gcs_signature(want)]
        # Prefer an identical rule, so a duplicate beside it is what gets removed.
        exact = [rule for rule in candidates if _normalize(rule) == _normalize(want)]
        have = (exact or candidates or [None])[0]
        if have is not None:
            ours.remove(have)
        changes.append(_compare(_gcs_name(want, keys), have, want))
    changes.extend(RuleChange("remove", _gcs_name(rule, keys), rule, None) for rule in ours)
    warnings = tuple(
        f"foreign rule {_foreign_name('gcs', rule)} can delete trace objects under "
        f"{keys.traces!r}, pinned ones included"
        for rule in foreign
        if _gcs_threatens_traces(rule, keys)
    )
    return Plan(
        provider="gcs",
        changes=tuple(changes),
        foreign=foreign,
        merged={"lifecycle": {"rule": [*foreign, *desired_rules]}},
        warnings=warnings,
    )


def _compare(name: str, have: Rule | None, want: Rule) -> RuleChange:
    if have is None:
        return RuleChange("add", name, None, want)
    kind: ChangeKind = "keep" if _normalize(have) == _normalize(want) else "change"
    return RuleChange(kind, name, have, want)


def _normalize(value: Any) -> Any:
    """Equality up to what providers do not preserve: absent vs ``None`` fields and
    the order of tags and prefix lists."""
    if isinstance(value, dict):
        return {key: _normalize(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        items = [_normalize(item) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return value


def _flatten(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{path}.{key}" if path else str(key)))
        return flat
    return {path: _normalize(value)} if path else {}


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, sort_keys=True)


def _foreign_name(provider: Provider, rule: Rule) -> str:
    if provider == "s3":
        return repr(rule.get("ID") or "(no ID)")
    action = (rule.get("action") or {}).get("type", "?")
    return f"{action} {json.dumps(rule.get('condition') or {}, sort_keys=True)}"


def _overlaps(rule_prefix: str, strata_prefix: str) -> bool:
    return rule_prefix.startswith(strata_prefix) or strata_prefix.startswith(rule_prefix)


def _s3_threatens_traces(rule: Rule, keys: KeyPrefixes) -> bool:
    expiration = rule.get("Expiration") or {}
    if rule.get("Status") != "Enabled" or not ("Days" in expiration or "Date" in expiration):
        return False
    filt = rule.get("Filter") or {}
    conditions = filt.get("And") or filt
    prefix = str(conditions.get("Prefix", rule.get("Prefix", "")))
    tags = list(conditions.get("Tags") or []) + ([filt["Tag"]] if "Tag" in filt else [])
    requires_expirable = any(tag.get("Key") == EXPIRABLE_TAG for tag in tags)
    return _overlaps(prefix, keys.traces) and not requires_expirable


def _gcs_prefixes(rule: Rule) -> list[str]:
    return list((rule.get("condition") or {}).get("matchesPrefix") or [])


def _gcs_is_ours(rule: Rule, keys: KeyPrefixes) -> bool:
    prefixes = _gcs_prefixes(rule)
    return bool(prefixes) and all(
        any(prefix.startswith(kind) for kind in keys.kinds) for prefix in prefixes
    )


def _gcs_threatens_traces(rule: Rule, keys: KeyPrefixes) -> bool:
    if (rule.get("action") or {}).get("type") != GCS_DELETE:
        return False
    prefixes = _gcs_prefixes(rule) or [""]
    return any(_overlaps(prefix, keys.traces) for prefix in prefixes)


def _gcs_signature(rule: Rule) -> tuple[str, tuple[str, ...]]:
    action = str((rule.get("action") or {}).get("type", ""))
    return action, tuple(sorted(set(_gcs_prefixes(rule))))


def _gcs_name(rule: Rule, keys: KeyPrefixes) -> str:
    """Stable names for GCS rules in plans, matching the S3 rule IDs where they align."""
    known = {
        (GCS_DELETE, (keys.traces,)): S3_TRACES_RULE,
        (GCS_DELETE, (keys.unmatched,)): S3_UNMATCHED_RULE,
        (GCS_ABORT_MULTIPART, tuple(sorted(keys.kinds))): S3_MULTIPART_RULE,
    }
    signature = _gcs_signature(rule)
    return known.get(signature) or f"{signature[0]} on {list(signature[1])}"
