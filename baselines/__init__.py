"""The agents svgbench compares, each a named configuration of ``agents/``."""

from baselines.registry import AGENTS, AgentVariant, get_agent

__all__ = ["AGENTS", "AgentVariant", "get_agent"]
