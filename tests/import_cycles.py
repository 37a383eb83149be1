"""One import-cycle finder for the import-rule tests (tests/test_import_graph.py between packages,
tests/pipelines/test_import_ladder.py between modules of ``pipelines/``)."""

from __future__ import annotations


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in graph:  # the caller's order: the first cycle found is reproducible
        if n not in state and (found := visit(n)):
            return found
    return None
