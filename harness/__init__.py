"""svgbench's harness: configuration, task suites, the trainer, run directories and the CLI."""

__version__ = "0.1.0"
