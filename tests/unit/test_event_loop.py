"""Every process's event loop: uvloop's when it is installed, asyncio's otherwise."""

from __future__ import annotations

import asyncio
import builtins

import pytest

from pipeline import runner


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_loop_uses_uvloop_when_installed():
    pytest.importorskip("uvloop")
    assert runner.run_loop(loop_module).startswith("uvloop")
    loop = runner.new_event_loop()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_run_loop_falls_back_to_asyncio(monkeypatch):
    real_import = builtins.__import__

    def no_uvloop(name, *args, **kwargs):
        if name == "uvloop":
            raise ImportError("uvloop is not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert runner.run_loop(loop_module).startswith("asyncio")
