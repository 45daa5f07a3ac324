# loadtest/docgen/registry.py
#
# The NAMEs a page's regions may use: each a function of the reports that
# returns the region's text, with the reports it reads (so that a reader, or
# `python -m loadtest.docgen --list`, can see where a figure comes from).
# A function gets the Context: the reports and the page it renders for.

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from loadtest.docgen.context import Context
from loadtest.docgen.regions import DocgenError

Render = Callable[[Context], str]


@dataclass(frozen=True)
class Figure:
    name: str
    reads: tuple[str, ...]  # report paths under docs/results, or code ("loadtest/...")
    render: Render


class Registry:
    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}

    def add(self, name: str, reads: tuple[str, ...], render: Render) -> None:
        if name in self.figures:
            raise DocgenError(f"fig:{name} is defined twice")
        self.figures[name] = Figure(name, reads, render)

    def __call__(self, name: str, *reads: str) -> Callable[[Render], Render]:
        """A decorator: the function renders fig:NAME from `reads`."""

        def register(render: Render) -> Render:
            self.add(name, reads, render)
            return render

        return register

    def merge(self, *others: Registry) -> Registry:
        merged = Registry()
        for registry in (self, *others):
            for figure in registry.figures.values():
                merged.add(figure.name, figure.reads, figure.render)
        return merged

    def __iter__(self) -> Iterator[Figure]:
        return iter(self.figures.values())

    def __contains__(self, name: object) -> bool:
        return name in self.figures

    def render(self, name: str, context: Context) -> str:
        return self.figures[name].render(context)
