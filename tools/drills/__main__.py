"""python -m tools.drills URL [URL ...]: run every drill against each database, one line per drill."""
import sys
from itertools import chain

from .connections import connection_drills
from .drills import all_drills
from .load import load_drills


def main(urls) -> int:
    if not urls:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = 0
    for result in chain(all_drills(urls), connection_drills(urls), load_drills(urls)):
        print(result.line(), flush=True)
        failed += not result.passed
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
