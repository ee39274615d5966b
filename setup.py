"""Declares the C extensions only; the project metadata lives in pyproject.toml."""

from setuptools import Extension, setup

_WARNINGS = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"]


def _extension(name: str, source: str, optimise: str = "-O3", **more: list[str]) -> Extension:
    return Extension(name, sources=[source], extra_compile_args=[optimise, *_WARNINGS], **more)


setup(
    ext_modules=[
        # The SHA-NI path carries its own target attribute and is chosen at run time, so the
        # module stays portable: no -march flags here.
        _extension("matching._hmac", "matching/_hmac.c", extra_link_args=["-pthread"]),
        _extension("matching._scan", "matching/_scan.c", depends=["matching/_german.h"]),
        _extension("matching._bits", "matching/_bits.c"),
        _extension("notify._files", "notify/_files.c", "-O2"),
        _extension("notify._eml", "notify/_eml.c", "-O2"),
    ]
)
