"""Query and path bounds shared by the routers."""
from fastapi import Path, Query

MAX_PAGE = 100
INT32_MAX = 2**31 - 1  # the id columns are 32-bit INTEGER on PostgreSQL and MariaDB
INT64_MAX = 2**63 - 1  # OFFSET is a signed 64-bit value everywhere

Skip = Query(0, ge=0, le=INT64_MAX, description="Rows to skip.")
Limit = Query(MAX_PAGE, ge=1, le=MAX_PAGE, description="Rows to return, at most 100.")
UserId = Path(..., ge=0, le=INT32_MAX)
