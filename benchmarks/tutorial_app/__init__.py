"""The classic FastAPI SQL tutorial app ("Alternative DB session with middleware"), as written.

Kept as the reference the benchmarks and the adoption tests compare against; not part of the
service. Source: FastAPI docs, tutorial/sql-databases.md before 0.115.1 (sql_app/alt_main.py).
"""
