"""The documentation stays true to the code: a short README, links that resolve, a CLI reference that covers every
command and option of both typer apps, and commands in the README and the guide that name real commands and flags.

Fast by design: no mkdocs build here (CI runs `make docs`, which builds strictly). The reference pages are build
output (`make docs` generates them); these tests render them in memory.
"""

import re
from pathlib import Path

import pytest
import typer
import yaml

from e3eval.dev import cli_reference

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
GENERATED = {REFERENCE / program.page for program in cli_reference.programs()}
PAGES = sorted(path for path in DOCS.rglob("*.md") if path.parent != REFERENCE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _prose(path: Path) -> str:
    """The page without its code blocks (a `](` inside code is not a link)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def _tree(command, path: tuple[str, ...]) -> dict[tuple[str, ...], object]:
    """Every visible command under `command`, found through the group's own table, not the generator's walk."""
    found = {path: command}
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            found |= _tree(sub, (*path, name))
    return found


def _trees() -> dict[tuple[str, ...], object]:
    found = {}
    for program in cli_reference.programs():
        found |= _tree(typer.main.get_command(program.app), (program.name,))
    return found


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files(page):
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor on the same page
        resolved = (page.parent / target.split("#")[0]).resolve()
        if not (resolved.exists() or resolved in GENERATED):
            broken.append(target)
    assert not broken, f"{page.name}: links to missing files: {broken}"


def test_every_page_is_in_the_site_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def leaves(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from leaves(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from leaves(value)

    in_nav = {DOCS / leaf for leaf in leaves(config["nav"])}
    assert set(PAGES) | GENERATED == in_nav


def test_the_reference_covers_every_command_and_option():
    pages = {program.name: cli_reference.render(program) for program in cli_reference.programs()}
    tree = _trees()
    assert ("e3eval", "dev", "tiny-model") in tree and ("e3train", "prepare", "math") in tree
    for path, command in tree.items():
        page = pages[path[0]]
        heading = f"`{' '.join(path)}` {{#{'-'.join(path)}}}"
        assert heading in page, f"no section for {' '.join(path)}"
        section = page.split(heading, 1)[1].split("\n#", 1)[0]
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            # An option is documented by its flag; an argument by its metavar, which typer spells in either case.
            name = param.opts[0] if param.param_type_name == "option" else (param.metavar or param.name)
            assert f"`{name}".lower() in section.lower(), f"{' '.join(path)}: {name} is not documented"
        if command.help:
            first_words = command.help.split("\n", 1)[0][:40]
            assert cli_reference._escape_text(first_words)[:30] in section


def test_reference_escapes_help_text_outside_code():
    assert cli_reference._escape_text("default: </think> or `</think>`; a|b *c*") == (
        "default: &lt;/think&gt; or `</think>`; a\\|b \\*c\\*"
    )
    blocks = cli_reference._help_blocks("Do it.\n\n\b\nExamples:\n  e3eval budgets 4k..32k\n  e3eval budgets 4k")
    assert blocks == ["Do it.", "Examples:", "```bash\ne3eval budgets 4k..32k\ne3eval budgets 4k\n```"]


def _command_lines(path: Path):
    """Shell lines in the page's bash blocks that run e3eval or e3train (continuation lines joined)."""
    for block in re.findall(r"^```bash\n(.*?)^```", path.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip().removeprefix("CUDA_VISIBLE_DEVICES=$i ")
            if line.startswith(("e3eval ", "e3train ")):
                yield line


def _wrong(lines, tree) -> list[str]:
    """What in these command lines names no command of the tree, or no option of its command."""
    wrong = []
    for line in lines:
        words = line.split()
        path = (words[0],)
        for word in words[1:]:
            if (*path, word) in tree:
                path = (*path, word)
        if len(path) == 1 and words[1:2] != ["--help"]:
            wrong.append(f"{line}: no such command")
            continue
        known = {opt for param in tree[path].params for opt in (*param.opts, *param.secondary_opts)}
        for word in words:
            flag = word.split("=", 1)[0]
            if flag.startswith("--") and flag not in known | {"--help"}:
                wrong.append(f"{' '.join(path)}: no option {flag}")
    return wrong


def test_the_command_check_finds_wrong_commands_and_flags():
    lines = ["e3eval sweep --model M --no-such-flag 1", "e3eval no-such-command x", "e3train prepare math --sizes 3"]
    assert _wrong(lines, _trees()) == [
        "e3eval sweep: no option --no-such-flag",
        "e3eval no-such-command x: no such command",
        "e3train prepare math: no option --sizes",
    ]
    right = ["e3eval sweep --model M --no-chat --dp-size 2", "e3train prepare countdown --sizes 3"]
    assert _wrong(right, _trees()) == []


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_commands_and_flags_exist(page):
    lines = list(_command_lines(page))
    if page.name == "README.md":
        assert len(lines) >= 15  # the recipes: a parser that found none would pass every page
    wrong = _wrong(lines, _trees())
    assert not wrong, "\n".join(wrong)
