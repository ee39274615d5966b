"""Declares the C extension only; the project metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "matching._hmac",
            sources=["matching/_hmac.c"],
            # The SHA-NI path carries its own target attribute and is chosen at run time,
            # so the module stays portable: no -march flags here.
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            extra_link_args=["-pthread"],
        ),
        Extension(
            "matching._scan",
            sources=["matching/_scan.c"],
            depends=["matching/_german.h"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
        Extension(
            "matching._bits",
            sources=["matching/_bits.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
        Extension(
            "notify._files",
            sources=["notify/_files.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
        Extension(
            "notify._eml",
            sources=["notify/_eml.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
    ]
)
