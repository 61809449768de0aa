"""Config validation: every mistake gets one line naming the file, the rule and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from trueup.config import load_config
from trueup.errors import ConfigError

GOOD_RULE = """
[[rules]]
name = "stock"
[rules.recorded]
table = "items"
key = ["id"]
quantity = "qty"
[[rules.expected]]
table = "moves"
key = ["item_id"]
quantity = "qty"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trueup.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value)


def test_a_good_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[database]\nurl = "sqlite:///x.db"\n' + GOOD_RULE))
    rule = config.rule("stock")
    assert rule.expected[0].sign == 1 and rule.recorded.insert_missing is False
    assert config.sha256 and len(config.sha256) == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('quantity = "qty"\n[[rules.expected]]', 'quantty = "qty"\n[[rules.expected]]'),
         "rule 'stock': recorded.quantty: unknown field (check its spelling) (and 1 more problem(s))"),
        (('key = ["item_id"]', 'key = ["item_id", "lot"]'),
         "rule 'stock': expected[0].key lists 2 expression(s) but recorded.key has 1"),
        (('table = "moves"', 'table = "moves"\nfrom = "moves m"'),
         "rule 'stock': expected[0]: give exactly one of `table` or `from`"),
        (('key = ["id"]', 'key = ["a..b"]'),
         "rule 'stock': recorded.key[0]: 'a..b': an empty name (two dots, or a dot at either end)"),
        (('table = "items"', 'table = "shop.inventory.items"'),
         "rule 'stock': recorded.table: 'shop.inventory.items' has 3 dot-separated parts, but a table is"),
        (('table = "items"', """table = '"my.schema.items'"""),
         """rule 'stock': recorded.table: '"my.schema.items': a double quote is never closed"""),
        (('quantity = "qty"\n[[rules.expected]]', 'quantity = "qty"\nwhere = 5\n[[rules.expected]]'),
         "rule 'stock': recorded.where: Input should be a valid string"),
        (('key = ["item_id"]\nquantity = "qty"', 'key = ["item_id"]\nquantity = "qty"\nsign = 2'),
         "rule 'stock': expected[0].sign: Input should be 1 or -1"),
        (('[rules.recorded]\ntable = "items"\n', '[rules.recorded]\n'),
         "rule 'stock': recorded.table: required field is missing"),
    ],
)  # fmt: skip
def test_mistakes_name_file_rule_and_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in GOOD_RULE
    text = error_for(tmp_path, GOOD_RULE.replace(old, new, 1))
    assert text.startswith(f"{tmp_path / 'trueup.toml'}: ")
    assert message in text


def test_a_rule_without_a_name_is_named_by_position(tmp_path: Path) -> None:
    assert "trueup.toml: rules[0]: name: required field is missing" in error_for(
        tmp_path, GOOD_RULE.replace('name = "stock"', "")
    )


def test_duplicate_rule_names_are_refused(tmp_path: Path) -> None:
    assert "two rules are named 'stock'" in error_for(tmp_path, GOOD_RULE + GOOD_RULE)


def test_toml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    text = error_for(tmp_path, "[database]\nurl = sqlite:///x.db\n")
    assert "invalid TOML" in text and "line 2" in text


def test_missing_file_suggests_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"trueup.toml: config file not found \(run `trueup init`"):
        load_config()


def test_database_url_precedence_and_env_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, '[database]\nurl = "postgresql://app:${SHOP_PW}@db/shop"\n' + GOOD_RULE))
    monkeypatch.delenv("TRUEUP_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHOP_PW", raising=False)
    with pytest.raises(ConfigError, match=r"uses \$\{SHOP_PW\} but it is not set"):
        config.database_url()
    monkeypatch.setenv("SHOP_PW", "s3cret")
    assert config.database_url() == "postgresql://app:s3cret@db/shop"
    monkeypatch.setenv("TRUEUP_DATABASE_URL", "sqlite:///env.db")
    assert config.database_url() == "sqlite:///env.db"
    assert config.database_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_no_database_anywhere_says_where_to_set_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUEUP_DATABASE_URL", raising=False)
    config = load_config(write(tmp_path, GOOD_RULE))
    with pytest.raises(ConfigError, match=r"no database: set \[database\].url, \$TRUEUP_DATABASE_URL or --database"):
        config.database_url()
