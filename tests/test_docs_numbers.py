"""Every measured number in the docs has a command that produces it (issue 26, point 4).

A number is *measured* when it is a time (`12 ms`, `1.6 s`, `17 min`, `3.5 hours`) or a ratio
with a decimal (`4.24x`): those depend on today's code and machine, so the section that holds one
must name the command that prints it. A section (one heading to the next) is covered when

- it quotes a command line (`grokscope analyze RUN ...` with its arguments, `python bench/...`,
  `bash scripts/...`, `pytest ...`), or names a `bench/*.py` or `scripts/*.sh` file, or
- its page is a generated gallery page (its head says `Command: \\`...\\``), or
- it links to another docs page on which every one of its measured numbers appears as written.

And every command the docs quote is one that exists: `grokscope` command lines parse with the
CLI's own parser and name real presets and reproductions; `bench/` and `scripts/` files exist and
take the flags the docs give them. Counting words like "measured" would flag definitions (a 99%
threshold, "measured by the parallelograms"); the check keeps to the numbers that cannot be
anything but a measurement.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helpers import ROOT

SETTING = r"(?<!every )(?<!≥ )(?<!≤ )(?<!>= )(?<!<= )(?<!at most )(?<!at least )"  # a threshold, a period
MEASURED = re.compile(SETTING + r"(?<![\w.])\d[\d,]*(?:\.\d+)?\s?(?:ms|s|min|minutes|seconds|hours)(?![\w])"
                      r"|" + SETTING + r"(?<![\w.])\d+\.\d+x(?![\w])")
QUOTED = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
SCRIPT = re.compile(r"(?:^|[\s/`])((?:bench|scripts)/[\w.-]+\.(?:py|sh))")
COMMAND_START = ("grokscope ", "python ", "bash ", "pytest ", "$ grokscope ", "$ python ")
LINK = re.compile(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)")


def doc_pages(root: Path = ROOT) -> list[Path]:
    return sorted((root / "docs").rglob("*.md")) + [root / "README.md"]


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) from one heading to the next; headings inside code blocks are not headings."""
    out, title, lines, fenced = [], "(top)", [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#{1,6} ", line):
            out.append((title, "\n".join(lines)))
            title, lines = line.lstrip("#").strip(), []
        lines.append(line)
    out.append((title, "\n".join(lines)))
    return out


def commands(text: str) -> list[str]:
    """The command lines a text quotes: inline code and code-block lines (continuations joined)."""
    found = [q.strip() for q in QUOTED.findall(text)]
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            found.append(line.split(" #")[0].strip())
    return [c.removeprefix("$ ") for c in found if c.startswith(COMMAND_START)]


def names_a_command(text: str) -> bool:
    """A command line with its arguments (`grokscope sweep` alone names a command, it does not say
    which run printed the number), or a bench/ or scripts/ file, whose defaults are its command."""
    full = [c for c in commands(text) if not c.startswith("grokscope ") or len(c.split()) > 2]
    return bool(full) or bool(SCRIPT.search(text))


def uncovered(page: Path, root: Path = ROOT) -> list[str]:
    """The sections of `page` with measured numbers and no command that produces them."""
    text = page.read_text()
    head = sections(text)[0][1] + (sections(text)[1][1] if len(sections(text)) > 1 else "")
    if re.search(r"^Command: `grokscope ", head, re.M):  # a generated gallery page: one command made it all
        return []
    problems = []
    for title, body in sections(text):
        numbers = MEASURED.findall(FENCE.sub("", body)) + MEASURED.findall("\n".join(FENCE.findall(body)))
        if not numbers or names_a_command(title + "\n" + body):
            continue
        linked = [(page.parent / link).resolve() for link in LINK.findall(body)]
        linked_text = "\n".join(p.read_text() for p in linked if p.is_file())
        missing = [n for n in numbers if n not in linked_text]
        if linked_text and not missing:
            continue
        problems.append(f"{page.relative_to(root)} [{title}]: {', '.join(missing or numbers)} "
                        "has no command (quote the command that prints it, or link the page that does)")
    return problems


def _placeholder(cmd: str) -> bool:
    return any(mark in cmd for mark in ("...", "<", "[", "|", "{"))


def _broken_grokscope(words: list[str], reproductions, presets) -> str | None:
    """A `grokscope SUB ...` line: SUB exists, takes every --flag given, and the presets and the
    reproduction it names exist. A line that names a command without its required arguments
    (`grokscope analyze`, in prose) is fine: only what it does say is checked."""
    from grokscope.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    if words[1] not in subs:
        return f"no command {words[1]!r}"
    sub = subs[words[1]]
    for at, word in enumerate(words[2:], start=2):
        flag = word.split("=")[0]
        if flag.startswith("--") and flag not in sub._option_string_actions:
            return f"`grokscope {words[1]}` takes no {flag}"
        value = words[at + 1] if at + 1 < len(words) else ""
        named = flag == "--preset" and value and not value.isupper() and not Path(value).suffix
        if named and value not in presets:
            return f"no preset {value!r}"
    if words[1] == "reproduce" and len(words) > 2 and not words[2].startswith("-") \
            and not _placeholder(words[2]) and not words[2].isupper() and words[2] not in reproductions:
        return f"no reproduction {words[2]!r}"
    return None


def broken_command(cmd: str, root: Path = ROOT) -> str | None:
    """Why a quoted command would not run as written (None when it would, as far as it can be told
    without running it)."""
    from grokscope.config import preset_names
    from grokscope.reproduce import registry

    try:
        words = shlex.split(cmd)
    except ValueError:
        return None  # prose in backticks, not a command line
    if words[0] == "grokscope" and len(words) > 1 and words[1] not in ("-h", "--help", "--version"):
        why = _broken_grokscope(words, registry(), preset_names())
        if why:
            return f"`{cmd}`: {why}"
    for word_at, word in enumerate(words):
        if re.fullmatch(r"(?:\.\./shared/)?(?:bench|scripts)/[\w.-]+\.(?:py|sh)", word):
            path = (root / word).resolve()
            if not path.is_file():
                return f"`{cmd}`: no file {word}"
            source = path.read_text()
            for flag in words[word_at + 1:]:
                flag = flag.split("=")[0]
                if flag.startswith("--") and f'"{flag}"' not in source and f"'{flag}'" not in source:
                    return f"`{cmd}`: {word} takes no {flag}"
            break
    return None


def test_every_measured_number_in_the_docs_names_its_command():
    problems = [p for page in doc_pages() for p in uncovered(page)]
    assert not problems, "\n".join(problems)


def test_every_command_the_docs_quote_exists():
    problems = []
    for page in doc_pages():
        for cmd in commands(page.read_text()):
            why = broken_command(cmd)
            if why:
                problems.append(f"{page.relative_to(ROOT)}: {why}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text, fine", [
    ("## Speed\n\nA step takes 51 ms on two cores.\n", False),
    ("## Speed\n\n`python bench/train_step.py`: a step takes 51 ms.\n", True),
    ("## Speed\n\n```\ngrokscope train --preset nanda\n```\nIt took 3.5 min.\n", True),
    ("## Speed\n\nA step takes 51 ms ([benchmarks](b.md)).\n", True),
    ("## Speed\n\nA step takes 52 ms ([benchmarks](b.md)).\n", False),
    ("## Rules\n\nGeneralized: test accuracy 99% within 2x the memorization step.\n", True),
    ("## Sweeps\n\nOne step takes 285 ms; `grokscope sweep` runs them.\n", False),
])
def test_the_check_finds_a_number_without_its_command(tmp_path, text, fine):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("`python bench/train_step.py`: 51 ms a step.\n")
    page = tmp_path / "docs" / "a.md"
    page.write_text(text)
    assert (uncovered(page, tmp_path) == []) == fine


@pytest.mark.parametrize("cmd, fine", [
    ("grokscope train --preset nanda --set train.steps=1000", True),
    ("grokscope train --preset no-such-preset", False),
    ("grokscope analyze RUN --no-such-flag", False),
    ("grokscope analyze", True),
    ("grokscope analyse RUN", False),
    ("grokscope reproduce no-such-paper --scale full", False),
    ("grokscope reproduce nanda --scale full", True),
    ("python bench/loop_cost.py --steps 1000 --repeats 2", True),
    ("python bench/loop_cost.py --no-such-flag 3", False),
    ("python bench/no_such_bench.py", False),
])
def test_the_check_finds_a_command_that_would_not_run(cmd, fine):
    assert (broken_command(cmd) is None) == fine
