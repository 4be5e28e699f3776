#!/usr/bin/env python3
"""Checks that every code block the docs quote from a source file is what that file says.

A quoted block is a fenced block whose info string names a language, a file (relative to the
repository root) and its lines:

    ```cpp transfer/kd.cpp:57-63        (lines 57 to 63)
    ```toml recipes/fmnist_kd.toml:12   (line 12 alone)

The block's lines must equal those lines of the file exactly (trailing spaces included).

    python3 scripts/doc_quotes.py [--root DIR] [FILE.md ...]        check (the default)
    python3 scripts/doc_quotes.py --fix [--root DIR] [FILE.md ...]  renumber moved quotes

`check` prints every block that does not match, as
    docs/methods/kd.md:40: transfer/kd.cpp:57-63 does not match (the quoted text is now at lines 59-65)
and exits 1 when there is one. `--fix` rewrites the line numbers of a block whose text appears
exactly once elsewhere in its file, and prints the blocks it cannot fix (the text is gone or
appears more than once: a person must re-quote them); it exits 1 when one is left. Without
FILE arguments both read every docs/**/*.md under the root."""
import argparse
import glob
import os
import re
import sys

FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
QUOTE_INFO = re.compile(r"^(\S+)\s+([^\s:]+):(\d+)(?:-(\d+))?\s*$")


class Quote:
    """One fenced block that quotes a file: where it is in the doc and what it claims."""

    def __init__(self, doc, line, lang, path, first, last, text, info_index):
        self.doc = doc            # the markdown file, as given
        self.line = line          # 1-based line of the opening fence in the doc
        self.lang = lang
        self.path = path          # the quoted file, relative to the root
        self.first = first        # claimed lines, 1-based, inclusive
        self.last = last
        self.text = text          # the block's lines, without newlines
        self.info_index = info_index  # 0-based index of the opening fence line

    def claim(self):
        return f"{self.path}:{self.span(self.first, self.last)}"

    @staticmethod
    def span(first, last):
        return f"{first}" if first == last else f"{first}-{last}"


def quotes_in(doc_path, lines):
    """The quoting blocks of one markdown file (lines without newlines)."""
    found = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
        if fence[0] == "`" and "`" in info:   # not a fence (CommonMark)
            i += 1
            continue
        body = []
        j = i + 1
        closing = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            strip = min(indent, len(line) - len(line.lstrip(" ")))
            body.append(line[strip:])
            j += 1
        q = QUOTE_INFO.match(info)
        if q:
            first = int(q.group(3))
            last = int(q.group(4)) if q.group(4) else first
            found.append(Quote(doc_path, i + 1, q.group(1), q.group(2), first, last, body, i))
        i = j + 1
    return found


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def occurrences(haystack, needle):
    """1-based first lines where the list `needle` appears as consecutive lines of `haystack`."""
    if not needle:
        return []
    n = len(needle)
    return [k + 1 for k in range(len(haystack) - n + 1)
            if haystack[k] == needle[0] and haystack[k:k + n] == needle]


def examine(quote, root):
    """None when the quote matches; else (message, new_first) where new_first is the unique line
    the text now starts at, or None when it cannot be renumbered."""
    source = os.path.join(root, quote.path)
    where = f"{quote.doc}:{quote.line}: {quote.claim()}"
    if not os.path.isfile(source):
        return f"{where}: the file does not exist", None
    file_lines = read_lines(source)
    if file_lines and file_lines[-1] == "":   # the newline that ends the last line
        file_lines.pop()
    if quote.last < quote.first:
        return f"{where}: the range is backwards", None
    if quote.first >= 1 and quote.last <= len(file_lines) and \
            file_lines[quote.first - 1:quote.last] == quote.text:
        return None
    if quote.last - quote.first + 1 != len(quote.text):
        size = f" (the range has {quote.last - quote.first + 1} lines, the block {len(quote.text)})"
    else:
        size = ""
    starts = occurrences(file_lines, quote.text)
    n = len(quote.text)
    if len(starts) == 1:
        now = Quote.span(starts[0], starts[0] + n - 1)
        return f"{where} does not match{size} (the quoted text is now at lines {now})", starts[0]
    if starts:
        spans = ", ".join(Quote.span(s, s + n - 1) for s in starts)
        return f"{where} does not match{size} (the quoted text appears {len(starts)} times, at lines {spans}: " \
               f"quote a unique stretch)", None
    return f"{where} does not match{size} (the quoted text is no longer in the file: re-quote it)", None


def default_docs(root):
    return sorted(glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True))


def shown(path, root):
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


def check(docs, root, out=sys.stdout):
    """Prints every mismatch; returns (number of quotes, list of messages)."""
    messages = []
    count = 0
    for doc in docs:
        for quote in quotes_in(shown(doc, root), read_lines(doc)):
            count += 1
            result = examine(quote, root)
            if result:
                messages.append(result[0])
                print(result[0], file=out)
    return count, messages


def fix(docs, root, out=sys.stdout):
    """Renumbers every quote whose text moved (uniquely); returns (fixed, messages left)."""
    fixed = 0
    left = []
    for doc in docs:
        lines = read_lines(doc)
        changed = False
        for quote in quotes_in(shown(doc, root), lines):
            result = examine(quote, root)
            if not result:
                continue
            message, start = result
            if start is None:
                left.append(message)
                print(message, file=out)
                continue
            new_last = start + len(quote.text) - 1
            fence_line = lines[quote.info_index]
            m = FENCE.match(fence_line)
            info = f"{quote.lang} {quote.path}:{Quote.span(start, new_last)}"
            lines[quote.info_index] = m.group(1) + m.group(2) + info
            changed = True
            fixed += 1
            print(f"{quote.doc}:{quote.line}: {quote.claim()} -> {quote.path}:{Quote.span(start, new_last)}",
                  file=out)
        if changed:
            with open(doc, "w", encoding="utf-8") as f:
                f.write("\n".join(lines))
    return fixed, left


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("docs", nargs="*", help="markdown files (default: docs/**/*.md)")
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                        help="the repository root the quoted paths are relative to")
    parser.add_argument("--fix", action="store_true", help="renumber quotes whose text moved")
    args = parser.parse_args(argv)
    root = os.path.normpath(args.root)
    docs = args.docs or default_docs(root)
    if args.fix:
        fixed, left = fix(docs, root)
        print(f"doc_quotes --fix: {fixed} quote(s) renumbered, {len(left)} left for a person")
        return 1 if left else 0
    count, messages = check(docs, root)
    if messages:
        print(f"doc_quotes: {len(messages)} of {count} quoted blocks do not match "
              f"(python3 scripts/doc_quotes.py --fix renumbers the ones that moved)")
        return 1
    print(f"doc_quotes: all {count} quoted blocks match their files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
