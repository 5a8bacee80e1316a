// Turns the children's pino JSON lines into one readable line each for a terminal. Anything that
// is not a pino line (a stack trace, tsx's own output) passes through with the prefix only.

// The kit writes level labels; plain pino writes numbers.
const LEVEL_NAMES: Record<number, string> = {
  10: "trace",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};
const LEVEL_COLORS: Record<string, number> = { warn: 33, error: 31, fatal: 31 };
const NAME_COLORS = [36, 35, 32, 33, 34, 96, 95, 92, 93, 94];
// Shown through the prefix and the time column already, or noise in a terminal.
const HIDDEN = new Set(["level", "time", "msg", "pid", "hostname", "service", "err"]);

export interface LogFormat {
  json: boolean;
  color: boolean;
  /** Width the names are padded to so the columns line up. */
  nameWidth: number;
}

export function createLinePrefixer(name: string, index: number, format: LogFormat) {
  const paint = (code: number | undefined, text: string): string =>
    format.color && code !== undefined ? `\u001b[${code}m${text}\u001b[0m` : text;
  const prefix = paint(NAME_COLORS[index % NAME_COLORS.length], `${name.padEnd(format.nameWidth)} |`);
  return (line: string): string => {
    if (format.json || !line.startsWith("{")) return `${prefix} ${line}`;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return `${prefix} ${line}`;
    }
    const rawLevel = record["level"];
    const level =
      typeof rawLevel === "number"
        ? (LEVEL_NAMES[rawLevel] ?? String(rawLevel))
        : typeof rawLevel === "string"
          ? rawLevel
          : "info";
    // Epoch milliseconds by default, an ISO string with pino's isoTime: shown as HH:MM:SS.mmm (UTC).
    const rawTime = record["time"];
    const iso =
      typeof rawTime === "number"
        ? new Date(rawTime).toISOString()
        : typeof rawTime === "string"
          ? rawTime
          : "";
    const time = /T(\d\d:\d\d:\d\d(\.\d{3})?)/.exec(iso)?.[1] ?? "";
    const rest = Object.fromEntries(Object.entries(record).filter(([key]) => !HIDDEN.has(key)));
    const text = [
      prefix,
      time,
      paint(LEVEL_COLORS[level], level.toUpperCase().padEnd(5)),
      typeof record["msg"] === "string" ? record["msg"] : "",
      Object.keys(rest).length > 0 ? JSON.stringify(rest) : "",
    ]
      .filter(Boolean)
      .join(" ");
    const err = record["err"] as { stack?: string; message?: string } | undefined;
    const stack = err?.stack ?? err?.message;
    return stack ? `${text}\n${stack.replace(/^/gm, `${prefix}   `)}` : text;
  };
}
