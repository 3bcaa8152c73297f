"""Query and path parameters shared by the routers, with their bounds."""
from fastapi import Path, Query

from ..compat import query_pattern
from ..schemas import NO_NUL

MAX_PAGE = 100
INT32_MAX = 2**31 - 1  # the id columns are 32-bit INTEGER on PostgreSQL and MariaDB
INT64_MAX = 2**63 - 1  # OFFSET is a signed 64-bit value everywhere

Skip = Query(0, ge=0, le=INT64_MAX, description="Rows to skip.")
Limit = Query(MAX_PAGE, ge=1, le=MAX_PAGE, description="Rows to return, at most 100.")
UserId = Path(..., ge=0, le=INT32_MAX)
EmailFilter = Query(
    None,
    min_length=1,
    max_length=320,
    description="Only the user with this email (any case).",
    **query_pattern(NO_NUL),  # PostgreSQL cannot compare text containing NUL
)
