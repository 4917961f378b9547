"""The command layer: one module per command group, composed by ``harness.cli``.

Each module holds the options of its commands and the calls they make into harness/,
studies/ and reports/. Nothing outside this package and ``harness.cli`` imports it.
"""
