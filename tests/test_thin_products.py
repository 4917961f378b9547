"""agents.thin_products: products with a dimension of one become fused loops in a compiled
program, with the product's values; the other products stay matrix products. (Without the
pass, inductor calls MKL for every product below: ``extern_kernels``.)"""

from __future__ import annotations

import pytest
import torch
from torch._inductor.utils import run_and_get_code

from agents.thin_products import ThinProducts


def compiled_code(function, *args: torch.Tensor) -> tuple[torch.Tensor, str]:
    """``function(*args)`` compiled with the pass, and the program inductor generated."""
    torch._dynamo.reset()
    program = torch.compile(
        function, fullgraph=True, dynamic=False, options={"post_grad_custom_post_pass": ThinProducts()}
    )
    result, codes = run_and_get_code(program, *args)
    return result, "\n".join(codes)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.bmm(a, b)


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.mm(a, b)


def baddbmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.baddbmm(bias, a, b)


def addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.addmm(bias, a, b)


def operands(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=generator) for shape in shapes]


@pytest.mark.parametrize(
    ("function", "shapes", "product"),
    [
        (baddbmm, [(2, 1, 1), (2, 256, 128), (2, 128, 1)], "baddbmm"),  # the critic's last layer (N = 1)
        (baddbmm, [(2, 1, 128), (2, 256, 1), (2, 1, 128)], "baddbmm"),  # K = 1: an outer product
        (addmm, [(1,), (256, 128), (128, 1)], "addmm"),
        (mm, [(128, 256), (256, 1)], "mm"),  # a weight gradient of a one-output layer
        (mm, [(1, 64), (64, 32)], "mm"),  # M = 1
        (mm, [(256, 1), (1, 128)], "mm"),
    ],
)
def test_a_product_with_a_dimension_of_one_is_a_fused_loop_with_its_values(function, shapes, product):
    args = operands(*shapes)
    result, code = compiled_code(function, *args)
    torch.testing.assert_close(result, function(*args), rtol=1e-5, atol=1e-5)
    assert f"extern_kernels.{product}(" not in code and f"aten.{product}" not in code
    assert "cpp_fused" in code  # inductor's C++ loop computes it


@pytest.mark.parametrize(
    ("function", "shapes", "product"),
    [
        (bmm, [(2, 256, 128), (2, 128, 128)], "bmm"),
        (baddbmm, [(2, 1, 128), (2, 256, 14), (2, 14, 128)], "baddbmm"),
        (addmm, [(6,), (256, 128), (128, 6)], "addmm"),
    ],
)
def test_a_product_without_a_dimension_of_one_stays_a_matrix_product(function, shapes, product):
    args = operands(*shapes)
    result, code = compiled_code(function, *args)
    torch.testing.assert_close(result, function(*args))
    assert f"extern_kernels.{product}(" in code
