// pg_catalog and information_schema, computed from the data dictionary, so that psql, drivers and ORMs can
// look at the tables they connect to.
import type { Catalog, TableDesc } from '../catalog/index.js';
import type { SqlValue } from '../codec/index.js';
import type { Node, ScopeColumn } from './expr.js';
import type { Row, VirtualTable } from './plan.js';
import type { StatementResult } from './engine.js';
import { formatType, typeOid, type SqlType } from './types.js';
import type { Session } from '../server/backend.js';

const PUBLIC_NS = 2200;
const CATALOG_NS = 11;

function cols(spec: Array<[string, SqlType]>): ScopeColumn[] {
  return spec.map(([name, type]) => ({ name, type }));
}

function visibleColumns(t: TableDesc): Array<{ c: TableDesc['columns'][number]; i: number }> {
  return t.columns.map((c, i) => ({ c, i })).filter((x) => !x.c.hidden);
}

/** A pg_catalog / information_schema relation, or undefined when CascaDB does not provide it. */
export function catalogRelation(catalog: Catalog, schema: string | undefined, name: string): VirtualTable | undefined {
  const tables = () => catalog.list();
  switch (`${schema ?? 'pg_catalog'}.${name}`) {
    case 'pg_catalog.pg_namespace':
      return {
        cols: cols([['oid', 'int8'], ['nspname', 'text'], ['nspowner', 'int8']]),
        rows: () => [[CATALOG_NS, 'pg_catalog', 10], [PUBLIC_NS, 'public', 10], [13000, 'information_schema', 10]],
      };
    case 'pg_catalog.pg_class':
      return {
        cols: cols([['oid', 'int8'], ['relname', 'text'], ['relnamespace', 'int8'], ['relkind', 'text'], ['relowner', 'int8'], ['reltuples', 'float4'], ['relhasindex', 'bool'], ['relpersistence', 'text'], ['relispartition', 'bool']]),
        rows: () =>
          tables().flatMap((t): Row[] => [
            [t.id, t.name, PUBLIC_NS, 'r', 10, -1, true, 'p', false],
            ...[t.primary, ...t.indexes].map((i): Row => [indexOid(t, i.id), i.id === 0 ? `${t.name}_pkey` : i.name, PUBLIC_NS, 'i', 10, -1, false, 'p', false]),
          ]),
      };
    case 'pg_catalog.pg_attribute':
      return {
        cols: cols([['attrelid', 'int8'], ['attname', 'text'], ['atttypid', 'int8'], ['attnum', 'int4'], ['attnotnull', 'bool'], ['atthasdef', 'bool'], ['attisdropped', 'bool'], ['atttypmod', 'int4'], ['attidentity', 'text'], ['attgenerated', 'text']]),
        rows: () =>
          tables().flatMap((t) =>
            visibleColumns(t).map(({ c, i }): Row => [t.id, c.name, typeOid(c.type, c.pgType), i + 1, c.notNull, c.default !== null, false, c.typmod >= 0 ? c.typmod + 4 : -1, '', '']),
          ),
      };
    case 'pg_catalog.pg_tables':
      return {
        cols: cols([['schemaname', 'text'], ['tablename', 'text'], ['tableowner', 'text'], ['hasindexes', 'bool']]),
        rows: () => tables().map((t): Row => ['public', t.name, 'securegrid', true]),
      };
    case 'pg_catalog.pg_database':
      return { cols: cols([['oid', 'int8'], ['datname', 'text']]), rows: () => [[16384, 'securegrid']] };
    case 'information_schema.tables':
      return {
        cols: cols([['table_catalog', 'text'], ['table_schema', 'text'], ['table_name', 'text'], ['table_type', 'text']]),
        rows: () => tables().map((t): Row => ['securegrid', 'public', t.name, 'BASE TABLE']),
      };
    case 'information_schema.columns':
      return {
        cols: cols([['table_catalog', 'text'], ['table_schema', 'text'], ['table_name', 'text'], ['column_name', 'text'], ['ordinal_position', 'int4'], ['column_default', 'text'], ['is_nullable', 'text'], ['data_type', 'text'], ['character_maximum_length', 'int4']]),
        rows: () =>
          tables().flatMap((t) =>
            visibleColumns(t).map(({ c, i }): Row => ['securegrid', 'public', t.name, c.name, i + 1, c.defaultText ?? null, c.notNull ? 'NO' : 'YES', formatType(c.type, c.pgType, c.typmod).replace(/\(.*\)$/, ''), c.pgType === 'varchar' && c.typmod >= 0 ? c.typmod : null]),
          ),
      };
    default:
      return undefined;
  }
}

export function indexOid(t: TableDesc, indexId: number): number {
  return (t.id % 100_000_000) * 16 + 1_000_000_000 + indexId;
}

/** Statements that need a dedicated answer (none yet beyond what the virtual relations give). */
export function catalogQuery(
  _catalog: Catalog,
  _select: Node,
): { columns: ScopeColumn[] | null; run: (session: Session, params: SqlValue[]) => Promise<StatementResult> } | undefined {
  return undefined;
}
