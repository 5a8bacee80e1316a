import type { Logger } from "@zero/kit/log";
import type { Redis } from "ioredis";
import type { Kysely } from "kysely";
import type { DB } from "./db/schema.js";
import { localeCandidates, type TemplateContent } from "./template.js";
import { findActiveTemplate, type TemplateWithVersion } from "./template-store.js";

// Where a message finds its template: the active version of (name, locale), falling back to the
// language and then to `en`, read through a Redis cache in front of Postgres.
//
// Cache entries are `<version>:<json>` and only ever replaced by the same or a newer version (a
// Lua compare-and-set), so a reader that loaded version N just before an admin published N+1
// cannot put N back after the publish wrote N+1 through. Redis being down only costs the cache:
// reads go to Postgres. A publish made while Redis was unreachable leaves the old entry until
// its TTL (short for that reason).

export interface ResolvedTemplate {
  name: string;
  locale: string;
  version: number;
  content: TemplateContent;
}

export interface TemplateCatalog {
  /** The active version for `locale` or its fallbacks; undefined when none exists. */
  resolve(name: string, locale: string): Promise<ResolvedTemplate | undefined>;
  /** After a publish committed: the new version replaces the cached one at once. */
  published(template: ResolvedTemplate): Promise<void>;
}

const TTL_SECONDS = 300;
const keyOf = (name: string, locale: string): string => `notifications:template:${name}:${locale}`;

const SET_IF_NEWER = `
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(%d+):'))
  if version and version > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'EX', ARGV[3])
return 1`;

export function createTemplateCatalog(deps: {
  db: Kysely<DB>;
  redis: Redis;
  logger: Logger;
}): TemplateCatalog {
  const { db, redis } = deps;
  const logger = deps.logger.child({ component: "template-catalog" });
  let redisFailing = false;

  const cacheFailed = (err: unknown): undefined => {
    if (!redisFailing) logger.warn({ err }, "template cache unavailable; reading templates from Postgres");
    redisFailing = true;
    return undefined;
  };
  const cacheWorked = (): void => {
    if (redisFailing) logger.info("template cache available again");
    redisFailing = false;
  };

  async function cached(name: string, locale: string): Promise<ResolvedTemplate | undefined> {
    const raw = await redis.get(keyOf(name, locale)).catch(cacheFailed);
    if (raw === undefined || raw === null) return undefined;
    cacheWorked();
    const json = raw.slice(raw.indexOf(":") + 1);
    try {
      return JSON.parse(json) as ResolvedTemplate;
    } catch {
      return undefined; // a corrupt entry is a miss; the next write replaces it
    }
  }

  async function store(template: ResolvedTemplate): Promise<void> {
    await redis
      .eval(
        SET_IF_NEWER,
        1,
        keyOf(template.name, template.locale),
        String(template.version),
        JSON.stringify(template),
        String(TTL_SECONDS),
      )
      .then(cacheWorked, cacheFailed);
  }

  return {
    async resolve(name, locale) {
      for (const candidate of localeCandidates(locale)) {
        const hit = await cached(name, candidate);
        if (hit !== undefined) return hit;
        const row = await findActiveTemplate(db, name, candidate);
        if (row === undefined) continue;
        const resolved = toResolved(row);
        await store(resolved);
        return resolved;
      }
      return undefined;
    },
    published: store,
  };
}

export function toResolved(row: TemplateWithVersion): ResolvedTemplate {
  return {
    name: row.name,
    locale: row.locale,
    version: row.version,
    content: { subject: row.subject, html: row.html_body, text: row.text_body },
  };
}
