"""A MariaDB database shaped like a real one (sakila-like: many tables,
foreign keys between them, composite keys, enums, sets, unsigned ints,
decimals, zero dates, blobs, emoji, a table without a primary key, odd
identifiers, views, triggers, an AUTO_INCREMENT with a gap) cloned into
PostgreSQL: verify finds nothing, sample rows are exact, identities go
on after the source's counter, foreign keys are there."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from click.testing import Result

from tests.migrate.conftest import rows

SCHEMA = [
    """CREATE TABLE language (
      language_id tinyint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
      name char(20) NOT NULL,
      last_update timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
    ) ENGINE=InnoDB""",
    """CREATE TABLE Country (
      country_id smallint unsigned NOT NULL AUTO_INCREMENT,
      country varchar(50) NOT NULL,
      PRIMARY KEY (country_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=latin1""",
    """CREATE TABLE city (
      city_id smallint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
      city varchar(50) NOT NULL,
      country_id smallint unsigned NOT NULL,
      KEY idx_fk_country_id (country_id),
      CONSTRAINT fk_city_country FOREIGN KEY (country_id) REFERENCES Country (country_id)
        ON DELETE RESTRICT ON UPDATE CASCADE
    )""",
    """CREATE TABLE address (
      address_id smallint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
      address varchar(50) NOT NULL,
      city_id smallint unsigned NOT NULL,
      location geometry NOT NULL,
      SPATIAL KEY idx_location (location),
      CONSTRAINT fk_address_city FOREIGN KEY (city_id) REFERENCES city (city_id)
    )""",
    """CREATE TABLE film_text (
      film_id smallint NOT NULL PRIMARY KEY,
      title varchar(255) NOT NULL,
      description text,
      FULLTEXT KEY idx_title_description (title, description)
    )""",
    """CREATE TABLE film (
      film_id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
      title varchar(128) NOT NULL,
      description text,
      release_year year DEFAULT NULL,
      language_id tinyint unsigned NOT NULL,
      rental_rate decimal(4,2) NOT NULL DEFAULT 4.99,
      replacement_cost decimal(5,2) NOT NULL DEFAULT 19.99,
      rating enum('G','PG','PG-13','R','NC-17') DEFAULT 'G',
      special_features set('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'),
      views bigint unsigned NOT NULL DEFAULT 0,
      last_update timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
      KEY idx_title (title),
      UNIQUE KEY uq_title_year (title, release_year),
      CONSTRAINT fk_film_language FOREIGN KEY (language_id) REFERENCES language (language_id)
    )""",
    """CREATE TABLE actor (
      actor_id smallint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
      first_name varchar(45) NOT NULL,
      last_name varchar(45) NOT NULL,
      KEY idx_actor_last_name (last_name)
    )""",
    """CREATE TABLE film_actor (
      actor_id smallint unsigned NOT NULL,
      film_id int unsigned NOT NULL,
      PRIMARY KEY (actor_id, film_id),
      KEY idx_fk_film_id (film_id),
      CONSTRAINT fk_film_actor_actor FOREIGN KEY (actor_id) REFERENCES actor (actor_id),
      CONSTRAINT fk_film_actor_film FOREIGN KEY (film_id) REFERENCES film (film_id)
        ON DELETE CASCADE
    )""",
    """CREATE TABLE staff (
      staff_id tinyint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
      first_name varchar(45) NOT NULL,
      manager_id tinyint unsigned NULL,
      picture blob,
      email varchar(50) DEFAULT NULL,
      active tinyint(1) NOT NULL DEFAULT 1,
      password varbinary(40) DEFAULT NULL,
      CONSTRAINT fk_staff_manager FOREIGN KEY (manager_id) REFERENCES staff (staff_id)
        ON DELETE SET NULL
    )""",
    """CREATE TABLE customer (
      CustomerID int NOT NULL AUTO_INCREMENT PRIMARY KEY,
      `First Name` varchar(45) NOT NULL,
      `it's "quoted"` varchar(20),
      `Back``tick` int,
      notes text CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
      create_date datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
      last_seen datetime(6) NULL,
      birthday date NULL,
      balance decimal(12,2) NOT NULL DEFAULT 0.00 CHECK (balance > -1000),
      prefs json,
      token uuid,
      ip inet6,
      UNIQUE KEY `uq first name` (`First Name`, `it's "quoted"`)
    )""",
    """CREATE TABLE payment (
      payment_id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
      customer_id int NOT NULL,
      staff_id tinyint unsigned NOT NULL,
      amount decimal(5,2) NOT NULL,
      payment_date datetime NULL,
      KEY idx_fk_customer (customer_id),
      CONSTRAINT fk_payment_customer FOREIGN KEY (customer_id) REFERENCES customer (CustomerID),
      CONSTRAINT fk_payment_staff FOREIGN KEY (staff_id) REFERENCES staff (staff_id)
    ) AUTO_INCREMENT=1""",
    """CREATE TABLE `Order "Lines"` (
      `Order ID` int unsigned NOT NULL,
      `Line No` smallint NOT NULL,
      actor_id smallint unsigned NOT NULL,
      film_id int unsigned NOT NULL,
      `Unit Price` decimal(10,4) NOT NULL,
      PRIMARY KEY (`Order ID`, `Line No`),
      CONSTRAINT `fk lines film_actor` FOREIGN KEY (actor_id, film_id)
        REFERENCES film_actor (actor_id, film_id)
    )""",
    """CREATE TABLE audit_log (
      at datetime NULL DEFAULT '0000-00-00 00:00:00',
      who varchar(20),
      what varchar(200),
      payload mediumblob
    )""",
]

DATA = [
    "SET SESSION sql_mode = ''",  # the lax mode old databases were filled in
    "INSERT INTO language (name) VALUES ('English'), ('Italian'), ('Japanese')",
    "INSERT INTO Country VALUES (1, 'Afghanistan'), (2, 'Côte d''Ivoire'), (3, 'Österreich')",
    "INSERT INTO city VALUES (1, 'Kabul', 1), (2, 'Abidjan', 2), (3, 'Wien', 3)",
    "INSERT INTO address VALUES (1, '47 MySakila Drive', 1, ST_GeomFromText('POINT(1 2)')),"
    " (2, 'Ring', 3, ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'))",
    "INSERT INTO film_text VALUES (1, 'ACADEMY DINOSAUR', 'A Epic Drama')",
    "INSERT INTO film (film_id, title, description, release_year, language_id, rental_rate,"
    " rating, special_features, views) VALUES"
    " (1, 'ACADEMY DINOSAUR', 'A Epic Drama 🦖 of a Feminist', 2006, 1, 0.99, 'PG',"
    "  'Deleted Scenes,Behind the Scenes', 18446744073709551615),"
    " (2, 'ACE GOLDFINGER', NULL, NULL, 2, 4.99, 'G', '', 0),"
    " (3, 'ADAPTATION HOLES', 'tab\there\nand a \\\\ backslash', 1901, 3, 2.99, NULL, NULL, 7)",
    "INSERT INTO actor VALUES (1, 'PENELOPE', 'GUINESS'), (2, 'NICK', 'WAHLBERG'),"
    " (3, 'ED', 'CHASE')",
    "INSERT INTO film_actor VALUES (1, 1), (1, 2), (2, 1), (3, 3)",
    "INSERT INTO staff (staff_id, first_name, manager_id, picture, email, active, password)"
    " VALUES (1, 'Mike', NULL, x'89504e470d0a1a0a00ff', 'mike@example.com', 1,"
    " x'8cb2237d0679ca88db6464eac60da96345513964'),"
    " (2, 'Jon', 1, NULL, NULL, 0, NULL)",
    'INSERT INTO customer (CustomerID, `First Name`, `it\'s "quoted"`, `Back``tick`, notes,'
    " create_date, last_seen, birthday, balance, prefs, token, ip) VALUES"
    " (1, 'MARY', 'a\"b', 1, 'loves 😀 and 中文', '2006-02-14 22:04:36',"
    "  '2020-01-01 00:00:00.000001', '1980-02-29', 12.50, '{\"lang\": \"it\", \"n\": [1, 2]}',"
    "  '6ccd780c-baba-1026-9564-5b8c656024db', '2001:db8::1'),"
    " (2, 'PATRICIA', NULL, NULL, NULL, '2006-02-14 22:04:36', NULL, '0000-00-00', -3.00, NULL,"
    "  NULL, '::ffff:192.0.2.1'),"
    " (3, 'LINDA', '', -5, '', '2006-02-15 04:57:20', NULL, NULL, 0, '[]', NULL, NULL)",
    # ids with a gap, the last ones deleted: the next id on MariaDB is 1003
    "INSERT INTO payment VALUES (1, 1, 1, 2.99, '2005-05-25 11:30:37'),"
    " (2, 1, 2, 0.99, '0000-00-00 00:00:00'), (3, 2, 1, 5.99, NULL),"
    " (1000, 3, 2, 9.99, '2005-05-28 10:35:23'), (1001, 3, 1, 1.00, NULL),"
    " (1002, 3, 1, 1.00, NULL)",
    "DELETE FROM payment WHERE payment_id IN (1001, 1002)",
    'INSERT INTO `Order "Lines"` VALUES (1, 1, 1, 1, 0.9900), (1, 2, 3, 3, 2.9900),'
    " (2, 1, 2, 1, 10.0000)",
    # the same row twice: no primary key to tell them apart
    "INSERT INTO audit_log VALUES ('2005-05-25 11:30:37', 'me', 'x', x'00'),"
    " ('2005-05-25 11:30:37', 'me', 'x', x'00'), ('0000-00-00 00:00:00', NULL, 'zero', NULL)",
    """CREATE TRIGGER film_views BEFORE UPDATE ON film FOR EACH ROW
      SET NEW.views = OLD.views + 1""",
    """CREATE TRIGGER log_payment AFTER INSERT ON payment FOR EACH ROW
      INSERT INTO audit_log (at, who, what) VALUES (NOW(), 'trigger', 'payment')""",
    "UPDATE film SET rental_rate = 4.99 WHERE film_id = 2",  # film_views: views 0 -> 1
    """CREATE VIEW actor_names AS SELECT actor_id, first_name, last_name FROM actor""",
    """CREATE VIEW film_list AS SELECT f.film_id AS FID, f.title, GROUP_CONCAT(
      CONCAT(a.first_name, ' ', a.last_name) SEPARATOR ', ') AS actors
      FROM film f JOIN film_actor fa ON fa.film_id = f.film_id
      JOIN actor a ON a.actor_id = fa.actor_id GROUP BY f.film_id, f.title""",
]


def build(run: Callable[..., Any]) -> None:
    for statement in SCHEMA + DATA:
        run(statement)


def test_sample_schema_clones_exactly(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    build(run)
    r = run_cli("clone", "--source", url, "--target", target_db, "--json", "--jobs", "3")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["rejected"] == 0
    loaded = {t["table"]: t["rows"] for t in out["tables"]}
    assert loaded == {
        "public.language": 3, "public.country": 3, "public.city": 3, "public.film": 3,
        "public.actor": 3, "public.film_actor": 4, "public.staff": 2, "public.customer": 3,
        "public.payment": 4, 'public.order "lines"': 3, "public.audit_log": 3,
        "public.address": 2, "public.film_text": 1,
    }  # fmt: skip
    notes = "\n".join(out["notes"])
    assert "trigger film_views on film skipped" in notes
    assert "trigger log_payment on payment skipped" in notes
    assert "address: SPATIAL index idx_location has no PostgreSQL equivalent here" in notes
    assert "film_text: FULLTEXT index idx_title_description has no PostgreSQL equivalent" in notes
    assert "address.location: geometry copied as WKT text (the SRID is not kept)" in notes
    assert "film.last_update: ON UPDATE CURRENT_TIMESTAMP not carried over" in notes
    assert len(out["notes"]) == len(set(out["notes"]))

    v = run_cli("verify", "--source", url, "--target", target_db, "--json")
    assert v.exit_code == 0, v.output
    checks = json.loads(v.stdout)["checks"]
    assert [c for c in checks if c["status"] != "ok"] == []
    assert len(checks) == 13 + 64  # tables + columns

    film = rows(
        target_db,
        "SELECT film_id, title, description, release_year, language_id, rental_rate, rating,"
        " special_features, views FROM film ORDER BY film_id",
    )
    assert film == [
        (1, "ACADEMY DINOSAUR", "A Epic Drama 🦖 of a Feminist", 2006, 1, Decimal("0.99"), "PG",
         ["Deleted Scenes", "Behind the Scenes"], Decimal(18446744073709551615)),
        (2, "ACE GOLDFINGER", None, None, 2, Decimal("4.99"), "G", [], Decimal(1)),
        (3, "ADAPTATION HOLES", "tab\there\nand a \\ backslash", 1901, 3, Decimal("2.99"), None,
         None, Decimal(7)),
    ]  # fmt: skip
    assert rows(target_db, "SELECT * FROM address ORDER BY 1") == [
        (1, "47 MySakila Drive", 1, "POINT(1 2)"),
        (2, "Ring", 3, "POLYGON((0 0,1 0,1 1,0 0))"),
    ]
    assert rows(target_db, "SELECT country FROM country ORDER BY country_id") == [
        ("Afghanistan",), ("Côte d'Ivoire",), ("Österreich",),
    ]  # fmt: skip
    assert rows(
        target_db,
        'SELECT customerid, "first name", "it\'s ""quoted""", "back`tick", notes, create_date,'
        " last_seen, birthday, balance, prefs, token::text, host(ip) FROM customer ORDER BY 1",
    ) == [
        (1, "MARY", 'a"b', 1, "loves 😀 and 中文", datetime(2006, 2, 14, 22, 4, 36),
         datetime(2020, 1, 1, 0, 0, 0, 1), date(1980, 2, 29), Decimal("12.50"),
         {"lang": "it", "n": [1, 2]}, "6ccd780c-baba-1026-9564-5b8c656024db", "2001:db8::1"),
        (2, "PATRICIA", None, None, None, datetime(2006, 2, 14, 22, 4, 36), None, None,
         Decimal("-3.00"), None, None, "::ffff:192.0.2.1"),
        (3, "LINDA", "", -5, "", datetime(2006, 2, 15, 4, 57, 20), None, None, Decimal(0), [],
         None, None),
    ]  # fmt: skip
    staff = rows(target_db, "SELECT staff_id, manager_id, picture, active, password FROM staff")
    assert staff == [
        (1, None, b"\x89PNG\r\n\x1a\n\x00\xff", True,
         bytes.fromhex("8cb2237d0679ca88db6464eac60da96345513964")),
        (2, 1, None, False, None),
    ]  # fmt: skip
    assert rows(target_db, "SELECT * FROM payment ORDER BY payment_id") == [
        (1, 1, 1, Decimal("2.99"), datetime(2005, 5, 25, 11, 30, 37)),
        (2, 1, 2, Decimal("0.99"), None),
        (3, 2, 1, Decimal("5.99"), None),
        (1000, 3, 2, Decimal("9.99"), datetime(2005, 5, 28, 10, 35, 23)),
    ]
    assert rows(target_db, 'SELECT * FROM "order ""lines""" ORDER BY 1, 2') == [
        (1, 1, 1, 1, Decimal("0.9900")),
        (1, 2, 3, 3, Decimal("2.9900")),
        (2, 1, 2, 1, Decimal("10.0000")),
    ]
    assert rows(target_db, "SELECT at, who, what, payload FROM audit_log ORDER BY at") == [
        (datetime(2005, 5, 25, 11, 30, 37), "me", "x", b"\x00"),
        (datetime(2005, 5, 25, 11, 30, 37), "me", "x", b"\x00"),
        (None, None, "zero", None),  # the zero datetime of a nullable column
    ]
    stamps = rows(target_db, "SELECT count(*) FROM language WHERE last_update > '2020-01-01'")
    assert stamps == [(3,)]
    # identities go on after the source's AUTO_INCREMENT (1003: 1001 and 1002
    # were deleted), never reusing an id MariaDB already handed out
    new = rows(
        target_db,
        "INSERT INTO payment (customer_id, staff_id, amount) VALUES (1, 1, 1) RETURNING payment_id",
    )
    assert new == [(1003,)]
    assert rows(target_db, "INSERT INTO actor (first_name, last_name) VALUES ('A', 'B')"
                " RETURNING actor_id") == [(4,)]  # fmt: skip
    fks = dict(
        rows(
            target_db,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype IN ('f', 'p', 'u') AND connamespace = 'public'::regnamespace",
        )
    )
    assert fks == {
        "language_pkey": "PRIMARY KEY (language_id)",
        "country_pkey": "PRIMARY KEY (country_id)",
        "city_pkey": "PRIMARY KEY (city_id)",
        "address_pkey": "PRIMARY KEY (address_id)",
        "film_text_pkey": "PRIMARY KEY (film_id)",
        "address_fk_address_city": "FOREIGN KEY (city_id) REFERENCES city(city_id)"
        " ON UPDATE RESTRICT ON DELETE RESTRICT",
        "film_pkey": "PRIMARY KEY (film_id)",
        "actor_pkey": "PRIMARY KEY (actor_id)",
        "film_actor_pkey": "PRIMARY KEY (actor_id, film_id)",
        "staff_pkey": "PRIMARY KEY (staff_id)",
        "customer_pkey": "PRIMARY KEY (customerid)",
        "payment_pkey": "PRIMARY KEY (payment_id)",
        'order "lines"_pkey': 'PRIMARY KEY ("order id", "line no")',
        "film_uq_title_year": "UNIQUE (title, release_year)",
        "customer_uq first name": 'UNIQUE ("first name", "it\'s ""quoted""")',
        "city_fk_city_country": "FOREIGN KEY (country_id) REFERENCES country(country_id)"
        " ON UPDATE CASCADE ON DELETE RESTRICT",
        "film_fk_film_language": "FOREIGN KEY (language_id) REFERENCES language(language_id)"
        " ON UPDATE RESTRICT ON DELETE RESTRICT",
        "film_actor_fk_film_actor_actor": "FOREIGN KEY (actor_id) REFERENCES actor(actor_id)"
        " ON UPDATE RESTRICT ON DELETE RESTRICT",
        "film_actor_fk_film_actor_film": "FOREIGN KEY (film_id) REFERENCES film(film_id)"
        " ON UPDATE RESTRICT ON DELETE CASCADE",
        "staff_fk_staff_manager": "FOREIGN KEY (manager_id) REFERENCES staff(staff_id)"
        " ON UPDATE RESTRICT ON DELETE SET NULL",
        "payment_fk_payment_customer": "FOREIGN KEY (customer_id) REFERENCES"
        " customer(customerid) ON UPDATE RESTRICT ON DELETE RESTRICT",
        "payment_fk_payment_staff": "FOREIGN KEY (staff_id) REFERENCES staff(staff_id)"
        " ON UPDATE RESTRICT ON DELETE RESTRICT",
        'order "lines"_fk lines film_actor': "FOREIGN KEY (actor_id, film_id) REFERENCES"
        " film_actor(actor_id, film_id) ON UPDATE RESTRICT ON DELETE RESTRICT",
    }


def test_names_that_fold_together_are_refused(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    # MariaDB on Linux tells `Users` from `users`; folded they would collide
    url, run = mysql_db
    run("CREATE TABLE `Users` (id int PRIMARY KEY)")
    run("CREATE TABLE users (id int PRIMARY KEY)")
    r = run_cli("clone", "--source", url, "--target", target_db, "-q")
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        "error: tables 'Users' and 'users' would both be 'users' on the target;"
        " keep their case with --keep-case, or leave one out with --exclude"
    )
    r = run_cli("clone", "--source", url, "--target", target_db, "-q", "--keep-case")
    assert r.exit_code == 0, r.output
    assert rows(target_db, "SELECT relname FROM pg_class WHERE relname ILIKE 'users'"
                " ORDER BY 1") == [("Users",), ("users",)]  # fmt: skip


def test_exclude_a_referenced_table(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    build(run)
    r = run_cli("clone", "--source", url, "--target", target_db, "--json", "--exclude", "language")
    assert r.exit_code == 0, r.output
    notes = json.loads(r.stdout)["notes"]
    assert (
        "film: foreign key film_fk_film_language skipped: it references language,"
        " which is not cloned (--table/--exclude)"
    ) in notes
    assert rows(target_db, "SELECT count(*) FROM film") == [(3,)]
    assert rows(target_db, "SELECT to_regclass('language')") == [(None,)]
