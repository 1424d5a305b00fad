#!/usr/bin/env python3
"""Import circles between the files of each crate, and source files over 600 lines.

    python3 scripts/checks/circles.py [ROOT] [-v] [--strict]

Reads every crate's `src/` (not `tests/`, not `src/bin/`, not `#[cfg(test)]` modules), takes the
paths a file names (`crate::a::b`, `super::x`, `use crate::{..}`; comments skipped) as edges to
the file that defines the longest matching module, and prints each strongly connected group of
more than one file (`-v`: with its edges). `--strict` exits 1 when there is a circle. Written by
hand: a text scan is enough for this house's module layout (no `#[path]`, no macros that name
modules), and no packaged tool reads Rust's file-level graph."""
import os, re, sys, collections
args = [a for a in sys.argv[1:] if not a.startswith('-')]
root = args[0] if args else '.'
crates = [d for d in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, d, 'src'))]
def modpath(src, f):
    rel = os.path.relpath(f, src)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ('mod', 'lib', 'main'): parts = parts[:-1]
    if parts and parts[0] == 'bin': return None
    return tuple(parts)
total = 0
for c in crates:
    src = os.path.join(root, c, 'src')
    files = {}
    for dp, _, fs in os.walk(src):
        for fn in fs:
            if fn.endswith('.rs'):
                p = os.path.join(dp, fn); m = modpath(src, p)
                if m is not None: files[m] = p
    edges = collections.defaultdict(set)
    for m, p in files.items():
        text = open(p).read()
        # strip test modules roughly: from '#[cfg(test)]' to end
        i = text.find('#[cfg(test)]')
        if i >= 0: text = text[:i]
        text = re.sub(r'//[^\n]*', '', text)
        refs = set()
        for mm in re.finditer(r'crate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)', text):
            refs.add(tuple(mm.group(1).split('::')))
        # use crate::{a, b::c}
        for mm in re.finditer(r'use crate::\{([^;]*)\}', text, re.S):
            for item in re.split(r'[,\s]+', mm.group(1)):
                item = item.strip('{} ')
                if item: refs.add(tuple(item.split('::')))
        for mm in re.finditer(r'use super::\{([^;]*)\}', text, re.S):
            for item in re.split(r'[,\s]+', mm.group(1)):
                item = item.strip('{} ')
                if item: refs.add(tuple(m[:-1]) + tuple(item.split('::')))
        base = m if p.endswith(('mod.rs','lib.rs')) else m[:-1]
        for mm in re.finditer(r'super::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)', text):
            refs.add(tuple(m[:-1]) + tuple(mm.group(1).split('::')))
        for r in refs:
            # longest prefix that is a file
            for k in range(len(r), 0, -1):
                if r[:k] in files and r[:k] != m:
                    if r[:k] != (): edges[m].add(r[:k])
                    break
    # tarjan
    index = {}; low = {}; st = []; on = set(); sccs = []; n = [0]
    def strong(v):
        index[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
        for w in edges[v]:
            if w not in index: strong(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: sccs.append(comp)
    sys.setrecursionlimit(10000)
    for v in files:
        if v not in index: strong(v)
    for comp in sccs:
        total += 1
        print(f"{c}: circle of {len(comp)}: " + ", ".join('/'.join(x) or 'lib' for x in sorted(comp)))
        if '-v' in sys.argv:
            for a in sorted(comp):
                for b in sorted(edges[a]):
                    if b in comp: print(f"    {'/'.join(a)} -> {'/'.join(b)}")
print(f"{total} circles")
strict_failed = total > 0 and '--strict' in sys.argv
print("files over 600 lines (src/, bins included; in brackets: without the #[cfg(test)] module):")
for c in crates:
    for dp, _, fs in os.walk(os.path.join(root, c, 'src')):
        for fn in fs:
            p = os.path.join(dp, fn)
            if fn.endswith('.rs'):
                text = open(p).read()
                n = text.count('\n')
                i = text.find('#[cfg(test)]')
                own = text[:i].count('\n') if i >= 0 else n
                if n > 600: print(f"  {n:5d} [{own:5d}] {p}")
sys.exit(1 if strict_failed else 0)
