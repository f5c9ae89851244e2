import pytest

from e3eval.budgets import format_budget, parse_budgets
from e3eval.errors import UserError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("4k..40k", [4096, 8192, 16384, 32768, 40960]),
        ("4k..32k", [4096, 8192, 16384, 32768]),
        ("4k..40k:4k", [4096 * i for i in range(1, 11)]),
        ("4k..10k:4k", [4096, 8192, 10240]),
        ("4096,8192", [4096, 8192]),
        ("8192, 4096,4096", [4096, 8192]),
        ("2K", [2048]),
        ("256..2k", [256, 512, 1024, 2048]),
        ("1000..1000", [1000]),
    ],
)
def test_parse(spec, expected):
    assert parse_budgets(spec) == expected


@pytest.mark.parametrize(
    "spec", ["", "4m", "40k..4k", "4k..", "..4k", "4k..8k..16k", "4096:2", "0", "4k,,8k", "-1", "4.5k"]
)
def test_rejects(spec):
    with pytest.raises(UserError):
        parse_budgets(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("2097152k", "too large: at most 2,147,483,647 tokens"),  # 2^31: budgets are int32 columns
        ("2147483648", "too large"),
        ("4k..2147483648", "too large"),
        ("9" * 5000, "too large"),  # more digits than Python's int() accepts
        ("1..2000000000:1", "names 2,000,000,000 budgets; at most 10,000"),  # a MemoryError before
        ("1..10001:1", "names 10,001 budgets"),
        ("1..30001:3", "names 10,001 budgets"),
        ("1..30000:3", "names 10,001 budgets"),  # the end point is added when the step misses it
        (",".join(str(b) for b in range(1, 10_002)), "names 10,001 budgets"),
    ],
)
def test_bounds(spec, message):
    with pytest.raises(UserError, match=message):
        parse_budgets(spec)


def test_largest_allowed():
    assert parse_budgets("2147483647") == [2**31 - 1]
    assert len(parse_budgets("1..10000:1")) == 10_000
    assert parse_budgets("1..10:4") == [1, 5, 9, 10]


def test_format():
    assert [format_budget(b) for b in (4096, 40960, 1000)] == ["4k", "40k", "1000"]
