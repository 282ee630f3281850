"""Department and exam-class names to specialty and level: the rules in mapping.toml, and the user's own before
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from eval.core.schema import SPECIALTIES
from eval.data.errors import DataError
from eval.data.text import plain, read_toml

LEVELS = ("attending", "senior", "none")
MAPPING = Path(str(files(__package__).joinpath("mapping.toml")))


@dataclass(frozen=True)
class Rules:
    specialty: list[tuple[tuple[str, ...], str]]
    level: list[tuple[tuple[str, ...], str]]
    # The department name that made the last record other ("" for none given): the loader counts it for `inspect`
    # once the record is accepted.
    other_name: list[str] = field(default_factory=lambda: [""], compare=False)

    def to_specialty(self, *names: str) -> str:
        """The first name some rule matches decides (see mapping.toml); no match at all -> other."""
        for name in names:
            if (found := _match(self.specialty, name)) is not None:
                self.other_name[0] = plain(name)
                return found
        self.other_name[0] = " / ".join(filter(None, map(plain, names)))
        return "other"

    def to_level(self, name: str) -> str | None:
        found = _match(self.level, name)
        return None if found in (None, "none") else found


def _match(rules: list[tuple[tuple[str, ...], str]], name: Any) -> str | None:
    text = plain(name).lower()
    if text:
        for words, to in rules:
            if any(w in text for w in words):
                return to
    return None


def load_mapping(path: Path | str | None = None) -> Rules:
    """The bundled rules, with the user's file (if any) checked before them."""
    rules = _read_rules(MAPPING)
    if path is None:
        return rules
    user = _read_rules(Path(path))
    return Rules(user.specialty + rules.specialty, user.level + rules.level)


def _read_rules(path: Path) -> Rules:
    data = read_toml(path)
    if unknown := set(data) - {"specialty", "level"}:
        raise DataError(f"{path}: {sorted(unknown)[0]}: expected only [[specialty]] and [[level]] rules")
    tables = {"specialty": SPECIALTIES, "level": LEVELS}
    parsed: dict[str, list] = {}
    for table, allowed in tables.items():
        parsed[table] = []
        for i, rule in enumerate(data.get(table, [])):
            words, to = (rule.get("match"), rule.get("to")) if isinstance(rule, dict) else (None, None)
            if (
                not (isinstance(words, list) and words and all(isinstance(w, str) and w.strip() for w in words))
                or to not in allowed
            ):
                raise DataError(
                    f'{path}: {table}[{i}]: expected match = ["keyword", …] and to = one of {", ".join(allowed)}'
                )
            parsed[table].append((tuple(w.strip().lower() for w in words), to))
    return Rules(parsed["specialty"], parsed["level"])
