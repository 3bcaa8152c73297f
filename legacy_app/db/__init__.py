"""The database beyond the tutorial's database.py: migrations, timeouts, where calls run, sizing."""
