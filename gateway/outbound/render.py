"""Notification text from Jinja2 templates: values in, strings out (pure, tested directly).

Templates live in `templates/{zh,en}/`: `EVENT.subject.j2`, `EVENT.txt.j2` and optionally
`EVENT.html.j2` (else `_default.html.j2` wraps the text part), `_chat.md.j2` for chat robots.
A folder named by `[outbound] templates_dir` with the same layout overrides any of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from gateway.config import Settings

SHIPPED = Path(__file__).with_name("templates")
LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RenderedChat:
    title: str
    text: str


def local_time(value: datetime | None, zone: ZoneInfo) -> str:
    """`2026-11-25 17:00 (Asia/Shanghai)`: every time a person reads is in the daemon's zone."""
    if value is None:
        return ""
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"


def one_line(value: str) -> str:
    """Collapse CR/LF/tabs: a subject made from user input can never start a new header."""
    return re.sub(r"\s+", " ", value).strip()


class Renderer:
    def __init__(self, templates_dir: Path | None, zone: ZoneInfo) -> None:
        self.zone = zone
        self._envs = {lang: self._env(templates_dir, lang) for lang in LANGUAGES}

    def _env(self, templates_dir: Path | None, lang: str) -> jinja2.Environment:
        loaders: list[jinja2.BaseLoader] = []
        if templates_dir is not None:
            loaders.append(jinja2.FileSystemLoader(templates_dir / lang))
        loaders.append(jinja2.FileSystemLoader(SHIPPED / lang))
        env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            # HTML is escaped (a subject like "<script>" stays text); plain text and subjects
            # are not, or "&" would arrive as "&amp;".
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["local"] = lambda v: local_time(v, self.zone)
        return env

    def env(self, language: str) -> jinja2.Environment:
        return self._envs.get(language) or self._envs[LANGUAGES[0]]

    def mail(self, event: str, language: str, context: dict[str, Any]) -> RenderedMail:
        env = self.env(language)
        subject = one_line(env.get_template(f"{event}.subject.j2").render(context))
        key = context.get("key")
        if key and f"[{key}]" not in subject:
            # Threading by subject tag is the last resort of the intake: always carry it.
            subject = f"[{key}] {subject}"
        text = env.get_template(f"{event}.txt.j2").render(context)
        html_name = env.select_template([f"{event}.html.j2", "_default.html.j2"])
        html = html_name.render({**context, "text": text, "mail_subject": subject})
        return RenderedMail(subject, text, html)

    def chat(self, event: str, language: str, context: dict[str, Any]) -> RenderedChat:
        env = self.env(language)
        title = one_line(env.get_template(f"{event}.subject.j2").render(context))
        text = env.get_template("_chat.md.j2").render({**context, "title": title})
        return RenderedChat(title, text)


_CACHE: dict[tuple[str, str], Renderer] = {}


def renderer_for(settings: Settings) -> Renderer:
    """One renderer per template folder and zone (Jinja caches compiled templates in it)."""
    folder = settings.outbound.templates_dir
    path: Path | None = None
    if folder:
        path = Path(folder)
        path = path if path.is_absolute() else settings.config_dir / path
    key = (str(path or ""), settings.daemon.timezone)
    if key not in _CACHE:
        _CACHE[key] = Renderer(path, settings.zone)
    return _CACHE[key]
