"The service fixtures themselves: each gives an isolated, real resource and cleans it up"
import psycopg, redis

def test_redis_prefix_is_cleaned(redis_url, redis_prefix):
    r = redis.Redis.from_url(redis_url)
    r.set(redis_prefix + 'k', 1)
    assert r.get(redis_prefix + 'k') == b'1'

def test_postgres_db_is_fresh(postgres_db):
    with psycopg.connect(postgres_db) as c:
        c.execute('create table t (x int)'); c.execute('insert into t values (1)')
        assert c.execute('select count(*) from t').fetchone()[0] == 1
