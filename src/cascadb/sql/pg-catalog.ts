// pg_catalog and information_schema, computed from the data dictionary, so that psql (\d, \dt, \di, \l, \dn),
// drivers and ORMs can look at the tables they connect to. Three parts:
//  - virtual relations (pg_class, pg_attribute, pg_index, pg_type, … information_schema.tables, …) whose rows
//    are made from the table descriptors each time a statement scans them;
//  - stubs: catalog relations of things CascaDB does not have (policies, triggers, inheritance, publications,
//    extended statistics, …). They have no rows and every column a query names (NULL, text), so that the
//    queries psql sends about them simply return nothing;
//  - catalog functions (pg_get_indexdef, format_type, pg_get_userbyid, … and the regclass/regtype casts).
// OIDs: a table's OID is its id (random, below 2^31); its indexes, constraints and defaults get OIDs from 2^31
// up, derived from the table id; types keep PostgreSQL's OIDs (types.ts).
import type { Catalog, IndexDesc, TableDesc } from '../catalog/index.js';
import type { SqlValue } from '../codec/index.js';
import { PgError, type Session } from '../server/backend.js';
import { constant, parseArrayText, quoteIdent, type Compiled, type EvalCtx, type Node, type ScopeColumn } from './expr.js';
import type { Row, VirtualTable } from './plan.js';
import type { StatementResult } from './engine.js';
import { formatType, OID, typeOid, type SqlType } from './types.js';

/** The one database CascaDB shows (whatever name a client connects with). */
export const DATABASE = 'securegrid';
const DATABASE_OID = 16384;
const CATALOG_NS = 11;
const TOAST_NS = 99;
const PUBLIC_NS = 2200;
const INFO_NS = 13000;
const OWNER = 10;
const HEAP_AM = 2;
const BTREE_AM = 403;
const DEFAULT_COLLATION = 100;

/** Settings for SHOW, current_setting() and pg_settings. */
export const SETTINGS: Record<string, string> = {
  server_version: '16.0',
  server_version_num: '160000',
  server_encoding: 'UTF8',
  client_encoding: 'UTF8',
  datestyle: 'ISO, MDY',
  intervalstyle: 'postgres',
  timezone: 'UTC',
  standard_conforming_strings: 'on',
  integer_datetimes: 'on',
  max_identifier_length: '63',
  transaction_isolation: 'read committed',
  default_transaction_isolation: 'read committed',
  default_transaction_read_only: 'off',
  transaction_read_only: 'off',
  search_path: '"$user", public',
  lc_collate: 'C',
  lc_ctype: 'C',
  lc_messages: 'C',
  application_name: '',
  is_superuser: 'on',
  block_size: '8192',
  max_connections: '100',
  statement_timeout: '0',
  extra_float_digits: '1',
  bytea_output: 'hex',
};

/** Catalog column types: how each is represented in the engine (oid → int8, name and "char" → text, arrays → text). */
type CatType = 'oid' | 'name' | 'char' | 'text' | 'int2' | 'int4' | 'int8' | 'bool' | 'float4' | 'array';

function cols(spec: Array<[string, CatType]>): ScopeColumn[] {
  return spec.map(([name, t]): ScopeColumn => {
    switch (t) {
      case 'oid':
        return { name, type: 'int8', pgType: 'oid' };
      case 'name':
      case 'char':
        return { name, type: 'text', pgType: t };
      case 'int2':
      case 'int4':
        return { name, type: 'int4' };
      case 'array':
        return { name, type: 'text' };
      default:
        return { name, type: t };
    }
  });
}

function rel(spec: Array<[string, CatType]>, rows: (ev: EvalCtx) => Row[]): VirtualTable {
  return { cols: cols(spec), rows };
}

/** No rows, and any column a query names (pg_policy, pg_trigger, pg_inherits, …). */
const STUB: VirtualTable = { cols: [], rows: () => [], stub: true };

const STUBS = new Set([
  'pg_catalog.pg_aggregate', 'pg_catalog.pg_amop', 'pg_catalog.pg_amproc', 'pg_catalog.pg_auth_members', 'pg_catalog.pg_cast', 'pg_catalog.pg_conversion',
  'pg_catalog.pg_default_acl', 'pg_catalog.pg_depend', 'pg_catalog.pg_enum', 'pg_catalog.pg_event_trigger', 'pg_catalog.pg_extension',
  'pg_catalog.pg_foreign_data_wrapper', 'pg_catalog.pg_foreign_server', 'pg_catalog.pg_foreign_table', 'pg_catalog.pg_inherits', 'pg_catalog.pg_init_privs',
  'pg_catalog.pg_language', 'pg_catalog.pg_largeobject_metadata', 'pg_catalog.pg_locks', 'pg_catalog.pg_matviews', 'pg_catalog.pg_opclass',
  'pg_catalog.pg_operator', 'pg_catalog.pg_opfamily', 'pg_catalog.pg_partitioned_table', 'pg_catalog.pg_policy', 'pg_catalog.pg_policies',
  'pg_catalog.pg_prepared_xacts', 'pg_catalog.pg_proc', 'pg_catalog.pg_publication', 'pg_catalog.pg_publication_namespace', 'pg_catalog.pg_publication_rel',
  'pg_catalog.pg_range', 'pg_catalog.pg_rewrite', 'pg_catalog.pg_rules', 'pg_catalog.pg_seclabel', 'pg_catalog.pg_sequence', 'pg_catalog.pg_sequences',
  'pg_catalog.pg_shdescription', 'pg_catalog.pg_stat_activity', 'pg_catalog.pg_statistic', 'pg_catalog.pg_statistic_ext', 'pg_catalog.pg_statistic_ext_data',
  'pg_catalog.pg_subscription', 'pg_catalog.pg_transform', 'pg_catalog.pg_trigger', 'pg_catalog.pg_ts_config', 'pg_catalog.pg_ts_dict',
  'pg_catalog.pg_ts_parser', 'pg_catalog.pg_ts_template', 'pg_catalog.pg_user_mapping', 'pg_catalog.pg_views',
  'information_schema.check_constraints', 'information_schema.referential_constraints', 'information_schema.routines', 'information_schema.parameters',
  'information_schema.sequences', 'information_schema.triggers', 'information_schema.views', 'information_schema.domains',
]);

/** PostgreSQL's OIDs of the catalog relations that queries name with 'pg_catalog.x'::regclass. */
const CATALOG_OIDS: Record<string, number> = {
  pg_type: 1247, pg_attribute: 1249, pg_proc: 1255, pg_class: 1259, pg_database: 1262, pg_authid: 1260, pg_am: 2601, pg_attrdef: 2604,
  pg_constraint: 2606, pg_description: 2609, pg_index: 2610, pg_inherits: 2611, pg_namespace: 2615, pg_rewrite: 2618, pg_trigger: 2620,
  pg_collation: 3456, pg_policy: 3256, pg_statistic_ext: 3381, pg_publication: 6104, pg_extension: 3079,
};

interface TypeInfo {
  len: number;
  byval: boolean;
  category: string;
  align: string;
  /** format_type's name. */
  display: string;
  collation: number;
}

/** pg_type details of the types in types.ts's OID map. */
const TYPE_INFO: Record<string, TypeInfo> = {
  bool: { len: 1, byval: true, category: 'B', align: 'c', display: 'boolean', collation: 0 },
  bytea: { len: -1, byval: false, category: 'U', align: 'i', display: 'bytea', collation: 0 },
  char: { len: 1, byval: true, category: 'Z', align: 'c', display: '"char"', collation: 0 },
  name: { len: 64, byval: false, category: 'S', align: 'c', display: 'name', collation: 950 },
  int8: { len: 8, byval: true, category: 'N', align: 'd', display: 'bigint', collation: 0 },
  int2: { len: 2, byval: true, category: 'N', align: 's', display: 'smallint', collation: 0 },
  int4: { len: 4, byval: true, category: 'N', align: 'i', display: 'integer', collation: 0 },
  text: { len: -1, byval: false, category: 'S', align: 'i', display: 'text', collation: DEFAULT_COLLATION },
  oid: { len: 4, byval: true, category: 'N', align: 'i', display: 'oid', collation: 0 },
  float4: { len: 4, byval: true, category: 'N', align: 'i', display: 'real', collation: 0 },
  float8: { len: 8, byval: true, category: 'N', align: 'd', display: 'double precision', collation: 0 },
  unknown: { len: -2, byval: false, category: 'X', align: 'c', display: 'unknown', collation: 0 },
  varchar: { len: -1, byval: false, category: 'S', align: 'i', display: 'character varying', collation: DEFAULT_COLLATION },
  bpchar: { len: -1, byval: false, category: 'S', align: 'i', display: 'character', collation: DEFAULT_COLLATION },
  timestamp: { len: 8, byval: true, category: 'D', align: 'd', display: 'timestamp without time zone', collation: 0 },
  timestamptz: { len: 8, byval: true, category: 'D', align: 'd', display: 'timestamp with time zone', collation: 0 },
  numeric: { len: -1, byval: false, category: 'N', align: 'i', display: 'numeric', collation: 0 },
  regclass: { len: 4, byval: true, category: 'N', align: 'i', display: 'regclass', collation: 0 },
};

const TYPE_BY_OID = new Map(Object.entries(OID).map(([name, oid]) => [oid, name]));

/** format_type(oid, typmod): PostgreSQL's display name, with the typmod as pg_attribute keeps it (n + 4). */
export function formatTypeOid(oid: number, typmod: number | null): string {
  const name = TYPE_BY_OID.get(oid);
  if (!name) return '???';
  const mod = typmod !== null && typmod >= 4 ? typmod - 4 : -1;
  if (name === 'varchar') return formatType('text', 'varchar', mod);
  if (name === 'numeric') return formatType('numeric', 'numeric', mod);
  if (name === 'bpchar') return mod >= 0 ? `character(${mod})` : 'character';
  return TYPE_INFO[name]?.display ?? name;
}

function visibleColumns(t: TableDesc): Array<{ c: TableDesc['columns'][number]; i: number }> {
  return t.columns.map((c, i) => ({ c, i })).filter((x) => !x.c.hidden);
}

/** Whether the table has a primary key of its own (tables without one are keyed by a hidden row id). */
function hasPrimaryKey(t: TableDesc): boolean {
  return !t.primary.columns.some((c) => t.columns[c]!.hidden);
}

/** The indexes \d shows: the primary key (when the table has one) and the secondary indexes. */
function shownIndexes(t: TableDesc): IndexDesc[] {
  return [...(hasPrimaryKey(t) ? [t.primary] : []), ...t.indexes];
}

function indexName(t: TableDesc, i: IndexDesc): string {
  return i.id === 0 ? `${t.name}_pkey` : i.name;
}

/** A UNIQUE index made by a UNIQUE constraint of CREATE TABLE (named table_col_key, as PostgreSQL names them). */
function isUniqueConstraint(t: TableDesc, i: IndexDesc): boolean {
  return i.id !== 0 && i.unique && i.name === `${t.name}_${i.columns.map((c) => t.columns[c]!.name).join('_')}_key`;
}

/** The constraints: primary key ('p') and UNIQUE constraints ('u'). */
function constraints(t: TableDesc): Array<{ index: IndexDesc; type: 'p' | 'u' }> {
  return shownIndexes(t)
    .filter((i) => i.id === 0 || isUniqueConstraint(t, i))
    .map((index) => ({ index, type: index.id === 0 ? 'p' : 'u' }));
}

function oidBase(t: TableDesc): number {
  return 2 ** 31 + (t.id % 2 ** 24) * 128;
}

export function indexOid(t: TableDesc, indexId: number): number {
  return oidBase(t) + (indexId % 64);
}

function constraintOid(t: TableDesc, indexId: number): number {
  return oidBase(t) + 64 + (indexId % 32);
}

function attrdefOid(t: TableDesc, attnum: number): number {
  return oidBase(t) + 96 + (attnum % 32);
}

function userName(ev: EvalCtx): string {
  return ev.session?.user ?? DATABASE;
}

function keyColumns(t: TableDesc, i: IndexDesc): string {
  return i.columns.map((c) => quoteIdent(t.columns[c]!.name)).join(', ');
}

function indexDef(t: TableDesc, i: IndexDesc): string {
  return `CREATE ${i.unique ? 'UNIQUE ' : ''}INDEX ${quoteIdent(indexName(t, i))} ON public.${quoteIdent(t.name)} USING btree (${keyColumns(t, i)})`;
}

/** A default's SQL text as pg_get_expr shows it: a string literal for a varchar column is a character varying. */
function defaultText(c: TableDesc['columns'][number]): string | null {
  const d = c.defaultText ?? null;
  return d !== null && c.pgType === 'varchar' && /^'(?:[^']|'')*'::text$/.test(d) ? d.replace(/::text$/, '::character varying') : d;
}

function collationOf(c: TableDesc['columns'][number]): number {
  return c.type === 'text' ? DEFAULT_COLLATION : 0;
}

/** A pg_catalog / information_schema relation, or undefined when CascaDB does not provide it. */
export function catalogRelation(catalog: Catalog, schema: string | undefined, name: string): VirtualTable | undefined {
  const key = `${schema ?? (name.startsWith('pg_') ? 'pg_catalog' : '')}.${name}`;
  if (STUBS.has(key)) return STUB;
  const tables = () => catalog.list();
  switch (key) {
    case 'pg_catalog.pg_namespace':
      return rel([['oid', 'oid'], ['nspname', 'name'], ['nspowner', 'oid'], ['nspacl', 'array']], () => [
        [CATALOG_NS, 'pg_catalog', OWNER, null],
        [TOAST_NS, 'pg_toast', OWNER, null],
        [PUBLIC_NS, 'public', OWNER, null],
        [INFO_NS, 'information_schema', OWNER, null],
      ]);
    case 'pg_catalog.pg_class':
      return rel(
        [
          ['oid', 'oid'], ['relname', 'name'], ['relnamespace', 'oid'], ['reltype', 'oid'], ['reloftype', 'oid'], ['relowner', 'oid'], ['relam', 'oid'],
          ['relfilenode', 'oid'], ['reltablespace', 'oid'], ['relpages', 'int4'], ['reltuples', 'float4'], ['relallvisible', 'int4'], ['reltoastrelid', 'oid'],
          ['relhasindex', 'bool'], ['relisshared', 'bool'], ['relpersistence', 'char'], ['relkind', 'char'], ['relnatts', 'int2'], ['relchecks', 'int2'],
          ['relhasrules', 'bool'], ['relhastriggers', 'bool'], ['relhassubclass', 'bool'], ['relrowsecurity', 'bool'], ['relforcerowsecurity', 'bool'],
          ['relispopulated', 'bool'], ['relreplident', 'char'], ['relispartition', 'bool'], ['relrewrite', 'oid'], ['relacl', 'array'], ['reloptions', 'array'],
          ['relpartbound', 'text'],
        ],
        () =>
          tables().flatMap((t): Row[] => {
            const shown = shownIndexes(t);
            const row = (oid: number, name: string, am: number, kind: string, natts: number, hasIndex: boolean): Row =>
              [oid, name, PUBLIC_NS, 0, 0, OWNER, am, oid, 0, 0, -1, 0, 0, hasIndex, false, 'p', kind, natts, 0, false, false, false, false, false, true, 'd', false, 0, null, null, null];
            return [row(t.id, t.name, HEAP_AM, 'r', visibleColumns(t).length, shown.length > 0), ...shown.map((i) => row(indexOid(t, i.id), indexName(t, i), BTREE_AM, 'i', i.columns.length, false))];
          }),
      );
    case 'pg_catalog.pg_attribute':
      return rel(
        [
          ['attrelid', 'oid'], ['attname', 'name'], ['atttypid', 'oid'], ['attstattarget', 'int4'], ['attlen', 'int2'], ['attnum', 'int2'], ['attndims', 'int4'],
          ['attcacheoff', 'int4'], ['atttypmod', 'int4'], ['attbyval', 'bool'], ['attalign', 'char'], ['attstorage', 'char'], ['attcompression', 'char'],
          ['attnotnull', 'bool'], ['atthasdef', 'bool'], ['atthasmissing', 'bool'], ['attidentity', 'char'], ['attgenerated', 'char'], ['attisdropped', 'bool'],
          ['attislocal', 'bool'], ['attinhcount', 'int4'], ['attcollation', 'oid'], ['attacl', 'array'], ['attoptions', 'array'], ['attfdwoptions', 'array'],
        ],
        () =>
          tables().flatMap((t) => {
            const attrs = visibleColumns(t).map(({ c, i }): Row => {
              const oid = typeOid(c.type, c.pgType);
              const info = TYPE_INFO[TYPE_BY_OID.get(oid) ?? 'text']!;
              return [t.id, c.name, oid, -1, info.len, i + 1, 0, -1, c.typmod >= 0 ? c.typmod + 4 : -1, info.byval, info.align, info.len !== -1 ? 'p' : c.type === 'numeric' ? 'm' : 'x', '', c.notNull, c.default !== null, false, '', '', false, true, 0, collationOf(c), null, null, null];
            });
            // Index columns, as PostgreSQL lists them for the index relations.
            const idx = shownIndexes(t).flatMap((i) =>
              i.columns.map((col, k): Row => {
                const c = t.columns[col]!;
                const oid = typeOid(c.type, c.pgType);
                const info = TYPE_INFO[TYPE_BY_OID.get(oid) ?? 'text']!;
                return [indexOid(t, i.id), c.name, oid, -1, info.len, k + 1, 0, -1, c.typmod >= 0 ? c.typmod + 4 : -1, info.byval, info.align, 'p', '', false, false, false, '', '', false, true, 0, collationOf(c), null, null, null];
              }),
            );
            return [...attrs, ...idx];
          }),
      );
    case 'pg_catalog.pg_attrdef':
      return rel([['oid', 'oid'], ['adrelid', 'oid'], ['adnum', 'int2'], ['adbin', 'text']], () =>
        tables().flatMap((t) => visibleColumns(t).filter(({ c }) => c.default !== null).map(({ c, i }): Row => [attrdefOid(t, i + 1), t.id, i + 1, defaultText(c)])),
      );
    case 'pg_catalog.pg_index':
      return rel(
        [
          ['indexrelid', 'oid'], ['indrelid', 'oid'], ['indnatts', 'int2'], ['indnkeyatts', 'int2'], ['indisunique', 'bool'], ['indnullsnotdistinct', 'bool'],
          ['indisprimary', 'bool'], ['indisexclusion', 'bool'], ['indimmediate', 'bool'], ['indisclustered', 'bool'], ['indisvalid', 'bool'], ['indcheckxmin', 'bool'],
          ['indisready', 'bool'], ['indislive', 'bool'], ['indisreplident', 'bool'], ['indkey', 'array'], ['indcollation', 'array'], ['indclass', 'array'],
          ['indoption', 'array'], ['indexprs', 'text'], ['indpred', 'text'],
        ],
        () =>
          tables().flatMap((t) =>
            shownIndexes(t).map((i): Row => [
              indexOid(t, i.id), t.id, i.columns.length, i.columns.length, i.unique, false, i.id === 0, false, true, false, true, false, true, true, false,
              i.columns.map((c) => c + 1).join(' '), i.columns.map((c) => collationOf(t.columns[c]!)).join(' '), i.columns.map(() => '0').join(' '), i.columns.map(() => '0').join(' '), null, null,
            ]),
          ),
      );
    case 'pg_catalog.pg_constraint':
      return rel(
        [
          ['oid', 'oid'], ['conname', 'name'], ['connamespace', 'oid'], ['contype', 'char'], ['condeferrable', 'bool'], ['condeferred', 'bool'], ['convalidated', 'bool'],
          ['conrelid', 'oid'], ['contypid', 'oid'], ['conindid', 'oid'], ['conparentid', 'oid'], ['confrelid', 'oid'], ['confupdtype', 'char'], ['confdeltype', 'char'],
          ['confmatchtype', 'char'], ['conislocal', 'bool'], ['coninhcount', 'int4'], ['connoinherit', 'bool'], ['conkey', 'array'], ['confkey', 'array'],
          ['conpfeqop', 'array'], ['conppeqop', 'array'], ['conffeqop', 'array'], ['confdelsetcols', 'array'], ['conexclop', 'array'], ['conbin', 'text'],
        ],
        () =>
          tables().flatMap((t) =>
            constraints(t).map(({ index: i, type }): Row => [
              constraintOid(t, i.id), indexName(t, i), PUBLIC_NS, type, false, false, true, t.id, 0, indexOid(t, i.id), 0, 0, ' ', ' ', ' ', true, 0, true,
              `{${i.columns.map((c) => c + 1).join(',')}}`, null, null, null, null, null, null, null,
            ]),
          ),
      );
    case 'pg_catalog.pg_type':
      return rel(
        [
          ['oid', 'oid'], ['typname', 'name'], ['typnamespace', 'oid'], ['typowner', 'oid'], ['typlen', 'int2'], ['typbyval', 'bool'], ['typtype', 'char'],
          ['typcategory', 'char'], ['typispreferred', 'bool'], ['typisdefined', 'bool'], ['typdelim', 'char'], ['typrelid', 'oid'], ['typsubscript', 'text'],
          ['typelem', 'oid'], ['typarray', 'oid'], ['typinput', 'text'], ['typoutput', 'text'], ['typreceive', 'text'], ['typsend', 'text'], ['typalign', 'char'],
          ['typstorage', 'char'], ['typnotnull', 'bool'], ['typbasetype', 'oid'], ['typtypmod', 'int4'], ['typndims', 'int4'], ['typcollation', 'oid'],
          ['typdefault', 'text'], ['typacl', 'array'],
        ],
        () =>
          Object.entries(OID).map(([name, oid]): Row => {
            const i = TYPE_INFO[name] ?? TYPE_INFO.text!;
            return [oid, name, CATALOG_NS, OWNER, i.len, i.byval, name === 'unknown' ? 'p' : 'b', i.category, ['bool', 'text', 'float8', 'oid', 'timestamptz'].includes(name), true, ',', 0, '-', 0, 0, `${name}in`, `${name}out`, `${name}recv`, `${name}send`, i.align, i.len === -1 ? 'x' : 'p', false, 0, -1, 0, i.collation, null, null];
          }),
      );
    case 'pg_catalog.pg_am':
      return rel([['oid', 'oid'], ['amname', 'name'], ['amhandler', 'text'], ['amtype', 'char']], () => [
        [HEAP_AM, 'heap', 'heap_tableam_handler', 't'],
        [BTREE_AM, 'btree', 'bthandler', 'i'],
      ]);
    case 'pg_catalog.pg_collation':
      return rel(
        [['oid', 'oid'], ['collname', 'name'], ['collnamespace', 'oid'], ['collowner', 'oid'], ['collprovider', 'char'], ['collisdeterministic', 'bool'], ['collencoding', 'int4'], ['collcollate', 'text'], ['collctype', 'text'], ['colliculocale', 'text'], ['collversion', 'text']],
        () => [
          [DEFAULT_COLLATION, 'default', CATALOG_NS, OWNER, 'd', true, -1, null, null, null, null],
          [950, 'C', CATALOG_NS, OWNER, 'c', true, -1, 'C', 'C', null, null],
          [951, 'POSIX', CATALOG_NS, OWNER, 'c', true, -1, 'POSIX', 'POSIX', null, null],
        ],
      );
    case 'pg_catalog.pg_database':
      return rel(
        [
          ['oid', 'oid'], ['datname', 'name'], ['datdba', 'oid'], ['encoding', 'int4'], ['datlocprovider', 'char'], ['datistemplate', 'bool'], ['datallowconn', 'bool'],
          ['datconnlimit', 'int4'], ['dattablespace', 'oid'], ['datcollate', 'text'], ['datctype', 'text'], ['daticulocale', 'text'], ['daticurules', 'text'],
          ['datcollversion', 'text'], ['datacl', 'array'],
        ],
        () => [[DATABASE_OID, DATABASE, OWNER, 6, 'c', false, true, -1, 1663, 'C', 'C', null, null, null, null]],
      );
    case 'pg_catalog.pg_tablespace':
      return rel([['oid', 'oid'], ['spcname', 'name'], ['spcowner', 'oid'], ['spcacl', 'array'], ['spcoptions', 'array']], () => [
        [1663, 'pg_default', OWNER, null, null],
        [1664, 'pg_global', OWNER, null, null],
      ]);
    case 'pg_catalog.pg_roles':
    case 'pg_catalog.pg_authid':
      return rel(
        [
          ['oid', 'oid'], ['rolname', 'name'], ['rolsuper', 'bool'], ['rolinherit', 'bool'], ['rolcreaterole', 'bool'], ['rolcreatedb', 'bool'], ['rolcanlogin', 'bool'],
          ['rolreplication', 'bool'], ['rolconnlimit', 'int4'], ['rolpassword', 'text'], ['rolvaliduntil', 'text'], ['rolbypassrls', 'bool'], ['rolconfig', 'array'],
        ],
        (ev) => [[OWNER, userName(ev), true, true, true, true, true, false, -1, '********', null, true, null]],
      );
    case 'pg_catalog.pg_user':
      return rel(
        [['usename', 'name'], ['usesysid', 'oid'], ['usecreatedb', 'bool'], ['usesuper', 'bool'], ['userepl', 'bool'], ['usebypassrls', 'bool'], ['passwd', 'text'], ['valuntil', 'text'], ['useconfig', 'array']],
        (ev) => [[userName(ev), OWNER, true, true, false, true, '********', null, null]],
      );
    case 'pg_catalog.pg_description':
      return rel([['objoid', 'oid'], ['classoid', 'oid'], ['objsubid', 'int4'], ['description', 'text']], () => []);
    case 'pg_catalog.pg_settings':
      return rel(
        [['name', 'text'], ['setting', 'text'], ['unit', 'text'], ['category', 'text'], ['short_desc', 'text'], ['extra_desc', 'text'], ['context', 'text'], ['vartype', 'text'], ['source', 'text'], ['boot_val', 'text'], ['reset_val', 'text'], ['pending_restart', 'bool']],
        (ev) =>
          Object.entries(SETTINGS).map(([name, v]): Row => {
            const s = ev.session?.params[name] ?? v;
            return [name, s, null, 'CascaDB', null, null, 'user', /^\d+$/.test(v) ? 'integer' : v === 'on' || v === 'off' ? 'bool' : 'string', 'default', v, v, false];
          }),
      );
    case 'pg_catalog.pg_tables':
      return rel(
        [['schemaname', 'name'], ['tablename', 'name'], ['tableowner', 'name'], ['tablespace', 'name'], ['hasindexes', 'bool'], ['hasrules', 'bool'], ['hastriggers', 'bool'], ['rowsecurity', 'bool']],
        (ev) => tables().map((t): Row => ['public', t.name, userName(ev), null, shownIndexes(t).length > 0, false, false, false]),
      );
    case 'pg_catalog.pg_indexes':
      return rel([['schemaname', 'name'], ['tablename', 'name'], ['indexname', 'name'], ['tablespace', 'name'], ['indexdef', 'text']], () =>
        tables().flatMap((t) => shownIndexes(t).map((i): Row => ['public', t.name, indexName(t, i), null, indexDef(t, i)])),
      );
    case 'information_schema.schemata':
      return rel(
        [['catalog_name', 'name'], ['schema_name', 'name'], ['schema_owner', 'name'], ['default_character_set_catalog', 'name'], ['default_character_set_schema', 'name'], ['default_character_set_name', 'name'], ['sql_path', 'text']],
        (ev) => ['pg_catalog', 'public', 'information_schema'].map((s): Row => [DATABASE, s, userName(ev), null, null, null, null]),
      );
    case 'information_schema.tables':
      return rel(
        [
          ['table_catalog', 'name'], ['table_schema', 'name'], ['table_name', 'name'], ['table_type', 'text'], ['self_referencing_column_name', 'name'],
          ['reference_generation', 'text'], ['user_defined_type_catalog', 'name'], ['user_defined_type_schema', 'name'], ['user_defined_type_name', 'name'],
          ['is_insertable_into', 'text'], ['is_typed', 'text'], ['commit_action', 'text'],
        ],
        () => tables().map((t): Row => [DATABASE, 'public', t.name, 'BASE TABLE', null, null, null, null, null, 'YES', 'NO', null]),
      );
    case 'information_schema.columns':
      return rel(
        [
          ['table_catalog', 'name'], ['table_schema', 'name'], ['table_name', 'name'], ['column_name', 'name'], ['ordinal_position', 'int4'], ['column_default', 'text'],
          ['is_nullable', 'text'], ['data_type', 'text'], ['character_maximum_length', 'int4'], ['character_octet_length', 'int4'], ['numeric_precision', 'int4'],
          ['numeric_precision_radix', 'int4'], ['numeric_scale', 'int4'], ['datetime_precision', 'int4'], ['interval_type', 'text'], ['interval_precision', 'int4'],
          ['collation_catalog', 'name'], ['collation_schema', 'name'], ['collation_name', 'name'], ['domain_catalog', 'name'], ['domain_schema', 'name'],
          ['domain_name', 'name'], ['udt_catalog', 'name'], ['udt_schema', 'name'], ['udt_name', 'name'], ['dtd_identifier', 'text'], ['is_self_referencing', 'text'],
          ['is_identity', 'text'], ['identity_generation', 'text'], ['is_generated', 'text'], ['generation_expression', 'text'], ['is_updatable', 'text'],
        ],
        () =>
          tables().flatMap((t) =>
            visibleColumns(t).map(({ c, i }): Row => {
              const varchar = c.pgType === 'varchar' && c.typmod >= 0;
              const num = c.type === 'numeric' && c.typmod >= 0;
              const precision = c.pgType === 'int4' ? 32 : c.type === 'int8' ? 64 : c.type === 'float4' ? 24 : c.type === 'float8' ? 53 : num ? c.typmod >> 16 : null;
              const radix = precision === null ? null : c.type === 'numeric' ? 10 : 2;
              const scale = c.type === 'int4' || c.type === 'int8' ? 0 : num ? c.typmod & 0xffff : null;
              const udt = TYPE_BY_OID.get(typeOid(c.type, c.pgType)) ?? c.pgType;
              return [
                DATABASE, 'public', t.name, c.name, i + 1, defaultText(c), c.notNull ? 'NO' : 'YES', formatType(c.type, c.pgType, -1), varchar ? c.typmod : null,
                c.type === 'text' ? (varchar ? c.typmod * 4 : 1073741824) : null, precision, radix, scale, c.type === 'timestamp' ? 6 : null, null, null,
                null, null, null, null, null, null, DATABASE, 'pg_catalog', udt, String(i + 1), 'NO', 'NO', null, 'NEVER', null, 'YES',
              ];
            }),
          ),
      );
    case 'information_schema.table_constraints':
      return rel(
        [['constraint_catalog', 'name'], ['constraint_schema', 'name'], ['constraint_name', 'name'], ['table_catalog', 'name'], ['table_schema', 'name'], ['table_name', 'name'], ['constraint_type', 'text'], ['is_deferrable', 'text'], ['initially_deferred', 'text'], ['enforced', 'text'], ['nulls_distinct', 'text']],
        () => tables().flatMap((t) => constraints(t).map(({ index: i, type }): Row => [DATABASE, 'public', indexName(t, i), DATABASE, 'public', t.name, type === 'p' ? 'PRIMARY KEY' : 'UNIQUE', 'NO', 'NO', 'YES', 'YES'])),
      );
    case 'information_schema.key_column_usage':
      return rel(
        [['constraint_catalog', 'name'], ['constraint_schema', 'name'], ['constraint_name', 'name'], ['table_catalog', 'name'], ['table_schema', 'name'], ['table_name', 'name'], ['column_name', 'name'], ['ordinal_position', 'int4'], ['position_in_unique_constraint', 'int4']],
        () => tables().flatMap((t) => constraints(t).flatMap(({ index: i }) => i.columns.map((c, k): Row => [DATABASE, 'public', indexName(t, i), DATABASE, 'public', t.name, t.columns[c]!.name, k + 1, null]))),
      );
    default:
      return undefined;
  }
}

function findIndexByOid(catalog: Catalog, oid: number): { t: TableDesc; i: IndexDesc } | undefined {
  for (const t of catalog.list()) for (const i of shownIndexes(t)) if (indexOid(t, i.id) === oid) return { t, i };
  return undefined;
}

function findConstraintByOid(catalog: Catalog, oid: number): { t: TableDesc; i: IndexDesc; type: 'p' | 'u' } | undefined {
  for (const t of catalog.list()) for (const c of constraints(t)) if (constraintOid(t, c.index.id) === oid) return { t, i: c.index, type: c.type };
  return undefined;
}

/** An identifier as text input of regclass and friends: "Quoted" keeps case, else folded to lower case; schema dropped. */
function parseQualified(text: string): { schema?: string; name: string } {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^."\s]+))\s*(\.|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text))) {
    parts.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!.toLowerCase());
    if (m[3] === '') break;
  }
  if (parts.length === 0) throw new PgError('42602', `invalid name syntax`);
  return parts.length > 1 ? { schema: parts[parts.length - 2], name: parts[parts.length - 1]! } : { name: parts[0]! };
}

function regclassOid(catalog: Catalog, text: string, missingOk: boolean): number | null {
  if (/^\s*\d+\s*$/.test(text)) return Number(text);
  const { schema, name } = parseQualified(text);
  if (schema === undefined || schema === 'public') {
    const t = catalog.find(name);
    if (t) return t.id;
    const idx = catalog.findIndex(name);
    if (idx) return indexOid(idx.table, idx.index.id);
  }
  if ((schema === undefined || schema === 'pg_catalog') && CATALOG_OIDS[name] !== undefined) return CATALOG_OIDS[name]!;
  if (missingOk) return null;
  throw new PgError('42P01', `relation "${text}" does not exist`);
}

function regtypeOid(text: string, missingOk: boolean): number | null {
  if (/^\s*\d+\s*$/.test(text)) return Number(text);
  const t = text.trim().toLowerCase().replace(/^pg_catalog\./, '').replace(/\(.*\)$/, '');
  const alias: Record<string, string> = { integer: 'int4', int: 'int4', bigint: 'int8', smallint: 'int2', real: 'float4', 'double precision': 'float8', boolean: 'bool', 'character varying': 'varchar', character: 'bpchar', 'timestamp without time zone': 'timestamp', 'timestamp with time zone': 'timestamptz', decimal: 'numeric' };
  const oid = OID[alias[t] ?? t];
  if (oid !== undefined) return oid;
  if (missingOk) return null;
  throw new PgError('42704', `type "${text}" does not exist`);
}

function regnamespaceOid(text: string): number {
  if (/^\s*\d+\s*$/.test(text)) return Number(text);
  const oid = { pg_catalog: CATALOG_NS, public: PUBLIC_NS, information_schema: INFO_NS, pg_toast: TOAST_NS }[parseQualified(text).name];
  if (oid === undefined) throw new PgError('3F000', `schema "${text}" does not exist`);
  return oid;
}

function sizePretty(n: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 10 * 1024 && u < units.length - 1) {
    v = Math.round(v / 1024);
    u++;
  }
  return `${v} ${units[u]}`;
}

/**
 * The catalog functions psql and drivers call (pg_catalog.* names arrive without their schema), and the
 * casts to regclass, regtype and regnamespace (called with the type name). Undefined: not a catalog function.
 */
export function catalogFunctions(catalog: Catalog): (name: string, args: Compiled[]) => Compiled | undefined {
  return (name, args) => {
    const a = args.map((x) => x.eval);
    /** NULL in, NULL out; otherwise f of the argument values. */
    const strict = (type: SqlType, f: (v: SqlValue[], ev: EvalCtx) => SqlValue, pgType?: string): Compiled => ({
      type,
      pgType,
      eval: (row, ev) => {
        const v = a.map((e) => e(row, ev));
        return v.some((x) => x === null) ? null : f(v, ev);
      },
    });
    const oidOf = (v: SqlValue) => Number(v);
    switch (name) {
      case 'pg_table_is_visible':
      case 'pg_type_is_visible':
      case 'pg_function_is_visible':
      case 'pg_operator_is_visible':
      case 'pg_opclass_is_visible':
      case 'pg_collation_is_visible':
      case 'pg_conversion_is_visible':
      case 'pg_statistics_obj_is_visible':
      case 'has_table_privilege':
      case 'has_any_column_privilege':
      case 'has_column_privilege':
      case 'has_schema_privilege':
      case 'has_database_privilege':
      case 'has_function_privilege':
      case 'has_sequence_privilege':
      case 'has_type_privilege':
      case 'has_tablespace_privilege':
      case 'pg_has_role':
        return strict('bool', () => true);
      case 'pg_relation_is_publishable':
      case 'pg_is_in_recovery':
      case 'pg_is_other_temp_schema':
        return strict('bool', () => false);
      case 'pg_get_userbyid':
        return strict('text', (_v, ev) => userName(ev), 'name');
      case 'format_type':
        return {
          type: 'text',
          eval: (row, ev) => {
            const oid = a[0]!(row, ev);
            if (oid === null) return null;
            const mod = a[1] ? a[1](row, ev) : null;
            return formatTypeOid(oidOf(oid), mod === null ? null : Number(mod));
          },
        };
      case 'pg_get_expr':
        // CascaDB keeps a default's SQL text where PostgreSQL keeps its node tree (pg_attrdef.adbin).
        return { type: 'text', eval: (row, ev) => { const v = a[0]!(row, ev); return v === null ? null : String(v); } };
      case 'pg_get_indexdef':
        return {
          type: 'text',
          eval: (row, ev) => {
            const oid = a[0]!(row, ev);
            if (oid === null) return null;
            const found = findIndexByOid(catalog, oidOf(oid));
            if (!found) return null;
            const col = a[1] ? Number(a[1](row, ev) ?? 0) : 0;
            if (col > 0) {
              const c = found.i.columns[col - 1];
              return c === undefined ? '' : quoteIdent(found.t.columns[c]!.name);
            }
            return indexDef(found.t, found.i);
          },
        };
      case 'pg_get_constraintdef':
        return strict('text', (v) => {
          const found = findConstraintByOid(catalog, oidOf(v[0]!));
          if (!found) return null;
          return `${found.type === 'p' ? 'PRIMARY KEY' : 'UNIQUE'} (${keyColumns(found.t, found.i)})`;
        });
      case 'obj_description':
      case 'col_description':
      case 'shobj_description':
      case 'pg_get_viewdef':
      case 'pg_get_triggerdef':
      case 'pg_get_ruledef':
      case 'pg_get_functiondef':
      case 'pg_get_function_arguments':
      case 'pg_get_function_result':
      case 'pg_get_statisticsobjdef':
      case 'pg_get_statisticsobjdef_columns':
      case 'pg_get_serial_sequence':
        return constant(null, 'text');
      case 'pg_encoding_to_char':
        return strict('text', () => 'UTF8', 'name');
      case 'pg_char_to_encoding':
        return strict('int4', () => 6);
      case 'pg_partition_root':
      case 'pg_partition_ancestors':
        // A table that is not partitioned is its own root and only ancestor.
        return strict('int8', (v) => oidOf(v[0]!), 'oid');
      case 'pg_relation_size':
      case 'pg_table_size':
      case 'pg_indexes_size':
      case 'pg_total_relation_size':
      case 'pg_database_size':
        return strict('int8', () => 0);
      case 'pg_size_pretty':
        return strict('text', (v) => sizePretty(Number(v[0])));
      case 'pg_tablespace_location':
        return strict('text', () => '');
      case 'current_schemas':
        return strict('text', (v) => (v[0] === true ? '{pg_catalog,public}' : '{public}'));
      case 'pg_backend_pid':
        return constant(process.pid, 'int4');
      case 'current_setting':
        return {
          type: 'text',
          eval: (row, ev) => {
            const n = a[0]!(row, ev);
            if (n === null) return null;
            const key = String(n).toLowerCase();
            const v = ev.session?.params[key] ?? SETTINGS[key];
            if (v === undefined && !(a[1] && a[1](row, ev) === true)) throw new PgError('42704', `unrecognized configuration parameter "${n}"`);
            return v ?? null;
          },
        };
      case 'array_to_string':
        // CascaDB has no array values: arrays (catalog columns, ARRAY(subquery)) are their text form '{a,b}'.
        return strict('text', (v) => parseArrayText(String(v[0])).filter((x) => x !== null).join(String(v[1])));
      case 'regclass':
      case 'to_regclass':
        if (args[0]!.type === 'int4' || args[0]!.type === 'int8') return { ...args[0]!, type: 'int8', pgType: 'oid', column: undefined };
        return strict('int8', (v) => regclassOid(catalog, String(v[0]), name === 'to_regclass'), 'oid');
      case 'regtype':
      case 'to_regtype':
        if (args[0]!.type === 'int4' || args[0]!.type === 'int8') return { ...args[0]!, type: 'int8', pgType: 'oid', column: undefined };
        return strict('int8', (v) => regtypeOid(String(v[0]), name === 'to_regtype'), 'oid');
      case 'regnamespace':
        if (args[0]!.type === 'int4' || args[0]!.type === 'int8') return { ...args[0]!, type: 'int8', pgType: 'oid', column: undefined };
        return strict('int8', (v) => regnamespaceOid(String(v[0])), 'oid');
      default:
        return undefined;
    }
  };
}

/** Statements that need a dedicated answer: none; the relations, functions and the planner answer them all. */
export function catalogQuery(
  _catalog: Catalog,
  _select: Node,
): { columns: ScopeColumn[] | null; run: (session: Session, params: SqlValue[]) => Promise<StatementResult> } | undefined {
  return undefined;
}
