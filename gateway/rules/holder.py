"""The rules in force, swapped atomically on reload; a bad new file never replaces good rules."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from gateway.intake import Intake
from gateway.rules import metrics
from gateway.rules.engine import classify_intake
from gateway.rules.loader import parse_rules
from gateway.rules.model import Decision, Problem, RulesError, RuleSet

log = logging.getLogger(__name__)

_Signature = tuple[int, int]  # (mtime_ns, size): cheap to compare every few seconds


class RulesHolder:
    """Owns the active RuleSet. Reloads come from SIGHUP (`reload`) and from the daemon's
    periodic `reload_if_changed`; there is no watcher thread in here."""

    def __init__(self, path: str | Path, known_groups: Iterable[str] = ()) -> None:
        """Load `path` or raise RulesError: the daemon must not start on a broken file."""
        self.path = Path(path)
        self.known_groups = frozenset(known_groups)
        self._lock = threading.Lock()  # SIGHUP and the scheduler thread may race
        self._signature: _Signature | None = None
        self._digest = ""
        data = self._read()
        self._ruleset = self._parse(data)
        self._digest = hashlib.sha256(data).hexdigest()
        self.version = 1
        metrics.RULES_VERSION.set(self.version)

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset

    def classify(self, intake: Intake, extra: Mapping[str, str] | None = None) -> Decision:
        """Classify with the rules in force and count which rules decided."""
        decision = classify_intake(self._ruleset, intake, extra)
        for name in decision.rules:
            metrics.RULE_MATCHES.labels(rule=name).inc()
        return decision

    def reload(self) -> bool:
        """Re-read the file; True if the new rules are now in force, False if refused."""
        with self._lock:
            try:
                data = self._read()
            except RulesError as exc:
                return self._refuse(exc.problems)
            return self._install(data)

    def reload_if_changed(self) -> bool:
        """Reload when the file's mtime or size moved and its content really changed."""
        with self._lock:
            try:
                stat = self.path.stat()
            except OSError:
                return False  # mid-replace by an editor, or deleted: keep what we have
            signature = (stat.st_mtime_ns, stat.st_size)
            if signature == self._signature:
                return False
            try:
                data = self._read()
            except RulesError:
                return False
            self._signature = signature
            if hashlib.sha256(data).hexdigest() == self._digest:
                return False  # touched, or the refused content again: don't log it twice
            return self._install(data)

    # --- internals (called with the lock held, except from __init__) -----------------------

    def _read(self) -> bytes:
        try:
            stat = self.path.stat()
            data = self.path.read_bytes()
        except OSError as exc:
            raise RulesError(
                [Problem(str(self.path), None, f"cannot read: {exc.strerror}")]
            ) from exc
        self._signature = (stat.st_mtime_ns, stat.st_size)
        return data

    def _parse(self, data: bytes) -> RuleSet:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RulesError([Problem(str(self.path), None, "not UTF-8 text")]) from exc
        return parse_rules(text, str(self.path), self.known_groups)

    def _install(self, data: bytes) -> bool:
        # The digest is remembered even for a refused file, so the periodic check does not
        # refuse (and log) the same content every few seconds.
        self._digest = hashlib.sha256(data).hexdigest()
        try:
            ruleset = self._parse(data)
        except RulesError as exc:
            return self._refuse(exc.problems)
        self._ruleset = ruleset
        self.version += 1
        metrics.RULES_VERSION.set(self.version)
        metrics.RULES_RELOADS.labels(outcome="ok").inc()
        log.info(
            "rules reloaded from %s: version %d, %d rules",
            self.path,
            self.version,
            len(ruleset.rules),
        )
        return True

    def _refuse(self, problems: list[Problem]) -> bool:
        metrics.RULES_RELOADS.labels(outcome="refused").inc()
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        log.error("rules reload refused, keeping version %d: %s%s", self.version, shown, more)
        return False
