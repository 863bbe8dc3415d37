"""The documentation against the code, without building the site (`make docs` builds it, with --strict).

* Every error message that segtrain raises (a `SegtrainError` or a subclass, found by walking segtrain/ with
  `ast`) is an entry of docs/reference/errors.md, with the exit code its class gives, and every entry there is
  still a message of the code. A message's `{...}` parts are placeholders: any name on the page matches.
* typer's usage errors, as the app prints them, are on the errors page; every exit code is on the exit codes
  page.
* The warnings that say a run cannot be exact are on the exactness guide, word for word between placeholders.
* The README's links into the repository lead to files that exist (or to the page the CLI hook generates).
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
from dataclasses import dataclass

from typer.testing import CliRunner

from conftest import ROOT

PACKAGE = ROOT / "segtrain"
ERRORS_PAGE = ROOT / "docs" / "reference" / "errors.md"
EXIT_CODES_PAGE = ROOT / "docs" / "reference" / "exit-codes.md"
EXACTNESS_PAGE = ROOT / "docs" / "guides" / "exactness.md"

# A message that is not a literal: where its text comes from. (file, the argument's source) -> the function, in a
# file of segtrain/, whose strings make it; None: the message is passed on from a worker (raised there).
BUILDERS: dict[tuple[str, str], tuple[str, str] | None] = {
    ("runs/opener.py", "directory.refusal(differences)"): ("runs/directory.py", "refusal"),
    ("runs/opener.py", "orphaned"): ("runs/directory.py", "orphaned"),
    ("runs/runners.py", "message"): None,  # a worker's own SegtrainError, raised (and listed) where it began
}
DESCRIBE_FAILURE = ("training/script.py", "describe_failure")  # `describe_failure(path, where, error, debug)`


@dataclass(frozen=True)
class Message:
    template: str  # the text, each {expression} kept as it is
    exit_code: int
    where: str  # file:line

    @property
    def key(self) -> str:
        return normalize(self.template)


def normalize(text: str) -> str:
    """A message with every placeholder as `{}` (nested ones too) and its whitespace as single spaces."""
    while True:
        replaced = re.sub(r"\{[^{}]*\}", "\0", text)
        if replaced == text:
            return " ".join(text.replace("\0", "{}").split())
        text = replaced


def _text(node: ast.expr) -> list[str]:
    """The templates a string expression makes: an f-string's parts as `{expr}`, both branches of an `if`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [
            "".join(
                str(v.value) if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}" for v in node.values
            )
        ]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _text(node.left) for b in _text(node.right)]
    if isinstance(node, ast.IfExp):
        return _text(node.body) + _text(node.orelse)
    if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(".join"):
        return ["{" + ast.unparse(node) + "}"]
    raise ValueError(ast.unparse(node))


def _function(relative: str, name: str) -> ast.FunctionDef:
    tree = ast.parse((PACKAGE / relative).read_text())
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)


def _built_by(relative: str, name: str) -> list[str]:
    """The message a builder function returns: the string it returns (or assigns and returns)."""
    fn = _function(relative, name)
    found = []
    for node in ast.walk(fn):
        value = node.value if isinstance(node, (ast.Return, ast.Assign)) else None
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            try:
                found += _text(value)
            except ValueError:
                continue
    return found[:1]  # the first: the message itself (what follows adds a traceback or a hint)


def _error_classes() -> dict[str, int]:
    """Every SegtrainError subclass in segtrain/ and its exit code (inherited where it sets none)."""
    codes = {"EXIT_OK": 0, "EXIT_FAILED": 1, "EXIT_BAD_INPUT": 2, "EXIT_RESUMABLE": 75}
    parents: dict[str, str] = {}
    own: dict[str, int] = {"SegtrainError": 1}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.bases:
                parents[node.name] = ast.unparse(node.bases[0]).split(".")[-1]
                for item in node.body:
                    if isinstance(item, ast.Assign) and ast.unparse(item.targets[0]) == "exit_code":
                        own[node.name] = codes[ast.unparse(item.value)]
    result = {}
    for name in [*parents, "SegtrainError"]:
        chain, cls = [], name
        while cls in parents and cls not in own:
            chain.append(cls)
            cls = parents[cls]
        if cls in own and (name == "SegtrainError" or _descends(name, parents)):
            result[name] = own[cls]
    return result


def _descends(name: str, parents: dict[str, str]) -> bool:
    while name in parents:
        name = parents[name]
        if name == "SegtrainError":
            return True
    return False


@functools.cache
def messages() -> tuple[Message, ...]:
    """Every message a SegtrainError (or subclass) is made with, anywhere in segtrain/."""
    classes = _error_classes()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            name = ast.unparse(node.func).split(".")[-1]
            if name not in classes:
                continue
            arg, where = node.args[0], f"segtrain/{relative}:{node.lineno}"
            source = ast.unparse(arg)
            if (relative, source) in BUILDERS:
                builder = BUILDERS[(relative, source)]
                templates = [] if builder is None else _built_by(*builder)
            elif isinstance(arg, ast.Call) and ast.unparse(arg.func) == DESCRIBE_FAILURE[1]:
                templates = _built_by(*DESCRIBE_FAILURE)
            else:
                try:
                    templates = _text(arg)
                except ValueError:
                    raise AssertionError(f"{where}: a message made by `{source}`: add it to BUILDERS") from None
            found += [Message(t, classes[name], where) for t in templates]
    return tuple(found)


@dataclass(frozen=True)
class Entry:
    messages: tuple[str, ...]
    exit_code: int | None
    text: str


_SPAN = re.compile(r"^- (``?)(?P<message>.+?)\1(?:\s|$)")
_FENCE = re.compile(r"^ *```text\n(?P<body>.*?)^ *```$", re.MULTILINE | re.DOTALL)
_EXIT = re.compile(r"\*\*exit (\d+)\*\*")


def page_entries(text: str) -> list[Entry]:
    """The list items of the errors page: a message in a code span (or in a ```text block under the item)."""
    entries = []
    for item in re.split(r"\n(?=- |#)", text):
        if not item.startswith("- "):
            continue
        found = []
        span = _SPAN.match(item)
        if span:
            found.append(span["message"].strip())
        found += [textwrap.dedent(m["body"]).strip() for m in _FENCE.finditer(item)]
        code = _EXIT.search(item)
        entries.append(Entry(tuple(found), int(code.group(1)) if code else None, item))
    return entries


def test_the_collector_finds_the_messages_it_should():
    """The walk finds the errors of every layer, their classes' exit codes, and the messages built elsewhere."""
    classes = _error_classes()
    assert classes["ConfigError"] == 2 and classes["ScriptError"] == 2 and classes["MetricMissing"] == 2
    assert classes["Preempted"] == 75 and classes["PeersLost"] == 75 and classes["CheckpointError"] == 1
    found = messages()
    assert len(found) > 150
    keys = {m.key: m.exit_code for m in found}
    assert keys[normalize("Training script not found: {path}")] == 2
    assert any("holds a run with other settings" in m.template for m in found)  # directory.refusal
    assert any(m.template.startswith("{path}: {where} failed") for m in found)  # describe_failure
    assert {m.where.split(":")[0].split("/")[1] for m in found} >= {"backends", "runs", "search", "state", "training"}


def test_every_error_message_is_on_the_errors_page_with_its_exit_code():
    entries = page_entries(ERRORS_PAGE.read_text())
    by_key: dict[str, list[Entry]] = {}
    for entry in entries:
        for message in entry.messages:
            by_key.setdefault(normalize(message), []).append(entry)
    missing, wrong = [], []
    for m in messages():
        if m.key not in by_key:
            missing.append(f"{m.where} (exit {m.exit_code}): {m.template}")
        elif all(e.exit_code != m.exit_code for e in by_key[m.key]):
            wrong.append(
                f"{m.where}: exit {m.exit_code} in the code, {[e.exit_code for e in by_key[m.key]]} on the page"
            )
    assert not missing, (
        "not on docs/reference/errors.md (an entry: the message, when, the fix, **exit N**):\n" + "\n".join(missing)
    )
    assert not wrong, "\n".join(wrong)


def test_every_entry_of_the_errors_page_is_a_message_of_the_code():
    keys = {m.key for m in messages()}
    entries = [e for e in page_entries(ERRORS_PAGE.read_text()) if e.messages]
    assert len(entries) > 100
    stale = [m for e in entries for m in e.messages if normalize(m) not in keys]
    assert not stale, "on the errors page but no longer in segtrain/:\n" + "\n".join(stale)
    assert all(e.exit_code is not None for e in entries), [e.text for e in entries if e.exit_code is None]
    assert all("When" in e.text or "when" in e.text for e in entries), [e.text for e in entries if "hen" not in e.text]


def test_typer_usage_errors_are_on_the_errors_page_as_the_app_prints_them():
    from segtrain.cli import app

    page = ERRORS_PAGE.read_text()
    runner = CliRunner()
    cases = {
        ("fit", "examples/spirals.py", "--segment", "4"): "Missing option '--epochs' / '-e'.",
        ("fit",): "Missing argument 'script'.",
        ("fit", "x.py", "-e", "2", "-s", "1", "--isolation", "thread"): (
            "Invalid value for '--isolation': Value error, 'thread' is not one of 'process', 'session'."
        ),
        ("fit", "x.py", "--epoch", "2"): "No such option: --epoch (Possible options: --epochs, --export, --keep)",
        ("fit", "x.py", "-e", "two", "-s", "1"): (
            "Invalid value for '--epochs' / '-e': Input should be a valid integer, unable to parse string as an integer"
        ),
        ("fits",): "No such command 'fits'. Did you mean 'fit'?",
    }
    for args, expected in cases.items():
        result = runner.invoke(app, list(args), prog_name="segtrain", env={"COLUMNS": "200"})
        assert result.exit_code == 2, (args, result.output)
        assert expected in " ".join(result.output.split()), (args, result.output)
        assert expected in page, f"typer's `{expected}` is not on the errors page"


def test_every_exit_code_is_on_the_exit_codes_page():
    from segtrain import errors
    from segtrain.training.signals import EXIT_ABORTED

    rows = {int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", EXIT_CODES_PAGE.read_text(), re.MULTILINE)}
    codes = {getattr(errors, n) for n in dir(errors) if n.startswith("EXIT_")} | {EXIT_ABORTED}
    assert rows == codes


def _fragments(template: str) -> list[str]:
    """The literal parts of a message between its placeholders (`{expr}`, `%s`), long enough to mean something."""
    parts = re.split(r"\{[^{}]*\}|%[sd]", template)
    return [" ".join(p.split()) for p in parts if len(p.strip()) >= 12]


def _warnings() -> list[str]:
    """What segtrain says before training when the data cannot be replayed exactly, and its other warnings."""
    texts = []
    for relative, name in (("training/data.py", "inexact"), ("training/pydataset.py", "inexact")):
        fn = _function(relative, name)
        docstring = fn.body[0].value if isinstance(fn.body[0], ast.Expr) else None
        for node in ast.walk(fn):
            if node is docstring:
                continue
            if isinstance(node, (ast.JoinedStr, ast.BinOp)) or (
                isinstance(node, ast.Constant) and isinstance(node.value, str)
            ):
                try:
                    texts += _text(node)  # type: ignore[arg-type]
                except ValueError:
                    continue
    for relative in ("training/pydataset.py", "state/checkpoint.py", "worker/pool.py", "runs/script_copy.py"):
        for node in ast.walk(ast.parse((PACKAGE / relative).read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "log.warning":
                texts += _text(node.args[0])
    return texts


def test_the_exactness_guide_gives_the_warnings_word_for_word():
    page = " ".join(EXACTNESS_PAGE.read_text().replace("`", "").split())
    warnings = _warnings()
    assert len(warnings) >= 8
    missing = [f for w in warnings for f in _fragments(w.replace("`", "")) if f not in page]
    assert not missing, "not on docs/guides/exactness.md:\n" + "\n".join(missing)


def test_the_readme_links_lead_to_files_of_the_repository():
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    hook = module_from_spec(spec)
    spec.loader.exec_module(hook)
    generated = {f"docs/{hook.PAGE}"}
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    assert len(links) > 10
    broken = [link for link in links if "://" not in link and not (ROOT / link).exists() and link not in generated]
    assert not broken, broken
