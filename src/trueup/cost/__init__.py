"""`trueup cost`: cost of goods sold from messy sales and purchase-lot exports, one bad SKU at a time.

    import trueup.cost
    result = trueup.cost.compute("sales.csv", "lots.csv", method="fifo", policy=["date_mismatch=medium"])
    result.summary.cogs, result.exit_code
    for line in result.cogs(): ...          # CogsLine records, Decimal figures
    for finding in result.findings: ...     # what to fix, where
    trueup.cost.write_outputs(result, "out/")

Modules, in the order data flows through them: `read` (files and queries as
text), `columns` (which column is which field), `normalise` (text to exact
values, with per-cell problems), `checks` and `findings` (what is wrong,
how bad, what to do), `engines` with `fifo` and `booking` (the costing
methods), `compute` (the run), `result` (records), `write` (the output files).
"""

from trueup.cost.compute import compute
from trueup.cost.engines import METHODS
from trueup.cost.findings import CATEGORIES, SEVERITIES, Finding, Policy, Source
from trueup.cost.result import CogsLine, Consumed, CostResult, LotRemaining, Summary
from trueup.cost.write import write_outputs

__all__ = [
    "CATEGORIES",
    "METHODS",
    "SEVERITIES",
    "CogsLine",
    "Consumed",
    "CostResult",
    "Finding",
    "LotRemaining",
    "Policy",
    "Source",
    "Summary",
    "compute",
    "write_outputs",
]
