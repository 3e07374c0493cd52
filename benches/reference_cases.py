#!/usr/bin/env python3
"""The reference VM's own expectations, run through `spry-image run -e`.

spryvm's tests (tests/testspry*.nim) hold many `check run("CODE") == "EXPECTED"` (or
`isolate`) cases. This reads them from a clone of gokr/spryvm (never part of this repository),
runs each CODE with our evaluator in the clone's tests directory (some read its data files) and
compares the printed last value with EXPECTED. Commented-out checks are skipped (the reference
does not hold them either), and so are the modules out of scope (compress, network, GUI, SQLite,
threads, Python, `shell`).

Usage: python3 benches/reference_cases.py /path/to/spryvm [target/release/spry-image]
Prints how many agree, then each disagreement as JSON (file, code, expected, ours, stderr).
"""
import glob
import json
import os
import re
import subprocess
import sys

OUT_OF_SCOPE = ("testsprycompress", "testsprynet", "testspryui", "testsprysqlite",
                "testsprythread", "testsprypython", "testsprylimdb", "testsprymemfile",
                "testspryjson")
CHECK = re.compile(
    r'^\s*check\s+(?:run|isolate)\("((?:[^"\\]|\\.)*)"\)\s*==\s*"((?:[^"\\]|\\.)*)"', re.M)


def unquote(text):
    return text.encode("utf-8").decode("unicode_escape")


def main():
    spryvm = sys.argv[1]
    binary = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/release/spry-image")
    tests = os.path.join(spryvm, "tests")
    cases = []
    for path in sorted(glob.glob(os.path.join(tests, "testspry*.nim"))):
        name = os.path.basename(path)
        if name.startswith(OUT_OF_SCOPE):
            continue
        with open(path, encoding="utf-8") as f:
            for m in CHECK.finditer(f.read()):
                code, expected = unquote(m.group(1)), unquote(m.group(2))
                if "shell " in code:
                    continue
                cases.append((name, code, expected))
    agree, disagree = 0, []
    for name, code, expected in cases:
        try:
            r = subprocess.run([binary, "run", "-e", code], capture_output=True, timeout=10,
                               cwd=tests)
        except subprocess.TimeoutExpired:
            disagree.append((name, code, expected, "(timeout)", ""))
            continue
        lines = r.stdout.decode(errors="replace").rstrip("\n").split("\n")
        ours = lines[-1] if r.stdout else "nil"  # `run -e` prints no nil
        if r.returncode == 0 and ours == expected:
            agree += 1
        else:
            disagree.append((name, code, expected, ours, r.stderr.decode(errors="replace")))
    print(f"{agree} of {len(cases)} agree")
    for case in disagree:
        print(json.dumps(case))
    return 0 if not disagree else 1


if __name__ == "__main__":
    sys.exit(main())
