/**
 * The first key that an object in this JSON text holds twice, or undefined. `JSON.parse` keeps the
 * last of them silently, while other parsers (a proxy, a WAF, the client's own) may keep the first:
 * a body that means two things is refused instead (RFC 8259 §4: names SHOULD be unique). The text
 * has passed the nesting limit already (json-depth.ts), so the stack stays small.
 */
export function firstDuplicateKey(text: string): string | undefined {
  // One entry per open `{` (its keys so far) or `[` (null).
  const open: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) open.push(new Set());
    else if (c === 0x5b /* [ */) open.push(null);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) open.pop();
    else if (c === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
      const keys = open[open.length - 1];
      if (keys === undefined || keys === null) continue;
      let next = i + 1;
      while (next < text.length && /\s/.test(text[next] as string)) next++;
      if (text[next] !== ":") continue; // a value, not a key
      const raw = text.slice(start, i + 1);
      // Escapes spell one name several ways ("a" and "\u0061"): compare the names they decode to.
      let name: string;
      try {
        name = raw.includes("\\") ? (JSON.parse(raw) as string) : raw.slice(1, -1);
      } catch {
        return undefined; // malformed: JSON.parse will say so
      }
      if (keys.has(name)) return name;
      keys.add(name);
    }
  }
  return undefined;
}
