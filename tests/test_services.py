import psycopg


def test_services_up(s3client, bucket, conn):
    s3client.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    assert conn.execute("select 1").fetchone() == (1,)
    assert isinstance(conn, psycopg.Connection)
