/**
 * Deeper JSON bodies are refused (400) before they are parsed: no message of ours nests that far,
 * and an attacker's megabyte of `[[[[…` must cost one pass over the text, not a deep recursion in
 * the parser, in protobuf-es or in our own walks.
 */
export const MAX_JSON_DEPTH = 64;

/** The nesting depth of `{`/`[` in JSON text, outside strings; stops counting past `stop`. */
export function jsonNestingDepth(text: string, stop: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character (an escaped quote does not end the string).
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > stop) return max;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}
