"""The hostile corpus: one builder per class of hostile input, each with the defence it expects."""

from __future__ import annotations

from reliability.hostile.corpus import CLASSES, Expect, HostileCase, build_corpus

__all__ = ["CLASSES", "Expect", "HostileCase", "build_corpus"]
