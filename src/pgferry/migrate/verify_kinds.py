"""Catalog queries for the object kinds a schema has less often: collations,
operators and their classes and families, casts, conversions, text search
objects, access methods, foreign data wrappers, servers and user mappings.

Each yields the (kind, schema, relation, name, attributes) rows of
`verify_schema`.  Built-in objects are left out by their schema (pg_catalog)
or, for kinds without one, by OID (below 16384, FirstNormalObjectId);
an extension's members are left out as extensions are compared by version.

Options that may hold a secret (a user mapping's password) are never shown:
their values are replaced by `****` and compared through a SHA-256 of the
whole list, which only says whether they differ.
"""

from __future__ import annotations

SKIP_NS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry')"
    " AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"
)

#: option names whose values are secrets (postgres_fdw's password and
#: sslpassword, other wrappers' secret, token, passphrase...)
_HIDDEN_NAMES = "'(pass|secret|token|credential)'"


def not_extension(classid: str, oid: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = '{classid}'::regclass"
        f" AND x.objid = {oid} AND x.deptype = 'e')"
    )


def acl(acl: str, kind: str | None, owner: str) -> str:
    """SQL for a privilege list as sorted text: defaults filled in (NULL means
    the defaults), MAINTAIN dropped (new in PostgreSQL 17, granted to owners by
    default there), the owner written `(owner)` so --no-owner compares."""
    filled = f"coalesce({acl}, acldefault({kind}, {owner}))" if kind else acl
    who = (
        "CASE WHEN {r} = 0 THEN 'PUBLIC' WHEN {r} = {o} THEN '(owner)'"
        " ELSE pg_get_userbyid({r}) END"
    )
    grantee, grantor = who.format(r="a.grantee", o=owner), who.format(r="a.grantor", o=owner)
    item = (
        f"{grantee} || '=' || a.privilege_type"
        f" || CASE WHEN a.is_grantable THEN '*' ELSE '' END || ' by ' || {grantor}"
    )
    return (
        f"(SELECT string_agg(e, ', ' ORDER BY e) FROM (SELECT {item} AS e"
        f" FROM aclexplode({filled}) a WHERE a.privilege_type <> 'MAINTAIN') s)"
    )


def options(column: str) -> str:
    """A `name=value` options array as sorted text, secrets masked."""
    return (
        "(SELECT string_agg(CASE WHEN split_part(o, '=', 1) ~* " + _HIDDEN_NAMES + ""
        " THEN split_part(o, '=', 1) || '=****' ELSE o END, ', ' ORDER BY o)"
        f" FROM unnest({column}) o)"
    )


def secret_digest(column: str) -> str:
    """SHA-256 of the secret options, for comparing them without showing them."""
    return (
        "(SELECT encode(sha256(convert_to(string_agg(o, E'\\n' ORDER BY o), 'UTF8')), 'hex')"
        f" FROM unnest({column}) o WHERE split_part(o, '=', 1) ~* " + _HIDDEN_NAMES + ")"
    )


#: an attribute whose value is a digest: a difference says only "differ"
SECRET_ATTRS = {"secret options"}

COLLATIONS = f"""
SELECT 'collation', n.nspname, '', co.collname,
       jsonb_build_object(
         'owner', pg_get_userbyid(co.collowner), 'provider', co.collprovider,
         'deterministic', co.collisdeterministic,
         'locale', CASE WHEN co.collprovider = 'c'
                        THEN co.collcollate || CASE WHEN co.collctype <> co.collcollate
                                                    THEN ' / ' || co.collctype ELSE '' END
                        ELSE coalesce(to_jsonb(co) ->> 'colllocale',
                                      to_jsonb(co) ->> 'colliculocale') END,
         'rules', to_jsonb(co) ->> 'collicurules',
         'comment', obj_description(co.oid, 'pg_collation'))
  FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
 WHERE {SKIP_NS} AND {not_extension("pg_collation", "co.oid")}
"""

_OPERATOR = "CASE WHEN {o} = 0 THEN NULL ELSE {o}::regoperator::text END"  # 0: none

OPERATORS = f"""
SELECT 'operator', n.nspname, '',
       o.oprname || '(' || coalesce(format_type(nullif(o.oprleft, 0), NULL), 'NONE') || ', '
         || format_type(o.oprright, NULL) || ')',
       jsonb_build_object(
         'owner', pg_get_userbyid(o.oprowner), 'function', o.oprcode::regprocedure::text,
         'result', format_type(o.oprresult, NULL),
         'commutator', {_OPERATOR.format(o="o.oprcom")},
         'negator', {_OPERATOR.format(o="o.oprnegate")},
         'restrict', nullif(o.oprrest::text, '-'), 'join', nullif(o.oprjoin::text, '-'),
         'merges', o.oprcanmerge, 'hashes', o.oprcanhash,
         'comment', obj_description(o.oid, 'pg_operator'))
  FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
 WHERE {SKIP_NS} AND {not_extension("pg_operator", "o.oid")}
"""

OPERATOR_CLASSES = f"""
SELECT 'operator class', n.nspname, '', c.opcname || ' using ' || am.amname,
       jsonb_build_object(
         'owner', pg_get_userbyid(c.opcowner), 'type', format_type(c.opcintype, NULL),
         'default', c.opcdefault, 'storage', format_type(nullif(c.opckeytype, 0), NULL),
         'family', (SELECT fn.nspname || '.' || f.opfname FROM pg_opfamily f
                      JOIN pg_namespace fn ON fn.oid = f.opfnamespace WHERE f.oid = c.opcfamily),
         'comment', obj_description(c.oid, 'pg_opclass'))
  FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace
  JOIN pg_am am ON am.oid = c.opcmethod
 WHERE {SKIP_NS} AND {not_extension("pg_opclass", "c.oid")}
"""

OPERATOR_FAMILIES = f"""
SELECT 'operator family', n.nspname, '', f.opfname || ' using ' || am.amname,
       jsonb_build_object(
         'owner', pg_get_userbyid(f.opfowner),
         'operators', (SELECT string_agg(o.amopstrategy || ' ' || o.amopopr::regoperator::text
                           || CASE o.amoppurpose WHEN 'o' THEN ' FOR ORDER BY '
                                || (SELECT sf.opfname FROM pg_opfamily sf
                                     WHERE sf.oid = o.amopsortfamily) ELSE '' END,
                           ', ' ORDER BY o.amopstrategy, o.amopopr::regoperator::text)
                         FROM pg_amop o WHERE o.amopfamily = f.oid),
         'functions', (SELECT string_agg(p.amprocnum || ' (' || format_type(p.amproclefttype, NULL)
                           || ', ' || format_type(p.amprocrighttype, NULL) || ') '
                           || p.amproc::regprocedure::text, ', '
                           ORDER BY p.amprocnum, p.amproc::regprocedure::text)
                         FROM pg_amproc p WHERE p.amprocfamily = f.oid),
         'comment', obj_description(f.oid, 'pg_opfamily'))
  FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace
  JOIN pg_am am ON am.oid = f.opfmethod
 WHERE {SKIP_NS} AND {not_extension("pg_opfamily", "f.oid")}
"""

CASTS = f"""
SELECT 'cast', '', '', format_type(c.castsource, NULL) || ' AS ' || format_type(c.casttarget, NULL),
       jsonb_build_object(
         'function', CASE WHEN c.castfunc = 0 THEN NULL
                          ELSE c.castfunc::regprocedure::text END,
         'context', c.castcontext, 'method', c.castmethod,
         'comment', obj_description(c.oid, 'pg_cast'))
  FROM pg_cast c
 WHERE c.oid >= 16384 AND {not_extension("pg_cast", "c.oid")}
"""

CONVERSIONS = f"""
SELECT 'conversion', n.nspname, '', c.conname,
       jsonb_build_object(
         'owner', pg_get_userbyid(c.conowner),
         'from', pg_encoding_to_char(c.conforencoding),
         'to', pg_encoding_to_char(c.contoencoding),
         'function', c.conproc::regprocedure::text, 'default', c.condefault,
         'comment', obj_description(c.oid, 'pg_conversion'))
  FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
 WHERE {SKIP_NS} AND {not_extension("pg_conversion", "c.oid")}
"""

TEXT_SEARCH_CONFIGS = f"""
SELECT 'text search configuration', n.nspname, '', c.cfgname,
       jsonb_build_object(
         'owner', pg_get_userbyid(c.cfgowner),
         'parser', (SELECT pn.nspname || '.' || p.prsname FROM pg_ts_parser p
                      JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser),
         'mapping', (SELECT string_agg(t.alias || ' ' || m.dicts, ', ' ORDER BY t.alias)
                       FROM ts_token_type(c.cfgparser) t
                       JOIN (SELECT maptokentype, string_agg(mapdict::regdictionary::text, ' '
                                      ORDER BY mapseqno) AS dicts
                               FROM pg_ts_config_map WHERE mapcfg = c.oid
                              GROUP BY maptokentype) m ON m.maptokentype = t.tokid),
         'comment', obj_description(c.oid, 'pg_ts_config'))
  FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
 WHERE {SKIP_NS} AND {not_extension("pg_ts_config", "c.oid")}
"""

TEXT_SEARCH_DICTIONARIES = f"""
SELECT 'text search dictionary', n.nspname, '', d.dictname,
       jsonb_build_object(
         'owner', pg_get_userbyid(d.dictowner),
         'template', (SELECT tn.nspname || '.' || t.tmplname FROM pg_ts_template t
                        JOIN pg_namespace tn ON tn.oid = t.tmplnamespace
                       WHERE t.oid = d.dicttemplate),
         'options', d.dictinitoption,
         'comment', obj_description(d.oid, 'pg_ts_dict'))
  FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
 WHERE {SKIP_NS} AND {not_extension("pg_ts_dict", "d.oid")}
"""

TEXT_SEARCH_PARSERS = f"""
SELECT 'text search parser', n.nspname, '', p.prsname,
       jsonb_build_object(
         'start', p.prsstart::text, 'token', p.prstoken::text, 'end', p.prsend::text,
         'headline', nullif(p.prsheadline::text, '-'), 'types', p.prslextype::text,
         'comment', obj_description(p.oid, 'pg_ts_parser'))
  FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace
 WHERE {SKIP_NS} AND {not_extension("pg_ts_parser", "p.oid")}
"""

TEXT_SEARCH_TEMPLATES = f"""
SELECT 'text search template', n.nspname, '', t.tmplname,
       jsonb_build_object(
         'init', nullif(t.tmplinit::text, '-'), 'lexize', t.tmpllexize::text,
         'comment', obj_description(t.oid, 'pg_ts_template'))
  FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace
 WHERE {SKIP_NS} AND {not_extension("pg_ts_template", "t.oid")}
"""

ACCESS_METHODS = f"""
SELECT 'access method', '', '', a.amname,
       jsonb_build_object(
         'type', a.amtype, 'handler', a.amhandler::text,
         'comment', obj_description(a.oid, 'pg_am'))
  FROM pg_am a
 WHERE a.oid >= 16384 AND {not_extension("pg_am", "a.oid")}
"""

# an extension's wrapper (postgres_fdw) is the extension's: only the grants
# on it are the user's (pg_dump carries them)
FOREIGN_DATA_WRAPPERS = f"""
SELECT 'foreign data wrapper', '', '', w.fdwname,
       jsonb_build_object('acl', {acl("w.fdwacl", "'F'", "w.fdwowner")})
       || CASE WHEN {not_extension("pg_foreign_data_wrapper", "w.oid")} THEN jsonb_build_object(
            'owner', pg_get_userbyid(w.fdwowner),
            'handler', CASE WHEN w.fdwhandler = 0 THEN NULL ELSE w.fdwhandler::regproc::text END,
            'validator', CASE WHEN w.fdwvalidator = 0 THEN NULL
                              ELSE w.fdwvalidator::regproc::text END,
            'options', {options("w.fdwoptions")}, 'secret options', {secret_digest("w.fdwoptions")},
            'comment', obj_description(w.oid, 'pg_foreign_data_wrapper'))
          ELSE '{{}}'::jsonb END
  FROM pg_foreign_data_wrapper w
"""

FOREIGN_SERVERS = f"""
SELECT 'foreign server', '', '', s.srvname,
       jsonb_build_object(
         'owner', pg_get_userbyid(s.srvowner),
         'acl', {acl("s.srvacl", "'S'", "s.srvowner")},
         'wrapper', (SELECT w.fdwname FROM pg_foreign_data_wrapper w WHERE w.oid = s.srvfdw),
         'type', s.srvtype, 'version', s.srvversion,
         'options', {options("s.srvoptions")}, 'secret options', {secret_digest("s.srvoptions")},
         'comment', obj_description(s.oid, 'pg_foreign_server'))
  FROM pg_foreign_server s
 WHERE {not_extension("pg_foreign_server", "s.oid")}
"""

# pg_user_mappings shows the options only to the mapped role, the server's
# owner and superusers: a mapping this role cannot read says so, rather than
# comparing as "no options"
# (the view's own rule, pg_roles for pg_authid, which only superusers read)
_MAPPING_VISIBLE = """((u.umuser <> 0 AND u.usename = current_user
   AND (pg_has_role(s.srvowner, 'USAGE') OR has_server_privilege(s.oid, 'USAGE')))
  OR (u.umuser = 0 AND pg_has_role(s.srvowner, 'USAGE'))
  OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))"""

USER_MAPPINGS = f"""
SELECT 'user mapping', '', '', 'for ' || u.usename || ' on ' || u.srvname,
       CASE WHEN {_MAPPING_VISIBLE} THEN jsonb_build_object(
              'options', {options("u.umoptions")},
              'secret options', {secret_digest("u.umoptions")})
            ELSE jsonb_build_object('options', 'hidden from ' || current_user) END
  FROM pg_user_mappings u JOIN pg_foreign_server s ON s.oid = u.srvid
"""

QUERIES = (
    COLLATIONS,
    OPERATORS,
    OPERATOR_CLASSES,
    OPERATOR_FAMILIES,
    CASTS,
    CONVERSIONS,
    TEXT_SEARCH_CONFIGS,
    TEXT_SEARCH_DICTIONARIES,
    TEXT_SEARCH_PARSERS,
    TEXT_SEARCH_TEMPLATES,
    ACCESS_METHODS,
    FOREIGN_DATA_WRAPPERS,
    FOREIGN_SERVERS,
    USER_MAPPINGS,
)
