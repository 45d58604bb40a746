"""The dashboard's shipped files: all of them are package data, none parses HTML from data
or loads anything from another origin, and the pages have no inline script or style."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from pipeline.dashboard import STATIC

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p for p in STATIC.rglob("*") if p.is_file())


def test_every_static_file_is_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["pipeline.dashboard"]
    assert FILES
    for path in FILES:
        rel = path.relative_to(STATIC.parent).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not in the wheel"


def test_no_html_parsing_eval_or_other_origins():
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setTimeout\(\s*['\"`]|DOMParser|createContextualFragment|srcdoc"
    )
    for path in FILES:
        text = path.read_text()
        assert not sinks.search(text), f"{path.name}: {sinks.search(text).group()}"
        # no CDN: every URL in code points at this origin (the SVG namespace is a name)
        for url in re.findall(r"https?://[^\s\"'`)]+", text):
            assert url.startswith("http://www.w3.org/2000/svg"), f"{path.name}: {url}"


def test_pages_have_no_inline_script_or_style():
    for page in STATIC.glob("*.html"):
        text = page.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert 'src="/dashboard/static/' in tag and 'type="module"' in tag, tag
        assert "<style" not in text and " style=" not in text, page.name
        assert not re.search(r"\son[a-z]+\s*=", text), f"{page.name}: inline event handler"
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", text), f"{page.name}: inline script"
