#!/usr/bin/env python3
"""Checks that no Rust module in the workspace imports a module that imports it back.

A module "imports" another when it names a path into it (`use crate::a::b`, `super::x`, or a path
written inline in code). Declaring a child (`mod x;`) is not an import. A name re-exported by a
module (`pub use model::Event`, `pub use model::*`) counts as an import of the module that defines
it, so a facade `lib.rs` that only re-exports never hides a cycle. Inline `mod tests { … }` blocks
are modules of their own. Prints every cycle found and exits 1, or prints a summary and exits 0.

Usage: scripts/module-cycles.py [crates-dir]
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "crates")
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
PATH_RE = re.compile(r"\b(crate|super|self)((?:::" + IDENT + r")+)")
DEF_RE = re.compile(r"^\s*pub(?:\([^)]*\))?\s+(?:async\s+)?(?:struct|enum|fn|trait|type|const|static|mod)\s+(" + IDENT + ")", re.M)


def module_of(src_dir, path):
    rel = os.path.relpath(path, src_dir)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def split_inline_modules(text):
    """Yields (inline-module-name or None, text) chunks; rustfmt puts top-level `mod x {` at column 0."""
    chunks, cur, name, buf = [], None, None, []
    for line in text.splitlines():
        m = re.match(r"^(?:pub(?:\([^)]*\))? )?mod (" + IDENT + r") \{", line)
        if name is None and m:
            chunks.append((None, "\n".join(buf)))
            buf, name = [], m.group(1)
            continue
        if name is not None and line == "}":
            chunks.append((name, "\n".join(buf)))
            buf, name = [], None
            continue
        buf.append(line)
    chunks.append((name, "\n".join(buf)))
    return chunks


def expand_use(tree):
    """Expands a use tree such as `crate::{a, b::{c, d}}` into flat paths."""
    tree = re.sub(r"\s+", "", tree)
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner, rest = tree[:start], tree[start + 1 : i], tree[i + 1 :]
                parts, d, s = [], 0, 0
                for j, c in enumerate(inner):
                    if c == "{":
                        d += 1
                    elif c == "}":
                        d -= 1
                    elif c == "," and d == 0:
                        parts.append(inner[s:j])
                        s = j + 1
                parts.append(inner[s:])
                out = []
                for p in parts:
                    if p:
                        out += expand_use(prefix + p + rest)
                return out
    return [re.sub(r"as" + IDENT + "$", "", tree) if "::" in tree else tree]


def main():
    crates = {}
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            continue
        mods = {}  # module path -> list of text chunks
        for dirpath, _, files in os.walk(src):
            for f in files:
                if f.endswith(".rs"):
                    p = os.path.join(dirpath, f)
                    base = module_of(src, p)
                    with open(p, encoding="utf-8") as fh:
                        text = fh.read()
                    for name, chunk in split_inline_modules(text):
                        key = base + ((name,) if name else ())
                        mods.setdefault(key, []).append(chunk)
        crates[crate] = mods

    cycles = []
    total_edges = 0
    for crate, mods in crates.items():
        defs = {m: set(DEF_RE.findall("\n".join(t))) for m, t in mods.items()}
        reexports = {}  # module -> (explicit name -> source path, glob source paths)
        for m, chunks in mods.items():
            explicit, globs = {}, []
            for stmt in re.findall(r"pub\s+use\s+([^;]+);", "\n".join(chunks)):
                for p in expand_use(stmt):
                    segs = [s for s in p.split("::") if s]
                    if not segs or segs[0] not in ("crate", "super", "self") and (segs[0],) not in mods and m + (segs[0],) not in mods:
                        continue
                    if segs[-1] == "*":
                        globs.append(segs[:-1])
                    else:
                        explicit[segs[-1]] = segs
            reexports[m] = (explicit, globs)

        def base_for(cur, segs):
            if segs[0] == "crate":
                return (), segs[1:]
            mod, rest = cur, segs
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    mod = mod[:-1]
                rest = rest[1:]
            if rest and rest[0] not in ("crate",) and mod + (rest[0],) not in mods and (rest[0],) in mods and segs[0] not in ("super", "self"):
                return (), rest
            return mod, rest

        def resolve(cur, segs, seen=None):
            mod, rest = base_for(cur, segs)
            while rest and mod + (rest[0],) in mods:
                mod, rest = mod + (rest[0],), rest[1:]
            # A name re-exported by `mod` points at the module that defines it.
            seen = seen or set()
            if rest and rest[0] != "*" and (mod, rest[0]) not in seen and rest[0] not in defs.get(mod, ()):
                seen.add((mod, rest[0]))
                explicit, globs = reexports.get(mod, ({}, []))
                if rest[0] in explicit:
                    return resolve(mod, explicit[rest[0]], seen)
                for g in globs:
                    target = resolve(mod, g + ["__module__"], seen)
                    if rest[0] in defs.get(target, ()):
                        return target
            return mod

        edges = {m: set() for m in mods}
        for m, chunks in mods.items():
            text = "\n".join(chunks)
            text = re.sub(r"//[^\n]*", "", text)
            paths = []
            for stmt in re.findall(r"\buse\s+([^;]+);", text):
                paths += [p.split("::") for p in expand_use(stmt) if p.split("::")[0] in ("crate", "super", "self") or (p.split("::")[0],) in mods or m + (p.split("::")[0],) in mods]
            paths += [[g] + [s for s in rest.split("::") if s] for g, rest in PATH_RE.findall(text)]
            # Bare paths into a child module (`webhooks::routes()`) or a top-level one.
            for name in {k[len(m)] for k in mods if len(k) == len(m) + 1 and k[: len(m)] == m} | {k[0] for k in mods if len(k) == 1}:
                for rest in re.findall(r"(?<![:\w])" + name + r"((?:::" + IDENT + r")+)", text):
                    paths.append([name] + [s for s in rest.split("::") if s])
            for segs in paths:
                segs = [s for s in segs if s]
                if not segs:
                    continue
                target = resolve(m, segs)
                if target != m and not (m[: len(target)] == target and len(target) < len(m) and False):
                    edges[m].add(target)
        total_edges += sum(len(v) for v in edges.values())
        # Strongly connected components (Tarjan).
        index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

        def strong(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in edges.get(v, ()):
                if w not in mods:
                    continue
                if w not in index:
                    strong(w)
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
                    comps.append(comp)

        sys.setrecursionlimit(10000)
        for v in mods:
            if v not in index:
                strong(v)
        for comp in comps:
            names = sorted("::".join((crate,) + c) for c in comp)
            detail = []
            for a in comp:
                for b in sorted(edges[a]):
                    if b in comp:
                        detail.append(f"    {'::'.join((crate,) + a)} -> {'::'.join((crate,) + b)}")
            cycles.append("cycle: " + ", ".join(names) + "\n" + "\n".join(detail))

    if cycles:
        print("\n".join(cycles))
        print(f"{len(cycles)} import cycle(s) found")
        sys.exit(1)
    n = sum(len(m) for m in crates.values())
    print(f"no import cycles among {n} modules ({total_edges} imports) in {len(crates)} crates")


if __name__ == "__main__":
    main()
