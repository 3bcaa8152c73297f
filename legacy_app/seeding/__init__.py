"""Seeding: records from a file or generated, loaded over HTTP (seed.sh) or straight into the database."""
