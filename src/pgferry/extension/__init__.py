"""CREATE EXTENSION aws_s3 for self-hosted PostgreSQL.

`install` writes the aws_commons / aws_s3 control and SQL files into a
server's extension directory; the SQL (in `sql/`) runs `fetcher` through
COPY ... FROM/TO PROGRAM, which fetches with the client import's own code
(`pgferry.fetch`) and uploads exports with `upload`.
"""
