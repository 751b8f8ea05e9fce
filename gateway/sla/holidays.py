"""Holiday sets from YAML files: `<set>-<year>.yaml`, shipped here and in a config folder.

A file lists `holidays` (days off) and `workdays` (make-up working days, 调休), each item
either `{date: D}` or an inclusive range `{from: D, to: D}`, with an optional `name`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

SHIPPED = Path(__file__).resolve().parent / "holidays"


@dataclass(frozen=True)
class HolidaySet:
    name: str
    holidays: frozenset[date]
    workdays: frozenset[date]
    years: frozenset[int]  # the years some file covers: outside them only weekdays count


class HolidayError(ValueError):
    """A holiday file is missing or malformed; the message names the file and entry."""


def uncovered_years(covered: Iterable[int], today: date, ahead_days: int = 45) -> list[int]:
    """The years a daemon starting `today` will soon count in, that no file covers: this
    year, and next year once it is `ahead_days` away. Without a file such a year counts
    weekdays only, so its Spring Festival would be a working week (pure)."""
    soon = {today.year, (today + timedelta(days=ahead_days)).year}
    return sorted(soon - set(covered))


def load_set(name: str, folders: Iterable[Path] = ()) -> HolidaySet:
    """Every `<name>-*.yaml` in the shipped folder and `folders` (later folders win a year)."""
    by_year: dict[str, Path] = {}
    for folder in (SHIPPED, *folders):
        for path in sorted(folder.glob(f"{name}-*.yaml")):
            by_year[path.stem] = path
    if not by_year:
        raise HolidayError(f"no holiday files for {name!r} (looked for {name}-YEAR.yaml)")
    holidays: set[date] = set()
    workdays: set[date] = set()
    years: set[int] = set()
    for path in by_year.values():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise HolidayError(f"{where}: not a valid YAML holiday file ({exc})") from exc
        if not isinstance(data, dict):
            raise HolidayError(f"{path}: expected a mapping with holidays/workdays")
        if isinstance(data.get("year"), int):
            years.add(data["year"])
        holidays |= _dates(path, data.get("holidays") or [])
        workdays |= _dates(path, data.get("workdays") or [])
    both = holidays & workdays
    if both:
        raise HolidayError(f"{name}: dates both holiday and workday: {sorted(both)}")
    return HolidaySet(name, frozenset(holidays), frozenset(workdays), frozenset(years))


def _dates(path: Path, items: list[Any]) -> set[date]:
    found: set[date] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise HolidayError(f"{path}: entry {i + 1}: expected {{date: ...}} or {{from, to}}")
        first = item.get("date", item.get("from"))
        last = item.get("date", item.get("to", first))
        if not isinstance(first, date) or not isinstance(last, date) or last < first:
            raise HolidayError(f"{path}: entry {i + 1}: dates must be YYYY-MM-DD, from <= to")
        day = first
        while day <= last:
            found.add(day)
            day += timedelta(days=1)
    return found
