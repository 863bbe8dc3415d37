"""MkDocs hook: the repository's own markdown outside docs/ becomes part of the site, with working links.

docker/README.md and bench/README.md are pages of the site (`PAGES`: their place in the site), and so is any
other file of the repository that a page links to (a benchmark result, compose.yaml): it is copied under
`repo/` at its path in the repository. Every relative link is rewritten from the repository's layout to the
site's, so the same markdown reads right on a forge and in the site. A link to a file that does not exist is
left as it is, and `mkdocs build --strict` fails on it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[2]
DOCS = "docs"
#: repository path -> its page in the site
PAGES = {"docker/README.md": "guides/container.md", "bench/README.md": "how-benchmarks-run.md"}
_LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
_sources: dict[str, str] = {}  # the site's src_uri -> the repository path it comes from


def _repo_path(src_uri: str) -> str:
    return _sources.get(src_uri, f"{DOCS}/{src_uri}")


def _site_path(repo_path: str) -> str:
    if repo_path.startswith(f"{DOCS}/"):
        return repo_path[len(DOCS) + 1 :]
    return PAGES.get(repo_path, f"repo/{repo_path}")


def _targets(repo_path: str, text: str) -> list[str]:
    """The repository paths outside docs/ that `text` (the file at `repo_path`) links to and that exist."""
    found = []
    for match in _LINK.finditer(text):
        target = match.group(2)
        if "://" in target or target.startswith(("mailto:", "/")):
            continue
        path = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), target))
        if not path.startswith(f"{DOCS}/") and not path.startswith("..") and (ROOT / path).is_file():
            found.append(path)
    return found


def on_files(files: Files, config: Any) -> Files:
    queue = [f"{DOCS}/{f.src_uri}" for f in files if f.src_uri.endswith(".md")] + list(PAGES)
    seen: set[str] = set()
    while queue:
        repo_path = queue.pop()
        if repo_path in seen:
            continue
        seen.add(repo_path)
        if repo_path.startswith(f"{DOCS}/"):
            text = (ROOT / repo_path).read_text()
        else:
            text = (ROOT / repo_path).read_text() if repo_path.endswith(".md") else ""
            site = _site_path(repo_path)
            _sources[site] = repo_path
            listed = InclusionLevel.UNDEFINED if repo_path in PAGES else InclusionLevel.NOT_IN_NAV  # PAGES: in nav
            files.append(File.generated(config, site, abs_src_path=str(ROOT / repo_path), inclusion=listed))
        queue.extend(_targets(repo_path, text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    here = _repo_path(page.file.src_uri)
    site_here = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match[str]) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("mailto:", "/")):
            return match.group(0)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(here), target))
        if not (ROOT / path).is_file():
            return match.group(0)  # --strict names it
        link = posixpath.relpath(_site_path(path), site_here or ".")
        return f"{match.group(1)}{link}{match.group(3) or ''}{match.group(4)}"

    return _LINK.sub(rewrite, markdown)
