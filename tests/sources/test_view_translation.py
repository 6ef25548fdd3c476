"""The view translator on MariaDB's canonical definitions, without a
server: what passes comes out as PostgreSQL, what does not says why."""

from __future__ import annotations

import pytest

from pgferry.sources.names import Namer
from pgferry.sources.views import Untranslatable, ViewDef, translate


def _sql(definition: str, check: str = "NONE", keep_case: bool = False) -> str:
    stmt = translate(ViewDef("V", "v", definition, check), "shop", "app", Namer(keep_case))
    return stmt.as_string(None)  # psycopg 3.2+: no connection needed


def test_canonical_select_translates() -> None:
    got = _sql(
        "select `shop`.`Actor`.`actor_id` AS `Actor ID`,count(0) AS `n`,'it''s' AS `k`"
        " from (`shop`.`Actor` `a` left join `shop`.`film_actor` `fa`"
        " on(`fa`.`actor_id` = `a`.`actor_id` and `fa`.`film_id` <> 3))"
        " where `a`.`actor_id` is not null and `a`.`actor_id` in (1,2)"
        " group by `shop`.`Actor`.`actor_id` having count(0) >= 1 limit 10",
        check="LOCAL",
    )
    assert got == (
        'CREATE VIEW "app"."v" AS select "actor"."actor_id" as "actor id" , count ( 0 ) as "n"'
        """ , 'it''s' as "k" from ( "app"."actor" "a" left join "app"."film_actor" "fa" on """
        '( "fa"."actor_id" = "a"."actor_id" and "fa"."film_id" <> 3 ) ) where "a"."actor_id"'
        ' is not null and "a"."actor_id" in ( 1 , 2 ) group by "actor"."actor_id" having'
        " count ( 0 ) >= 1 limit 10 WITH LOCAL CHECK OPTION"
    )
    assert '"Actor"."actor_id"' in _sql("select `shop`.`Actor`.`actor_id` AS `x`", keep_case=True)


@pytest.mark.parametrize(
    ("definition", "why"),
    [
        ("select group_concat(`shop`.`t`.`a` separator ',') AS `g` from `shop`.`t`",
         "group_concat() has no checked PostgreSQL equivalent"),
        ("select if(`shop`.`t`.`a` = 1,2,3) AS `x` from `shop`.`t`",
         "if() has no checked PostgreSQL equivalent"),
        ("select `shop`.`t`.`a` / 2 AS `x` from `shop`.`t`",
         "'/' has no checked PostgreSQL equivalent"),
        ("select `shop`.`t`.`a` || `shop`.`t`.`b` AS `x` from `shop`.`t`",
         "'||' has no checked PostgreSQL equivalent"),
        ("select `shop`.`t`.`a` AS `a` from `shop`.`t` where `shop`.`t`.`s` = 'x'",
         "it compares text ('x')"),
        ("select `shop`.`t`.`a` AS `a` from `shop`.`t` where `shop`.`t`.`s` in ('x','y')",
         "it compares text ('x')"),
        ("select `shop`.`t`.`a` AS `a` from `shop`.`t` where `shop`.`t`.`s` like 'x%'",
         "like has no checked PostgreSQL equivalent"),
        ("select case `shop`.`t`.`s` when 'x' then 1 else 0 end AS `a` from `shop`.`t`",
         "it compares text ('x')"),
        ("select 'a\\\\b' AS `a`", "a string literal with backslash escapes"),
        ("select `other`.`t`.`a` AS `a` from `other`.`t`", "it reads database 'other'"),
        ("select _utf8mb4'x' AS `a`", "_utf8mb4 has no checked PostgreSQL equivalent"),
    ],
)  # fmt: skip
def test_unsafe_definitions_are_refused(definition: str, why: str) -> None:
    with pytest.raises(Untranslatable) as e:
        _sql(definition)
    assert str(e.value).startswith(why)
