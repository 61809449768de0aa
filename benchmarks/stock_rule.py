"""The rule the write benchmarks share: an item's cached `remaining` is its `total` less its records' `qty`."""


def stock_rule(records: str) -> str:
    """The rule `stock` as TOML: `items(id, total, remaining)`, the records in table `records` by `item_id`."""
    return f"""
[[rules]]
name = "stock"
[rules.recorded]
table = "items"
key = ["id"]
quantity = "remaining"
[[rules.expected]]
table = "items"
key = ["id"]
quantity = "total"
[[rules.expected]]
table = "{records}"
key = ["item_id"]
quantity = "qty"
sign = -1
"""
