"""Query and path parameters shared by the routers, with their bounds."""
from fastapi import Path, Query

from ..compat import query_pattern
from ..schemas import NO_NUL

MAX_PAGE = 100
INT32_MAX = 2**31 - 1  # the id columns are 32-bit INTEGER on PostgreSQL and MariaDB
# OFFSET is a signed 64-bit value everywhere; the bound is the largest integer a JSON client holds
# exactly as a double, so the published schema means what the server enforces.
MAX_SKIP = 2**53 - 1

Skip = Query(0, ge=0, le=MAX_SKIP, description="Rows to skip.")
Limit = Query(MAX_PAGE, ge=1, le=MAX_PAGE, description="Rows to return, at most 100.")
UserId = Path(..., ge=0, le=INT32_MAX)
EmailFilter = Query(
    None,
    min_length=1,
    max_length=320,
    description="Only the user with this email, in any of its forms (case, width, `Name <address>`, punycode domain).",
    **query_pattern(NO_NUL),  # PostgreSQL cannot compare text containing NUL
)
