"""Matrix products with a dimension of one, written as fused loops in the compiled update.

At the ``quick`` preset's sizes a ``sac`` update runs a few matrix products with a dimension
of one, such as the critic's last layer (with its bias, a ``baddbmm`` of ``(2, 256, 128) @
(2, 128, 1)``: a dot product per row). MKL takes about 40 microseconds for each, at 2-3
GFLOP/s; written as a broadcast product summed over the inner dimension, inductor computes
it inside one of its fused C++ loops in a few microseconds (docs/performance.md, "Products
with a dimension of one"). Inductor already does so for a plain ``bmm`` on a CPU, not for
``mm``, ``addmm`` or ``baddbmm``, which this pass rewrites. The arithmetic is the product's
(each output is the same sum of the same terms, in another order), so the update's losses
and parameters are the eager update's to float rounding, as the rest of a compiled
program's are.

``ThinProducts`` is the inductor pass (``post_grad_custom_post_pass``) that rewrites them;
``agents.whole_update.inductor_options`` gives it to the update programs on a CPU. Products
whose dimensions are all larger stay MKL's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files
from torch._inductor.pattern_matcher import Arg, CallFunction, Match, PatternMatcherPass, register_graph_pattern

aten = torch.ops.aten

# the rewrites, registered once at import
_PATTERNS = PatternMatcherPass(pass_name="thin_products")


def _static_shape(node: Any) -> tuple[int, ...] | None:
    value = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    if value is None or not all(isinstance(size, int) for size in value.shape):
        return None
    return tuple(value.shape)


def has_a_dimension_of_one(first: Any, second: Any) -> bool:
    """Whether the product ``first @ second`` ((..., M, K) @ (..., K, N), static shapes)
    has M, K or N equal to one: a dot product per output, or an outer product."""
    a, b = _static_shape(first), _static_shape(second)
    if a is None or b is None:
        return False
    return 1 in (a[-2], a[-1], b[-1])


def _product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(M, K) @ (K, N) as a sum of broadcast products over K."""
    return torch.sum(a[:, :, None] * b[None, :, :], dim=1)


def _batched_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(E, M, K) @ (E, K, N) as a sum of broadcast products over K."""
    return torch.sum(a[:, :, :, None] * b[:, None, :, :], dim=2)


@register_graph_pattern(CallFunction(aten.mm, Arg(), Arg()), pass_dict=_PATTERNS)
def _mm(match: Match, a: torch.fx.Node, b: torch.fx.Node) -> None:
    if has_a_dimension_of_one(a, b):
        match.replace_by_example(_product, [a, b])


@register_graph_pattern(CallFunction(aten.addmm, Arg(), Arg(), Arg()), pass_dict=_PATTERNS)
def _addmm(match: Match, bias: torch.fx.Node, a: torch.fx.Node, b: torch.fx.Node) -> None:
    if has_a_dimension_of_one(a, b):  # (beta and alpha are 1: the pattern has no keywords)
        match.replace_by_example(lambda bias, a, b: bias + _product(a, b), [bias, a, b])


@register_graph_pattern(CallFunction(aten.baddbmm, Arg(), Arg(), Arg()), pass_dict=_PATTERNS)
def _baddbmm(match: Match, bias: torch.fx.Node, a: torch.fx.Node, b: torch.fx.Node) -> None:
    if has_a_dimension_of_one(a, b):
        match.replace_by_example(lambda bias, a, b: bias + _batched_product(a, b), [bias, a, b])


class ThinProducts(CustomGraphPass):
    """Inductor's ``post_grad_custom_post_pass``: every ``mm``, ``addmm`` and ``baddbmm``
    with a dimension of one becomes a broadcast product and a sum, which
    inductor fuses into its loops. Its ``uuid`` (this file's hash) keys inductor's cache."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        _PATTERNS.apply(graph)

    def uuid(self) -> Any:
        return get_hash_for_files((__file__,))
