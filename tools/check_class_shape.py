#!/usr/bin/env python3
"""Fails when a class in alloc/ grows past what a newcomer can hold in mind.

Measured the way a newcomer's tool sees it (universal-ctags): every member
function a class declares or defines (constructors, operators and deleted
functions included; overloads that differ only in const, and a declaration
and its definition that differ only in default arguments, count once) and
the .cc files that hold its out-of-line members. Limits: at most
MAX_MEMBERS member functions, and out-of-line members in at most one .cc
(a class spread over several files that all write the same fields is one
object wearing several names).

Usage: check_class_shape.py [--max-members N] FILE...   (.h and .cc files)
Prints one line per class over a limit and exits 1; else a summary.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys

# Attribute macros ctags would otherwise read as names or signatures.
IGNORED = [
    "ABSL_ATTRIBUTE_ALWAYS_INLINE", "ABSL_ATTRIBUTE_NOINLINE", "ABSL_ATTRIBUTE_COLD",
    "ABSL_ATTRIBUTE_RETURNS_NONNULL", "ABSL_ATTRIBUTE_INITIAL_EXEC", "ABSL_NO_THREAD_SAFETY_ANALYSIS",
    "ABSL_LOCKABLE", "ABSL_SCOPED_LOCKABLE", "ABSL_CACHELINE_ALIGNED", "STRATA_ENTRY", "noexcept",
    "ABSL_GUARDED_BY+", "ABSL_EXCLUSIVE_LOCKS_REQUIRED+", "ABSL_EXCLUSIVE_LOCK_FUNCTION+",
    "ABSL_UNLOCK_FUNCTION+", "ABSL_EXCLUSIVE_TRYLOCK_FUNCTION+",
]


def measure(files):
    cmd = ["ctags", "--output-format=json", "--language-force=C++", "--c++-kinds=+p",
           "--fields=+sSK", "-f", "-"]
    for name in IGNORED:
        cmd += ["-I", name]
    out = subprocess.run(cmd + files, capture_output=True, text=True, check=True).stdout
    members = collections.defaultdict(set)
    sources = collections.defaultdict(set)
    for line in out.splitlines():
        tag = json.loads(line)
        if tag.get("kind") not in ("function", "prototype"):
            continue
        if tag.get("scopeKind") not in ("class", "struct") or not tag.get("scope"):
            continue
        scope = tag["scope"]
        # A declaration's default arguments are not another function.
        signature = re.sub(r"\s*=[^,)]*", "", tag.get("signature", "").split(")")[0])
        members[scope].add(tag["name"] + signature)
        if tag["kind"] == "function" and tag["path"].endswith(".cc"):
            sources[scope].add(os.path.basename(tag["path"]))
    return members, sources


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-members", type=int, default=30)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    members, sources = measure(args.files)
    bad = 0
    for scope in sorted(members, key=lambda s: -len(members[s])):
        n = len(members[scope])
        if n > args.max_members:
            print(f"{scope}: {n} member functions (at most {args.max_members}): split it into parts")
            bad = 1
        if len(sources[scope]) > 1:
            print(f"{scope}: out-of-line members in {len(sources[scope])} files "
                  f"({', '.join(sorted(sources[scope]))}): one .cc per class")
            bad = 1
    if bad:
        return 1
    largest = max(members, key=lambda s: len(members[s]))
    print(f"class shape ok: {len(members)} classes, the largest {largest} with "
          f"{len(members[largest])} member functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
