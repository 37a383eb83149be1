"""Checks of a written report folder shared by the report tests: parse, links, images, numbers."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class ParsedPage:
    """What a page links to and the numbers it tags with ``data-*`` attributes."""

    links: list[str] = field(default_factory=list)
    numbers: dict[tuple[str, str], str] = field(default_factory=dict)
    pre: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


class StrictParser(HTMLParser):
    """An HTML parser that fails on unbalanced or misnested tags and records links and numbers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.page = ParsedPage()
        self._capture: tuple[str, str] | None = None
        self._buf: list[str] = []
        self._in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("href", "src"):
            if a.get(name):
                self.page.links.append(a[name])
        if tag == "img":
            assert a.get("src") and a.get("alt") is not None, f"img without src/alt: {a}"
        for k in ("data-count", "data-size", "data-regions"):
            if k in a:
                self._capture, self._buf = (k, a[k]), []
        self._in_pre = tag == "pre"
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()
        if self._capture and tag in ("td", "span"):
            self.page.numbers[self._capture] = "".join(self._buf).strip()
            self._capture = None
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        self.page.text.append(data)
        if self._capture:
            self._buf.append(data)
        if self._in_pre:
            self.page.pre.append(data)


def parse_page(path: Path) -> ParsedPage:
    """Parse one page strictly (every non-void tag closed in order)."""
    p = StrictParser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    assert p.stack == [], f"{path.name}: unclosed tags {p.stack}"
    return p.page


def check_site(report: Path) -> dict[str, ParsedPage]:
    """Parse every page, check every relative link resolves and every image file decodes.

    Args:
        report: the ``OUT/report`` folder.
    """
    pages = {p.name: parse_page(p) for p in sorted(report.glob("*.html"))}
    assert {"index.html", "distributions.html", "clusters.html", "images.html"} <= set(pages)
    for name, page in pages.items():
        for link in page.links:
            assert "://" not in link and not link.startswith("/"), f"{name}: non-relative link {link}"
            target = html.unescape(link).split("#", 1)[0]
            if target:
                assert (report / target).is_file(), f"{name}: broken link {link}"
    for f in report.rglob("*"):
        if f.suffix in (".png", ".jpg"):
            with Image.open(f) as im:
                im.load()
                assert im.width > 0 and im.height > 0
        elif f.suffix == ".svg":
            ET.parse(f)
    return pages


def as_int(text: str) -> int:
    """A number as the report prints it (thousands separators)."""
    return int(text.replace(",", ""))
