#!/usr/bin/env python3
"""Wraps the lines of generated Swift files that pass the project's 140-column limit, without changing what they mean.

protoc's Swift plugins write some long lines (conformance lists, name maps, map-field calls, ==); swift-format leaves
them. Each rule below rewrites one such shape; any other long line is an error, so a new shape is noticed.
Usage: scripts/wrap-generated.py FILE...
"""
import re
import sys

LIMIT = 140


def indent_of(line):
    return line[: len(line) - len(line.lstrip())]


def wrap(line):
    pad = indent_of(line)
    # extension X: A, B, C {
    m = re.match(r"^(\s*(?:nonisolated )?extension [^:]+:) (.+) \{$", line)
    if m:
        return [m.group(1), pad + "  " + m.group(2), pad + "{"]
    # public static let _protobuf_nameMap = SwiftProtobuf._NameMap(bytecode: "...")
    m = re.match(r'^(\s*.*_NameMap\()bytecode: "(.*)"\)$', line)
    if m:
        pieces = [p for p in re.split(r"(?=\\0)", m.group(2)) if p]
        rows, row = [], ""
        for piece in pieces:
            if row and len(pad) + 6 + len(row) + len(piece) + 1 > LIMIT:
                rows.append(row)
                row = ""
            row += piece
        rows.append(row)
        body = [pad + "    " + r + "\\" for r in rows[:-1]] + [pad + "    " + rows[-1]]
        return [m.group(1), pad + '  bytecode: """'] + body + [pad + '    """)']
    # case N: try { try decoder.decodeMapField(fieldType: T.self, value: &v) }()
    m = re.match(r"^(\s*)(case \d+: )try \{ try (decoder\.decode\w+)\(fieldType: (.+), value: (.+)\) \}\(\)$", line)
    if m:
        p = m.group(1)
        return [p + m.group(2).rstrip(), p + "  try {", p + "    try " + m.group(3) + "(", p + "      fieldType: " + m.group(4) + ",",
                p + "      value: " + m.group(5) + ")", p + "  }()"]
    # try visitor.visitMapField(fieldType: T.self, value: v, fieldNumber: n)
    m = re.match(r"^(\s*)(try visitor\.visit\w+)\(fieldType: (.+?), (value: .+)\)$", line)
    if m:
        p = m.group(1)
        return [p + m.group(2) + "(", p + "  fieldType: " + m.group(3) + ",", p + "  " + m.group(4) + ")"]
    # public static func ==(lhs: A, rhs: B) -> Bool {
    m = re.match(r"^(\s*public static func ==)\((.+)\) -> Bool \{$", line)
    if m:
        return [m.group(1) + "(", pad + "  " + m.group(2), pad + ") -> Bool {"]
    raise SystemExit(f"wrap-generated: no rule for a {len(line)}-column line: {line.strip()[:100]}")


for path in sys.argv[1:]:
    out = []
    for line in open(path, encoding="utf-8").read().split("\n"):
        if len(line) <= LIMIT:
            out.append(line)
            continue
        wrapped = wrap(line)
        too_long = [w for w in wrapped if len(w) > LIMIT]
        if too_long:
            raise SystemExit(f"wrap-generated: still over {LIMIT} columns: {too_long[0].strip()[:100]}")
        out.extend(wrapped)
    open(path, "w", encoding="utf-8").write("\n".join(out))
