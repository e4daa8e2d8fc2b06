#!/usr/bin/env python3
"""Module import graph of each crate, and its cycles.

For every crate under crates/ (and the verify crate), each source file is a
module; an arrow A -> B means A's code names B (`crate::b::...`,
`super::b`, `self::b`, a child `b::...`, or `use crate::{b, ...}`). Unit
test modules (`#[cfg(test)] mod tests`, `tests.rs`) are left out, and so
are the crate root's `pub use` re-exports (the root is the crate's facade).

    scripts/module-cycles.py            # cycles per crate; exit 1 if any
    scripts/module-cycles.py --graph    # also every arrow, per crate
    scripts/module-cycles.py --dot      # Graphviz of every crate

Run by scripts/test.sh: a cycle between modules fails the build.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def modules(src):
    """{module path tuple: file} for one crate's src/."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("lib", "main") and len(parts) == 1:
                parts = []
            elif parts[-1] == "mod":
                parts = parts[:-1]
            if parts and parts[-1] == "tests":
                continue
            out[tuple(parts)] = os.path.join(dirpath, f)
    return out


def strip(text, is_root):
    """Code only: no comments, no unit-test module, no root re-exports."""
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{", text)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    if is_root:
        text = re.sub(r"pub\s+use\s+[^;]*;", "", text)
    return text


def group_items(body):
    """Top-level items of a `{a, b::c, d::{e}}` group."""
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        items.append(cur.strip())
    return items


def resolve(mods, path):
    """The longest module prefix of `path` (a tuple of names)."""
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return ()


def arrows(mods, me, text):
    found = set()

    def add(path):
        target = resolve(mods, path)
        if target != me and not (len(target) > len(me) and target[: len(me)] == me and False):
            found.add(target)

    # `crate::{a, b::c}` groups
    for m in re.finditer(r"\bcrate::\{", text):
        start = m.end()
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        for item in group_items(text[start : i - 1]):
            head = re.match(rf"({IDENT}(?:::{IDENT})*)", item)
            if head:
                add(tuple(head.group(1).split("::")))
    # `crate::a::b`
    for m in re.finditer(rf"\bcrate((?:::{IDENT})+)", text):
        add(tuple(m.group(1).split("::")[1:]))
    # `super::a` (from a file of module `me`: its parent is me[:-1])
    for m in re.finditer(rf"\bsuper((?:::{IDENT})+)", text):
        add(me[:-1] + tuple(m.group(1).split("::")[1:]))
    for m in re.finditer(r"\bsuper::\{([^}]*)\}", text):
        for item in group_items(m.group(1)):
            head = re.match(rf"({IDENT})", item)
            if head:
                add(me[:-1] + (head.group(1),))
    # children named directly: `child::x`, `self::child`
    for m in re.finditer(rf"(?<![:\w])(?:self::)?({IDENT})::", text):
        child = me + (m.group(1),)
        if child in mods:
            add(child)
    found.discard(me)
    return found


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) or "(root)"


def main():
    show_graph = "--graph" in sys.argv
    dot = "--dot" in sys.argv
    crates_dir = os.path.join(ROOT, "crates")
    failed = False
    if dot:
        print("digraph modules {\n  rankdir=LR; node [shape=box];")
    for crate in sorted(os.listdir(crates_dir)):
        src = os.path.join(crates_dir, crate, "src")
        if not os.path.isdir(src):
            continue
        mods = modules(src)
        graph = {}
        for m, f in mods.items():
            with open(f, encoding="utf-8") as fh:
                text = strip(fh.read(), m == ())
            graph[m] = arrows(mods, m, text)
        found = cycles(graph)
        n_arrows = sum(len(v) for v in graph.values())
        if dot:
            print(f'  subgraph "cluster_{crate}" {{ label="{crate}";')
            for m, targets in sorted(graph.items()):
                for t in sorted(targets):
                    print(f'    "{crate}:{name(m)}" -> "{crate}:{name(t)}";')
            print("  }")
            continue
        status = "no cycles" if not found else f"{len(found)} cycle(s)"
        print(f"{crate}: {len(mods)} modules, {n_arrows} arrows, {status}")
        for comp in found:
            failed = True
            print("  cycle: " + " <-> ".join(name(c) for c in comp))
            for a in comp:
                for b in sorted(graph[a]):
                    if b in comp:
                        print(f"    {name(a)} -> {name(b)}")
        if show_graph:
            for m, targets in sorted(graph.items()):
                print(f"  {name(m)} -> {', '.join(name(t) for t in sorted(targets)) or '-'}")
    if dot:
        print("}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
