"""python -m tools.drills URL [URL ...]: run every drill against each database, one line per drill."""
import sys

from .drills import all_drills


def main(urls) -> int:
    if not urls:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = 0
    for result in all_drills(urls):
        print(result.line(), flush=True)
        failed += not result.passed
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
