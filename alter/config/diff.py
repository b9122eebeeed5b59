"""Reload planning: compare running worker configs with newly loaded ones.

`plan(running, new)` is pure: it looks only at the two dicts.  Configs are
compared with every default filled in (`options.effective`), so a file that
starts writing `instances 1;` explicitly does not restart anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping

from alter.config import options


@dataclass
class Plan:
    create: List[str] = field(default_factory=list)  # in `new`, not running
    change: List[str] = field(default_factory=list)  # in both, config differs
    remove: List[str] = field(default_factory=list)  # running, gone from `new`
    unchanged: List[str] = field(default_factory=list)
    changed_keys: Dict[str, List[str]] = field(default_factory=dict)  # name -> option names that differ

    @property
    def empty(self) -> bool:
        """True when applying the plan would do nothing."""
        return not (self.create or self.change or self.remove)


def normalized(config: Mapping[str, Any], block: str = "worker") -> Dict[str, Any]:
    """A config with defaults filled in, sub-blocks included, for comparison."""
    table = options.BLOCKS[block]
    out = options.effective(dict(config), table)
    for name, option in table.items():
        if option.kind is not options.Kind.BLOCK:
            continue
        value = config.get(name)
        if isinstance(value, list):
            out[name] = [normalized(v, option.block) for v in value]
        elif isinstance(value, dict):
            out[name] = normalized(value, option.block)
        else:
            out[name] = None
    return out


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """Option names whose effective values differ, in option-table order."""
    a, b = normalized(old), normalized(new)
    order = list(options.WORKER_OPTIONS) + sorted(set(a) | set(b))
    seen: Dict[str, None] = {}
    for key in order:
        if key not in seen and a.get(key) != b.get(key):
            seen[key] = None
    return list(seen)


def plan(running: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> Plan:
    """What a reload must do to turn `running` into `new` (both: name -> config)."""
    result = Plan()
    for name, config in new.items():
        if name not in running:
            result.create.append(name)
            continue
        keys = differing_keys(running[name], config)
        if keys:
            result.change.append(name)
            result.changed_keys[name] = keys
        else:
            result.unchanged.append(name)
    result.remove = [name for name in running if name not in new]
    return result
